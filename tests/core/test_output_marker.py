"""The output marker (issue 21 item 3): every format `dtpm-restore` writes carries, inside the
file, which input it is the result of; the pixels and the rest of the metadata are unchanged;
files without one, or damaged ones, read as "no marker" and never raise."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dtpm_core.files.imageio import read_image, write_image
from dtpm_core.files.output_marker import OutputMarker, read_output_marker

FORMATS = [".png", ".jpg", ".tif", ".webp", ".bmp"]


def _image(seed: int = 0, shape=(24, 32)) -> np.ndarray:
    return np.random.default_rng(seed).random((*shape, 3)).astype(np.float32)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("gray", [False, True])
def test_every_output_format_carries_the_marker_and_the_same_pixels(tmp_path, suffix, gray):
    source = tmp_path / f"in{suffix}"
    rgb = _image()
    if gray:
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
    write_image(source, rgb)
    loaded = read_image(source)
    assert loaded.source_sha256 and len(loaded.source_sha256) == 64
    marker = OutputMarker.for_input(loaded)
    plain = write_image(tmp_path / f"plain{suffix}", loaded.rgb, like=loaded)
    marked = write_image(tmp_path / f"marked{suffix}", loaded.rgb, like=loaded, marker=marker)
    assert read_output_marker(marked) == marker
    assert read_output_marker(plain) is None and read_output_marker(source) is None
    assert np.array_equal(read_image(marked).rgb, read_image(plain).rgb)
    assert marker.input_name == source.name


def test_the_marker_survives_odd_input_names(tmp_path):
    source = write_image(tmp_path / "a<&>\"'雪 x.png", _image())
    marker = OutputMarker.for_input(read_image(source))
    for suffix in FORMATS:
        out = write_image(tmp_path / f"out{suffix}", _image(1), marker=marker)
        assert read_output_marker(out) == marker


def test_16_bit_alpha_icc_and_exif_outputs_keep_their_metadata(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    src = tmp_path / "src.png"
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(src, exif=exif.tobytes())
    loaded = read_image(src)
    marker = OutputMarker("0" * 64, "src.png")
    for suffix in (".png", ".tif", ".webp", ".jpg"):
        out = write_image(tmp_path / f"o{suffix}", loaded.rgb, like=loaded, marker=marker)
        again = read_image(out)
        assert read_output_marker(out) == marker
        assert again.exif is not None and b"Camera maker" in again.exif


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xfe\xff\xff",
                                     b"II*\x00\xff\xff\xff\x7f", b"RIFF\xff\xff\xff\xffWEBP",
                                     b"BM" + b"\xff" * 20, b"plain text"])
def test_damaged_or_foreign_files_have_no_marker(tmp_path, content):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    assert read_output_marker(path) is None
    assert read_output_marker(tmp_path / "missing.png") is None
    assert read_output_marker(tmp_path) is None


def test_a_truncated_marked_file_has_no_marker_or_the_marker(tmp_path):
    marker = OutputMarker("1" * 64, "x.png")
    for suffix in FORMATS:
        out = write_image(tmp_path / f"o{suffix}", _image(), marker=marker)
        data = out.read_bytes()
        for cut in (4, 20, len(data) // 2):
            out.write_bytes(data[:cut])
            assert read_output_marker(out) in (None, marker)
