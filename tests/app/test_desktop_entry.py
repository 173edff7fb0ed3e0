"""Linux desktop entry: what --install-desktop-entry writes, that "Open with" reaches the app's
file arguments, and that --uninstall-desktop-entry removes exactly that."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dtpm_app import desktop_entry
from dtpm_app.__main__ import parse_args
from dtpm_app.desktop_entry import (
    ICON_SIZES,
    MIME_TYPES,
    DesktopFiles,
    desktop_entry_text,
    install,
    install_desktop_entry,
    quote_exec_argument,
    uninstall_desktop_entry,
)
from dtpm_core.modelfiles.catalog import resources_dir

ICONS = resources_dir() / "icons"


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    """A private XDG_DATA_HOME with another program's entry and icon already in it."""
    home = tmp_path / "share"
    (home / "applications").mkdir(parents=True)
    (home / "applications" / "other.desktop").write_text("[Desktop Entry]\nName=Other\n")
    other_icon = home / "icons" / "hicolor" / "48x48" / "apps" / "other.png"
    other_icon.parent.mkdir(parents=True)
    other_icon.write_bytes(b"not ours")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.setattr(desktop_entry.sys, "platform", "linux")
    return home


@pytest.fixture
def no_cache_tools(monkeypatch) -> list:
    """Record instead of running update-desktop-database / gtk-update-icon-cache."""
    calls = []
    monkeypatch.setattr(desktop_entry, "refresh_caches", lambda files: calls.append(files) or [])
    return calls


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


def _unescape_string(value: str) -> str:
    """The string-value escapes of the Desktop Entry spec (\\s \\n \\t \\r \\\\)."""
    out, chars = [], iter(value)
    for c in chars:
        if c == "\\":
            nxt = next(chars)
            out.append({"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(nxt, nxt))
        else:
            out.append(c)
    return "".join(out)


def _exec_argv(exec_value: str, files: list[str]) -> list[str]:
    """What a launcher runs for an Exec value: the spec's quoting undone, %F expanded."""
    text, argv, current, quoted, i = _unescape_string(exec_value), [], None, False, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
                current += text[i]
            elif c == '"':
                quoted = False
            else:
                current += c
        elif c == '"':
            quoted, current = True, current or ""
        elif c == " ":
            if current is not None:
                argv.append(current)
            current = None
        else:
            current = (current or "") + c
        i += 1
    if current is not None:
        argv.append(current)
    expanded = []
    for arg in argv:
        if arg == "%F":
            expanded.extend(files)
        else:
            expanded.append(arg.replace("%%", "%"))
    return expanded


def test_the_icon_files_are_there_in_every_size():
    from PIL import Image

    for size in ICON_SIZES:
        with Image.open(ICONS / f"dtpm-studio-{size}.png") as im:
            assert im.size == (size, size) and im.mode == "RGBA"
    with Image.open(ICONS / "dtpm-studio.ico") as ico:
        assert {s[0] for s in ico.info["sizes"]} >= {16, 32, 48, 256}
    with Image.open(ICONS / "dtpm-studio.icns") as icns:
        assert icns.format == "ICNS"


def test_window_icon_offers_the_png_sizes(qapp):
    from dtpm_app.main_window import app_icon

    icon = app_icon()
    assert not icon.isNull()
    assert {s.width() for s in icon.availableSizes()} == set(ICON_SIZES)


def test_install_writes_a_valid_entry_and_the_icons(data_home, no_cache_tools, capsys):
    before = _files(data_home)
    assert install_desktop_entry() == 0
    files = DesktopFiles(data_home)
    written = set(_files(data_home)) - set(before)
    assert written == {str(p.relative_to(data_home)) for p in files.all_files()}
    for size in ICON_SIZES:
        assert files.png_icon(size).read_bytes() == (ICONS / f"dtpm-studio-{size}.png").read_bytes()
    assert files.svg_icon.read_bytes() == (ICONS / "dtpm-studio.svg").read_bytes()
    assert not list(data_home.rglob("*.partial"))
    assert no_cache_tools == [files]

    entry = _entry(files.desktop_file)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "DTPM Studio"
    assert entry["Icon"] == "dtpm-studio"
    assert entry["Categories"] == "Graphics;Photography;"
    assert entry["MimeType"].split(";")[:-1] == list(MIME_TYPES)
    assert entry["StartupWMClass"] == "DTPM Studio"
    assert entry["Terminal"] == "false"
    assert entry["Exec"].endswith(" %F")
    launcher = Path(sys.executable).absolute().with_name("dtpm-app")
    expected = [str(launcher)] if launcher.is_file() else [sys.executable, "-m", "dtpm_app"]
    assert _exec_argv(entry["Exec"], [])[:len(expected)] == expected
    assert "installed" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-validate (desktop-file-utils) is not installed")
def test_entry_passes_desktop_file_validate(data_home, no_cache_tools):
    assert install_desktop_entry() == 0
    proc = subprocess.run(["desktop-file-validate", str(DesktopFiles(data_home).desktop_file)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_open_with_passes_the_file_paths_to_the_app(tmp_path):
    """Exec quoting survives odd launcher paths, and %F becomes the `files` arguments."""
    launcher = str(tmp_path / 'DTPM Studio "dev" $HOME 100%' / "dtpm-studio")
    text = desktop_entry_text([launcher])
    path = tmp_path / "entry.desktop"
    path.write_text(text, encoding="utf-8")
    photos = [str(tmp_path / "my photos" / "blurry cat.png"), "/tmp/b.JPG"]
    argv = _exec_argv(_entry(path)["Exec"], photos)
    assert argv == [launcher, *photos]
    assert parse_args(argv[1:]).files == photos
    assert _entry(path)["TryExec"] == launcher


@pytest.mark.parametrize("argument, quoted", [
    ("/usr/bin/dtpm-app", "/usr/bin/dtpm-app"),
    ("/opt/DTPM Studio/dtpm-studio", '"/opt/DTPM Studio/dtpm-studio"'),
    ("/a/100%", "/a/100%%"),
    ('/a/"b"', '"/a/\\\\"b\\\\""'),
])
def test_exec_quoting_follows_the_spec(argument, quoted):
    assert quote_exec_argument(argument) == quoted


def test_uninstall_removes_exactly_what_install_wrote(data_home, no_cache_tools):
    before = _files(data_home)
    assert install_desktop_entry() == 0
    assert uninstall_desktop_entry() == 0
    assert _files(data_home) == before  # the other program's files are untouched
    assert uninstall_desktop_entry() == 0  # nothing left: still fine


def test_reinstall_is_idempotent(data_home, no_cache_tools):
    assert install_desktop_entry() == 0
    first = _files(data_home)
    assert install_desktop_entry() == 0
    assert _files(data_home) == first


def test_install_follows_the_launcher_when_frozen(data_home, no_cache_tools, monkeypatch,
                                                  tmp_path):
    exe = tmp_path / "DTPM Studio" / "dtpm-studio"
    monkeypatch.setattr(desktop_entry.sys, "frozen", True, raising=False)
    monkeypatch.setattr(desktop_entry.sys, "executable", str(exe))
    assert desktop_entry.launcher_command() == [str(exe)]
    assert install_desktop_entry() == 0
    entry = _entry(DesktopFiles(data_home).desktop_file)
    assert _exec_argv(entry["Exec"], ["x.png"]) == [str(exe), "x.png"]


def test_default_data_home_is_local_share(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert desktop_entry.data_home() == tmp_path / ".local" / "share"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/path")  # not absolute: ignored (spec)
    assert desktop_entry.data_home() == tmp_path / ".local" / "share"


def test_cache_tool_failures_are_warnings(data_home, monkeypatch, tmp_path, capsys):
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("update-desktop-database", "gtk-update-icon-cache"):
        tool = tools / name
        tool.write_text("#!/bin/sh\necho broken cache >&2\nexit 3\n")
        tool.chmod(0o755)
    (data_home / "icons" / "hicolor" / "index.theme").write_text("[Icon Theme]\nName=Hicolor\n")
    monkeypatch.setenv("PATH", str(tools))
    assert install_desktop_entry() == 0
    err = capsys.readouterr().err
    assert "warning: update-desktop-database failed (exit status 3): broken cache" in err
    assert "warning: gtk-update-icon-cache failed" in err
    assert DesktopFiles(data_home).desktop_file.is_file()


def test_other_systems_are_told_no(monkeypatch, capsys):
    monkeypatch.setattr(desktop_entry.sys, "platform", "win32")
    assert install_desktop_entry() != 0
    assert uninstall_desktop_entry() != 0
    assert "Linux" in capsys.readouterr().err


def test_install_without_icons_fails_cleanly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no application icon"):
        install(DesktopFiles(tmp_path / "share"), ["/bin/true"], tmp_path / "no-icons")
    assert not (tmp_path / "share").exists()


@pytest.mark.skipif(shutil.which("gio") is None, reason="gio (GLib's launcher) is not installed")
def test_a_real_launcher_passes_the_chosen_files(tmp_path):
    """GLib (GNOME, Xfce, ... "Open with") runs the Exec line with the files as arguments."""
    folder = tmp_path / "my app"
    folder.mkdir()
    record = tmp_path / "argv.txt"
    launcher = folder / "dtpm-studio"
    launcher.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "{record}"\n')
    launcher.chmod(0o755)
    entry = tmp_path / "dtpm-studio.desktop"
    entry.write_text(desktop_entry_text([str(launcher)]), encoding="utf-8")
    photo = tmp_path / "blurry cat.png"
    shutil.copy(resources_dir() / "samples" / "chelsea.png", photo)
    subprocess.run(["gio", "launch", str(entry), str(photo)], check=True, timeout=30)
    for _ in range(100):  # gio returns once the launcher is spawned
        if record.is_file() and record.read_text():
            break
        time.sleep(0.05)
    assert record.read_text().splitlines() == [str(photo)]
