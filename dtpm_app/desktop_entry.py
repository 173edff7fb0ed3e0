"""Linux desktop integration: `dtpm-app --install-desktop-entry` / `--uninstall-desktop-entry`.

Install writes, for the current user and following the freedesktop.org specifications:

- `$XDG_DATA_HOME/applications/dtpm-studio.desktop`: the menu entry, whose Exec line starts
  the launcher that ran the command (the bundle's executable when frozen, else the `dtpm-app`
  script of the Python environment) with `%F`, so "Open with DTPM Studio" passes the chosen
  image files as arguments;
- the icon as `dtpm-studio.png` in `$XDG_DATA_HOME/icons/hicolor/<N>x<N>/apps/` for every
  rendered size, and `dtpm-studio.svg` in `hicolor/scalable/apps/`.

`$XDG_DATA_HOME` defaults to `~/.local/share`. Every file is written atomically; afterwards
`update-desktop-database` and `gtk-update-icon-cache` run if they are installed (a failure
there is a warning: the entry works without them, menus may only notice it later). Uninstall
removes exactly those files (folders are shared with other programs and stay).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dtpm_core.files.atomic import write_bytes_atomic, write_text_atomic
from dtpm_core.modelfiles.catalog import resources_dir

DESKTOP_ID = "dtpm-studio"
"""Name of the .desktop file and of the icon in the theme (also Qt's desktopFileName)."""
APP_NAME = "DTPM Studio"
WM_CLASS = APP_NAME
"""Qt's X11 WM_CLASS class is the application name, which `dtpm_app.__main__` sets."""
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
"""The PNG sizes in resources/icons/ (made by scripts/make_icons.py)."""
MIME_TYPES = ("image/png", "image/jpeg", "image/tiff", "image/webp", "image/bmp")
CATEGORIES = ("Graphics", "Photography")
CACHE_TIMEOUT_S = 60
FREEDESKTOP_PLATFORMS = ("linux", "freebsd", "openbsd", "netbsd")


@dataclass(frozen=True)
class DesktopFiles:
    """Where the entry and its icons go for one data folder."""

    data_home: Path

    @property
    def applications(self) -> Path:
        return self.data_home / "applications"

    @property
    def desktop_file(self) -> Path:
        return self.applications / f"{DESKTOP_ID}.desktop"

    @property
    def hicolor(self) -> Path:
        return self.data_home / "icons" / "hicolor"

    def png_icon(self, size: int) -> Path:
        return self.hicolor / f"{size}x{size}" / "apps" / f"{DESKTOP_ID}.png"

    @property
    def svg_icon(self) -> Path:
        return self.hicolor / "scalable" / "apps" / f"{DESKTOP_ID}.svg"

    def all_files(self) -> list[Path]:
        """Every file install may write (uninstall removes those that exist)."""
        return [self.desktop_file, *map(self.png_icon, ICON_SIZES), self.svg_icon]


def data_home() -> Path:
    """$XDG_DATA_HOME, or ~/.local/share when it is unset or not absolute (as the spec says)."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if value and Path(value).is_absolute() else \
        Path.home() / ".local" / "share"


def launcher_command() -> list[str]:
    """The command that starts this installation of the app."""
    if getattr(sys, "frozen", False):  # a PyInstaller bundle: its own executable
        return [str(Path(sys.executable).absolute())]
    # not resolved: a virtualenv's python is a symlink out of the environment
    script = Path(sys.executable).absolute().with_name("dtpm-app")
    if script.is_file():
        return [str(script)]
    return [str(Path(sys.executable).absolute()), "-m", "dtpm_app"]


def quote_exec_argument(argument: str) -> str:
    """One argument of an Exec key: quoted when needed, with the spec's escapes, and with the
    backslashes doubled once more because the Exec value is itself a string value."""
    argument = argument.replace("%", "%%")  # a literal % in a field-code context
    reserved = set(" \t\n\"'\\><~|&;$*?#()`")
    if argument and not reserved.intersection(argument):
        return argument
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in argument)
    return '"' + escaped.replace("\\", "\\\\") + '"'


def desktop_entry_text(command: list[str]) -> str:
    """The contents of dtpm-studio.desktop for a launcher command."""
    exec_line = " ".join(quote_exec_argument(a) for a in command) + " %F"
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.4",
        f"Name={APP_NAME}",
        "GenericName=Photo Restoration",
        "Comment=Restore blurred, rainy or snowy photos with a diffusion texture prior",
        f"TryExec={command[0]}" if len(command) == 1 else "",
        f"Exec={exec_line}",
        f"Icon={DESKTOP_ID}",
        "Terminal=false",
        f"Categories={';'.join(CATEGORIES)};",
        f"MimeType={';'.join(MIME_TYPES)};",
        "Keywords=photo;restoration;deblur;derain;desnow;denoise;",
        f"StartupWMClass={WM_CLASS}",
        "StartupNotify=true",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def _icon_sources(icons: Path) -> tuple[dict[int, Path], Path | None]:
    pngs = {size: icons / f"{DESKTOP_ID}-{size}.png" for size in ICON_SIZES}
    svg = icons / f"{DESKTOP_ID}.svg"
    return ({s: p for s, p in pngs.items() if p.is_file()}, svg if svg.is_file() else None)


def install(files: DesktopFiles, command: list[str], icons: Path) -> list[Path]:
    """Write the entry and the icons; returns the files written."""
    pngs, svg = _icon_sources(icons)
    if not pngs and svg is None:
        raise FileNotFoundError(f"no application icon in {icons} (run scripts/make_icons.py)")
    written = []
    for size, source in pngs.items():
        written.append(write_bytes_atomic(files.png_icon(size), source.read_bytes()))
    if svg is not None:
        written.append(write_bytes_atomic(files.svg_icon, svg.read_bytes()))
    # the entry last: menus that see it find its icon already there
    written.append(write_text_atomic(files.desktop_file, desktop_entry_text(command)))
    return written


def uninstall(files: DesktopFiles) -> list[Path]:
    """Remove what `install` writes; returns the files removed."""
    removed = []
    for path in files.all_files():
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(path)
    return removed


def refresh_caches(files: DesktopFiles) -> list[str]:
    """Run the desktop database and icon cache tools that exist; returns warnings."""
    warnings = []
    commands = [["update-desktop-database", "-q", str(files.applications)]]
    if (files.hicolor / "index.theme").is_file():  # gtk-update-icon-cache needs the theme file
        commands.append(["gtk-update-icon-cache", "-q", "-t", "-f", str(files.hicolor)])
    for command in commands:
        if shutil.which(command[0]) is None:
            continue
        try:
            proc = subprocess.run(command, capture_output=True, text=True,
                                  timeout=CACHE_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            warnings.append(f"{command[0]} did not run: {exc}")
            continue
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            warnings.append(f"{command[0]} failed (exit status {proc.returncode})"
                            + (f": {detail[-1]}" if detail else ""))
    return warnings


def _unsupported() -> int | None:
    if sys.platform.startswith(FREEDESKTOP_PLATFORMS):
        return None
    print(f"desktop entries are a Linux (freedesktop.org) feature; on {sys.platform} use the "
          "bundle's own launcher instead (Windows: the DTPM Studio folder's dtpm-studio.exe, "
          "macOS: DTPM Studio.app)", file=sys.stderr)
    return 2


def install_desktop_entry() -> int:
    """`dtpm-app --install-desktop-entry`; the process exit status."""
    unsupported = _unsupported()
    if unsupported is not None:
        return unsupported
    files = DesktopFiles(data_home())
    command = launcher_command()
    try:
        written = install(files, command, resources_dir() / "icons")
    except OSError as exc:
        print(f"could not install the desktop entry: {exc}", file=sys.stderr)
        return 1
    for warning in refresh_caches(files):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"installed {files.desktop_file} and {len(written) - 1} icon files under "
          f"{files.hicolor}; it starts: {' '.join(command)}")
    return 0


def uninstall_desktop_entry() -> int:
    """`dtpm-app --uninstall-desktop-entry`; the process exit status."""
    unsupported = _unsupported()
    if unsupported is not None:
        return unsupported
    files = DesktopFiles(data_home())
    try:
        removed = uninstall(files)
    except OSError as exc:
        print(f"could not remove the desktop entry: {exc}", file=sys.stderr)
        return 1
    if not removed:
        print(f"nothing to remove: no DTPM Studio desktop entry in {files.applications}")
        return 0
    for warning in refresh_caches(files):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"removed {len(removed)} files: {files.desktop_file} and its icons")
    return 0
