"""Elementwise formulas that run as one CUDA kernel on CuPy.

On NumPy a formula such as :math:`\\max(x, \\alpha x)` is computed as the line reads, one
pass over the array per operation. On a GPU each operation is a kernel launch, and a
launch costs the host 10 to 20 microseconds of Python and driver time, more than the
arithmetic on a ``(64, 1024)`` array: a GAN step of 269 launches was bound by them (see
``benchmarks/launch_count.py``). So the few formulas that every step evaluates many times
(the activations, their derivatives, the cross-entropy from logits, the moving averages,
Adam's update) are written twice, next to each other:

- the Python body, the one to read against the equation, run by NumPy and array-api-strict;
- the same formula in CUDA C++, one thread per entry, given to the decorator
  :func:`elementwise` and run on CuPy as a single ``cupy.ElementwiseKernel``.

``T`` in the CUDA text is the arrays' dtype (float32 or float64); a Python number passed
for a ``T`` parameter is converted to it first, as NumPy converts it (NEP 50), and the
kernels are compiled without fused multiply-adds (``--fmad=false``), so each ``+``, ``-``,
``*`` and ``/`` rounds as NumPy's does; only ``exp`` and ``log1p`` may differ in the last
bits. The suite compiles every CUDA body for the CPU and checks it against the Python body
on the same inputs, NaN and infinities included (``tests/test_fused.py``), so a mistake in
one shows without a GPU; on a GPU the same comparison runs on CuPy, and the layers' float64
gradient checks run through the kernels.
``NNSCRATCH_FUSED=0`` in the environment runs the Python bodies on CuPy too (one launch
per operation; the device generator of :mod:`nnscratch.counter_rng` too), to rule the
kernels out when a result looks wrong.
"""
from __future__ import annotations

import functools
import inspect
import os

#: Every decorated formula by name: the Python function and its CUDA form.
KERNELS = {}


class Kernel:
    """A formula's CUDA form: ``in_params``/``out_params`` as CuPy writes them
    (``"T x, T alpha"``), ``body`` the statement run for each entry."""

    def __init__(self, function, in_params, out_params, body):
        self.function, self.name = function, function.__name__
        self.in_params, self.out_params, self.body = in_params, out_params, body
        reserved = [a for a in self.names(in_params) + self.names(out_params)
                    if a in ("i", "n") or a.startswith("_")]
        if reserved:
            raise ValueError(f"{self.name}: CuPy reserves the parameter names {reserved}")
        self._compiled = None

    def names(self, params):
        """The parameter names of ``"T x, T alpha"``: ``["x", "alpha"]``."""
        return [p.split()[-1] for p in params.split(",")]

    def cupy(self):
        """The ``cupy.ElementwiseKernel``, built on first use (CuPy compiles it then)."""
        if self._compiled is None:
            import cupy
            self._compiled = cupy.ElementwiseKernel(self.in_params, self.out_params, self.body,
                                                    f"nnscratch_{self.name}",
                                                    options=("--fmad=false",))
        return self._compiled


def on_device(a):
    """True for a CuPy array (the one library whose launches cost more than the math)."""
    return type(a).__module__.startswith("cupy")


def run(kernel, args):
    """One call of a decorated formula: the CUDA kernel for CuPy arrays of one dtype, else
    the Python body (which promotes mixed dtypes as the array library does; the kernel's
    ``T`` cannot). ``benchmarks/launch_count.py`` replaces this to count one launch."""
    if on_device(args[0]) and os.environ.get("NNSCRATCH_FUSED", "1") != "0" and \
            len({a.dtype for a in args if hasattr(a, "dtype")}) == 1:
        return kernel.cupy()(*args)
    return kernel.function(*args)


def elementwise(in_params, out_params, body):
    """Decorator: the function keeps its Python body and, on CuPy arrays, runs ``body``
    (CUDA C++, one entry per thread) instead. The function's parameters are those of
    ``in_params``, in that order, then (for an update in place) those of ``out_params``;
    several outputs come back as a tuple, as from the Python body."""
    def decorate(function):
        kernel = KERNELS[function.__name__] = Kernel(function, in_params, out_params, body)
        signature = inspect.signature(function)

        @functools.wraps(function)
        def call(*args, **kwargs):
            if kwargs:            # the kernel takes its arguments by position
                args = signature.bind(*args, **kwargs).args
            return run(kernel, args)
        call.kernel = kernel
        return call
    return decorate
