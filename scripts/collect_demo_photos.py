"""Collect the training and evaluation photographs of the bundled-model recipe into DATA_ROOT
(default `data`):

    clean_train/     scikit-image photos + the training side of ../shared/data/hq
    clean_heldout/   the held-out photos, as they are
    eval_clean/      the evaluation set: each held-out hq photo with its long side reduced to
                     EVAL_SIDE, and the four quadrants of chelsea

The split is fixed by file name, never by chance: scikit-image's chelsea and every hq photo
whose number is 3 modulo 7 (003, 010, ..., 073: 11 of the 74) are held out. hq holds copies of
scikit-image photos: 031_chelsea_cat is chelsea (held out, evaluated once, as its quadrants),
030_coffee_cup is coffee, which the earlier recipe held out and which is now a training photo.
Training photos larger than TRAIN_SIDE on their long side are reduced to it (area
interpolation): the 2048 px originals would otherwise give 64 px crops of almost flat detail.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import skimage
from PIL import Image

TRAIN = ["astronaut.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png",
         "hubble_deep_field.jpg", "brick.png", "grass.png", "gravel.png", "camera.png",
         "retina.jpg", "ihc.png"]
HELD_OUT = ["chelsea.png"]
EVALUATED_AS_QUADRANTS = {"031_chelsea_cat.png"}
"""hq copies of HELD_OUT photos: held out, but not evaluated a second time."""
SHARED_HQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "hq"
TRAIN_SIDE = 1024
EVAL_SIDE = 384
HQ_HELD_OUT_EVERY, HQ_HELD_OUT_REMAINDER = 7, 3
"""hq photo number n is held out when n % 7 == 3."""


def hq_held_out(name: str) -> bool:
    """True for the hq photos kept out of training (by the number that starts the name)."""
    number = name.split("_", 1)[0]
    return number.isdigit() and int(number) % HQ_HELD_OUT_EVERY == HQ_HELD_OUT_REMAINDER


def _reduced(image: Image.Image, side: int) -> Image.Image:
    scale = side / max(image.size)
    if scale >= 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def main(root: str = "data") -> None:
    source = Path(os.path.dirname(skimage.__file__)) / "data"
    train_dir, held_dir, eval_dir = (Path(root) / n for n in ("clean_train", "clean_heldout",
                                                               "eval_clean"))
    for folder in (train_dir, held_dir, eval_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for name in TRAIN:
        Image.open(source / name).convert("RGB").save(train_dir / f"{Path(name).stem}.png")
    for name in HELD_OUT:  # evaluation: the four quadrants of each held-out photo
        image = Image.open(source / name).convert("RGB")
        image.save(held_dir / f"{Path(name).stem}.png")
        w, h = image.size
        for i, (x, y) in enumerate(((0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2))):
            image.crop((x, y, x + w // 2, y + h // 2)).save(
                eval_dir / f"{Path(name).stem}_{i}.png")
    counts = [0, 0]
    if SHARED_HQ.is_dir():
        for path in sorted(SHARED_HQ.glob("*.png")):
            image = Image.open(path).convert("RGB")
            if hq_held_out(path.name):
                image.save(held_dir / f"hq_{path.stem}.png")
                if path.name not in EVALUATED_AS_QUADRANTS:
                    _reduced(image, EVAL_SIDE).save(eval_dir / f"hq_{path.stem}.png")
                counts[1] += 1
            else:
                _reduced(image, TRAIN_SIDE).save(train_dir / f"hq_{path.stem}.png")
                counts[0] += 1
    else:
        print(f"note: {SHARED_HQ} is absent: training on the scikit-image photos only")
    print(f"photos in {train_dir} ({len(TRAIN)} scikit-image + {counts[0]} hq), held out in "
          f"{held_dir} ({len(HELD_OUT)} + {counts[1]}), evaluation set in {eval_dir}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="data",
                        help="DATA_ROOT, the folder the three sets go to (default: data)")
    main(parser.parse_args().root)
