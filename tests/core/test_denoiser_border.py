"""Issue 15/16: DTPM results had a noisy 1-pixel frame. The denoiser's convolutions zero-pad,
so the outermost pixels were predicted from zeros; a mirrored margin (CONTEXT_MARGIN) gives
them image-like context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import dtpm_core.networks.denoiser as denoiser_module
from dtpm_core.config import preset
from dtpm_core.networks.denoiser import Denoiser
from dtpm_core.networks.layers import pad_with_context

SHIPPED = Path(__file__).resolve().parents[2] / "resources" / "models"


@pytest.mark.parametrize("size", [(5, 7), (16, 16), (33, 47)])
def test_context_padding_is_cropped_back_exactly(size):
    x = torch.arange(2 * size[0] * size[1], dtype=torch.float32).reshape(1, 2, *size)
    padded, crop = pad_with_context(x, 16, 16)
    assert padded.shape[-2] % 16 == 0 and padded.shape[-1] % 16 == 0
    assert torch.equal(padded[(..., *crop)], x)
    torch.manual_seed(0)
    net = Denoiser(preset("tiny", denoiser__semantic="none").denoiser).eval()
    out = net(torch.randn(1, 3, *size), torch.randn(1, 3, *size), torch.tensor([0.5]))
    assert out.shape == (1, 3, *size)


def _distance_to_border(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[:height, :width]
    return np.minimum(np.minimum(rows, height - 1 - rows), np.minimum(cols, width - 1 - cols))


def _frame_excess(clean, initial, result) -> tuple[float, float]:
    """Error the diffusion residual adds in the 1-pixel frame, and in the 3 pixels just inside
    it: a visible frame is the outer ring standing out from its neighbours."""
    excess = np.abs(result - clean).mean(2) - np.abs(initial - clean).mean(2)
    distance = _distance_to_border(*excess.shape)
    return float(excess[distance == 0].mean()), float(excess[(distance >= 1) & (distance < 4)].mean())


@pytest.mark.skipif(not (SHIPPED / "motion-deblur.safetensors").is_file(),
                    reason="no shipped models")
def test_border_error_is_no_larger_than_the_interior(monkeypatch):
    from skimage import data as skdata

    from dtpm_core.engines.dtpm_restorer import Restorer
    from trainer.degradations import MotionBlurRange, motion_blur

    clean = skdata.coffee().astype(np.float32) / 255.0  # 400 x 600
    rng = np.random.default_rng(3)  # the first training ranges' draw the numbers below rest on
    degraded = motion_blur(clean, rng, MotionBlurRange().sample(rng))
    restorer = Restorer(SHIPPED / "base.safetensors", SHIPPED / "motion-deblur.safetensors",
                        device="cpu")
    frames, margin_used = {}, denoiser_module.CONTEXT_MARGIN
    for margin in (margin_used, 0):
        monkeypatch.setattr(denoiser_module, "CONTEXT_MARGIN", margin)
        out = restorer.restore(degraded, 4, seed=0, tile=0)
        frames[margin] = _frame_excess(clean, out.initial, out.result)
    # measured with the bundled models: frame 0.0017 beside 0.0014 just inside it with the
    # margin; 0.0061 beside 0.0030 without it (the artefact of issue 15)
    frame, inside = frames[margin_used]
    assert frame < 1.5 * inside and frame < 1 / 255, frames
    assert frames[0][0] > 2.5 * frame, frames


def test_training_mode_skips_the_margin_and_eval_mode_uses_it():
    torch.manual_seed(0)
    net = Denoiser(preset("tiny", denoiser__semantic="none").denoiser)
    x, cond, level = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32), torch.tensor([0.5])
    with torch.no_grad():
        for p in net.parameters():  # zero-initialised parts on, so the output depends on x
            p.add_(0.05 * torch.randn_like(p))
        train_out = net.train()(x, cond, level)
        eval_out = net.eval()(x, cond, level)
    assert not torch.allclose(train_out, eval_out)  # borders see other context
    # far from the borders the margin changes little
    inner = (..., slice(12, 20), slice(12, 20))
    assert (train_out - eval_out)[inner].abs().mean() < (train_out - eval_out).abs().mean()
