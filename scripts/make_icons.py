"""Render the application icon from its SVG source into the files the platforms want.

    python scripts/make_icons.py [SVG] [OUTDIR]

Writes into `resources/icons/` (by default): `dtpm-studio-<N>.png` for N in PNG_SIZES (the
window icon set and the Linux hicolor theme), `dtpm-studio.ico` (Windows, several sizes in one
file) and `dtpm-studio.icns` (macOS). The SVG is rendered by Qt (QSvgRenderer, offscreen) at
every size, so small sizes are drawn sharp instead of being downscaled from a large bitmap;
Pillow packs the .ico and .icns. Run it again after editing the SVG and commit the results.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

from PIL import Image  # noqa: E402
from PySide6.QtCore import QBuffer, QIODevice, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ICON_NAME = "dtpm-studio"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest size an .ico entry holds
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)  # what Pillow's .icns writer stores


def render(renderer: QSvgRenderer, size: int) -> Image.Image:
    """The SVG drawn into a transparent size x size RGBA image."""
    canvas = QImage(size, size, QImage.Format.Format_ARGB32)
    canvas.fill(Qt.GlobalColor.transparent)
    painter = QPainter(canvas)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    canvas.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGBA")


def make_icons(svg: Path, outdir: Path) -> list[Path]:
    """Write the PNG sizes, the .ico and the .icns for `svg` into `outdir`; returns the files."""
    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # noqa: F841
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG file")
    images = {size: render(renderer, size)
              for size in sorted({*PNG_SIZES, *ICO_SIZES, *ICNS_SIZES})}
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for size in PNG_SIZES:
        path = outdir / f"{ICON_NAME}-{size}.png"
        images[size].save(path, optimize=True)
        written.append(path)
    ico = outdir / f"{ICON_NAME}.ico"
    largest_ico = images[max(ICO_SIZES)]
    largest_ico.save(ico, sizes=[(s, s) for s in ICO_SIZES],
                     append_images=[images[s] for s in ICO_SIZES if s != max(ICO_SIZES)])
    written.append(ico)
    icns = outdir / f"{ICON_NAME}.icns"
    images[max(ICNS_SIZES)].save(icns, append_images=[images[s] for s in ICNS_SIZES])
    written.append(icns)
    return written


def main(argv: list[str]) -> None:
    svg = Path(argv[0]) if argv else ROOT / "resources" / "icons" / f"{ICON_NAME}.svg"
    outdir = Path(argv[1]) if len(argv) > 1 else svg.parent
    for path in make_icons(svg, outdir):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
