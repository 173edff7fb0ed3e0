"""The output marker: a note inside a restored image saying which input it is the result of.

It is written with the image, in the same atomic write, so it survives whatever a list kept
beside the results does not (a kill -9, a full disk, files copied elsewhere). `dtpm-restore`
and the app's batch read it to tell their own results from the user's files: a result is
never taken as an input again, and the result of a photo is recognised on a rerun (and may
be replaced or skipped), while any other file of that name is left alone.

The input is identified by the sha256 of its file's bytes, so a result belongs to that very
photo, not to any photo of the same name. Nothing else is stored (no path, no settings).

Where the marker goes, per format (each a standard place for application data, read back
without decoding the pixels):

    PNG   a tEXt chunk, keyword `MARKER_KEYWORD`, after IHDR
    JPEG  a COM (comment) segment
    TIFF  an XMP packet (tag 700)
    WebP  an XMP chunk
    BMP   a block between the headers and the pixel array (bfOffBits points past it)
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


class _ReadImage(Protocol):
    """What `for_input` needs of an `imageio.LoadedImage` (not imported: imageio imports
    this module)."""

    source_path: Path | None
    source_sha256: str | None

MARKER_KEYWORD = "dtpm-restore-output"
"""Names the marker: PNG keyword, JPEG comment prefix, BMP block tag, XMP element."""
MARKER_VERSION = 1
_MAX_MARKER_BYTES = 4096
"""A marker is a few hundred bytes; anything longer is not one (and is not read)."""
_XMP_NS = "urn:dtpm-studio:ns:restore-output:1"
_XMP_ELEMENT = re.compile(rb"<dtpm:output>([^<]{1,4096})</dtpm:output>")
_BMP_TAG = MARKER_KEYWORD.encode("ascii") + b"\x00"
_MAX_SEGMENTS = 1000
"""Chunks / segments walked before giving up on a file (a damaged one may loop)."""


@dataclass(frozen=True)
class OutputMarker:
    """`input_sha256`: sha256 of the input file's bytes; `input_name`: its file name (for
    messages only)."""

    input_sha256: str
    input_name: str

    @classmethod
    def for_input(cls, loaded: _ReadImage) -> OutputMarker:
        """The marker of a result of `loaded` (an image read by `read_image`)."""
        if loaded.source_sha256 is None or loaded.source_path is None:
            raise ValueError("the image was not read from a file: it has no identity to mark")
        return cls(loaded.source_sha256, loaded.source_path.name)

    def to_text(self) -> str:
        """ASCII JSON without <, > or & (so that it is valid XML character data too)."""
        text = json.dumps({"marker": MARKER_KEYWORD, "version": MARKER_VERSION,
                           "input_sha256": self.input_sha256, "input_name": self.input_name},
                          ensure_ascii=True, sort_keys=True)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    @classmethod
    def from_text(cls, text: bytes | str) -> OutputMarker | None:
        """The marker in `text`, or None when it is not one of ours."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or data.get("marker") != MARKER_KEYWORD:
            return None
        sha, name = data.get("input_sha256"), data.get("input_name")
        if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)
                and isinstance(name, str)):
            return None
        return cls(sha, name)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (the identity an output marker records)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- writing


def png_chunk(marker: OutputMarker) -> bytes:
    """The tEXt chunk to insert after a PNG's IHDR."""
    payload = MARKER_KEYWORD.encode("latin-1") + b"\x00" + marker.to_text().encode("ascii")
    kind = b"tEXt"
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def jpeg_comment(marker: OutputMarker) -> bytes:
    """The text of the JPEG COM segment."""
    return f"{MARKER_KEYWORD} {marker.to_text()}".encode("ascii")


def xmp_packet(marker: OutputMarker) -> bytes:
    """An XMP packet holding the marker (TIFF tag 700, WebP XMP chunk)."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:dtpm="{_XMP_NS}">'
        f"<dtpm:output>{marker.to_text()}</dtpm:output>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def bmp_with_marker(data: bytes, marker: OutputMarker) -> bytes:
    """A BMP file with the marker block inserted before its pixel array (the file size and
    pixel offset in the file header are moved on; readers follow the offset)."""
    if data[:2] != b"BM" or len(data) < 14:
        raise ValueError("not a BMP file")
    size, offset = struct.unpack_from("<I", data, 2)[0], struct.unpack_from("<I", data, 10)[0]
    block = _BMP_TAG + marker.to_text().encode("ascii") + b"\x00"
    block += b"\x00" * (-len(block) % 4)  # keep the pixel array 4-byte aligned
    out = bytearray(data[:offset] + block + data[offset:])
    struct.pack_into("<I", out, 2, size + len(block))
    struct.pack_into("<I", out, 10, offset + len(block))
    return bytes(out)


# ----------------------------------------------------------------------------- reading


def read_output_marker(path: str | Path) -> OutputMarker | None:
    """The marker of a file `dtpm-restore` (or the app's batch) wrote, else None. Reads only
    the file's headers; any file that is missing, unreadable, damaged or not a regular file
    is simply not a marked result (never an exception)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
            for magic, reader in _READERS:
                if head.startswith(magic):
                    handle.seek(0)
                    return reader(handle)
    except (OSError, ValueError, struct.error, OverflowError):
        return None
    return None


def _read_png(fh: BinaryIO) -> OutputMarker | None:
    fh.seek(8)
    keyword = MARKER_KEYWORD.encode("latin-1") + b"\x00"
    for _ in range(_MAX_SEGMENTS):
        header = fh.read(8)
        if len(header) < 8:
            return None
        length, kind = struct.unpack(">I", header[:4])[0], header[4:]
        if kind in (b"IDAT", b"IEND"):
            return None
        if kind == b"tEXt" and length <= _MAX_MARKER_BYTES:
            payload = fh.read(length)
            crc = fh.read(4)
            if len(crc) == 4 and payload.startswith(keyword) \
                    and zlib.crc32(kind + payload) & 0xFFFFFFFF == struct.unpack(">I", crc)[0]:
                return OutputMarker.from_text(payload[len(keyword):])
        else:
            fh.seek(length + 4, 1)
    return None


def _read_jpeg(fh: BinaryIO) -> OutputMarker | None:
    fh.seek(2)
    prefix = MARKER_KEYWORD.encode("ascii") + b" "
    for _ in range(_MAX_SEGMENTS):
        byte = fh.read(1)
        while byte == b"\xff":  # fill bytes before a marker code
            byte = fh.read(1)
        if not byte:
            return None
        code = byte[0]
        if code == 0xDA or code == 0xD9:  # start of scan, end of image: no more headers
            return None
        if code == 0x01 or 0xD0 <= code <= 0xD7:
            continue
        raw = fh.read(2)
        if len(raw) < 2:
            return None
        length = struct.unpack(">H", raw)[0] - 2
        if length < 0:
            return None
        if code == 0xFE and length <= _MAX_MARKER_BYTES:
            payload = fh.read(length)
            if payload.startswith(prefix):
                return OutputMarker.from_text(payload[len(prefix):])
        else:
            fh.seek(length, 1)
        if fh.read(1) != b"\xff":
            return None
    return None


def _read_tiff(fh: BinaryIO) -> OutputMarker | None:
    head = fh.read(16)
    order = "<" if head[:2] == b"II" else ">"
    big = struct.unpack(order + "H", head[2:4])[0] == 43
    if big:
        (offset,) = struct.unpack(order + "Q", head[8:16])
        count_fmt, entry_fmt, entry_size, inline = "Q", "HHQQ", 20, 8
    else:
        (offset,) = struct.unpack(order + "I", head[4:8])
        count_fmt, entry_fmt, entry_size, inline = "H", "HHII", 12, 4
    fh.seek(offset)
    raw = fh.read(struct.calcsize(order + count_fmt))
    (count,) = struct.unpack(order + count_fmt, raw)
    if count > 4096:
        return None
    entries = fh.read(count * entry_size)
    for i in range(len(entries) // entry_size):
        tag, kind, n, value = struct.unpack_from(order + entry_fmt, entries, i * entry_size)
        if tag != 700 or kind not in (1, 7) or not 0 < n <= _MAX_MARKER_BYTES * 2:
            continue
        if n <= inline:
            data = entries[i * entry_size + entry_size - inline:][:n]
        else:
            fh.seek(value)
            data = fh.read(n)
        return _from_xmp(data)
    return None


def _read_webp(fh: BinaryIO) -> OutputMarker | None:
    head = fh.read(12)
    if head[8:12] != b"WEBP":
        return None
    for _ in range(_MAX_SEGMENTS):
        header = fh.read(8)
        if len(header) < 8:
            return None
        kind, size = header[:4], struct.unpack("<I", header[4:])[0]
        if kind == b"XMP " and size <= _MAX_MARKER_BYTES * 2:
            return _from_xmp(fh.read(size))
        fh.seek(size + (size & 1), 1)
    return None


def _read_bmp(fh: BinaryIO) -> OutputMarker | None:
    header = fh.read(14)
    (offset,) = struct.unpack_from("<I", header, 10)
    gap = fh.read(min(offset, 1 << 16) - 14)
    start = gap.find(_BMP_TAG)
    if start < 0:
        return None
    text = gap[start + len(_BMP_TAG):].split(b"\x00", 1)[0]
    return OutputMarker.from_text(text) if len(text) <= _MAX_MARKER_BYTES else None


def _from_xmp(data: bytes) -> OutputMarker | None:
    found = _XMP_ELEMENT.search(data)
    return OutputMarker.from_text(found.group(1)) if found else None


_READERS = (
    (b"\x89PNG\r\n\x1a\n", _read_png),
    (b"\xff\xd8", _read_jpeg),
    (b"II*\x00", _read_tiff), (b"MM\x00*", _read_tiff),
    (b"II+\x00", _read_tiff), (b"MM\x00+", _read_tiff),
    (b"RIFF", _read_webp),
    (b"BM", _read_bmp),
)
