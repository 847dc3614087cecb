r"""Batch normalisation of a batch of feature vectors (Ioffe & Szegedy, 2015), derived in
``docs/stabilisers.md``."""
from __future__ import annotations

from .ema import moving_average
from .module import Module, ShapeError, finite_float, positive_int


class BatchNorm1d(Module):
    r"""Normalise each feature over the batch, then scale and shift it.

    Forward in training mode, with the batch's mean and biased variance, eqs. (bn-1), (bn-2):

    .. math::
        \mu_B = \frac1B \sum_n x_{n,:}, \quad
        \sigma_B^2 = \frac1B \sum_n (x_{n,:} - \mu_B)^2, \qquad
        \hat x = \frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon_{bn}}}, \quad
        y = \gamma \odot \hat x + \beta

    and the running averages move towards them, eq. (bn-3), with the unbiased batch variance
    (as PyTorch does): :math:`\bar\mu \leftarrow (1 - \rho)\, \bar\mu + \rho\, \mu_B`,
    :math:`\bar\sigma^2 \leftarrow (1 - \rho)\, \bar\sigma^2 + \rho\, \frac{B}{B-1} \sigma_B^2`.
    In evaluation mode :math:`\mu_B, \sigma_B^2` are replaced by the running
    :math:`\bar\mu, \bar\sigma^2`, eq. (bn-4).

    Backward, :math:`\delta = \partial L/\partial y`, eqs. (bn-5) to (bn-7):

    .. math::
        \frac{\partial L}{\partial \beta} = \sum_n \delta_{n,:}, \quad
        \frac{\partial L}{\partial \gamma} = \sum_n \delta_{n,:} \odot \hat x_{n,:}, \qquad
        \frac{\partial L}{\partial x} = \frac{\gamma}{B \sqrt{\sigma_B^2 + \epsilon_{bn}}} \odot
        \Big(B\, \delta - \frac{\partial L}{\partial \beta}
        - \hat x \odot \frac{\partial L}{\partial \gamma}\Big)

    in training mode (through the batch's mean and variance, the Jacobian of eq. (bn-9)); in
    evaluation mode :math:`\partial L/\partial x = \delta \odot \gamma / \sqrt{\bar\sigma^2 +
    \epsilon_{bn}}`, eq. (bn-8).

    Shapes: ``x``, ``y`` ``(batch, n)``; parameters ``gamma``, ``beta`` ``(n,)``; buffers
    ``running_mean``, ``running_var`` ``(n,)`` (saved with the parameters, not optimised).

    Parameters
    ----------
    n : int
        Features.
    momentum : float
        :math:`\rho`, the weight of the batch in the running averages (PyTorch's 0.1).
    eps : float
        :math:`\epsilon_{bn}`, added to the variance (PyTorch's 1e-5).
    """

    def __init__(self, n, momentum=0.1, eps=1e-5, backend=None):
        super().__init__(backend)
        self.n = positive_int("BatchNorm1d", "n", n)
        self.momentum = finite_float("BatchNorm1d", "momentum", momentum, 0.0, 1.0)
        self.eps = finite_float("BatchNorm1d", "eps", eps, 0.0)
        xp, dtype = self.backend.xp, self.backend.dtype
        self._params = {"gamma": xp.ones((self.n,), dtype=dtype),
                        "beta": xp.zeros((self.n,), dtype=dtype)}
        self._buffers = {"running_mean": xp.zeros((self.n,), dtype=dtype),
                         "running_var": xp.ones((self.n,), dtype=dtype)}

    def describe(self):
        return f"BatchNorm1d({self.n})"

    def forward(self, x):
        r"""Eqs. (bn-1) to (bn-3) in training mode, (bn-4) and (bn-2) in evaluation mode:
        ``(batch, n)`` -> ``(batch, n)``. Caches :math:`\hat x`,
        :math:`1/\sqrt{\sigma_B^2 + \epsilon_{bn}}` and the mode."""
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ShapeError(f"{self.describe()}: expected input of shape (batch, {self.n}), "
                             f"got {tuple(x.shape)}")
        xp = self.backend.xp
        if self.training:
            mu = xp.mean(x, axis=0)                              # eq. (bn-1)
            x_c = x - mu
            var = xp.mean(x_c * x_c, axis=0)                     # eq. (bn-1)
            self._update_running(mu, var, x.shape[0])            # eq. (bn-3)
        else:
            x_c = x - self._buffers["running_mean"]              # eq. (bn-4)
            var = self._buffers["running_var"]
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        x_c *= inv_std                                           # x_hat, eq. (bn-2)
        self._cache = (x_c, inv_std, self.training)
        return self._params["gamma"] * x_c + self._params["beta"]   # eq. (bn-2)

    def _update_running(self, mu, var, B):
        r"""Eq. (bn-3): move the running averages towards the batch's :math:`\mu_B` and
        unbiased variance :math:`B \sigma_B^2 / (B - 1)`."""
        if B < 2:
            raise ShapeError(f"{self.describe()}: training mode needs a batch of at least 2 "
                             "(one example has no variance); use eval() for single inputs")
        rho, buffers = self.momentum, self._buffers
        moving_average(mu, 1.0 - rho, rho, buffers["running_mean"])              # eq. (bn-3)
        moving_average(var, 1.0 - rho, rho * B / (B - 1), buffers["running_var"])

    def backward(self, dy, param_grads=True, input_grad=True):
        r"""Eqs. (bn-5) to (bn-7) (training mode: the Jacobian (bn-9) of the normalisation
        contracted with :math:`\hat\delta = \gamma\delta`) or (bn-5), (bn-6), (bn-8) (evaluation
        mode):
        ``grads["gamma"]``, ``grads["beta"]`` (if ``param_grads``) and
        :math:`\partial L/\partial x` ``(batch, n)`` (if ``input_grad``) from ``dy``
        ``(batch, n)``."""
        x_hat, inv_std, training = self._cached()
        self._check_dy(dy, x_hat.shape)
        xp = self.backend.xp
        dbeta = xp.sum(dy, axis=0)                               # eq. (bn-5)
        dgamma = xp.sum(dy * x_hat, axis=0)                      # eq. (bn-6)
        if param_grads:
            self._grads["gamma"], self._grads["beta"] = dgamma, dbeta
        if not input_grad:
            return None
        scale = self._params["gamma"] * inv_std
        if not training:
            return dy * scale                                    # eq. (bn-8)
        B = dy.shape[0]
        return (scale / B) * (B * dy - dbeta - x_hat * dgamma)   # eq. (bn-7)
