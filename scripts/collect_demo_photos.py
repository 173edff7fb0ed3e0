"""Copy the photographs that scikit-image ships (and ../shared/data/hq, when present) into
data/clean_train and data/clean_heldout for the bundled-model recipe. coffee and chelsea are
held out: training never sees them; their quadrants (data/eval_clean) are the evaluation set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import skimage
from PIL import Image

TRAIN = ["astronaut.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png",
         "hubble_deep_field.jpg", "brick.png", "grass.png", "gravel.png", "camera.png",
         "retina.jpg", "ihc.png"]
HELD_OUT = ["coffee.png", "chelsea.png"]
SHARED_HQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "hq"


def main(root: str = "data") -> None:
    source = Path(os.path.dirname(skimage.__file__)) / "data"
    for names, folder in ((TRAIN, "clean_train"), (HELD_OUT, "clean_heldout")):
        out = Path(root) / folder
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.open(source / name).convert("RGB").save(out / f"{Path(name).stem}.png")
    # evaluation set: the four quadrants of each held-out photo
    crops = Path(root) / "eval_clean"
    crops.mkdir(parents=True, exist_ok=True)
    for name in HELD_OUT:
        image = Image.open(source / name).convert("RGB")
        w, h = image.size
        for i, (x, y) in enumerate(((0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2))):
            image.crop((x, y, x + w // 2, y + h // 2)).save(crops / f"{Path(name).stem}_{i}.png")
    if SHARED_HQ.is_dir():
        for path in sorted(SHARED_HQ.iterdir()):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"):
                Image.open(path).convert("RGB").save(Path(root) / "clean_train" /
                                                     f"hq_{path.stem}.png")
    print(f"photos in {root}/clean_train and {root}/clean_heldout")


if __name__ == "__main__":
    main(*sys.argv[1:])
