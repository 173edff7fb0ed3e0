"""The numpy noise source draws what torch.randn draws from a seeded CPU generator: the same
values, call after call, for every size path and every seed torch accepts."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from dtpm_core.diffusion.noise import SEED_MAX, SEED_MIN, TorchCompatibleNormal

# torch's AVX2 Box-Muller kernel and numpy's float32 log/cos/sin differ in the last bits; torch's
# scalar kernel (AVX-512, ARM, ATEN_CPU_CAPABILITY=default) differs from both by up to ~2.3e-6.
TOLERANCE = 1e-6 if torch.backends.cpu.get_cpu_capability() == "AVX2" else 4e-6

SHAPES = [0, 1, 3, 15, 16, 17, 31, 48, (), (1, 3, 5, 7), (1, 3, 64, 64), (1, 3, 333, 517),
          (1, 3, 1200, 1700)]  # the last is a 2-megapixel start noise
SMALL = 16  # below this torch draws in float64 one element at a time; exact here


def draw_both(seed, shapes):
    """Successive draws of `shapes` from torch and from the numpy source, same seed."""
    generator = torch.Generator().manual_seed(seed)
    source = TorchCompatibleNormal(seed)
    return [(torch.randn(shape, generator=generator).numpy(), source.normal(shape))
            for shape in shapes]


def assert_same_noise(expected, got):
    assert got.shape == expected.shape
    assert got.dtype == np.float32 and got.flags.c_contiguous
    if expected.size < SMALL:
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_one_draw_matches_torch(shape):
    [(expected, got)] = draw_both(42, [shape])
    assert_same_noise(expected, got)


def test_successive_draws_continue_the_generator():
    """Start noise, then per-step noise of mixed sizes, small draws between large ones; a
    small draw after large ones is exact only if every earlier call consumed what torch did."""
    shapes = [(1, 3, 64, 64), 1, 3, (1, 3, 64, 64), 0, 17, 5, (1, 3, 333, 517), 2, 1, 31, 15,
              (1, 3, 5, 7), 48, 16, 1]
    for expected, got in draw_both(7, shapes):
        assert_same_noise(expected, got)


def test_cached_second_normal_survives_large_draws():
    """torch's scalar path keeps r sin(theta) for the next small draw, in any later call; draws
    of 16 or more elements neither use nor clear it."""
    draws = draw_both(3, [3, 48, 1, 1, (1, 3, 64, 64), 1])
    for expected, got in draws:
        assert_same_noise(expected, got)
    # randn(3) takes cos, sin of pair 1 and cos of pair 2; the 1 after the 48 is pair 2's sin
    two_pairs = torch.randn(4, generator=torch.Generator().manual_seed(3)).numpy()
    assert draws[2][1][0] == two_pairs[3]


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1, 2**32, 2**32 + 5, 2**63, SEED_MAX, -1,
                                  SEED_MIN, np.int64(12)], ids=str)
def test_every_seed_torch_accepts(seed):
    for expected, got in draw_both(int(seed), [3, 17, (1, 3, 8, 8)]):
        assert_same_noise(expected, got)
    [(expected, _)] = draw_both(int(seed), [(1, 3, 8, 8)])
    np.testing.assert_allclose(TorchCompatibleNormal(seed).normal((1, 3, 8, 8)), expected,
                               rtol=0, atol=TOLERANCE)


def test_seeds_reduce_to_32_bits_as_in_torch():
    """mt19937 takes seed mod 2**32: 5 and 2**32 + 5 give one stream, -1 and 2**32 - 1 another."""
    for a, b in [(5, 2**32 + 5), (-1, 2**32 - 1), (SEED_MIN, 0)]:
        np.testing.assert_array_equal(TorchCompatibleNormal(a).normal(40),
                                      TorchCompatibleNormal(b).normal(40))


@pytest.mark.parametrize("seed, error", [(SEED_MAX + 1, ValueError), (SEED_MIN - 1, ValueError),
                                         (1.5, TypeError), (True, TypeError), ("3", TypeError)])
def test_seeds_torch_refuses_are_refused(seed, error):
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        torch.Generator().manual_seed(seed)
    with pytest.raises(error):
        TorchCompatibleNormal(seed)


def test_negative_dimension_is_refused():
    with pytest.raises(ValueError, match="negative"):
        TorchCompatibleNormal(0).normal((1, -3, 4))


def test_module_does_not_import_torch():
    """The OpenVINO path samples without torch installed."""
    code = ("import sys, dtpm_core.diffusion.noise\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
