"""Issue 21, item 7: dtpm-train's messages. Warnings are one plain line each (`dtpm-train
CMD: warning: ...`), library deprecation notices and Pillow's decompression-bomb notice are
silenced on purpose; Ctrl-C while the command starts is exit 130 without a traceback."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

from trainer import cli as train_cli

ROOT = Path(__file__).resolve().parents[2]


def _noisy_export(args) -> int:
    """Stands for a command during which our code, Pillow and a library warn."""
    warnings.warn("data folder x was not finished by `dtpm-train prepare`", UserWarning,
                  stacklevel=1)
    warnings.warn_explicit("Truncated File Read", UserWarning,
                           str(Path(sys.prefix) / "lib" / "site-packages" / "PIL" /
                               "TiffImagePlugin.py"), 10)
    warnings.warn_explicit("`torch.jit.trace` is deprecated", FutureWarning,
                           str(Path(sys.prefix) / "site-packages" / "torch" / "jit" /
                               "_trace.py"), 20, module="torch.jit._trace")
    from PIL.Image import DecompressionBombWarning
    warnings.warn(DecompressionBombWarning("Image size (100000000 pixels) exceeds limit"),
                  stacklevel=1)
    return 0


def test_dtpm_train_warnings_are_one_line_each_and_noise_is_silenced(monkeypatch, capsys):
    monkeypatch.setitem(train_cli.COMMANDS, "export", _noisy_export)
    assert train_cli.main(["export", "--run-dir", "r", "-o", "x.safetensors"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dtpm-train export: warning: data folder x was not finished by "
                   "`dtpm-train prepare`",
                   "dtpm-train export: warning (Pillow): Truncated File Read"]


def test_ctrl_c_while_dtpm_train_starts_is_exit_130_without_traceback(monkeypatch, capsys):
    import trainer.config

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer.config, "load_config", interrupted)
    code = train_cli.main(["stage1", "--run-dir", "r", "--iterations", "1"])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    assert err.strip() == ("dtpm-train stage1: interrupted; run the same command to resume "
                           "from the last checkpoint, if one was saved")


def test_the_command_module_imports_no_torch():
    """What runs before main() can catch Ctrl-C is kept to the standard library: importing
    the command's module must not import torch (seconds, where a Ctrl-C gave a traceback)."""
    code = "import sys, trainer.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
