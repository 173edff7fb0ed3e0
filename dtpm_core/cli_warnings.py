"""Warnings on the command line (dtpm-restore, dtpm-train): one plain line each, no source
line and no file:line of our code or a library's (issue 21, item 7).

What is shown, and what is silenced on purpose:
- warnings of DTPM Studio itself (a JPEG's EXIF block dropped, a data folder not finished by
  `prepare`, unpaired files skipped, ...): they name the file and are meant for the user, so
  they are shown as `PROG: warning: MESSAGE`;
- a library's UserWarning (Pillow about an odd file, ...): shown the same way, marked with
  the library's name, since it may concern the user's image;
- Pillow's DecompressionBombWarning: silenced; `dtpm_core.files.imageio` refuses images above twice
  Pillow's pixel limit with an error that names the file, and below that the warning says
  nothing the user can act on (and does not name the file);
- deprecation notices of libraries (DeprecationWarning, PendingDeprecationWarning,
  FutureWarning raised outside our packages): silenced; they are addressed to developers.
"""

from __future__ import annotations

import sys
import warnings
from typing import TextIO

from .progress_bars import write_line

OUR_PACKAGES = ("dtpm_core", "trainer", "dtpm_app")
_NOT_OURS = r"(?!(" + "|".join(OUR_PACKAGES) + r")(\.|$))"
"""A `warnings` module pattern that matches any module outside our packages."""


def plain_warnings(prog: str) -> None:
    """From now on, show warnings as one line `PROG: warning: MESSAGE` on stderr (through
    tqdm, so that a progress bar stays intact), with the noise above silenced."""
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=_NOT_OURS)
    try:
        from PIL.Image import DecompressionBombWarning
    except ImportError:  # Pillow is a dependency; nothing to silence without it
        pass
    else:
        warnings.filterwarnings("ignore", category=DecompressionBombWarning)

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        print_line(prog, warning_line(message, category, filename), file)

    warnings.showwarning = show


def warning_line(message: Warning | str, category: type[Warning], filename: str) -> str:
    """`warning: MESSAGE`, or `warning (LIBRARY): MESSAGE` for a library's warning, on one
    line."""
    text = " ".join(str(message).split())
    source = _library_of(category, filename)
    return f"warning ({source}): {text}" if source else f"warning: {text}"


def _library_of(category: type[Warning], filename: str) -> str | None:
    """The library a warning comes from, None for ours."""
    module = getattr(category, "__module__", "") or ""
    if module.split(".")[0] in ("PIL",):
        return "Pillow"
    parts = filename.replace("\\", "/").split("/")
    if any(p in OUR_PACKAGES for p in parts):
        return None
    if "site-packages" in parts:
        after = parts[parts.index("site-packages") + 1:]
        if after:
            name = after[0].removesuffix(".py")
            return "Pillow" if name == "PIL" else name
    return None


def print_line(prog: str, text: str, file: TextIO | None = None) -> None:
    write_line(f"{prog}: {text}", file if file is not None else sys.stderr)
