"""A single-pass network with a pixel-unshuffle stem, warm-started from a full-resolution one
(issue 22: a single-pass engine several times cheaper than DTPM K = 4).

The stem network's U-Net runs on s x s cells of the image (s = 2): its levels are the source
network's levels below the top one, same widths at the same resolutions, so their blocks,
adaptors, time embedding and middle are copied as they are. The source's top level (full
resolution, the most memory traffic per FLOP) is dropped; what replaces it:

- the stem's intro (3 s^2 -> 2 C, 3x3 at half resolution) is the source's linear path from the
  image to its second level, `downs[0]` after `intro`, written as one convolution on the
  unshuffled image (exact: a 3x3 convolution then a 2x2 stride-2 one read 4x4 pixels, which
  are 3x3 cells);
- the stem's ending (2 C -> 3 s^2, then pixel shuffle) is the source's linear path back,
  `ending` after `ups[-1]`, likewise exact as one convolution on cells.

The dropped top-level blocks, skip connection and adaptor are residual, so the warm start is
the source without them; the training campaign's `singlepass-s2` line then trains the whole
network on every task (`dtpm-train singlepass continue`).
"""

from __future__ import annotations

import dataclasses

import torch
from torch.nn import functional as F

from dtpm_core.errors import ConfigError
from dtpm_core.singlepass.network import SinglePassNet

STEM = 2
PROBE = 7  # cells on a side of the probe image: the kernel's 3 plus a border of 2


def stem_config(source: SinglePassNet):
    """The config of the stem network made from `source`: one level fewer, width doubled."""
    config = source.config
    if config.stem != 1:
        raise ConfigError("the source network has a stem already")
    if config.levels < 2:
        raise ConfigError("a stem network needs a source with at least two levels")
    return dataclasses.replace(config, width=2 * config.width, enc_blocks=config.enc_blocks[1:],
                               dec_blocks=config.dec_blocks[:-1], stem=STEM)


@torch.no_grad()
def _linear_as_cell_conv(path, in_channels: int, in_cells: bool, out_channels: int,
                         out_cells: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (O, I, 3, 3) and bias (O,) of the 3x3 convolution at cell resolution that equals
    the affine `path`, measured with impulses. `in_cells` / `out_cells`: whether the path reads
    / writes full-resolution images (False) or cell-resolution features (True); on the image
    side the convolution sees the image pixel-unshuffled by STEM."""
    def run(x: torch.Tensor) -> torch.Tensor:  # x: (N, I, PROBE, PROBE) at cell resolution
        x = x if in_cells else F.pixel_shuffle(x, STEM)
        y = path(x)
        return y if out_cells else F.pixel_unshuffle(y, STEM)

    channels = in_channels if in_cells else in_channels * STEM * STEM
    bias_map = run(torch.zeros(1, channels, PROBE, PROBE))  # (1, O, PROBE, PROBE)
    centre = PROBE // 2
    impulses = torch.zeros(channels, channels, PROBE, PROBE)
    impulses[torch.arange(channels), torch.arange(channels), centre, centre] = 1.0
    response = run(impulses) - bias_map  # (I, O, PROBE, PROBE)
    # output (i, j) sees input (i + dy - 1, j + dx - 1) through weight[:, :, dy, dx]
    window = response[:, :, centre - 1:centre + 2, centre - 1:centre + 2].flip(-1).flip(-2)
    weight = window.permute(1, 0, 2, 3).contiguous()  # (O, I, 3, 3)
    if weight.shape[0] != out_channels * (1 if out_cells else STEM * STEM):
        raise AssertionError("unexpected probe shape")
    return weight, bias_map[0, :, centre, centre].clone()


def with_stem(source: SinglePassNet) -> SinglePassNet:
    """The stem network warm-started from `source` (see the module docstring); eval mode."""
    source = source.float().eval()
    net = SinglePassNet(stem_config(source)).eval()
    state = net.state_dict()
    copied = {}
    for name, value in source.state_dict().items():
        part, _, rest = name.partition(".")
        index, _, tail = rest.partition(".")
        if part in ("time_mlp", "middle"):
            copied[name] = value
        elif part in ("encoders", "downs") and int(index) >= 1:
            copied[f"{part}.{int(index) - 1}.{tail}"] = value
        elif part in ("ups", "decoders", "adaptors") and int(index) < source.levels - 1:
            copied[name] = value
    unknown = sorted(set(copied) - set(state))
    if unknown:
        raise AssertionError(f"no place for {unknown[:3]}")
    c = source.config.width
    intro_w, intro_b = _linear_as_cell_conv(
        lambda x: source.downs[0](source.intro(x)), 3, False, 2 * c, True)
    ending_w, ending_b = _linear_as_cell_conv(
        lambda f: source.ending(source.ups[-1](f)), 2 * c, True, 3, False)
    copied.update({"intro.weight": intro_w, "intro.bias": intro_b,
                   "ending.weight": ending_w, "ending.bias": ending_b})
    missing = sorted(set(state) - set(copied))
    if missing:
        raise AssertionError(f"not initialised: {missing[:3]}")
    net.load_state_dict(copied)
    return net


def write_stem_warm_start(source_file, out_file) -> None:
    """Write the stem network made from the single-pass file `source_file` (same tasks and
    matched time steps) to `out_file`, atomically; its training notes name the source."""
    from dtpm_core.modelfiles.weights import content_sha256
    from dtpm_core.singlepass.weights import load_singlepass, save_singlepass

    source, info = load_singlepass(source_file)
    net = with_stem(source)
    save_singlepass(out_file, net, tasks=dict(info.tasks),
                    training={"warm_start": "trainer.singlepass.stem.with_stem",
                              "source_content_sha256": content_sha256(source.state_dict())})
