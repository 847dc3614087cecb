"""The fully connected (dense) layer, the only layer with parameters in nnscratch."""
from __future__ import annotations

from .init import init_dense
from .module import Module, ShapeError, positive_int


class Dense(Module):
    r"""Affine map of a batch of row vectors.

    Forward, eq. (dense-1):

    .. math:: y = x W + b

    Backward, given :math:`\delta = \partial L / \partial y`, eqs. (dense-2) to (dense-4):

    .. math::
        \frac{\partial L}{\partial W} = x^\top \delta, \qquad
        \frac{\partial L}{\partial b} = \textstyle\sum_n \delta_{n,:}, \qquad
        \frac{\partial L}{\partial x} = \delta W^\top

    Shapes: ``x`` ``(batch, n_in)``, ``W`` ``(n_in, n_out)``, ``b`` ``(n_out,)``,
    ``y`` ``(batch, n_out)``. The forward caches ``x``, the only thing backward needs.

    Parameters
    ----------
    n_in, n_out : int
    init : {"he", "glorot", "pytorch"}
        See :mod:`nnscratch.init`; ``alpha`` is the slope of the leaky ReLU that follows
        (He's gain depends on it).
    """

    def __init__(self, n_in, n_out, init="he", alpha=0.0, backend=None):
        super().__init__(backend)
        self.n_in = positive_int(type(self).__name__, "n_in", n_in)
        self.n_out = positive_int(type(self).__name__, "n_out", n_out)
        W, b = init_dense(self.backend, self.n_in, self.n_out, init, alpha)
        self._params = {"W": W, "b": b}

    def describe(self):
        return f"Dense({self.n_in}->{self.n_out})"

    def check_input(self, x):
        """Raise ShapeError unless ``x`` is ``(batch, n_in)``."""
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ShapeError(f"{self.describe()}: expected input of shape (batch, {self.n_in}), "
                             f"got {tuple(x.shape)}")

    def forward(self, x):
        """Eq. (dense-1), :math:`y = xW + b`: ``(batch, n_in)`` -> ``(batch, n_out)``."""
        self.check_input(x)
        self._cache = x
        y = x @ self._params["W"]                                  # eq. (dense-1)
        y += self._params["b"]             # in place: y is new, so no second (batch, n_out) array
        return y

    def backward(self, dy, param_grads=True, input_grad=True):
        r"""Eqs. (dense-2) to (dense-4): ``grads["W"]``, ``grads["b"]`` from ``dy`` of shape
        ``(batch, n_out)`` (if ``param_grads``), and :math:`\partial L/\partial x`
        ``(batch, n_in)`` returned (if ``input_grad``, else None)."""
        x = self._cached()
        self._check_dy(dy, (x.shape[0], self.n_out))
        xp = self.backend.xp
        if param_grads:
            self.clear_grads()        # free the last dW first: the peak holds one dW, not two
            self._grads["W"] = x.T @ dy                            # eq. (dense-2)
            self._grads["b"] = xp.sum(dy, axis=0)                  # eq. (dense-3)
        if input_grad:
            return dy @ self._params["W"].T                        # eq. (dense-4)
        return None
