r"""Gradient checking: the manual backward against central finite differences.

For a scalar function :math:`f` of an array :math:`\theta`, eq. (gradcheck-1):

.. math:: \frac{\partial f}{\partial \theta_i} \approx
          \frac{f(\theta + h e_i) - f(\theta - h e_i)}{2h}

whose truncation error is :math:`h^2 |f^{(3)}| / 6` and whose rounding error is about
:math:`\epsilon_{mach} |f| / h`. In float64 (:math:`\epsilon_{mach} \approx 2.2\times10^{-16}`)
with :math:`h = 10^{-6}` the truncation error is about :math:`10^{-13}` and the rounding
error, which dominates, about :math:`2\times10^{-10}` (relative to the size of the gradient,
for :math:`f` and its derivatives of order one). So a smooth function passes with errors
far below the threshold of :math:`10^{-7}` that the tests use, while any real mistake in a
backward (a missing factor, a transpose, a sign) gives errors of order 1. Always check in
float64: in float32 (:math:`\epsilon_{mach} \approx 1.2\times10^{-7}`) the rounding error
alone is about :math:`10^{-1}` at this :math:`h` (``docs/gradcheck.md`` derives both).

A layer's output is a whole array, so it is reduced to a scalar with a *random* upstream
gradient, eq. (gradcheck-2): :math:`f = \sum_i \delta_i y_i` with
:math:`\delta \sim \mathcal N(0, I)` fixed. (Summing the outputs, :math:`\delta = 1`, lets a
wrong backward pass whenever its errors sum to zero, as a softmax's do.)

The error reported per array is the worst entry relative to the largest gradient in that
array, eq. (gradcheck-3):

.. math:: e = \frac{\max_i |a_i - n_i|}{\max\left(\max_i |a_i|, \max_i |n_i|\right)}

with :math:`a` the analytic and :math:`n` the numerical gradient.
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy

TOLERANCE = 1e-7


def numerical_gradient(f, theta, h=1e-6):
    """Central differences, eq. (gradcheck-1), of the scalar ``f()`` with respect to every
    entry of ``theta``.

    ``theta`` is perturbed in place, one entry at a time, and restored exactly.
    Returns a NumPy array of the shape of ``theta``.

    The entry is read as a Python float before it is perturbed: on CuPy, ``theta[index]``
    with a full tuple of integers is a 0-d *view* into ``theta`` (NumPy returns a copy), so
    keeping that view as "the original" would see every perturbation.
    """
    grad = np.zeros(tuple(theta.shape))
    for index in np.ndindex(*theta.shape):
        original = float(theta[index])
        theta[index] = original + h
        f_plus = float(f())
        theta[index] = original - h
        f_minus = float(f())
        theta[index] = original
        grad[index] = (f_plus - f_minus) / (2 * h)               # eq. (gradcheck-1)
    return grad


def relative_error(analytic, numeric):
    """Eq. (gradcheck-3): the worst discrepancy relative to the gradient's scale."""
    a, n = np.asarray(to_numpy(analytic), dtype=np.float64), np.asarray(numeric)
    scale = max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.abs(a - n).max() / scale)


def check_gradients(f, arrays, analytic, h=1e-6):
    """Compare analytic gradients with central differences of ``f``.

    Parameters
    ----------
    f : callable
        ``f()`` recomputes the scalar objective from the current values of ``arrays``.
    arrays : dict
        name -> array to differentiate with respect to (perturbed in place).
    analytic : dict
        name -> the manual gradient of ``f`` for that array.

    Returns
    -------
    dict
        name -> the relative error of eq. (gradcheck-3).
    """
    _require_float64(arrays)
    return {name: relative_error(analytic[name], numerical_gradient(f, theta, h))
            for name, theta in arrays.items()}


def gradcheck(module, x, loss=None, seed=0, h=1e-6, check_input=True):
    """Check ``module.backward`` (input and every parameter) against finite differences.

    Parameters
    ----------
    module : Module
        Built on a float64 backend.
    x : array ``(batch, n_in)``
    loss : callable, optional
        ``loss(y) -> (L, dy)``. Without it, the objective is eq. (gradcheck-2) with a
        random upstream gradient drawn from ``seed``.

    Returns
    -------
    dict
        ``"x"`` and each parameter name -> its relative error (eq. gradcheck-3).
    """
    backend = module.backend
    if loss is None:
        rng = np.random.default_rng(seed)
        y = module.forward(x)
        delta = backend.asarray(rng.standard_normal(tuple(y.shape)))

        def loss(y):
            return backend.xp.sum(delta * y), delta

    def f():
        return loss(module.forward(x))[0]

    _, dy = loss(module.forward(x))
    dx = module.backward(dy)
    arrays = dict(module.params)
    analytic = {name: to_numpy(g).copy() for name, g in module.grads.items()}
    if check_input:
        arrays["x"] = x
        analytic["x"] = to_numpy(dx).copy()
    if not arrays:
        # an empty report would read as "every gradient is right"
        raise ValueError(f"gradcheck: {module.describe()} has no parameters and "
                         "check_input=False: nothing would be checked")
    return check_gradients(f, arrays, analytic, h)


def _require_float64(arrays):
    for name, a in arrays.items():
        if "float64" not in str(a.dtype):
            raise TypeError(f"gradcheck: {name!r} is {a.dtype}; finite differences need float64 "
                            "(build the model on Backend(..., dtype='float64'))")


def format_report(report, tolerance=TOLERANCE):
    """A table of the relative errors, one line per array, marking those above tolerance."""
    width = max((len(k) for k in report), default=4)
    lines = [f"{'array':<{width}}  relative error"]
    for name, err in report.items():
        flag = "" if err <= tolerance else f"   <-- above {tolerance:g}"
        lines.append(f"{name:<{width}}  {err:.2e}{flag}")
    return "\n".join(lines)
