"""Issue 21, item 7: warnings reach the terminal as one plain line (`PROG: warning: ...`),
never as Python's raw `path/file.py:123: UserWarning: ...` with the source line under it
(dtpm-train's side: tests/trainer/test_cli_messages.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dtpm_core.cli import main as restore_main
from dtpm_core.cli_warnings import warning_line
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.network import SinglePassNet
from dtpm_core.singlepass.weights import save_singlepass


def _raw(err: str) -> bool:
    """Python's own warning format: 'file.py:LINE: Category: message'."""
    return "Warning:" in err or ".py:" in err or "warnings.warn" in err


def test_dtpm_restore_reports_a_dropped_exif_block_in_one_line(tmp_path, capsys):
    """The issue's case: a UserWarning raised for dtpm_core/cli.py reached the terminal raw."""
    torch.manual_seed(0)
    model = tmp_path / "fast.safetensors"
    save_singlepass(model, SinglePassNet(singlepass_preset("tiny", width=8, cond_dim=16)),
                    tasks={"desnow": 15})
    exif = Image.Exif()
    exif[0x010E] = "x" * 70000  # an ImageDescription too large for a JPEG's EXIF segment
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
                    ).save(photo, exif=exif.tobytes())
    code = restore_main([str(photo), "-o", str(tmp_path / "out"), "--engine", "single-pass",
                         "--model", str(model), "--format", "jpeg", "-q"])
    err = capsys.readouterr().err
    assert code == 0
    lines = [line for line in err.splitlines() if "EXIF" in line]
    assert len(lines) == 1 and lines[0].startswith("dtpm-restore: warning: ")
    assert "too large for JPEG" in lines[0] and not _raw(err)


def test_warning_lines_name_the_library():
    pil = str(Path("/venv/lib/python3.11/site-packages/PIL/Image.py"))
    assert warning_line("odd\n file", UserWarning, pil) == "warning (Pillow): odd file"
    assert warning_line("x", UserWarning, "/work/dtpm_core/files/imageio.py") == "warning: x"
