"""The array backend: one object that holds the array module, the float dtype and the RNG.

Every array the library computes with is created here, so that switching from NumPy to
CuPy (or to ``array-api-strict``, the reference implementation of the Python array API
standard that the tests use to prove the math is portable) is one call::

    import nnscratch
    nnscratch.use_backend("cupy")            # or NNSCRATCH_BACKEND=cupy in the environment
    nnscratch.use_backend("numpy", dtype="float64", seed=0)

The math itself only calls functions of the array API standard on ``xp = backend.xp``
(``xp.matmul``, ``xp.exp``, ``xp.where``...). Random numbers are not part of that
standard, so they live here, drawn by a seeded generator of the backend.
"""
from __future__ import annotations

import hashlib
import json
import math
import os

import numpy as np

from .counter_rng import CounterRNG

BACKENDS = ("numpy", "cupy", "array_api_strict")
DTYPES = ("float32", "float64")


class BackendError(RuntimeError):
    """A backend was asked for that this machine cannot provide."""


def _import_cupy():
    try:
        import cupy
    except ImportError as err:
        raise BackendError(
            "backend 'cupy' needs the CuPy package, which is not installed: "
            "pip install 'nnscratch[gpu]' (or the cupy-cudaXXx wheel matching your CUDA), "
            "or use the 'numpy' backend") from err
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken
        raise BackendError(
            f"backend 'cupy': CuPy is installed but no CUDA device could be opened ({err}); "
            "use the 'numpy' backend on this machine") from err
    if n_devices == 0:
        raise BackendError("backend 'cupy': CuPy is installed but this machine has no GPU; "
                           "use the 'numpy' backend")
    return cupy


def _import_strict():
    try:
        import array_api_strict
    except ImportError as err:
        raise BackendError("backend 'array_api_strict' needs the array-api-strict package: "
                           "pip install array-api-strict") from err
    return array_api_strict


class Backend:
    """An array module, a default float dtype and a seeded random generator.

    Parameters
    ----------
    name : {"numpy", "cupy", "array_api_strict"}
    dtype : {"float32", "float64"}
        float32 for training; float64 for gradient checks.
    seed : int or None
        Seed of the random generator (initialisation, noise, dropout masks).
    """

    def __init__(self, name="numpy", dtype="float32", seed=None):
        name = name.replace("-", "_")
        if name not in BACKENDS:
            raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
        if str(dtype) not in DTYPES:
            raise BackendError(f"unknown dtype {dtype!r}; choose float32 or float64")
        self.name = name
        if name == "numpy":
            self.xp = np
        elif name == "cupy":
            self.xp = _import_cupy()
        else:
            self.xp = _import_strict()
        self.dtype = getattr(self.xp, str(dtype))
        self.dtype_name = str(dtype)
        self.seed(seed)

    def __repr__(self):
        return f"Backend({self.name!r}, dtype={self.dtype_name!r})"

    # -- random numbers -------------------------------------------------------------
    def seed(self, seed=None):
        """Reset the generator. CuPy draws on the device with the counter-based generator of
        :mod:`nnscratch.counter_rng` (CuPy's own cannot be saved); the others draw with
        NumPy's default generator."""
        if self.name == "cupy":
            self.rng = CounterRNG(seed, xp=self.xp)
        else:
            self.rng = np.random.default_rng(seed)

    def normal(self, shape, std=1.0):
        """Samples of N(0, std^2) of the default dtype, created on the device."""
        eps = self.rng.standard_normal(size=shape, dtype=self.dtype_name)
        if std != 1.0:
            eps *= std
        return self._from_rng(eps)

    def uniform(self, shape, low=0.0, high=1.0):
        """Samples of U(low, high) of the default dtype."""
        u = self.rng.random(size=shape, dtype=self.dtype_name)
        if (low, high) != (0.0, 1.0):
            u = u * (high - low) + low
        return self._from_rng(u)

    def _from_rng(self, a):
        return a if self.name != "array_api_strict" else self.xp.asarray(a)

    def rng_state(self):
        """The generator's state as a JSON string (safe to store in an .npz without pickle)."""
        return json.dumps(self._bit_generator().state)

    def set_rng_state(self, state):
        """Restore a state from :meth:`rng_state`. A state saved by the other kind of
        generator (a NumPy run resumed on CuPy, or back) cannot continue the same numbers:
        the generator is then seeded from that state's text, deterministically."""
        saved = json.loads(state)
        try:
            self._bit_generator().state = saved
        except (ValueError, TypeError, KeyError):
            self.seed(int.from_bytes(hashlib.sha256(state.encode()).digest()[:8], "little"))

    def _bit_generator(self):
        return self.rng if isinstance(self.rng, CounterRNG) else self.rng.bit_generator

    def seeded(self, seed):
        """A backend of the same kind whose generator is seeded with ``seed`` (``self`` when
        ``seed`` is None): fixed noise for figures and evaluation, drawn without touching
        the training generator."""
        return self if seed is None else Backend(self.name, self.dtype_name, seed=seed)

    # -- creating and moving arrays -------------------------------------------------
    def asarray(self, a, dtype=None):
        """``a`` as an array of this backend (default float dtype unless ``dtype`` is given).

        NumPy and host data are copied to the device when the backend is CuPy.
        """
        dtype = self.dtype if dtype is None else dtype
        if self.name == "array_api_strict" and not self.is_array(a):
            a = np.asarray(to_numpy(a))
        return self.xp.asarray(a, dtype=dtype)

    def zeros(self, shape):
        return self.xp.zeros(shape, dtype=self.dtype)

    def zeros_like(self, a):
        return self.xp.zeros_like(a)

    def to_numpy(self, a):
        return to_numpy(a)

    def is_array(self, a):
        if self.name == "array_api_strict":
            return type(a).__module__.startswith("array_api_strict")
        return isinstance(a, self.xp.ndarray)

    # -- blockwise elementwise updates (the optimizers) -----------------------------
    def row_blocks(self, shape, size):
        """Indices ``a[i:j, ...]`` of blocks of consecutive rows of an array of ``shape``,
        about ``size`` elements each (at least one row), for updates done block by block.

        On CuPy the whole array is one block: a GPU kernel is parallel already, and every
        block would cost one launch per line of the update.
        """
        if not shape or self.name == "cupy":
            return [...]
        n, row = shape[0], math.prod(shape[1:])
        step = max(1, size // max(row, 1))
        return [(slice(i, min(i + step, n)), ...) for i in range(0, n, step)]


def to_numpy(a):
    """A host (NumPy) copy of an array of any backend; NumPy arrays are returned as they are."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "get"):          # CuPy: device to host
        return a.get()
    if type(a).__module__.startswith("array_api_strict"):
        return np.from_dlpack(a)
    return np.asarray(a)


def namespace(*arrays):
    """The array module of ``arrays`` (what array-api-compat's ``array_namespace`` returns)."""
    for a in arrays:
        if isinstance(a, np.ndarray) or np.isscalar(a):
            continue
        mod = type(a).__module__.split(".")[0]
        if mod == "cupy":
            import cupy
            return cupy
        if mod == "array_api_strict":
            import array_api_strict
            return array_api_strict
    return np


_current = None


def get_backend() -> Backend:
    """The backend in use: set by ``use_backend``, else ``$NNSCRATCH_BACKEND``, else NumPy."""
    global _current
    if _current is None:
        _current = Backend(os.environ.get("NNSCRATCH_BACKEND", "numpy"),
                           os.environ.get("NNSCRATCH_DTYPE", "float32"))
    return _current


def use_backend(name="numpy", dtype="float32", seed=None) -> Backend:
    """Make a new backend the default for everything created from now on, and return it.

    ``name`` may also be a ready :class:`Backend`.
    """
    global _current
    _current = name if isinstance(name, Backend) else Backend(name, dtype, seed)
    return _current
