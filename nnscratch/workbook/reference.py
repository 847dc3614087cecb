r"""The library's own implementations, called with the signatures of the workbook's stubs.

Each function here has the name and the arguments of one exercise (see
:mod:`nnscratch.workbook.exercises`) and computes its answer with the code the layers,
losses and optimizers run, not with a second copy of the formula: the grader compares the
student's function with these, and a workbook whose modules import these names is graded
all right (the test that keeps the grader honest).

Arrays are NumPy arrays; the layers that hold state (batch norm, spectral norm, dropout)
are built on a float64 backend and given the student's inputs as their cache.

Every library function and method is bound here when this module is imported (``from ...
import``, :data:`METHODS`), so these stay the library's while
:func:`nnscratch.workbook.plug.plugged` has put the student's in its place: a workbook made
of these functions trains through the plugs without calling itself.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .. import activations, losses
from ..backend import Backend
from ..batchnorm import BatchNorm1d
from ..dense import Dense
from ..dropout import Dropout
from ..models import gan, vae
from ..module import Module
from ..optim import SGD, adam_update
from ..spectral import SpectralNormDense

#: The library's functions and methods as they are at import time (see above).
LIBRARY = {"leaky_relu_backward": activations.leaky_relu_backward,
           "sigmoid_backward": activations.sigmoid_backward, "sigmoid": activations.sigmoid,
           "bce_with_logits": losses.bce_with_logits, "kl_normal": losses.kl_normal,
           "reparameterize_backward": vae.reparameterize_backward,
           "logmeanexp": vae.logmeanexp, "discriminator_loss": gan.discriminator_loss,
           "generator_loss": gan.generator_loss, "adam_update": adam_update}
METHODS = {(cls, name): vars(cls)[name]
           for cls, names in ((Dense, ("forward", "backward")),
                              (Dropout, ("forward", "backward")), (BatchNorm1d, ("backward",)),
                              (SpectralNormDense, ("backward",)), (SGD, ("_update",)))
           for name in names}


def _call(cls, name, layer, *args):
    """The library's ``cls.name`` method on ``layer``."""
    return METHODS[cls, name](layer, *args)


def _backend():
    return Backend("numpy", dtype="float64", seed=0)


def _dense(W, b):
    """A Dense layer holding ``W`` and ``b`` (made without drawing initial weights: the
    training path calls this once per layer and step)."""
    layer = Dense.__new__(Dense)
    Module.__init__(layer, _backend())
    layer.n_in, layer.n_out = W.shape
    layer._params = {"W": W, "b": b}
    return layer


# -- 01 dense ------------------------------------------------------------------------------
def dense_forward(x, W, b):
    """Eq. (dense-1) as :meth:`nnscratch.dense.Dense.forward` computes it."""
    return _call(Dense, "forward", _dense(W, b), x)


def dense_backward(dy, x, W):
    """Eqs. (dense-2) to (dense-4) as :meth:`nnscratch.dense.Dense.backward` computes them:
    ``(dx, dW, db)``."""
    layer = _dense(W, np.zeros(W.shape[1]))
    _call(Dense, "forward", layer, x)
    dx = _call(Dense, "backward", layer, dy)
    return dx, layer.grads["W"], layer.grads["b"]


# -- 02 activations ------------------------------------------------------------------------
def leaky_relu_backward(dy, y, alpha):
    """Eq. (lrelu-2), :func:`nnscratch.activations.leaky_relu_backward`."""
    return LIBRARY["leaky_relu_backward"](dy, y, alpha)


def sigmoid_backward(dy, y):
    """Eq. (sigmoid-2), :func:`nnscratch.activations.sigmoid_backward`."""
    return LIBRARY["sigmoid_backward"](dy, y)


def sigmoid(z):
    """Eq. (sigmoid-1), :func:`nnscratch.activations.sigmoid`."""
    return LIBRARY["sigmoid"](z)


# -- 03 stabilisers ------------------------------------------------------------------------
def _dropout(mask, p):
    """A Dropout layer whose next mask is ``mask`` (1 keeps an entry): its generator is
    replaced by one that draws 1 where ``mask`` keeps and 0 where it drops."""
    layer = Dropout(p, backend=_backend())
    layer.backend = SimpleNamespace(uniform=lambda shape: np.asarray(mask, dtype=np.float64),
                                    xp=np, dtype=np.float64)
    return layer


def dropout_forward(x, mask, p):
    """Eq. (drop-1), :meth:`nnscratch.dropout.Dropout.forward` with the mask ``mask``."""
    return _call(Dropout, "forward", _dropout(mask, p), x)


def dropout_backward(dy, mask, p):
    """Eq. (drop-2), :meth:`nnscratch.dropout.Dropout.backward` with the mask ``mask``."""
    layer = _dropout(mask, p)
    _call(Dropout, "forward", layer, np.zeros_like(dy))
    return _call(Dropout, "backward", layer, dy)


def batchnorm_backward(dy, x_hat, inv_std, gamma):
    """Eqs. (bn-5) to (bn-7), :meth:`nnscratch.batchnorm.BatchNorm1d.backward` in training
    mode: ``(dx, dgamma, dbeta)``."""
    layer = BatchNorm1d(gamma.shape[0], backend=_backend())
    layer.params["gamma"] = gamma
    layer._cache = (x_hat, inv_std, True)
    dx = _call(BatchNorm1d, "backward", layer, dy)
    return dx, layer.grads["gamma"], layer.grads["beta"]


def spectral_norm_backward(dy, x, W, u, v, sigma):
    """Eqs. (sn-5) to (sn-7), :meth:`nnscratch.spectral.SpectralNormDense.backward`:
    ``(dx, dW)``."""
    layer = SpectralNormDense(*W.shape, backend=_backend())
    layer.params["W"] = W
    layer._cache = (x, x @ W / sigma, u, v, sigma)
    dx = _call(SpectralNormDense, "backward", layer, dy)
    return dx, layer.grads["W"]


# -- 04 losses -----------------------------------------------------------------------------
def bce_with_logits(s, x):
    """Eqs. (bce-1), (bce-2), :func:`nnscratch.losses.bce_with_logits`: ``(L, ds)``."""
    return LIBRARY["bce_with_logits"](s, x)


def kl_normal(mu, logvar):
    """Eqs. (kl-1) to (kl-3), :func:`nnscratch.losses.kl_normal`: ``(L, dmu, dlogvar)``."""
    L, (dmu, dlogvar) = LIBRARY["kl_normal"](mu, logvar)
    return L, dmu, dlogvar


# -- 05 optimizers -------------------------------------------------------------------------
def adam_step(theta, g, m, v, t, lr, beta1, beta2, eps):
    """Eqs. (adam-1) to (adam-5) as :class:`nnscratch.optim.Adam` computes them
    (:func:`nnscratch.optim.adam_update`, in place, here on copies): ``(theta, m, v)``."""
    theta, m, v = (np.array(a) for a in (theta, m, v))
    return LIBRARY["adam_update"](g, beta1, beta2, lr / (1 - beta1 ** t), 1 - beta2 ** t, eps,
                                  1.0, theta, m, v)


def sgd_momentum_step(theta, g, v, lr, momentum):
    """Eqs. (sgd-1), (sgd-2): one step of :class:`nnscratch.optim.SGD` on a copy of
    ``theta`` with velocity ``v``: ``(theta, v)``. With ``momentum = 0`` the library keeps
    no velocity; eq. (sgd-1) then gives ``v = g``, which is returned."""
    module = Module(_backend())
    module.params["theta"], module.grads["theta"] = np.array(theta, dtype=np.float64), g
    sgd = SGD(module, lr=lr, momentum=momentum)
    v = np.array(v, dtype=np.float64)
    _call(SGD, "_update", sgd, module.params["theta"], g, {"v": v})
    return module.params["theta"], (v if momentum else np.array(g, dtype=np.float64))


# -- 06 vae --------------------------------------------------------------------------------
def reparameterize_backward(dz, eps, logvar):
    """Eqs. (vae-5), (vae-6) without the KL's terms,
    :func:`nnscratch.models.vae.reparameterize_backward`: ``(dmu, dlogvar)``."""
    _, std = vae.reparameterize(np.zeros_like(logvar), logvar, eps)
    return LIBRARY["reparameterize_backward"](dz, eps, logvar, std)


def logmeanexp(a):
    """Eq. (vae-8) over axis 0, :func:`nnscratch.models.vae.logmeanexp`."""
    return LIBRARY["logmeanexp"](a, axis=0)


# -- 07 gan --------------------------------------------------------------------------------
def discriminator_loss(s_real, s_fake):
    """Eqs. (gan-1), (gan-2), :func:`nnscratch.models.gan.discriminator_loss`:
    ``(L_D, ds_real, ds_fake)``."""
    return LIBRARY["discriminator_loss"](s_real, s_fake)


def generator_loss(s_fake):
    """Eqs. (gan-3), (gan-4), :func:`nnscratch.models.gan.generator_loss` (non-saturating):
    ``(L_G, ds)``."""
    return LIBRARY["generator_loss"](s_fake, "non-saturating")
