"""dtpm_core never imports Qt, the app or the trainer (STYLE habit 6)."""

import pkgutil
import subprocess
import sys

import dtpm_core


def test_core_imports_neither_qt_nor_app_nor_trainer():
    modules = [f"dtpm_core.{m.name}" for m in pkgutil.iter_modules(dtpm_core.__path__)]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'pyqtgraph', 'dtpm_app', 'trainer'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
    assert len(modules) > 15


def test_shared_names_load_without_torch():
    """The app reads task names, engines and defaults on its start-up path, before torch."""
    code = ("import sys, dtpm_core.options, dtpm_core.catalog\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
