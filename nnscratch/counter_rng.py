r"""A counter-based random generator: the one the CuPy backend draws with on the device.

CuPy's own generators keep their state on the device in a form that cannot be saved (its
documentation says so), so a checkpoint could not make a resumed GPU run draw the same noise
as an uninterrupted one. This generator has no state but two integers: a 64-bit ``key``
derived from the seed and the ``counter`` of draws made so far. Draw number :math:`c`, of
:math:`n` numbers, is the SplitMix64 stream (Steele, Lea & Flood, 2014) that starts at a
base derived from both, eq. (rng-1):

.. math:: b = \mathrm{mix}(k + c\,\gamma), \qquad z_i = \mathrm{mix}(b + (i + 1)\,\gamma),
          \quad i = 0, \dots, n - 1

in 64-bit unsigned arithmetic (wrapping), with :math:`\gamma` = ``0x9E3779B97F4A7C15`` and
``mix`` SplitMix64's finaliser. A uniform in [0, 1) is the top 24 (float32) or 53 (float64)
bits of :math:`z_i`; a normal is a Box-Muller transform of its two 32-bit halves, eq. (rng-2):

.. math:: u_1 = (\lfloor z / 2^{32} \rfloor + 1) / 2^{32} \in (0, 1], \quad
          u_2 = (z \bmod 2^{32}) / 2^{32}, \quad
          \epsilon = \sqrt{-2 \ln u_1}\, \cos(2 \pi u_2)

Saving ``(key, counter)`` and restoring it continues the same numbers exactly. The
reference implementation, :func:`bits`, uses array operations only, so it runs on NumPy (the
CPU twin the test suite checks) and on CuPy alike; on CuPy a draw is one CUDA kernel
(:data:`CUDA_BODY`), which the suite compares with the reference where a GPU is present.
"""
from __future__ import annotations

import math
import os

import numpy as np

GAMMA = 0x9E3779B97F4A7C15
M1, M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
MASK = (1 << 64) - 1


def mix(z):
    """SplitMix64's finaliser on a Python int (the per-draw base of eq. rng-1)."""
    z = ((z ^ (z >> 30)) * M1) & MASK
    z = ((z ^ (z >> 27)) * M2) & MASK
    return z ^ (z >> 31)


def bits(xp, base, n):
    """Eq. (rng-1): the ``n`` 64-bit words ``z_i`` of the stream at ``base``, on ``xp``."""
    u64 = np.uint64
    z = xp.arange(1, n + 1, dtype=xp.uint64) * u64(GAMMA) + u64(base)
    z = (z ^ (z >> u64(30))) * u64(M1)
    z = (z ^ (z >> u64(27))) * u64(M2)
    return z ^ (z >> u64(31))


def uniform_from_bits(xp, z, dtype):
    """Uniforms in [0, 1) of ``dtype`` from the top bits of ``z`` (exact in that dtype)."""
    shift, scale = _UNIFORM_BITS[np.dtype(dtype).name]
    return (z >> np.uint64(shift)).astype(xp.float64) * scale


def normal_from_bits(xp, z):
    """Eq. (rng-2): one standard normal per word, in float64."""
    u1 = ((z >> np.uint64(32)).astype(xp.float64) + 1.0) * 2.0 ** -32
    u2 = (z & np.uint64(0xFFFFFFFF)).astype(xp.float64) * 2.0 ** -32
    return xp.sqrt(-2.0 * xp.log(u1)) * xp.cos(2.0 * math.pi * u2)


#: dtype -> (bits dropped, 2^-bits kept) for the uniforms
_UNIFORM_BITS = {"float32": (40, 2.0 ** -24), "float64": (11, 2.0 ** -53)}

#: One CUDA thread per output: eqs. (rng-1) and (rng-2), as :func:`bits` and
#: :func:`normal_from_bits` / :func:`uniform_from_bits` compute them.
CUDA_BITS = """
    unsigned long long z = base + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z = z ^ (z >> 31);
"""
CUDA_NORMAL = CUDA_BITS + """
    double u1 = ((double)(z >> 32) + 1.0) * 2.3283064365386963e-10;
    double u2 = (double)(z & 0xFFFFFFFFull) * 2.3283064365386963e-10;
    out = (T)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
"""
CUDA_UNIFORM = CUDA_BITS + """
    out = (T)((double)(z >> shift) * scale);
"""
CUDA_BODY = {"normal": CUDA_NORMAL, "uniform": CUDA_UNIFORM}


class CounterRNG:
    """The generator of eqs. (rng-1) and (rng-2) on the array module ``xp``.

    Has the two methods of ``numpy.random.Generator`` that :class:`~nnscratch.backend.Backend`
    uses (``standard_normal``, ``random``) and a ``state`` (a JSON-ready dict) to save and
    restore. ``fused`` (CuPy only) draws with one CUDA kernel instead of the reference's
    dozen array operations (the same numbers); by default it does on CuPy unless
    ``NNSCRATCH_FUSED=0`` is set, as for the formulas of :mod:`nnscratch.fused`.
    """

    def __init__(self, seed=None, xp=np, fused=None):
        self.xp = xp
        self.key = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])
        self.counter = 0
        if fused is None:
            fused = xp.__name__ == "cupy" and os.environ.get("NNSCRATCH_FUSED", "1") != "0"
        self.fused = fused

    @property
    def state(self):
        return {"bit_generator": "nnscratch.CounterRNG", "key": self.key,
                "counter": self.counter}

    @state.setter
    def state(self, value):
        if value.get("bit_generator") != "nnscratch.CounterRNG":
            raise ValueError(f"not a CounterRNG state: {value.get('bit_generator')!r}")
        self.key, self.counter = int(value["key"]), int(value["counter"])

    def _next_base(self):
        base = mix((self.key + self.counter * GAMMA) & MASK)
        self.counter += 1
        return base

    def standard_normal(self, size, dtype="float64"):
        """``size`` samples of N(0, 1), eq. (rng-2)."""
        base, n = self._next_base(), math.prod(_shape(size))
        if self.fused:
            return self._kernel("normal")(np.uint64(base), self._empty(size, dtype))
        z = bits(self.xp, base, n)
        return normal_from_bits(self.xp, z).astype(dtype).reshape(_shape(size))

    def random(self, size, dtype="float64"):
        """``size`` samples of U[0, 1)."""
        base, n = self._next_base(), math.prod(_shape(size))
        if self.fused:
            shift, scale = _UNIFORM_BITS[np.dtype(dtype).name]
            return self._kernel("uniform")(np.uint64(base), np.int32(shift), np.float64(scale),
                                           self._empty(size, dtype))
        z = bits(self.xp, base, n)
        return uniform_from_bits(self.xp, z, dtype).astype(dtype).reshape(_shape(size))

    def _empty(self, size, dtype):
        return self.xp.empty(_shape(size), dtype=dtype)

    def _kernel(self, kind):
        if kind not in _KERNELS:                 # built once, compiled by CuPy on first use
            params = {"normal": "uint64 base",
                      "uniform": "uint64 base, int32 shift, float64 scale"}[kind]
            _KERNELS[kind] = self.xp.ElementwiseKernel(
                params, "T out", CUDA_BODY[kind], f"nnscratch_counter_rng_{kind}")
        return _KERNELS[kind]


_KERNELS = {}


def _shape(size):
    return (size,) if isinstance(size, int) else tuple(size)
