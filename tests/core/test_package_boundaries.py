"""Package boundaries (STYLE habit 6): dtpm_core never imports Qt, the app or the trainer;
the app never imports the trainer; the trainer never imports the app or Qt; no package has an
import cycle; the rooms of dtpm_core import only the rooms below them; only dtpm_core.backends
imports a runtime. The import-linter contracts in pyproject.toml state them on the source (every
import, also inside functions); the tests below also check what importing really loads."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import dtpm_core

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = ("import sys; from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())")


def test_import_contracts_are_kept():
    """`lint-imports` over pyproject.toml's [tool.importlinter] contracts."""
    out = subprocess.run([sys.executable, "-c", LINT_IMPORTS,
                          str(ROOT / "pyproject.toml"), "--no-cache", "--no-logo"],
                         cwd=ROOT, capture_output=True, text=True)
    report = out.stdout + out.stderr
    assert out.returncode == 0, f"import-linter contracts broken:\n{report}"
    with open(ROOT / "pyproject.toml", "rb") as f:
        contracts = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    assert f"{len(contracts)} kept, 0 broken" in report, report  # every contract was checked


def test_core_imports_neither_qt_nor_app_nor_trainer():
    modules = [m.name for m in pkgutil.walk_packages(dtpm_core.__path__, "dtpm_core.")]
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
    code = ("import sys, dtpm_core.options, dtpm_core.modelfiles.catalog\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
