"""Checks at the trainers' entry points: what a batch must be, and whether a model fits.

A wrong input must fail at once with a message that says what was expected, not hours later
as a loss of 5.6e37 (integer images 0..255), a misleading "loss overflowed" (an empty
batch) or a MemoryError traceback (a width of 10^9).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os

import numpy as np

from ..module import ShapeError

#: bytes per parameter that training needs at least: the parameter, its gradient and
#: Adam's two moments
COPIES = 4


def check_images(x, where, width, value_range=(0.0, 1.0), backend=None):
    """Raise ``ValueError`` unless ``x`` is a non-empty ``(N, width)`` floating array with
    values in ``value_range`` (None: any finite range).

    An array of a backend other than NumPy has its dtype and shape checked only: its values
    were checked on the host by the loop (a check on the device would wait for it).
    """
    on_device = backend is not None and backend.name != "numpy" and backend.is_array(x)
    if not on_device:
        x = np.asarray(x)
    dtype = str(x.dtype).rsplit(".", 1)[-1]
    if not dtype.startswith("float"):
        hint = " (images of 0..255? divide by 255)" if dtype.startswith(("uint", "int")) else ""
        raise ValueError(f"{where}: expected floating-point images in [0, 1], got dtype "
                         f"{dtype}{hint}")
    if len(x.shape) != 2 or x.shape[1] != width:
        raise ShapeError(f"{where}: expected an array of shape (N, {width}), got "
                         f"{tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: the batch is empty (shape {tuple(x.shape)}); give at "
                         "least one row")
    if on_device:
        return
    low, high = float(np.min(x)), float(np.max(x))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{where}: the images hold NaN or Inf")
    if value_range is not None and (low < value_range[0] or high > value_range[1]):
        raise ValueError(f"{where}: expected values in [{value_range[0]:g}, "
                         f"{value_range[1]:g}], got [{low:g}, {high:g}] (images of 0..255? "
                         "divide by 255)")


def dense_parameters(sizes):
    """Parameters of dense layers ``sizes[0] -> sizes[1] -> ...`` (weights and biases)."""
    return sum(int(a) * int(b) + int(b) for a, b in zip(sizes[:-1], sizes[1:]))


def check_sizes(what, **sizes):
    """Every size (a width, a latent dimension) must be an integer >= 1."""
    for name, value in sizes.items():
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{what}: {name} must be integers >= 1, got {value!r}")


#: ``(most parameters, why)`` while a checkpoint is loaded (see :func:`stored_parameters`)
_stored = contextvars.ContextVar("nnscratch_stored_parameters", default=None)


@contextlib.contextmanager
def stored_parameters(n, where):
    """While the block runs, :func:`check_memory` refuses a model of more than ``n``
    parameters: those a checkpoint ``where`` stores. A config that implies more (an edited
    latent of 300,000) is refused from the config alone, before the model exists."""
    token = _stored.set((n, where))
    try:
        yield
    finally:
        _stored.reset(token)


def check_memory(n_params, itemsize, what):
    """Refuse a model whose training state (:data:`COPIES` arrays per parameter) exceeds the
    memory available now (not the machine's total: other programs hold some of it), or,
    while a checkpoint is loaded, the values that checkpoint stores, before anything is
    allocated."""
    stored = _stored.get()
    if stored is not None and n_params > stored[0]:
        raise ValueError(f"{what} has {n_params:.3g} parameters, more than the {stored[0]:.3g} "
                         f"values {stored[1]} stores")
    need = n_params * itemsize * COPIES
    short = beyond_memory(need)
    if short:
        raise ValueError(f"{what} has {n_params:.3g} parameters: training needs "
                         f"{format_bytes(need)} (parameters, gradients and Adam's two "
                         f"moments), {short}")


def beyond_memory(need):
    """"more than this machine's X of memory available now" when ``need`` bytes exceed
    the memory available now (:func:`available_memory`), else "" (it fits, or nobody
    knows): the one test, and the one phrase, of every refusal before an allocation."""
    have = available_memory()
    if have is None or need <= have:
        return ""
    return f"more than this machine's {format_bytes(have)} of memory available now"


def available_memory():
    """Bytes of memory available now without swapping: ``MemAvailable`` of
    ``/proc/meminfo`` (Linux), else the machine's RAM, else None where neither is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return physical_memory()


def physical_memory():
    """Bytes of RAM, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n):
    """``n`` bytes in decimal units, e.g. ``'2.4 GB'``."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
