r"""Spectral normalisation of a dense layer (Miyato et al., 2018), derived in
``docs/stabilisers.md``.

The layer keeps its raw weights ``W`` (the parameter Adam updates) and computes with
:math:`W_{SN} = W / \hat\sigma`, where :math:`\hat\sigma` estimates :math:`\sigma_1`, the
largest singular value of ``W``, by power iteration from a vector ``u`` that persists
from one forward to the next (a buffer: saved in checkpoints, never optimised).

Our ``W`` has shape ``(n_in, n_out)``, the transpose of the paper's, so our ``u``
(``(n_in,)``, the left singular vector of our ``W``) is the paper's :math:`\tilde v`.
"""
from __future__ import annotations

from .backend import namespace
from .dense import Dense


def norm(a):
    r"""The Euclidean norm :math:`\lVert a \rVert` of a vector, a 0-d array."""
    return namespace(a).sqrt(namespace(a).sum(a * a))


class SpectralNormDense(Dense):
    r"""A :class:`~nnscratch.dense.Dense` layer whose weights are divided by their spectral
    norm: :math:`y = x\, W / \hat\sigma + b`, :math:`\hat\sigma \le \sigma_1` the power-iteration
    estimate of the largest singular value (so the layer's norm :math:`\sigma_1/\hat\sigma` is
    1 only once ``u`` has converged, and above 1 before).

    Forward in training mode, one power-iteration step then the layer, eqs. (sn-1) to (sn-3):

    .. math::
        v_{sn} = \frac{W^\top u}{\lVert W^\top u \rVert}, \quad
        u \leftarrow \frac{W v_{sn}}{\lVert W v_{sn} \rVert}, \qquad
        \hat\sigma = u^\top W v_{sn}, \qquad
        y = x\, \frac{W}{\hat\sigma} + b

    In evaluation mode ``u`` is not advanced: :math:`v_{sn}` from eq. (sn-1), then
    :math:`\hat\sigma = u^\top W v_{sn} = \lVert W^\top u \rVert`, eq. (sn-4).

    Backward with :math:`u, v_{sn}` held fixed, :math:`\partial L/\partial W_{SN} =
    x^\top \delta` the gradient with respect to :math:`W_{SN}`, eqs. (sn-5) to (sn-7):

    .. math::
        \lambda = \Big\langle \frac{\partial L}{\partial W_{SN}}, W_{SN} \Big\rangle
        = \langle \delta, x W_{SN} \rangle, \qquad
        \frac{\partial L}{\partial W} = \frac{1}{\hat\sigma}\Big(
        \frac{\partial L}{\partial W_{SN}} - \lambda\, u v_{sn}^\top\Big), \qquad
        \frac{\partial L}{\partial x} = \frac{\delta W^\top}{\hat\sigma}

    and :math:`\partial L/\partial b = \sum_n \delta_{n,:}` as for ``Dense`` (eq. dense-3).

    Shapes: ``x`` ``(batch, n_in)``, ``W`` ``(n_in, n_out)``, ``b`` ``(n_out,)``, ``u``
    ``(n_in,)``, ``v`` (:math:`v_{sn}`) ``(n_out,)``. Parameters ``W``, ``b``; buffer
    ``u``, drawn from the backend's generator and normalised. Arguments as for
    :class:`~nnscratch.dense.Dense`.
    """

    def __init__(self, n_in, n_out, init="he", alpha=0.0, backend=None):
        super().__init__(n_in, n_out, init, alpha, backend)
        u = self.backend.normal((self.n_in,))
        self._buffers = {"u": u / norm(u)}

    def describe(self):
        return f"SpectralNormDense({self.n_in}->{self.n_out})"

    def power_iteration(self):
        r"""One step of eqs. (sn-1), (sn-2): replace the buffer ``u`` by the next iterate;
        return ``(u, v, sigma)`` with :math:`\hat\sigma = u^\top W v_{sn} = \lVert W v_{sn}
        \rVert` (two matrix-vector products)."""
        W = self._params["W"]
        Wtu = self._buffers["u"] @ W
        v = Wtu / norm(Wtu)                                      # eq. (sn-1)
        Wv = W @ v
        sigma = norm(Wv)                                         # eq. (sn-2)
        # a new array, not an update in place: a cache holding the old u stays valid
        u = self._buffers["u"] = Wv / sigma                      # eq. (sn-1)
        return u, v, sigma

    def sigma(self):
        r"""The current estimate :math:`\hat\sigma = \lVert W^\top u \rVert` of eq. (sn-4), without
        advancing ``u``: returns ``(u, v, sigma)``, a 0-d ``sigma``."""
        u = self._buffers["u"]
        Wtu = u @ self._params["W"]
        sigma = norm(Wtu)                                        # eq. (sn-4)
        return u, Wtu / sigma, sigma

    def forward(self, x):
        r"""Eqs. (sn-1) to (sn-3) in training mode, (sn-4) and (sn-3) in evaluation mode:
        :math:`y = x W / \hat\sigma + b`, ``(batch, n_in)`` -> ``(batch, n_out)``.

        Caches ``x``, :math:`z = x W_{SN}` (for :math:`\lambda`), ``u``, ``v`` and ``sigma``.
        """
        self.check_input(x)
        u, v, sigma = self.power_iteration() if self.training else self.sigma()
        z = x @ self._params["W"]
        z /= sigma                          # on z, not W: (batch, n_out) instead of (n_in, n_out)
        self._cache = (x, z, u, v, sigma)
        return z + self._params["b"]                             # eq. (sn-3)

    def backward(self, dy, param_grads=True, input_grad=True):
        r"""Eqs. (sn-5) to (sn-7) and (dense-3), the Jacobian (sn-8) of :math:`W_{SN}`
        contracted with :math:`\partial L/\partial W_{SN}`: ``grads["W"]``, ``grads["b"]`` (if
        ``param_grads``) and :math:`\partial L/\partial x` ``(batch, n_in)`` (if ``input_grad``)
        from ``dy`` ``(batch, n_out)``, with ``u``, ``v`` and ``sigma`` of the forward."""
        x, z, u, v, sigma = self._cached()
        self._check_dy(dy, z.shape)
        xp = self.backend.xp
        d = dy / sigma
        if param_grads:
            self.clear_grads()
            lam = xp.sum(dy * z)                                 # eq. (sn-5)
            # x^T d - (lam / sigma) u v^T as one product: the rank-one term is one more row
            x1 = xp.concat((x, u[None, :]))
            d1 = xp.concat((d, (-lam / sigma) * v[None, :]))
            self._grads["W"] = x1.T @ d1                         # eq. (sn-6)
            self._grads["b"] = xp.sum(dy, axis=0)                # eq. (dense-3)
        if input_grad:
            return d @ self._params["W"].T                       # eq. (sn-7)
        return None
