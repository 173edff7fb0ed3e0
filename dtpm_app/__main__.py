"""`python -m dtpm_app` / `dtpm-app`: start DTPM Studio.

    dtpm-app [FILES...]                      open an image (several files or folders: batch)
    dtpm-app --screenshot out.png [FILES]   render the window once the restoration and the
                                             trade-off curve are done, save it, and exit
    dtpm-app --self-test [--models DIR]      restore the sample photo offscreen, check it
    dtpm-app --install-desktop-entry         add DTPM Studio to the Linux desktop menus
    dtpm-app --uninstall-desktop-entry       remove it again
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

SCREENSHOT_TIMEOUT_S = 600


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dtpm-app", description="DTPM Studio: restore photos "
                                     "with a diffusion texture prior.")
    parser.add_argument("files", nargs="*", help="an image to open, or folders/images to "
                        "queue for batch restoration")
    parser.add_argument("--reference", metavar="FILE",
                        help="ground-truth image of the opened image (for the PSNR/LPIPS curve)")
    parser.add_argument("--screenshot", metavar="PATH",
                        help="save a PNG of the window once everything is computed, then exit")
    parser.add_argument("--size", default="1400x900", metavar="WxH",
                        help="window size for --screenshot (default 1400x900)")
    parser.add_argument("--timeout", type=float, default=SCREENSHOT_TIMEOUT_S,
                        help="--screenshot gives up waiting after this many seconds")
    parser.add_argument("--models", metavar="DIR",
                        help="use this model folder instead of the per-user one")
    parser.add_argument("--settings-dir", metavar="DIR",
                        help="read and write settings here instead of the per-user folder")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"),
                        help="compute device (saved in the settings)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                        help="network precision, both engines (saved in the settings; "
                             "auto: bf16 on a CPU with AMX or AVX512-BF16, else fp32)")
    parser.add_argument("--backend", choices=("auto", "torch", "openvino"),
                        help="where the networks run, both engines (saved in the settings; "
                             "auto: OpenVINO where it was measured faster, else torch)")
    commands = parser.add_mutually_exclusive_group()
    commands.add_argument("--self-test", action="store_true",
                        help="restore the sample photo offscreen with the default model, check "
                        "the result and exit (0 = it works)")
    commands.add_argument("--install-desktop-entry", action="store_true",
                        help="Linux: add DTPM Studio (menu entry, icons, 'Open with' for "
                        "images) to the desktop for this user, then exit")
    commands.add_argument("--uninstall-desktop-entry", action="store_true",
                        help="Linux: remove what --install-desktop-entry added, then exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dtpm-app` gui-script."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.models:
        os.environ["DTPM_USER_MODELS"] = str(Path(args.models).resolve())
    if args.settings_dir:
        os.environ["DTPM_SETTINGS_DIR"] = str(Path(args.settings_dir).resolve())
    if args.self_test or args.install_desktop_entry or args.uninstall_desktop_entry:
        return _run_command(args)

    app, window = open_window(args)
    if not args.screenshot:
        code = app.exec()
        window.shutdown()
        return code
    return _screenshot(app, window, Path(args.screenshot), args.timeout)


def open_window(args: argparse.Namespace) -> tuple[QApplication, MainWindow]:
    """The application and its window on screen, with the opening of `args.files` (or the
    sample) queued as the first event: models and torch load after the window shows."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .desktop_entry import DESKTOP_ID
    from .main_window import MainWindow, app_icon
    from .settings import load_settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("DTPM Studio")
    app.setOrganizationName("DTPM Studio")
    app.setDesktopFileName(DESKTOP_ID)  # Wayland shells match the window to its .desktop file
    app.setStyle("Fusion")
    app.setWindowIcon(app_icon())
    settings = load_settings()
    if args.device:
        settings.device = args.device
    if args.precision:
        settings.precision = args.precision
    if args.backend:
        settings.backend = args.backend
    from dtpm_core.backends import set_backend_preference  # torch-free: no start-up cost
    from dtpm_core.backends.device import set_precision_preference

    set_precision_preference(settings.precision)  # every restorer of this process uses them
    set_backend_preference(settings.backend)
    window = MainWindow(settings)
    if args.screenshot:
        width, height = (int(v) for v in args.size.lower().split("x"))
        window.resize(width, height)
    window.show()
    # Models (and torch) load after the window is on screen.
    QTimer.singleShot(0, lambda: window.start(args.files, args.reference))
    return app, window


def _run_command(args: argparse.Namespace) -> int:
    """The flags that do one job and exit instead of opening the window."""
    if args.self_test:
        from dtpm_core.backends import set_backend_preference
        from dtpm_core.backends.device import set_precision_preference

        from .self_test import run_self_test

        set_precision_preference(args.precision or "auto")
        set_backend_preference(args.backend or "auto")
        return run_self_test(args.device or "auto")
    from .desktop_entry import install_desktop_entry, uninstall_desktop_entry

    if args.install_desktop_entry:
        return install_desktop_entry()
    return uninstall_desktop_entry()


def _screenshot(app: QApplication, window: MainWindow, path: Path, timeout_s: float) -> int:
    """Wait until the controller has nothing left to compute, then grab the window."""
    from PySide6.QtCore import QTimer

    result = {"code": 1, "done": False}
    controller = window.controller

    def grab(code: int) -> None:
        if result["done"]:
            return
        result["done"] = True
        if path.parent:
            path.parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(path))
        result["code"] = code if ok else 1
        print(f"screenshot {'saved to' if ok else 'FAILED:'} {path}", flush=True)
        app.quit()

    def on_settled() -> None:
        # let the last signals repaint before grabbing
        QTimer.singleShot(300, lambda: grab(0) if controller.idle else None)

    def on_timeout() -> None:
        print(f"timed out after {timeout_s:.0f} s; saving the window as it is", flush=True)
        grab(2)

    controller.settled.connect(on_settled)
    QTimer.singleShot(int(timeout_s * 1000), on_timeout)
    app.exec()
    window.shutdown()
    return result["code"]


if __name__ == "__main__":
    sys.exit(main())
