r"""The student's functions in place of the library's, for one training run.

The layers, losses and optimizers look their math up by name: a layer's ``forward`` and
``backward`` methods, the functions of :mod:`nnscratch.activations`, the losses as the
models import them (``nnscratch.models.vae.kl_normal``...), an optimizer's ``_update``.
:data:`PLUGS` lists, for each exercise, every such name the training of a VAE or a GAN goes
through, and an adapter that calls the student's function with the arguments of its stub.
:func:`plugged` sets those names for the duration of a ``with`` block and restores the
library's on the way out, whatever happens; nothing else changes, and outside the block
(in every other run) the library runs exactly as it always does.

The swap is process-wide while it lasts (the command line trains one model per process).
Each adapter gives back arrays of the dtype it was given (a student's ``np.where(y > 0,
1.0, alpha)`` is float64; a float32 run stays float32) and counts its calls, so the run
can say which of the student's functions it actually used.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np

from .. import activations
from ..batchnorm import BatchNorm1d
from ..dense import Dense
from ..dropout import Dropout
from ..models import gan, vae
from ..optim import SGD, Adam
from ..spectral import SpectralNormDense


def _cast(value, *inputs):
    """``value`` (an array, a number or a tuple of them) as arrays of the dtype the library
    computes in from the arrays among ``inputs`` (float32 from float32, float64 from a mix)."""
    dtype = np.result_type(*[a for a in inputs if hasattr(a, "dtype")])
    if isinstance(value, tuple):
        return tuple(np.asarray(v).astype(dtype, copy=False) for v in value)
    return np.asarray(value).astype(dtype, copy=False)


# -- adapters: (the student's function, the library's attribute) -> the replacement ------------
def _same(fn, library):
    """A function with the library's arguments: called as it is."""
    return lambda *args: _cast(fn(*args), *args)


def _relu_from_leaky(fn, library):
    """The ReLU's backward is the leaky ReLU's with slope 0, eq. (lrelu-2)."""
    return lambda dy, y: _cast(fn(dy, y, 0.0), dy, y)


def _kl(fn, library):
    def kl_normal(mu, logvar):
        L, dmu, dlogvar = _cast(fn(mu, logvar), mu, logvar)
        return L, (dmu, dlogvar)
    return kl_normal


def _reparameterize_backward(fn, library):
    return lambda dz, eps, logvar, std: _cast(fn(dz, eps, logvar), dz, eps, logvar)


def _logmeanexp(fn, library):
    def logmeanexp(a, axis=0):
        return _cast(fn(a), a) if axis == 0 else library(a, axis)
    return logmeanexp


def _discriminator_loss(fn, library):
    def discriminator_loss(s_real, s_fake, label_smoothing=0.0):
        if label_smoothing:                 # the exercise has none: the library's
            return library(s_real, s_fake, label_smoothing)
        return _cast(fn(s_real, s_fake), s_real, s_fake)
    return discriminator_loss


def _generator_loss(fn, library):
    def generator_loss(s_fake, loss="non-saturating"):
        if loss != "non-saturating":        # the exercise is the non-saturating loss
            return library(s_fake, loss)
        return _cast(fn(s_fake), s_fake)
    return generator_loss


def _dense_forward(fn, library):
    def forward(layer, x):
        layer.check_input(x)
        layer._cache = x
        W, b = layer.params["W"], layer.params["b"]
        return _cast(fn(x, W, b), x, W, b)
    return forward


def _dense_backward(fn, library):
    def backward(layer, dy, param_grads=True, input_grad=True):
        x = layer._cached()
        layer._check_dy(dy, (x.shape[0], layer.n_out))
        W = layer.params["W"]
        dx, dW, db = _cast(fn(dy, x, W), dy, x, W)
        if param_grads:
            layer.clear_grads()
            layer._grads["W"], layer._grads["b"] = dW, db
        return dx if input_grad else None
    return backward


def _dropout_forward(fn, library):
    def forward(layer, x):
        if not (layer.training and layer.p > 0.0):
            return library(layer, x)
        b = layer.backend
        mask = b.xp.astype(b.uniform(tuple(x.shape)) >= layer.p, b.dtype)   # P = 1 - p
        layer._cache = (tuple(x.shape), mask / (1.0 - layer.p))     # what backward reads
        return _cast(fn(x, mask, layer.p), x)
    return forward


def _dropout_backward(fn, library):
    def backward(layer, dy, param_grads=True, input_grad=True):
        shape, scaled = layer._cached()
        if scaled is None or not input_grad:
            return library(layer, dy, param_grads, input_grad)
        layer._check_dy(dy, shape)
        return _cast(fn(dy, (scaled > 0).astype(dy.dtype), layer.p), dy)
    return backward


def _batchnorm_backward(fn, library):
    def backward(layer, dy, param_grads=True, input_grad=True):
        x_hat, inv_std, training = layer._cached()
        if not training:                    # eq. (bn-8) is not the exercise
            return library(layer, dy, param_grads, input_grad)
        layer._check_dy(dy, x_hat.shape)
        gamma = layer.params["gamma"]
        dx, dgamma, dbeta = _cast(fn(dy, x_hat, inv_std, gamma), dy, x_hat, inv_std, gamma)
        if param_grads:
            layer._grads["gamma"], layer._grads["beta"] = dgamma, dbeta
        return dx if input_grad else None
    return backward


def _spectral_backward(fn, library):
    def backward(layer, dy, param_grads=True, input_grad=True):
        x, z, u, v, sigma = layer._cached()
        layer._check_dy(dy, z.shape)
        W = layer.params["W"]
        dx, dW = _cast(fn(dy, x, W, u, v, float(sigma)), dy, x, W, u, v)
        if param_grads:
            layer.clear_grads()
            layer._grads["W"] = dW
            layer._grads["b"] = layer.backend.xp.sum(dy, axis=0)          # eq. (dense-3)
        return dx if input_grad else None
    return backward


def _adam_update(fn, library):
    def _update(opt, p, g, state):
        if opt.weight_decay:                # eq. (adam-6), not part of the exercise
            p *= 1.0 - opt.lr * opt.weight_decay
        theta, m, v = fn(p, g, state["m"], state["v"], opt.t, opt.lr, opt.beta1, opt.beta2,
                         opt.eps)
        p[...], state["m"][...], state["v"][...] = theta, m, v
    return _update


def _sgd_update(fn, library):
    def _update(opt, p, g, state):
        v = state["v"] if opt.momentum else np.zeros_like(p)
        theta, v_new = fn(p, g, v, opt.lr, opt.momentum)
        p[...] = theta
        if opt.momentum:
            state["v"][...] = v_new
    return _update


#: exercise -> the names the library looks it up by: (owner, attribute, adapter).
PLUGS = {
    "dense_forward": [(Dense, "forward", _dense_forward)],
    "dense_backward": [(Dense, "backward", _dense_backward)],
    "leaky_relu_backward": [(activations, "leaky_relu_backward", _same),
                            (activations, "relu_backward", _relu_from_leaky)],
    "sigmoid_backward": [(activations, "sigmoid_backward", _same)],
    "sigmoid": [(activations, "sigmoid", _same), (vae, "sigmoid", _same),
                (gan, "sigmoid", _same)],
    "dropout_forward": [(Dropout, "forward", _dropout_forward)],
    "dropout_backward": [(Dropout, "backward", _dropout_backward)],
    "batchnorm_backward": [(BatchNorm1d, "backward", _batchnorm_backward)],
    "spectral_norm_backward": [(SpectralNormDense, "backward", _spectral_backward)],
    "bce_with_logits": [(vae, "bce_with_logits", _same), (gan, "bce_with_logits", _same)],
    "kl_normal": [(vae, "kl_normal", _kl)],
    "adam_step": [(Adam, "_update", _adam_update)],
    "sgd_momentum_step": [(SGD, "_update", _sgd_update)],
    "reparameterize_backward": [(vae, "reparameterize_backward", _reparameterize_backward)],
    "logmeanexp": [(vae, "logmeanexp", _logmeanexp)],
    "discriminator_loss": [(gan, "discriminator_loss", _discriminator_loss)],
    "generator_loss": [(gan, "generator_loss", _generator_loss)],
}


def _counted(name, calls, function):
    @functools.wraps(function)
    def call(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        return function(*args, **kwargs)
    return call


@contextlib.contextmanager
def plugged(functions):
    """Within the block, the library calls the student's ``functions`` (exercise name ->
    function, the ones graded right) in place of its own; yields a dict that counts the
    calls of each. The library's functions are back when the block ends."""
    saved, calls = [], {}
    try:
        for name, fn in functions.items():
            for owner, attribute, adapter in PLUGS[name]:
                library = vars(owner)[attribute]             # its own, never an inherited one
                saved.append((owner, attribute, library))
                setattr(owner, attribute, _counted(name, calls, adapter(fn, library)))
        yield calls
    finally:
        for owner, attribute, library in reversed(saved):
            setattr(owner, attribute, library)
