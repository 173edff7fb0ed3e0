"""Entry script of the PyInstaller bundle: the app (`dtpm_app.__main__.main`), or, started
through the bundle's `dtpm-restore` link, the command-line restorer (`dtpm_core.cli.main`).

A script of its own because PyInstaller runs its entry file as a top-level script, where the
package-relative imports of `dtpm_app/__main__.py` would not resolve. One executable serves
both commands (as busybox does) because a second one would carry a second copy of every
Python module: the spec links `dtpm-restore` to `dtpm-studio` (Linux), and the name it was
started by picks the command.
"""

import sys
from pathlib import Path

RESTORE_COMMAND = "dtpm-restore"


def started_as() -> str:
    """The command name this process was started by (`dtpm-restore` through the link)."""
    name = Path(sys.argv[0]).name
    return name[:-4] if name.lower().endswith(".exe") else name


if __name__ == "__main__":
    if started_as() == RESTORE_COMMAND:
        from dtpm_core.cli import main as restore_main

        sys.exit(restore_main())
    from dtpm_app.__main__ import main

    sys.exit(main())
