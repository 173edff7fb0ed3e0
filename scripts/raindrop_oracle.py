"""How much of a raindrop image is recoverable by simple means, given what a network is not
given: the drop mask and the drop model (issue 20, the raindrop predictor's loss).

    python scripts/raindrop_oracle.py --clean data/eval_clean

Every photo is degraded as the judge degrades it (`dtpm-train eval --held-out-degradations`,
`trainer.data.degraded_photos`: the same drops) and restored three ways,
PSNR against the clean photo: (1) the drops' rim darkening and highlight undone, the
refracted view kept; (2) with the mask known, OpenCV's Telea inpainting from the degraded
image; (3) with the mask known, each drop filled with the clean photo blurred by half the
drop radius (a smooth guess of the background). A predictor that keeps the degraded pixels
scores the input; (2) is within reach of a network that finds the drops.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.evaluation.metrics import psnr  # noqa: E402
from dtpm_core.files.imageio import list_images, read_image  # noqa: E402
from trainer import degradations as D  # noqa: E402


def restorations(clean: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`rng` as `trainer.degradations.degrade` gets it for this photo."""
    params = D.sample_params("raindrop", rng, held_out=True)
    alpha, map_x, map_y, _shade, _spec = D.drop_fields(clean.shape[:2], params,
                                                       copy.deepcopy(rng))
    degraded = np.clip(D.raindrops(clean, rng, params), 0, 1)
    a = alpha[..., None]
    seen = cv2.GaussianBlur(clean, (0, 0), params.drop_blur)
    inside = cv2.remap(seen, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    background = (cv2.GaussianBlur(clean, (0, 0), params.background_blur)
                  if params.background_blur > 0 else clean)
    mask = (alpha > 0.05).astype(np.uint8)
    telea = cv2.inpaint((degraded * 255).round().astype(np.uint8), mask, 5, cv2.INPAINT_TELEA)
    radius = sum(params.radius) / 2
    return {
        "degraded (the input)": degraded,
        "rim and highlight undone": background * (1 - a) + inside * a,
        "mask known: Telea inpainting": telea.astype(np.float32) / 255,
        "mask known: blurred background": degraded * (1 - a)
        + cv2.GaussianBlur(clean, (0, 0), radius / 2) * a,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scores: dict[str, list[float]] = {}
    paths = list_images([args.clean])
    for index, path in enumerate(paths):
        clean = read_image(path).rgb
        rng = np.random.default_rng([args.seed, index])  # as trainer.data.degraded_photos
        for name, image in restorations(clean, rng).items():
            scores.setdefault(name, []).append(psnr(image, clean))
    print(f"{len(paths)} photos of {args.clean}, held-out raindrop settings, seed {args.seed}")
    print("| restoration | PSNR (dB) | gain over the input |\n|---|---|---|")
    base = float(np.mean(scores["degraded (the input)"]))
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.2f} | {np.mean(values) - base:+.2f} |")


if __name__ == "__main__":
    main()
