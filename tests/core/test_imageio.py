"""Tests of dtpm_core.files.imageio: formats, bit depths, ICC/EXIF/alpha, errors, atomic writes."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from dtpm_core.errors import ImageReadError, ImageWriteError
from dtpm_core.files import imageio
from dtpm_core.files.imageio import (
    SUPPORTED_EXTENSIONS,
    LoadedImage,
    is_supported_image,
    list_images,
    read_image,
    write_image,
)

MAKE, ARTIST, ORIENTATION, EXIF_IFD = 0x010F, 0x013B, 0x0112, 0x8769
DATETIME_ORIGINAL, PIXEL_X, PIXEL_Y = 0x9003, 0xA002, 0xA003


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def random_levels(rng: np.random.Generator, shape: tuple[int, ...], depth: int) -> np.ndarray:
    """Float32 image whose values are exactly k / (2**depth - 1)."""
    top = (1 << depth) - 1
    return rng.integers(0, top + 1, shape).astype(np.float32) / np.float32(top)


def as_levels(values: np.ndarray, depth: int) -> np.ndarray:
    return np.rint(values.astype(np.float64) * ((1 << depth) - 1)).astype(np.int64)


def smooth_image(height: int = 64, width: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    y, x = y / height, x / width
    return np.dstack([x, y, 0.5 + 0.4 * np.sin(6 * x * y)]).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(1.0 / mse)


def pillow_exif(path: Path) -> Image.Exif:
    with Image.open(path) as im:
        exif = im.getexif()
        exif.get_ifd(EXIF_IFD)  # read the sub-IFD while the file is open
        return exif


def marked_pattern(height: int = 40, width: int = 64) -> np.ndarray:
    """Black image with a red block in the top-left corner (survives JPEG)."""
    pattern = np.zeros((height, width, 3), np.uint8)
    pattern[:16, :16] = (255, 0, 0)
    return pattern


def red_corner(rgb: np.ndarray) -> str:
    h, w = rgb.shape[:2]
    corners = {
        "top-left": rgb[:8, :8],
        "top-right": rgb[:8, w - 8 :],
        "bottom-left": rgb[h - 8 :, :8],
        "bottom-right": rgb[h - 8 :, w - 8 :],
    }
    reds = [name for name, block in corners.items() if block[..., 0].mean() > 0.8]
    assert len(reds) == 1, reds
    return reds[0]


# ----------------------------------------------------------------------------- basics


def test_supported_extensions() -> None:
    assert SUPPORTED_EXTENSIONS == {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
    assert is_supported_image("a/b/photo.JPG")
    assert is_supported_image(Path("scan.tiff"))
    assert not is_supported_image("anim.gif")
    assert not is_supported_image("notes.png.txt")
    assert not is_supported_image("noext")


# ----------------------------------------------------------------------------- round trips


def test_png_8bit_round_trip_is_exact(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = random_levels(rng, (13, 17, 3), 8)
    out = write_image(tmp_path / "a.png", rgb)
    assert out == tmp_path / "a.png"
    loaded = read_image(out)
    assert isinstance(loaded, LoadedImage)
    assert loaded.rgb.dtype == np.float32 and loaded.rgb.shape == (13, 17, 3)
    assert np.array_equal(loaded.rgb, rgb)
    assert (loaded.format, loaded.bit_depth, loaded.was_grayscale) == ("PNG", 8, False)
    assert loaded.alpha is None and loaded.source_path == out


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_round_trip_keeps_16bit_precision(
    tmp_path: Path, rng: np.random.Generator, suffix: str
) -> None:
    rgb = random_levels(rng, (11, 15, 3), 16)
    assert np.any(as_levels(rgb, 16) % 257 != 0)  # not representable at 8 bits
    path = write_image(tmp_path / f"a{suffix}", rgb, bit_depth=16)
    loaded = read_image(path)
    assert loaded.bit_depth == 16
    assert np.array_equal(as_levels(loaded.rgb, 16), as_levels(rgb, 16))
    # The file itself is 16-bit for other readers too.
    on_disk = tifffile.imread(path) if suffix == ".tif" else cv2.imread(str(path), -1)
    assert on_disk.dtype == np.uint16
    # `like` carries the bit depth: writing again without bit_depth stays 16-bit.
    again = read_image(write_image(tmp_path / f"b{suffix}", loaded.rgb, like=loaded))
    assert again.bit_depth == 16
    assert np.array_equal(as_levels(again.rgb, 16), as_levels(rgb, 16))


def test_16bit_like_falls_back_to_8bit_for_jpeg(tmp_path: Path, rng: np.random.Generator) -> None:
    loaded = read_image(write_image(tmp_path / "a.png", smooth_image(), bit_depth=16))
    out = write_image(tmp_path / "a.jpg", loaded.rgb, like=loaded)
    assert read_image(out).bit_depth == 8
    with pytest.raises(ImageWriteError, match="16"):
        write_image(tmp_path / "b.jpg", loaded.rgb, bit_depth=16)


def test_jpeg_round_trip_is_close(tmp_path: Path) -> None:
    rgb = smooth_image()
    loaded = read_image(write_image(tmp_path / "a.jpg", rgb, quality=95))
    assert loaded.format == "JPEG" and loaded.bit_depth == 8
    assert psnr(loaded.rgb, rgb) > 35.0
    # quality is honoured: a much lower quality gives a smaller, worse file
    low = read_image(write_image(tmp_path / "low.jpg", rgb, quality=10))
    assert psnr(low.rgb, rgb) < psnr(loaded.rgb, rgb)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "a.jpg").stat().st_size


def test_webp_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = smooth_image()
    lossy = read_image(write_image(tmp_path / "a.webp", rgb, quality=95))
    assert lossy.format == "WEBP" and psnr(lossy.rgb, rgb) > 35.0
    exact = random_levels(rng, (9, 10, 3), 8)
    lossless = read_image(write_image(tmp_path / "b.webp", exact, quality=100))
    assert np.array_equal(lossless.rgb, exact)


def test_bmp_round_trip_is_exact(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = random_levels(rng, (9, 10, 3), 8)
    loaded = read_image(write_image(tmp_path / "a.bmp", rgb))
    assert loaded.format == "BMP"
    assert np.array_equal(loaded.rgb, rgb)


def test_float_tiff_is_read_and_clipped(tmp_path: Path, rng: np.random.Generator) -> None:
    values = (rng.random((8, 9, 3)) * 1.4 - 0.2).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", values, photometric="rgb")
    loaded = read_image(tmp_path / "f.tif")
    assert loaded.format == "TIFF" and loaded.bit_depth == 16
    assert np.array_equal(loaded.rgb, np.clip(values, 0, 1))


def test_values_are_clipped_and_rounded(tmp_path: Path) -> None:
    rgb = np.array(
        [[[-0.5, 1.7, np.nan], [10.4 / 255, 10.6 / 255, 200.49 / 255]]], dtype=np.float32
    )
    loaded = read_image(write_image(tmp_path / "r.png", rgb))
    assert as_levels(loaded.rgb, 8).tolist() == [[[0, 255, 0], [10, 11, 200]]]


def test_tiff_planar_palette_and_miniswhite(tmp_path: Path, rng: np.random.Generator) -> None:
    planar = rng.integers(0, 256, (3, 5, 6), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", planar, photometric="rgb", planarconfig="separate")
    assert np.array_equal(
        as_levels(read_image(tmp_path / "p.tif").rgb, 8), planar.transpose(1, 2, 0)
    )
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, 1] = (65535, 0, 0)
    index = np.zeros((4, 5), np.uint8)
    index[0, 0] = 1
    tifffile.imwrite(tmp_path / "pal.tif", index, photometric="palette", colormap=colormap)
    pal = read_image(tmp_path / "pal.tif").rgb
    assert pal[0, 0].tolist() == [1, 0, 0] and pal[1, 1].tolist() == [0, 0, 0]
    tifffile.imwrite(tmp_path / "w.tif", np.array([[0, 255]], np.uint8), photometric="miniswhite")
    assert read_image(tmp_path / "w.tif").rgb[0, :, 0].tolist() == [1.0, 0.0]


# ----------------------------------------------------------------------------- ICC


@pytest.mark.parametrize(
    ("suffix", "depth"),
    [(".png", 8), (".png", 16), (".jpg", 8), (".tif", 8), (".tif", 16), (".webp", 8)],
)
def test_icc_profile_is_kept(
    tmp_path: Path, rng: np.random.Generator, srgb_icc: bytes, suffix: str, depth: int
) -> None:
    source = tmp_path / "src.png"
    Image.fromarray(rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)).save(
        source, icc_profile=srgb_icc
    )
    loaded = read_image(source)
    assert loaded.icc_profile == srgb_icc
    out = write_image(tmp_path / f"out{suffix}", loaded.rgb, like=loaded, bit_depth=depth)
    assert read_image(out).icc_profile == srgb_icc
    with Image.open(out) as im:  # an independent reader sees it too
        assert im.info.get("icc_profile") == srgb_icc
    if suffix == ".png" and depth == 16:
        assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_icc_read_from_16bit_png_and_tiff(tmp_path: Path, srgb_icc: bytes) -> None:
    rgb = smooth_image(8, 8)
    like = LoadedImage(rgb, None, 16, False, srgb_icc, None, None, "PNG")
    for suffix in (".png", ".tif"):
        loaded = read_image(write_image(tmp_path / f"x{suffix}", rgb, like=like))
        assert loaded.bit_depth == 16 and loaded.icc_profile == srgb_icc


# ----------------------------------------------------------------------------- EXIF


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_exif_orientations_match_pillow(tmp_path: Path, orientation: int) -> None:
    pattern = np.zeros((4, 6, 3), np.uint8)
    pattern[0, 0], pattern[0, 5], pattern[3, 1] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(pattern).save(path, exif=exif)
    loaded = read_image(path)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(as_levels(loaded.rgb, 8), expected)
    kept = Image.Exif()
    kept.load(loaded.exif)
    assert kept[ORIENTATION] == 1


@pytest.mark.parametrize(
    ("orientation", "shape", "corner"),
    [(3, (40, 64), "bottom-right"), (6, (64, 40), "top-right"), (8, (64, 40), "bottom-left")],
)
def test_jpeg_exif_orientation_is_applied(
    tmp_path: Path, orientation: int, shape: tuple[int, int], corner: str
) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = tmp_path / "rot.jpg"
    Image.fromarray(marked_pattern()).save(path, exif=exif, quality=95)
    loaded = read_image(path)
    assert loaded.rgb.shape[:2] == shape
    assert red_corner(loaded.rgb) == corner
    assert imageio.image_size(path) == shape  # the upright size, from the header


def test_jpeg_exif_is_kept_with_orientation_reset(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = "ACME Camera Co"
    exif[ARTIST] = "Ann Example"
    exif[EXIF_IFD] = {DATETIME_ORIGINAL: "2001:02:03 04:05:06", PIXEL_X: 64, PIXEL_Y: 40}
    source = tmp_path / "cam.jpg"
    Image.fromarray(marked_pattern()).save(source, exif=exif, quality=95)
    loaded = read_image(source)
    assert red_corner(loaded.rgb) == "top-right"

    out = write_image(tmp_path / "out" / "restored.jpg", loaded.rgb, like=loaded)
    kept = pillow_exif(out)
    assert kept[MAKE] == "ACME Camera Co" and kept[ARTIST] == "Ann Example"
    assert kept[ORIENTATION] == 1
    sub = kept.get_ifd(EXIF_IFD)
    assert sub[DATETIME_ORIGINAL] == "2001:02:03 04:05:06"
    assert (sub[PIXEL_X], sub[PIXEL_Y]) == (40, 64)  # the upright size
    again = read_image(out)  # not rotated a second time
    assert again.rgb.shape == loaded.rgb.shape
    assert red_corner(again.rgb) == "top-right"


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif", ".jpeg"])
def test_exif_travels_to_other_formats(tmp_path: Path, suffix: str) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 8
    exif[MAKE] = "ACME"
    exif[ARTIST] = "Bo"
    source = tmp_path / "src.jpg"
    Image.fromarray(marked_pattern()).save(source, exif=exif)
    loaded = read_image(source)
    out = write_image(tmp_path / f"out{suffix}", loaded.rgb, like=loaded)
    kept = pillow_exif(out)
    assert kept[MAKE] == "ACME" and kept[ARTIST] == "Bo"
    assert kept.get(ORIENTATION, 1) == 1
    assert red_corner(read_image(out).rgb) == "bottom-left"


def test_tiff_orientation_and_exif_are_read(tmp_path: Path) -> None:
    path = tmp_path / "t.tif"
    tifffile.imwrite(
        path,
        marked_pattern(),
        photometric="rgb",
        extratags=[(274, 3, 1, 6, True), (MAKE, 2, 0, "ScanCo", True)],
    )
    loaded = read_image(path)
    assert loaded.rgb.shape == (64, 40, 3) and red_corner(loaded.rgb) == "top-right"
    assert imageio.image_size(path) == (64, 40)  # the upright size, from the header
    kept = Image.Exif()
    kept.load(loaded.exif)
    assert kept[MAKE] == "ScanCo" and kept[ORIENTATION] == 1


# ----------------------------------------------------------------------------- alpha


@pytest.mark.parametrize(
    ("suffix", "depth"), [(".png", 8), (".png", 16), (".tif", 8), (".tif", 16)]
)
def test_alpha_round_trip_is_exact(
    tmp_path: Path, rng: np.random.Generator, suffix: str, depth: int
) -> None:
    rgb = random_levels(rng, (10, 12, 3), depth)
    alpha = random_levels(rng, (10, 12), depth)
    out = write_image(tmp_path / f"a{suffix}", rgb, alpha=alpha, bit_depth=depth)
    loaded = read_image(out)
    assert loaded.alpha is not None and loaded.alpha.dtype == np.float32
    assert np.array_equal(as_levels(loaded.alpha, depth), as_levels(alpha, depth))
    assert np.array_equal(as_levels(loaded.rgb, depth), as_levels(rgb, depth))
    # carried from `like` when the shapes match
    again = read_image(write_image(tmp_path / f"b{suffix}", loaded.rgb, like=loaded))
    assert np.array_equal(as_levels(again.alpha, depth), as_levels(alpha, depth))


def test_alpha_with_webp_and_dropped_by_jpeg_and_bmp(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    rgb = random_levels(rng, (8, 8, 3), 8)
    alpha = random_levels(rng, (8, 8), 8)
    webp = read_image(write_image(tmp_path / "a.webp", rgb, alpha=alpha, quality=100))
    assert np.array_equal(webp.alpha, alpha)
    for suffix in (".jpg", ".bmp"):
        assert read_image(write_image(tmp_path / f"a{suffix}", rgb, alpha=alpha)).alpha is None
    with pytest.raises(ImageWriteError, match="alpha"):
        write_image(tmp_path / "bad.png", rgb, alpha=np.ones((3, 3), np.float32))


def test_16bit_rgba_png_from_opencv(tmp_path: Path, rng: np.random.Generator) -> None:
    bgra = rng.integers(0, 65536, (6, 7, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "cv.png"), bgra)
    loaded = read_image(tmp_path / "cv.png")
    assert loaded.bit_depth == 16
    assert np.array_equal(as_levels(loaded.rgb, 16), bgra[..., 2::-1])
    assert np.array_equal(as_levels(loaded.alpha, 16), bgra[..., 3])


def test_la_and_palette_transparency_are_read(tmp_path: Path, rng: np.random.Generator) -> None:
    la = rng.integers(0, 256, (5, 6, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    loaded = read_image(tmp_path / "la.png")
    assert loaded.was_grayscale and loaded.alpha is not None
    assert np.array_equal(as_levels(loaded.alpha, 8), la[..., 1])
    assert np.array_equal(as_levels(loaded.rgb, 8), np.repeat(la[..., :1], 3, axis=2))

    index = rng.integers(0, 3, (5, 6), dtype=np.uint8)
    pal = Image.fromarray(index, "P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    pal.save(tmp_path / "p.png", transparency=1)
    loaded = read_image(tmp_path / "p.png")
    assert not loaded.was_grayscale
    assert np.array_equal(loaded.alpha, (index != 1).astype(np.float32))
    colors = np.eye(3, dtype=np.float32)[index]
    assert np.array_equal(loaded.rgb, colors)


def test_16bit_gray_alpha_png(tmp_path: Path, rng: np.random.Generator) -> None:
    la = rng.integers(0, 65536, (3, 4, 2), dtype=np.uint16)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in la)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 4, 3, 16, 4, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
    (tmp_path / "la16.png").write_bytes(png + chunk(b"IEND", b""))
    loaded = read_image(tmp_path / "la16.png")
    assert loaded.was_grayscale and loaded.bit_depth == 16
    assert np.array_equal(as_levels(loaded.rgb[..., 1], 16), la[..., 0])
    assert np.array_equal(as_levels(loaded.alpha, 16), la[..., 1])


# ----------------------------------------------------------------------------- grayscale


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp"])
def test_grayscale_reads_as_three_equal_channels(
    tmp_path: Path, rng: np.random.Generator, suffix: str
) -> None:
    gray = rng.integers(0, 256, (7, 9), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / f"g{suffix}")
    loaded = read_image(tmp_path / f"g{suffix}")
    assert loaded.was_grayscale and loaded.rgb.shape == (7, 9, 3)
    assert np.array_equal(loaded.rgb[..., 0], loaded.rgb[..., 1])
    assert np.array_equal(loaded.rgb[..., 0], loaded.rgb[..., 2])
    if suffix != ".jpg":
        assert np.array_equal(as_levels(loaded.rgb[..., 0], 8), gray)


def test_16bit_gray_png_and_gray_output(tmp_path: Path, rng: np.random.Generator) -> None:
    gray = rng.integers(0, 65536, (6, 8), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), gray)
    loaded = read_image(tmp_path / "g16.png")
    assert loaded.was_grayscale and loaded.bit_depth == 16
    assert np.array_equal(as_levels(loaded.rgb[..., 2], 16), gray)
    out = write_image(tmp_path / "gray_out.png", loaded.rgb, like=loaded)
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (6, 8)  # stays gray
    tinted = loaded.rgb.copy()
    tinted[..., 0] = 1.0
    out = write_image(tmp_path / "color_out.png", tinted, like=loaded)
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (6, 8, 3)


# ----------------------------------------------------------------------------- errors


def _make_bad_file(tmp_path: Path, kind: str) -> Path:
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        good
    )
    if kind == "missing":
        return tmp_path / "missing_file.png"
    if kind == "empty":
        path = tmp_path / "empty_file.png"
        path.write_bytes(b"")
    elif kind == "truncated_png":
        path = tmp_path / "truncated_file.png"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "random_jpg":
        path = tmp_path / "random_bytes.jpg"
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "directory":
        path = tmp_path / "a_folder.png"
        path.mkdir()
    elif kind == "text_png":
        path = tmp_path / "text_file.png"
        path.write_text("this is not an image\n")
    elif kind == "truncated_jpg":
        path = tmp_path / "truncated_file.jpg"
        Image.open(good).save(path, quality=95)
        path.write_bytes(path.read_bytes()[:1000])
    elif kind == "truncated_tif":
        path = tmp_path / "truncated_file.tif"
        tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint8))
        path.write_bytes(path.read_bytes()[:3000])
    elif kind == "gif":
        path = tmp_path / "unsupported_file.gif"
        Image.open(good).convert("P").save(path)
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "empty",
        "truncated_png",
        "random_jpg",
        "directory",
        "text_png",
        "truncated_jpg",
        "truncated_tif",
        "gif",
    ],
)
def test_unreadable_files_raise_image_read_error(tmp_path: Path, kind: str) -> None:
    path = _make_bad_file(tmp_path, kind)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert path.name in str(info.value)


def test_decompression_bomb_is_refused(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    rgb = random_levels(rng, (20, 20, 3), 8)
    paths = [write_image(tmp_path / "b.png", rgb), write_image(tmp_path / "b.tif", rgb)]
    paths.append(write_image(tmp_path / "b16.png", rgb, bit_depth=16))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for path in paths:
        with pytest.raises(ImageReadError, match="decompression bomb") as info:
            read_image(path)
        assert path.name in str(info.value)


def test_write_errors(tmp_path: Path) -> None:
    rgb = smooth_image(4, 4)
    with pytest.raises(ImageWriteError, match=r"\.gif"):
        write_image(tmp_path / "out.gif", rgb)
    with pytest.raises(ImageWriteError, match="out_noext"):
        write_image(tmp_path / "out_noext", rgb)
    with pytest.raises(ImageWriteError, match="shape"):
        write_image(tmp_path / "out.png", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ImageWriteError, match="quality"):
        write_image(tmp_path / "out.jpg", rgb, quality=0)
    with pytest.raises(ImageWriteError, match="bit_depth"):
        write_image(tmp_path / "out.png", rgb, bit_depth=12)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- atomic writes


def test_failed_write_keeps_old_target_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = write_image(tmp_path / "result.png", smooth_image(8, 8))
    before = target.read_bytes()
    seen_temp: list[str] = []

    def failing_encoder(fh: BinaryIO, *args: object) -> None:
        fh.write(b"\x89PNG half written")
        fh.flush()
        seen_temp.extend(p.name for p in tmp_path.iterdir() if p.name != "result.png")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(imageio, "_encode_png", failing_encoder)
    with pytest.raises(ImageWriteError, match="result.png"):
        write_image(target, np.zeros((8, 8, 3), np.float32))
    assert len(seen_temp) == 1 and seen_temp[0].startswith(".")  # a hidden temp was used
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]

    def crashing_encoder(fh: BinaryIO, *args: object) -> None:
        fh.write(b"junk")
        raise RuntimeError("encoder bug")

    monkeypatch.setattr(imageio, "_encode_png", crashing_encoder)
    with pytest.raises(RuntimeError):
        write_image(target, np.zeros((8, 8, 3), np.float32))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]


def test_successful_write_replaces_target_and_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.png"
    write_image(target, np.zeros((4, 4, 3), np.float32))
    write_image(target, np.ones((4, 4, 3), np.float32))
    assert read_image(target).rgb.min() == 1.0
    assert [p.name for p in target.parent.iterdir()] == ["c.png"]


def test_refuses_to_overwrite_the_source(tmp_path: Path) -> None:
    source = write_image(tmp_path / "photo.png", smooth_image(8, 8))
    before = source.read_bytes()
    loaded = read_image(source)
    for spelling in (source, tmp_path / "sub" / ".." / "photo.png", str(source)):
        with pytest.raises(ImageWriteError, match="photo.png"):
            write_image(spelling, loaded.rgb * 0.5, like=loaded)
    os.link(source, tmp_path / "hardlink.png")
    with pytest.raises(ImageWriteError):
        write_image(tmp_path / "hardlink.png", loaded.rgb * 0.5, like=loaded)
    assert source.read_bytes() == before
    # a different name next to it is fine
    write_image(tmp_path / "photo_restored.png", loaded.rgb * 0.5, like=loaded)


# ----------------------------------------------------------------------------- list_images


def test_list_images(tmp_path: Path) -> None:
    for name in [
        "b.png",
        "a.JPG",
        "c.txt",
        "anim.gif",
        ".hidden.png",
        "sub/d.tiff",
        "sub/deeper/e.webp",
        "sub/.secret/f.png",
        ".cache/g.png",
        "other/h.bmp",
    ]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()  # a folder with an image name is not an image

    everything = list_images([tmp_path / "sub", tmp_path, tmp_path / "b.png"])
    expected = ["a.JPG", "b.png", "other/h.bmp", "sub/d.tiff", "sub/deeper/e.webp"]
    assert everything == sorted(tmp_path / name for name in expected)
    assert everything == sorted(everything)

    flat = list_images([str(tmp_path)], recursive=False)
    assert flat == [tmp_path / "a.JPG", tmp_path / "b.png"]
    assert list_images([tmp_path / "sub" / "d.tiff", tmp_path / "c.txt"]) == [
        tmp_path / "sub" / "d.tiff"
    ]
    assert list_images([]) == []
    with pytest.raises(ImageReadError, match="nowhere"):
        list_images([tmp_path / "nowhere"])
