r"""Elementwise activations and their derivatives.

Each one maps ``(batch, n)`` to ``(batch, n)``; backward multiplies the upstream gradient
elementwise by the derivative, :math:`\partial L/\partial x = \delta \odot f'(x)`.

Piecewise formulas are computed with arithmetic on a 0/1 mask (``max``, a product) rather
than ``xp.where``: on activations of random sign, ``where``'s per-entry branch is
mispredicted half the time, which makes it about ten times slower than a product on a CPU.

Each formula is a function of its own (``leaky_relu``, ``leaky_relu_backward``...) that the
layers call. On CuPy it runs as one kernel, the CUDA C++ written above its ``def``
(:mod:`nnscratch.fused` says why); that text and the Python body compute the same thing
(``dy * 0`` rather than ``0`` in the ReLU's, so that a NaN or infinite gradient stays NaN
on both).
"""
from __future__ import annotations

from .backend import namespace
from .fused import elementwise
from .module import Module


@elementwise("T z", "T y", """
    T e = exp(-fabs(z));
    y = (z >= 0 ? (T)1 : e) / ((T)1 + e);""")
def sigmoid(z):
    r"""Numerically stable logistic function, eq. (sigmoid-1).

    .. math:: \sigma(z) = \frac{1}{1 + e^{-z}} = \frac{e^{z}}{1 + e^{z}}

    The first form is used for :math:`z \ge 0` and the second for :math:`z < 0`, both
    written with :math:`e^{-|z|} \le 1`, so no exponential can overflow.
    """
    xp = namespace(z)
    return sigmoid_from_exp(z, xp.exp(-xp.abs(z)))


def sigmoid_from_exp(z, e):
    r""":math:`\sigma(z)` of eq. (sigmoid-1) given :math:`e = e^{-|z|}`, which callers that
    also need :math:`e` for something else (the BCE from logits) compute only once:
    :math:`\sigma(z) = 1 / (1 + e)` for :math:`z \ge 0` and :math:`e / (1 + e)` otherwise.
    Since :math:`0 < e \le 1`, that numerator is :math:`\max(e, [z \ge 0])`."""
    xp = namespace(z, e)
    return xp.maximum(e, xp.astype(z >= 0, e.dtype)) / (1.0 + e)


@elementwise("T dy, T y", "T dx", "dx = dy * y * ((T)1 - y);")
def sigmoid_backward(dy, y):
    r"""Eq. (sigmoid-2) from the output :math:`y = \sigma(x)`: :math:`\delta \odot y(1 - y)`."""
    return dy * y * (1.0 - y)


@elementwise("T dy, T y", "T dx", "dx = y > 0 ? dy : dy * (T)0;")
def relu_backward(dy, y):
    r"""Eq. (relu-2) from the output :math:`y`: :math:`\delta \odot [y > 0]`."""
    return dy * namespace(y).astype(y > 0, dy.dtype)


@elementwise("T x, T alpha", "T y", "y = x > 0 ? x : alpha * x;")
def leaky_relu(x, alpha):
    r"""Eq. (lrelu-1) for :math:`0 \le \alpha < 1`: :math:`y = \max(x, \alpha x)`."""
    return namespace(x).maximum(x, alpha * x)


@elementwise("T dy, T y, T alpha", "T dx", "dx = y > 0 ? dy : alpha * dy;")
def leaky_relu_backward(dy, y, alpha):
    r"""Eq. (lrelu-2) from the output :math:`y` (positive exactly where :math:`x` is):
    :math:`\delta \odot \max([y > 0], \alpha)`."""
    xp = namespace(dy, y)
    return dy * xp.maximum(xp.astype(y > 0, dy.dtype), alpha)


class _Elementwise(Module):
    """Shared checks; subclasses implement ``forward`` and ``_backward(dy, cache)``."""

    def backward(self, dy, param_grads=True, input_grad=True):
        cache = self._cached()
        self._check_dy(dy, cache.shape)
        if not input_grad:
            return None
        return self._backward(dy, cache)


class Identity(_Elementwise):
    r"""y = x; dL/dx = dL/dy, eq. (identity-1)."""

    def forward(self, x):
        self._cache = x
        return x

    def _backward(self, dy, x):
        return dy


class ReLU(_Elementwise):
    r"""Rectified linear unit, eqs. (relu-1), (relu-2).

    .. math:: y = \max(x, 0), \qquad \frac{\partial L}{\partial x} = \delta \odot [x > 0]

    Caches its output ``y``: :math:`y > 0` exactly where :math:`x > 0`, and ``y`` is kept
    alive anyway as the next layer's input, so the cache costs no memory.
    """

    def forward(self, x):
        y = self.backend.xp.maximum(x, 0.0)                     # eq. (relu-1)
        self._cache = y
        return y

    def _backward(self, dy, y):
        return relu_backward(dy, y)                              # eq. (relu-2)


class LeakyReLU(_Elementwise):
    r"""Leaky rectified linear unit with negative slope ``alpha``, eqs. (lrelu-1), (lrelu-2).

    .. math::
        y = \begin{cases} x & x > 0 \\ \alpha x & x \le 0 \end{cases}, \qquad
        \frac{\partial L}{\partial x} = \delta \odot \begin{cases} 1 & x > 0 \\
        \alpha & x \le 0 \end{cases}

    The default ``alpha = 0.2`` is TensorFlow's ``tf.nn.leaky_relu`` default (the seed
    article's activation) and the usual choice in GANs.

    Because :math:`0 \le \alpha < 1`, the forward is :math:`y = \max(x, \alpha x)` and the
    slope is :math:`\max([x > 0], \alpha)`. The cache is the output ``y``, as for
    :class:`ReLU`: :math:`y > 0` exactly where :math:`x > 0`.
    """

    def __init__(self, alpha=0.2, backend=None):
        super().__init__(backend)
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"LeakyReLU: alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)

    def describe(self):
        return f"LeakyReLU({self.alpha:g})"

    def forward(self, x):
        y = leaky_relu(x, self.alpha)                            # eq. (lrelu-1)
        self._cache = y
        return y

    def _backward(self, dy, y):
        return leaky_relu_backward(dy, y, self.alpha)            # eq. (lrelu-2)


class Sigmoid(_Elementwise):
    r"""Logistic sigmoid, eqs. (sigmoid-1), (sigmoid-2).

    .. math:: y = \sigma(x), \qquad \frac{\partial L}{\partial x} = \delta \odot y (1 - y)

    The derivative is written with the output, so the forward caches ``y``.
    """

    def forward(self, x):
        self._cache = sigmoid(x)                                 # eq. (sigmoid-1)
        return self._cache

    def _backward(self, dy, y):
        return sigmoid_backward(dy, y)                           # eq. (sigmoid-2)


class Tanh(_Elementwise):
    r"""Hyperbolic tangent, eqs. (tanh-1), (tanh-2).

    .. math:: y = \tanh(x), \qquad \frac{\partial L}{\partial x} = \delta \odot (1 - y^2)
    """

    def forward(self, x):
        self._cache = self.backend.xp.tanh(x)                   # eq. (tanh-1)
        return self._cache

    def _backward(self, dy, y):
        return dy * (1.0 - y * y)                                # eq. (tanh-2)


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid,
               "tanh": Tanh, "identity": Identity}
