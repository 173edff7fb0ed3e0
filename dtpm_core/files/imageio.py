"""Image reading and writing at the edge of the core.

Every image inside the core is a float32 array in [0, 1] of shape (H, W, 3), RGB. This module
turns PNG, JPEG, TIFF (8/16 bit, float), WebP and BMP files into that form and back, keeping
what a photo carries besides its pixels: alpha, source bit depth, ICC profile and EXIF. EXIF
orientation is applied on reading, so pixels are always upright and the kept EXIF says so.

Writes are atomic (temporary file, fsync, rename) and never go over the source image; a result
can carry an output marker (`dtpm_core.files.output_marker`) saying which input it came from.
Animations and multi-page files are refused by name (only still images are restored).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import struct
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageReadError, ImageWriteError
from .atomic import atomic_writer
from .output_marker import OutputMarker, bmp_with_marker, jpeg_comment, png_chunk, xmp_packet

_FORMAT_BY_SUFFIX = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_FORMAT_BY_SUFFIX)
"""Lower-case file extensions (with the dot) that this module reads and writes."""
UNSUPPORTED_IMAGE_EXTENSIONS: frozenset[str] = frozenset({
    ".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".psd", ".svg", ".ico", ".exr",
    ".hdr", ".pbm", ".pgm", ".ppm", ".pnm", ".tga", ".dng", ".raw", ".cr2", ".cr3", ".nef",
    ".nrw", ".arw", ".orf", ".rw2", ".raf", ".pef", ".srw", ".x3f"})
"""Image types this module cannot read: listed as skipped when found in a folder (other files,
such as sidecars, are passed over without a word)."""
MAX_IMAGE_FILE_BYTES = 2 << 30
"""Largest image file read (2 GiB; a 100-megapixel 16-bit RGBA TIFF is 0.8 GiB)."""
_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
_SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
_ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112
# IFD0 tags that describe the photo rather than the pixel layout; the only ones that can travel
# between a TIFF's own IFD and an EXIF block.
_DESCRIPTIVE_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)
_ENCODE_ERRORS = (OSError, ValueError, KeyError, TypeError, struct.error, zlib.error, cv2.error)
_DECODE_ERRORS = (*_ENCODE_ERRORS, SyntaxError, EOFError, IndexError)
_Bytes = bytes | None


@dataclass(eq=False)
class LoadedImage:
    """An image read from disk, upright, with what it carried besides its pixels."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1], EXIF orientation already applied
    alpha: np.ndarray | None  # (H, W) float32 in [0, 1] or None, carried through untouched
    bit_depth: int  # 8 or 16 (of the source; float TIFFs count as 16)
    was_grayscale: bool
    icc_profile: bytes | None
    exif: bytes | None  # raw EXIF ("Exif\0\0" + TIFF block), Orientation reset to 1
    source_path: Path | None
    format: str  # "PNG", "JPEG", "TIFF", "WEBP", "BMP"
    source_sha256: str | None = None  # of the file's bytes: the identity an output marker holds


def is_supported_image(path: Path | str) -> bool:
    """True if the file name has one of `SUPPORTED_EXTENSIONS` (the disk is not touched)."""
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


# ----------------------------------------------------------------------------- EXIF bytes


def _normalise_exif(raw: bytes | None) -> bytes | None:
    """EXIF as b"Exif\\0\\0" + TIFF block, or None if it is empty or not EXIF at all."""
    if not raw:
        return None
    body = bytes(raw).removeprefix(_EXIF_HEADER)
    return _EXIF_HEADER + body if body[:4] in (b"II*\x00", b"MM\x00*") else None


def _patch_exif(exif: bytes, ifd0: dict[int, int], exif_ifd: dict[int, int] | None = None) -> bytes:
    """Overwrite SHORT/LONG single-value tags in place, leaving every other byte as it was.

    Patching instead of re-serialising keeps maker notes and offsets intact. Tags that are
    absent or of an unexpected type are left alone.
    """
    buf = bytearray(exif)
    base = len(_EXIF_HEADER) if exif.startswith(_EXIF_HEADER) else 0
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(bytes(buf[base : base + 4]))
    if order is None:
        return exif

    def patch(ifd_offset: int, values: dict[int, int]) -> int | None:
        sub_ifd = None
        (count,) = struct.unpack_from(order + "H", buf, base + ifd_offset)
        for i in range(count):
            entry = base + ifd_offset + 2 + 12 * i
            tag, kind, n = struct.unpack_from(order + "HHI", buf, entry)
            if tag == 0x8769 and kind in (4, 13) and n == 1:
                (sub_ifd,) = struct.unpack_from(order + "I", buf, entry + 8)
            if tag in values and n == 1:
                if kind == 3 and 0 <= values[tag] <= 0xFFFF:
                    struct.pack_into(order + "H", buf, entry + 8, values[tag])
                elif kind == 4 and 0 <= values[tag] <= 0xFFFFFFFF:
                    struct.pack_into(order + "I", buf, entry + 8, values[tag])
        return sub_ifd

    try:
        (first,) = struct.unpack_from(order + "I", buf, base + 4)
        sub = patch(first, ifd0)
        if exif_ifd and sub:
            patch(sub, exif_ifd)
    except struct.error:
        return exif
    return bytes(buf)


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W[, C]) array, like ImageOps.exif_transpose."""
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = array.swapaxes(0, 1)
    elif orientation == 6:
        array = np.rot90(array, -1)
    elif orientation == 7:
        array = array[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        array = np.rot90(array, 1)
    return np.ascontiguousarray(array)


def _icc_space(icc: bytes | None) -> bytes | None:
    """The ICC profile's data colour space signature (b"RGB ", b"GRAY", b"CMYK"...)."""
    return bytes(icc[16:20]) if icc and len(icc) >= 128 else None


# ----------------------------------------------------------------------------- reading


class _Fail(Exception):
    """Internal: a reason why a file cannot be read, turned into ImageReadError by the caller."""


def _to_float(array: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer or float samples to float32 in [0, 1], with the source bit depth."""
    if array.dtype == np.bool_:
        return array.astype(np.float32), 8
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255), 8
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535), 16
    if array.dtype.kind == "f":
        out = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(out, 0.0, 1.0), 16
    if array.dtype.kind in "iu" and array.size and 0 <= array.min() and array.max() <= 65535:
        return array.astype(np.float32) / np.float32(65535), 16
    raise _Fail(f"unsupported sample type {array.dtype}")


def _split_channels(
    array: np.ndarray, alpha_index: int | None
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(H, W[, C]) floats to (rgb, alpha, was_grayscale); channel order already RGB."""
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    color = 3 if channels >= 3 else 1
    alpha = None
    if alpha_index is not None and alpha_index < channels:
        alpha = np.ascontiguousarray(array[:, :, alpha_index])
    rgb = array[:, :, :color]
    gray = color == 1
    if gray:
        rgb = np.repeat(rgb, 3, axis=2)
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha, gray


def _pil_pixels(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
    """Decode a loaded Pillow image into (rgb, alpha, bit_depth, was_grayscale)."""
    mode, alpha_index = im.mode, None
    if mode in ("1", "L"):
        target = "L"
    elif mode in ("LA", "La"):
        target, alpha_index = "LA", 1
    elif mode.startswith("I") or mode == "F":  # 16-bit or float gray: keep the precision
        target = mode
    elif mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info):
        target, alpha_index = "RGBA", 3
    else:  # RGB, P, CMYK, YCbCr, LAB, HSV, RGBX ...
        target = "RGB"
    arr, depth = _to_float(np.asarray(im if target == mode else im.convert(target)))
    rgb, alpha, gray = _split_channels(arr, alpha_index)
    return rgb, alpha, depth, gray


def _png_header(data: bytes) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR."""
    if len(data) < 29 or data[12:16] != b"IHDR":
        raise _Fail("damaged PNG header")
    return data[24], data[25]


def _check_pixel_count(width: int, height: int) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > 2 * limit:
        raise _Fail(
            f"{width}x{height} pixels is more than the limit of {2 * limit} "
            "(possible decompression bomb)"
        )


def _read_with_pillow(data: bytes) -> tuple[LoadedImage, object]:
    try:
        im = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    except UnidentifiedImageError as exc:
        raise _Fail("not a PNG, JPEG, TIFF, WebP or BMP image (unrecognised data)") from exc
    with im:
        fmt = "JPEG" if im.format == "MPO" else str(im.format)
        _check_pixel_count(*im.size)
        if fmt in ("PNG", "WEBP"):  # (an MPO's extra frames are previews of the same photo)
            _refuse_frames(int(getattr(im, "n_frames", 1)),
                           f"an animated {'PNG (APNG)' if fmt == 'PNG' else 'WebP'}", "frames")
        im.load()  # decodes now, so truncation and corrupt data show up here
        try:
            exif = im.getexif()
        except _DECODE_ERRORS:  # damaged EXIF does not make the pixels unreadable
            exif = Image.Exif()
        icc = im.info.get("icc_profile")
        depth, color_type = _png_header(data) if fmt == "PNG" else (8, 0)
        if depth == 16 and color_type != 0:  # Pillow keeps only gray PNGs at 16 bit
            rgb, alpha, gray = _decode_png16(data, color_type)
            depth = 16
        else:
            rgb, alpha, depth, gray = _pil_pixels(im)
        raw_exif = _normalise_exif(im.info.get("exif"))
    return LoadedImage(rgb, alpha, depth, gray, icc, raw_exif, None, fmt), exif.get(_ORIENTATION)


def _decode_png16(data: bytes, color_type: int) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """16-bit colour PNG at full precision (Pillow would reduce it to 8 bits)."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise _Fail("corrupt or truncated PNG data")
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    elif arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    values, _ = _to_float(arr)
    rgb, alpha, _ = _split_channels(
        values, 3 if values.ndim == 3 and values.shape[2] == 4 else None
    )
    return rgb, alpha, color_type in (0, 4)


def _read_tiff(data: bytes) -> tuple[LoadedImage, object]:
    import tifffile  # here, not at start-up: only TIFF files need it (~40 ms to import)

    arr, reason = None, "unsupported TIFF layout"
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if not tif.pages:
            raise _Fail("the TIFF file holds no image")
        # reduced-resolution pages (previews, pyramid levels) are views of the same image
        _refuse_frames(sum(1 for p in tif.pages if not getattr(p, "is_reduced", False)),
                       "a multi-page TIFF", "pages")
        page = tif.pages.first
        _check_pixel_count(int(page.imagewidth), int(page.imagelength))
        photometric = int(page.photometric)
        tag = page.tags.get(34675)
        icc = bytes(tag.value) if tag is not None else None
        tag = page.tags.get(274)
        orientation = tag.value if tag is not None else 1
        colormap = page.colormap if photometric == 3 else None
        extras = [int(e) for e in (page.extrasamples or ())]
        if photometric in (0, 1, 2, 3) and page.axes in ("YX", "YXS", "SYX"):
            try:
                arr = page.asarray()
            except _DECODE_ERRORS as exc:  # e.g. a compression that needs imagecodecs
                reason = str(exc)
            else:
                if page.axes == "SYX":
                    arr = np.moveaxis(arr, 0, -1)
    pil_exif, pil_decoded = None, None
    try:  # Pillow for the EXIF block, and for the TIFF kinds tifffile leaves undecoded
        with Image.open(io.BytesIO(data), formats=["TIFF"]) as im:
            if arr is None:
                im.load()
                pil_decoded = _pil_pixels(im)
            with contextlib.suppress(*_DECODE_ERRORS):
                pil_exif = _tiff_exif(im)
    except (*_DECODE_ERRORS, Image.DecompressionBombError) as exc:
        if arr is None:
            raise _Fail(f"{reason}; Pillow: {exc}") from exc
    if pil_decoded is not None:
        rgb, alpha, depth, gray = pil_decoded
    else:
        assert arr is not None
        if colormap is not None:
            values, _ = _to_float(np.moveaxis(colormap[:, arr], 0, -1).astype(np.uint16))
            depth = 8
        else:
            values, depth = _to_float(arr)
        if photometric == 0:
            values = 1.0 - values
        color = 3 if photometric in (2, 3) else 1
        alpha_index = color if extras and extras[0] in (1, 2) else None
        rgb, alpha, gray = _split_channels(values, alpha_index)
        if alpha is not None and extras[0] == 1:  # associated (premultiplied) alpha
            safe = np.where(alpha > 0, alpha, 1.0)[:, :, None]
            rgb = np.clip(rgb / safe, 0.0, 1.0).astype(np.float32)
    return LoadedImage(rgb, alpha, depth, gray, icc, pil_exif, None, "TIFF"), orientation


def _refuse_frames(count: int, kind: str, unit: str) -> None:
    if count > 1:
        raise _Fail(f"it is {kind} with {count} {unit}; only still images are restored: save "
                    f"the {unit} as separate images and restore those")


def _tiff_exif(im: Image.Image) -> bytes | None:
    """An EXIF block built from a TIFF's descriptive IFD0 tags and its EXIF/GPS sub-IFDs."""
    src = im.getexif()
    out = Image.Exif()
    for tag in _DESCRIPTIVE_TAGS:
        if tag in src:
            out[tag] = src[tag]
    for ifd in (0x8769, 0x8825):
        if ifd in src:
            sub = dict(src.get_ifd(ifd))
            if sub:
                out[ifd] = sub
    if not len(out):
        return None
    out[_ORIENTATION] = 1
    return _normalise_exif(out.tobytes())


def special_file_kind(mode: int) -> str | None:
    """What a file is when it is not a regular file ("a named pipe (FIFO)", ...), else None."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def _read_regular_file(path: Path, fail: Callable[[str], ImageReadError]) -> bytes:
    """The bytes of `path`, refusing anything but a regular file of at most
    MAX_IMAGE_FILE_BYTES. Opened without blocking, so a FIFO cannot hang the reader, and
    checked on the open descriptor, so a swap after a check cannot slip through."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        kind = special_file_kind(info.st_mode)
        if kind is not None:
            raise fail(f"it is {kind}, not a regular file; only image files are read")
        limit = MAX_IMAGE_FILE_BYTES
        if info.st_size > limit:
            raise fail(f"the file is {info.st_size / 2**20:.0f} MiB, more than the "
                       f"{limit / 2**20:.0f} MiB an image file may have")
        # read what fstat says is there (+1 to notice growth): reading limit + 1 at once
        # would reserve 2 GiB of address space for every photo (a MemoryError under ulimit -v)
        want = min(info.st_size, limit) + 1
        data = handle.read(want)
        if len(data) == want and want <= limit:  # the file grew since fstat
            data += handle.read(limit + 1 - len(data))
    if len(data) > limit:
        raise fail(f"the file holds more than the {limit / 2**20:.0f} MiB an image file may "
                   "have")
    return data


def read_image(path: Path | str) -> LoadedImage:
    """Read an image as upright float32 RGB in [0, 1] with its alpha and metadata.

    Raises ImageReadError naming the file and the reason for anything that cannot be read.
    """
    path = Path(path)

    def fail(reason: str) -> ImageReadError:
        return ImageReadError(f"Cannot read image {path}: {reason}")

    try:
        if path.is_dir():
            raise fail("it is a folder, not a file")
        data = _read_regular_file(path, fail)
    except FileNotFoundError as exc:
        raise fail("no such file") from exc
    except PermissionError as exc:
        raise fail("permission denied") from exc
    except OSError as exc:
        raise fail(f"the file could not be opened ({exc.strerror or exc})") from exc
    if not data:
        raise fail("the file is empty (0 bytes)")
    try:
        reader = _read_tiff if data[:4] in _TIFF_MAGIC else _read_with_pillow
        image, orientation = reader(data)
    except _Fail as exc:
        raise fail(str(exc)) from exc
    except Image.DecompressionBombError as exc:
        raise fail(f"too many pixels (possible decompression bomb): {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise fail(f"corrupt, truncated or unsupported image data ({exc})") from exc
    try:
        orientation = int(orientation)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        orientation = 1
    image.rgb = _orient(image.rgb, orientation)
    if image.alpha is not None:
        image.alpha = _orient(image.alpha.astype(np.float32, copy=False), orientation)
    if image.exif is not None:
        image.exif = _patch_exif(image.exif, {_ORIENTATION: 1})
    if _icc_space(image.icc_profile) not in (b"RGB ", b"GRAY"):
        image.icc_profile = None  # a CMYK or Lab profile does not describe the RGB pixels
    image.source_path = path
    image.source_sha256 = hashlib.sha256(data).hexdigest()
    return image


_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
"""EXIF orientations that swap height and width (`_orient`)."""


def image_size(path: Path | str) -> tuple[int, int] | None:
    """(height, width) of the upright image, as `read_image` will return it (EXIF orientation
    applied), read from the file's header without decoding the pixels; None when the header
    cannot be read (`read_image` then says why)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) in _TIFF_MAGIC:
                import tifffile  # only TIFF files need it

                handle.seek(0)
                with tifffile.TiffFile(handle) as tif:
                    page = tif.pages.first
                    tag = page.tags.get(274)
                    size = int(page.imagelength), int(page.imagewidth)
                    orientation = tag.value if tag is not None else 1
            else:
                handle.seek(0)
                with Image.open(handle, formats=_PIL_FORMATS) as im:
                    size = int(im.size[1]), int(im.size[0])
                    try:
                        orientation = im.getexif().get(_ORIENTATION, 1)
                    except _DECODE_ERRORS:  # damaged EXIF: read_image ignores it too
                        orientation = 1
    except (*_DECODE_ERRORS, UnidentifiedImageError, Image.DecompressionBombError):
        return None
    return size[::-1] if orientation in _TRANSPOSING_ORIENTATIONS else size


# ----------------------------------------------------------------------------- writing


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


PNG_COMPRESSION_LEVEL = 1
"""zlib level of written PNGs. Measured on a 2.4 MP photograph (`benchmarks/bench_png_levels.py`):
level 1 encodes 4.3x faster than level 6 at 8 bits (0.13 against 0.56 s) for a file 5% larger,
1.4x faster at 16 bits (0.41 against 0.56 s) for 1% more; PNG is lossless at every level."""
PNG_STRATEGY = cv2.IMWRITE_PNG_STRATEGY_RLE
"""zlib strategy of written PNGs: run-length matches only (distance 1, after PNG's row
filters), where the default searches for repeated strings that a photograph rarely has.
Measured at level 1 on four 2.4 MP photographs (`benchmarks/bench_png_levels.py`, an AMD Zen 4
core, `docs/evidence/io/bench_png_levels_zen4.txt`): 8 bits 0.91x the time for 0.91x the bytes
(smaller than level 6 with the default strategy), 16 bits 0.65x the time for 1.04x."""


def _encode_png(fh: BinaryIO, pixels: np.ndarray, icc: _Bytes, exif: _Bytes, quality: int,
                marker: OutputMarker | None = None) -> None:
    """PNG via OpenCV (8 or 16 bit), with iCCP, eXIf and marker chunks added after IHDR."""
    del quality
    if pixels.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
        pixels = cv2.cvtColor(pixels, code)
    ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION_LEVEL,
                                                cv2.IMWRITE_PNG_STRATEGY, PNG_STRATEGY])
    if not ok:
        raise ValueError("OpenCV could not encode the PNG")
    png = encoded.tobytes()
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc, 9))
    if exif:
        extra += _png_chunk(b"eXIf", exif[len(_EXIF_HEADER) :])
    if marker is not None:
        extra += png_chunk(marker)
    ihdr_end = 8 + 8 + 13 + 4
    fh.write(png[:ihdr_end] + extra + png[ihdr_end:])


def _encode_tiff(fh: BinaryIO, pixels: np.ndarray, icc: _Bytes, exif: _Bytes, quality: int,
                 marker: OutputMarker | None = None) -> None:
    """Deflate-compressed TIFF via tifffile, with ICC (tag 34675), unassociated alpha and the
    marker as XMP (tag 700)."""
    import tifffile  # only TIFF files need it

    del quality
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    extratags = []
    if exif:  # tifffile cannot write an EXIF sub-IFD: keep the descriptive IFD0 tags
        parsed = Image.Exif()
        with contextlib.suppress(*_DECODE_ERRORS):
            parsed.load(exif)
        for tag in _DESCRIPTIVE_TAGS:
            value = parsed.get(tag)
            if isinstance(value, str) and value.isascii():
                extratags.append((tag, 2, 0, value, True))
    if marker is not None:
        xmp = xmp_packet(marker)
        extratags.append((700, 1, len(xmp), xmp, True))
    tifffile.imwrite(
        fh,
        pixels,
        photometric="rgb" if channels >= 3 else "minisblack",
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression="zlib",
        predictor=True,
        iccprofile=icc,
        metadata=None,
        software=False,
        extratags=extratags,
    )


def _encode_with_pillow(fmt: str) -> Callable[..., None]:
    def encode(fh: BinaryIO, pixels: np.ndarray, icc: _Bytes, exif: _Bytes, quality: int,
               marker: OutputMarker | None = None) -> None:
        im = Image.fromarray(pixels)
        options: dict[str, object] = {}
        if fmt in ("JPEG", "WEBP"):
            options["quality"] = quality
            if icc:
                options["icc_profile"] = icc
            if exif:
                options["exif"] = exif
        if fmt == "JPEG":
            options["subsampling"] = 0 if quality >= 90 else 2
            options["optimize"] = True
        if fmt == "WEBP":
            options["exact"] = True  # keep the colour under fully transparent pixels
            options["lossless"] = quality == 100
        if marker is not None and fmt == "JPEG":
            options["comment"] = jpeg_comment(marker)
        if marker is not None and fmt == "WEBP":
            options["xmp"] = xmp_packet(marker)
        if marker is not None and fmt == "BMP":  # BMP has no metadata: a block before the pixels
            buffer = io.BytesIO()
            im.save(buffer, fmt, **options)
            fh.write(bmp_with_marker(buffer.getvalue(), marker))
            return
        im.save(fh, fmt, **options)

    encode.__name__ = f"_encode_{fmt.lower()}"
    return encode


_encode_jpeg = _encode_with_pillow("JPEG")
_encode_webp = _encode_with_pillow("WEBP")
_encode_bmp = _encode_with_pillow("BMP")


def _encoder(fmt: str) -> Callable[..., None]:
    # Looked up at call time so that tests can replace an encoder with monkeypatch.
    return globals()[f"_encode_{fmt.lower()}"]


def _atomic_write(target: Path, write: Callable[[BinaryIO], None], replace: bool = True) -> None:
    """Write through a hidden temporary file in the target's folder, then rename over it
    (`replace` False: only if no file has the name, see `atomic_writer`)."""
    with atomic_writer(target, replace=replace) as fh:
        write(fh)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare normalised absolute paths
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _quantise(values: np.ndarray, depth: int) -> np.ndarray:
    scale, dtype = (255.0, np.uint8) if depth == 8 else (65535.0, np.uint16)
    clean = np.nan_to_num(values.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(clean, 0.0, 1.0) * np.float32(scale)).astype(dtype)


def write_image(
    path: Path | str,
    rgb: np.ndarray,
    *,
    like: LoadedImage | None = None,
    bit_depth: int | None = None,
    quality: int = 95,
    alpha: np.ndarray | None = None,
    marker: OutputMarker | None = None,
    replace: bool = True,
) -> Path:
    """Write float RGB in [0, 1] atomically, in the format of the file extension.

    `like` (the LoadedImage the result came from) supplies the default bit depth, ICC profile,
    EXIF (orientation reset to 1, pixel size updated), alpha and grayscale-ness. Alpha is kept
    by PNG, TIFF and WebP; 16 bit by PNG and TIFF. `marker` is written into the file (see
    `dtpm_core.files.output_marker`). With `replace` False an existing file of that name is kept and
    ImageWriteError raised. Returns the written path.
    """
    path = Path(path)

    def fail(reason: str) -> ImageWriteError:
        return ImageWriteError(f"Cannot write image {path}: {reason}")

    fmt = _FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise fail(
            f"unsupported file extension {path.suffix!r}; use one of "
            + ", ".join(sorted(SUPPORTED_EXTENSIONS))
        )
    values = np.asarray(rgb)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim == 2:
        values = np.repeat(values[:, :, None], 3, axis=2)
    if values.ndim != 3 or values.shape[2] != 3 or 0 in values.shape:
        raise fail(f"expected an (H, W, 3) RGB array, got shape {values.shape}")
    if bit_depth is None:
        wanted = like.bit_depth if like is not None else 8
        bit_depth = 16 if wanted == 16 and fmt in _SIXTEEN_BIT_FORMATS else 8
    elif bit_depth not in (8, 16):
        raise fail(f"bit_depth must be 8 or 16, got {bit_depth}")
    elif bit_depth == 16 and fmt not in _SIXTEEN_BIT_FORMATS:
        raise fail(f"{fmt} cannot store 16 bits per channel; use PNG or TIFF")
    if not 1 <= int(quality) <= 100:
        raise fail(f"quality must be between 1 and 100, got {quality}")
    height, width = values.shape[:2]
    if alpha is None and like is not None and like.alpha is not None:
        if like.alpha.shape == (height, width):
            alpha = like.alpha
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.ndim == 3 and alpha.shape[2] == 1:
            alpha = alpha[:, :, 0]
        if alpha.shape != (height, width):
            raise fail(f"alpha shape {alpha.shape} does not match the image ({height}, {width})")
        if fmt not in _ALPHA_FORMATS:
            alpha = None
    if like is not None and like.source_path is not None:
        if _same_file(path, like.source_path):
            raise fail("it is the source image; outputs never overwrite their inputs")

    icc = like.icc_profile if like is not None else None
    exif = _normalise_exif(like.exif) if like is not None else None
    if exif is not None:
        exif = _patch_exif(exif, {_ORIENTATION: 1}, {0xA002: width, 0xA003: height})
        if fmt == "JPEG" and len(exif) > 65533:
            warnings.warn(f"{path}: EXIF block too large for JPEG, dropped", stacklevel=2)
            exif = None
    pixels = _quantise(values, bit_depth)
    space = _icc_space(icc)
    tolerance = 1 if bit_depth == 8 else 257
    gray = (  # the channels' spread last: 0.1 s on a 2.4 MP photo, needed for gray ones only
        like is not None
        and like.was_grayscale
        and alpha is None
        and fmt != "WEBP"
        and space != b"RGB "
        and int(np.ptp(pixels, axis=2).max()) <= tolerance
    )
    if gray:
        pixels = pixels[:, :, 1]
    elif space == b"GRAY":
        icc = None  # a gray profile cannot describe RGB pixels
    if alpha is not None:
        a = _quantise(alpha, bit_depth)
        pixels = np.dstack([pixels, a])
    pixels = np.ascontiguousarray(pixels)

    encode = _encoder(fmt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda fh: encode(fh, pixels, icc, exif, int(quality), marker),
                      replace)
    except FileExistsError as exc:
        raise fail("a file of that name appeared while the result was computed; it was kept "
                   "(run again to write the result under a free name)") from exc
    except _ENCODE_ERRORS as exc:
        raise fail(f"{type(exc).__name__}: {exc}") from exc
    return path


# ----------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class ImageScan:
    """The images found under some paths, and the files passed over with the reason."""

    images: list[Path]
    skipped: list[tuple[Path, str]]


def scan_images(paths: Iterable[Path | str], recursive: bool = True) -> ImageScan:
    """Expand files and folders into a sorted, deduplicated list of supported image files.

    Folders are searched (recursively by default) skipping hidden files and folders (names
    starting with "."). Only regular files are taken (links to them included): FIFOs,
    devices, sockets and broken links named like images are skipped with the reason, and so
    are image types that cannot be read (UNSUPPORTED_IMAGE_EXTENSIONS) and, when named
    explicitly, files of any other type. Raises ImageReadError for a path that does not exist.
    """
    found: dict[Path, Path] = {}
    skipped: dict[Path, str] = {}

    def consider(file: Path, named: bool) -> None:
        suffix = file.suffix.lower()
        if suffix not in SUPPORTED_EXTENSIONS:
            if named or suffix in UNSUPPORTED_IMAGE_EXTENSIONS:
                skipped[file] = (f"unsupported image type {suffix or '(no extension)'}; "
                                 "readable types: " + ", ".join(sorted(SUPPORTED_EXTENSIONS)))
            return
        try:
            kind = special_file_kind(file.stat().st_mode)
        except OSError:
            kind = "a broken link" if file.is_symlink() else "unreadable"
        if kind is not None:
            skipped[file] = f"it is {kind}, not a regular file"
            return
        found.setdefault(file.resolve(), file)

    for entry in paths:
        entry = Path(entry)
        if entry.is_dir():
            for root, dirs, files in os.walk(entry):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        consider(Path(root) / name, named=False)
                if not recursive:
                    break
        elif entry.exists() or entry.is_symlink():
            consider(entry, named=True)
        else:
            raise ImageReadError(f"Cannot list images in {entry}: no such file or folder")
    return ImageScan(sorted(found.values()), sorted(skipped.items()))


def list_images(paths: Iterable[Path | str], recursive: bool = True) -> list[Path]:
    """The supported regular image files of `scan_images` (the skipped ones are dropped)."""
    return scan_images(paths, recursive).images
