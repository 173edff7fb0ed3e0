"""Gaussian noise in numpy that draws what `torch.randn` draws on the CPU, without torch.

The DDIM sampler seeds its noise with `torch.Generator().manual_seed(seed)` and draws
`torch.randn(shape, generator=g)` (float32): first the start noise x_T, then one draw per step
when eta > 0. `TorchCompatibleNormal(seed).normal(shape)` returns the same arrays, call after
call, so that a numpy sampler (the OpenVINO backend) gives the results and evaluation numbers
that the torch sampler gives.

What torch does (checked against torch 2.14.1 on an x86-64 CPU with AVX2; tests/core/test_noise.py
compares the two):

1. Generator: the 32-bit Mersenne Twister mt19937. `manual_seed(s)` accepts -2**63 <= s < 2**64,
   takes a negative s as its two's-complement uint64, and seeds mt19937 with only the low 32
   bits (s mod 2**32), as std::mt19937 / init_genrand does: state[0] = s,
   state[i] = 1812433253 * (state[i-1] ^ (state[i-1] >> 30)) + i. So seeds 5 and 2**32 + 5,
   and -1 and 2**32 - 1, give the same noise.
2. Uniforms: a float32 uniform in [0, 1) is the low 24 bits of one 32-bit draw times 2**-24;
   a float64 uniform takes two draws a, b and uses the low 53 bits of (a << 32 | b), times
   2**-53.
3. `randn` of a float32 tensor with at least 16 elements (`normal_fill`, vectorised with AVX2):
   draw one float32 uniform per element, in order; then transform each whole block of 16 by
   Box-Muller in float32: for j < 8, u1 = 1 - u[j] (in (0, 1], safe for the log), u2 = u[j + 8],
   r = sqrt(-2 log u1), theta = 2 pi u2, and out[j] = r cos(theta), out[j + 8] = r sin(theta):
   eight cosines, then eight sines. When the size is not a multiple of 16, torch draws 16 fresh
   uniforms and recomputes the last 16 elements from them, overwriting the end of the last whole
   block; the uniforms it drew for the leftover elements are never used. A draw of n elements
   thus consumes n 32-bit draws, plus 16 when n % 16 != 0.
4. `randn` with 1 to 15 elements takes a scalar path in float64, one element at a time: two
   float64 uniforms u1, u2 (four 32-bit draws), r = sqrt(-2 log1p(-u2)), theta = 2 pi u1 (u1 is
   the angle here, unlike step 3), the element is float32(r cos(theta)) and r sin(theta) is kept
   in the generator as a cached normal. The next scalar-path element, in this call or in any
   later call, uses the cached value instead of drawing; draws of 16 or more elements neither
   use nor clear the cache. `manual_seed` clears it.
5. Zero elements consume nothing.

The integer draws, the order of the uniforms and the scalar path (step 4) match torch exactly.
Step 3 here uses numpy's float32 log, cos and sin, whose last bits differ from the AVX2 kernel's:
the two agree to within 1e-6 (measured up to 7.2e-7 on 2-megapixel draws; about 86% of values
are identical). Torch itself is not bit-identical across CPUs: its AVX2 kernel is compiled only
into the AVX2 build of the operator, so on CPUs where torch picks AVX-512, on ARM, or with
ATEN_CPU_CAPABILITY=default, it runs a scalar float32 loop (theta rounded from a float64
product, libm logf / cosf / sinf), which differs from the AVX2 result, and from this, by up to
about 2.3e-6.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np

SEED_MIN = -(2**63)  # the range torch.Generator.manual_seed accepts
SEED_MAX = 2**64 - 1

_MT_STATE_WORDS = 624
_MT_INIT_MULTIPLIER = 1812433253  # Knuth's multiplier in init_genrand
_UINT32_MASK = 0xFFFFFFFF
_FLOAT32_UNIFORM_BITS = 24  # float32 mantissa digits
_FLOAT64_UNIFORM_BITS = 53  # float64 mantissa digits
_BLOCK = 16  # torch's Box-Muller block: 8 cosines, then 8 sines
_HALF_BLOCK = _BLOCK // 2
_TWO_PI_F32 = np.float32(2 * math.pi)


def _mt19937_seeded(seed: int) -> np.random.MT19937:
    """An MT19937 bit generator in the state std::mt19937(seed % 2**32) starts from."""
    key = np.empty(_MT_STATE_WORDS, dtype=np.uint32)
    word = seed & _UINT32_MASK
    for i in range(_MT_STATE_WORDS):
        key[i] = word
        word = (_MT_INIT_MULTIPLIER * (word ^ (word >> 30)) + i + 1) & _UINT32_MASK
    bits = np.random.MT19937(0)
    # pos = 624: the first draw regenerates the whole state, as in init_genrand
    bits.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": _MT_STATE_WORDS}}
    return bits


def _box_muller_blocks(values: np.ndarray) -> None:
    """Turn float32 uniforms into normals in place, block by block as torch's normal_fill does.

    Args:
        values: (16 k,) float32 uniforms in [0, 1); overwritten with the normals.
    """
    blocks = values.reshape(-1, 2, _HALF_BLOCK)  # (k, 2, 8): [:, 0] radius, [:, 1] angle
    radius = np.log(np.float32(1) - blocks[:, 0])  # u1 = 1 - u in (0, 1]
    radius *= np.float32(-2)
    np.sqrt(radius, out=radius)  # r = sqrt(-2 log u1), (k, 8)
    theta = blocks[:, 1] * _TWO_PI_F32  # theta = 2 pi u2, (k, 8)
    np.multiply(radius, np.cos(theta), out=blocks[:, 0])
    np.multiply(radius, np.sin(theta, out=theta), out=blocks[:, 1])


class TorchCompatibleNormal:
    """Standard normal float32 noise equal to successive `torch.randn(shape, generator=g)`
    calls on the CPU, for `g = torch.Generator().manual_seed(seed)`, in numpy alone.

    Each instance holds its own generator state: make one per sampling run, as the torch
    sampler makes one generator per run.
    """

    def __init__(self, seed: int) -> None:
        """Args:
            seed: any integer torch's `manual_seed` accepts, -2**63 <= seed < 2**64.

        Raises:
            TypeError: the seed is not an integer (a bool or float, which torch refuses too).
            ValueError: the seed lies outside the range torch accepts.
        """
        if isinstance(seed, bool):
            raise TypeError(f"noise seed must be an integer, not the bool {seed!r}")
        try:
            seed = operator.index(seed)
        except TypeError:
            raise TypeError(
                f"noise seed must be an integer, not {type(seed).__name__} {seed!r}") from None
        if not SEED_MIN <= seed <= SEED_MAX:
            raise ValueError(
                f"noise seed {seed} is outside the range torch accepts, [-2**63, 2**64 - 1]; "
                f"pick a seed in 0..2**31-1")
        self.seed = seed
        self._bits = _mt19937_seeded(seed)
        self._cached_normal: float | None = None  # torch's next_double_normal_sample

    def normal(self, shape: int | Sequence[int]) -> np.ndarray:
        """Draw what the next `torch.randn(shape, generator=g)` (float32) would return.

        Args:
            shape: an int or a sequence of ints, e.g. (1, 3, H, W); () gives one value.

        Returns:
            A C-contiguous float32 array of that shape.
        """
        dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        dims = tuple(operator.index(d) for d in dims)
        if any(d < 0 for d in dims):
            raise ValueError(f"noise shape {dims} has a negative dimension")
        count = math.prod(dims)
        if count >= _BLOCK:
            values = self._block_normals(count)
        else:
            values = self._scalar_normals(count)
        return values.reshape(dims)

    def _uniform_floats(self, count: int) -> np.ndarray:
        """(count,) float32 uniforms in [0, 1) from 24 bits of one draw each."""
        raw = self._bits.random_raw(count)  # uint64 holding 32-bit draws
        raw &= (1 << _FLOAT32_UNIFORM_BITS) - 1
        values = raw.astype(np.float32)  # exact: below 2**24
        values *= np.float32(2.0**-_FLOAT32_UNIFORM_BITS)
        return values

    def _uniform_double(self) -> float:
        """One float64 uniform in [0, 1) from 53 bits of two draws (first draw high)."""
        high, low = (int(word) for word in self._bits.random_raw(2))
        bits = ((high << 32) | low) & ((1 << _FLOAT64_UNIFORM_BITS) - 1)
        return bits * 2.0**-_FLOAT64_UNIFORM_BITS

    def _block_normals(self, count: int) -> np.ndarray:
        """torch's vectorised path for count >= 16 (module docstring, step 3)."""
        values = self._uniform_floats(count)
        whole = count - count % _BLOCK
        _box_muller_blocks(values[:whole])
        if whole != count:
            tail = self._uniform_floats(_BLOCK)
            _box_muller_blocks(tail)
            values[count - _BLOCK:] = tail
        return values

    def _scalar_normals(self, count: int) -> np.ndarray:
        """torch's scalar float64 path for count < 16 (module docstring, step 4)."""
        values = np.empty(count, dtype=np.float32)
        for i in range(count):
            if self._cached_normal is not None:
                values[i] = self._cached_normal
                self._cached_normal = None
                continue
            u1 = self._uniform_double()
            u2 = self._uniform_double()
            radius = math.sqrt(-2.0 * math.log1p(-u2))
            theta = 2.0 * math.pi * u1
            self._cached_normal = radius * math.sin(theta)
            values[i] = radius * math.cos(theta)  # rounded to float32 as torch's cast does
        return values
