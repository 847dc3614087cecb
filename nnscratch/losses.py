r"""Losses, each returning its value and its gradient(s).

Reduction convention (the same everywhere in nnscratch, see ``docs/notation.md``):
**sum over the features of one example, mean over the batch**. For a batch of ``B``
examples with per-example loss :math:`\ell_n`, every function returns
:math:`L = \frac1B \sum_n \ell_n`, so a VAE's loss is in nats per example, and the
gradients carry the factor :math:`1/B`.

The value is returned as a 0-d array of the backend (no host round trip); call ``float``
on it to print it. A non-finite value raises :class:`NonFiniteError`, which names the
input that holds the offending entries.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from .activations import sigmoid_from_exp
from .backend import namespace, to_numpy
from .fused import elementwise
from .module import ShapeError


class NonFiniteError(FloatingPointError):
    """A loss came out NaN or infinite."""


def _check_same_shape(name, **arrays):
    shapes = {k: tuple(a.shape) for k, a in arrays.items()}
    detail = ", ".join(f"{k} {s}" for k, s in shapes.items())
    if len(set(shapes.values())) != 1:
        raise ShapeError(f"{name}: inputs must have the same shape, got {detail}")
    if len(next(iter(shapes.values()))) != 2:
        raise ShapeError(f"{name}: expected arrays of shape (batch, features), got {detail}")


_deferred = threading.local()


@contextlib.contextmanager
def deferred_finite_checks(defer=True):
    """Within it (when ``defer``), the losses skip their NaN/Inf check: its ``bool`` waits
    for the device, a host round trip per loss on a GPU. Whoever defers checks the values
    later: the training loop checks every metric it reads."""
    previous = getattr(_deferred, "on", False)
    _deferred.on = defer
    try:
        yield
    finally:
        _deferred.on = previous


def _ensure_finite(name, value, **inputs):
    """Raise a NonFiniteError naming where the first non-finite entry of the inputs sits."""
    if getattr(_deferred, "on", False):
        return
    xp = namespace(value)
    if bool(xp.isfinite(value)):
        return
    where = []
    for key, a in inputs.items():
        bad = ~np.isfinite(to_numpy(a))
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            where.append(f"input {key!r} holds {int(bad.sum())} non-finite entries "
                         f"(the first at index {first})")
    detail = "; ".join(where) if where else \
        "every input is finite, so the loss overflowed inside (extreme values)"
    raise NonFiniteError(f"{name}: the loss is {float(value)}: {detail}. Try a lower learning "
                         "rate, check the data for NaN, or resume from the last checkpoint.")


def log1p(e):
    r""":math:`\log(1 + e)` for :math:`e \ge 0`, as accurate as ``xp.log1p`` (a few ulps).

    With :math:`u = 1 + e` rounded to floating point, :math:`\log(1 + e) = \log u -
    ((u - 1) - e) / u` corrects the rounding error of :math:`u` to first order (exact for
    tiny :math:`e`, where :math:`u = 1`). It is built on ``xp.log``, which NumPy computes
    with SIMD instructions on every x86 CPU, while its float32 ``log1p`` is a scalar loop
    on CPUs without AVX-512, several times slower on a batch of images.
    """
    xp = namespace(e)
    u = 1.0 + e
    return xp.log(u) - ((u - 1.0) - e) / u


def bce_with_logits(s, x):
    r"""Binary cross-entropy of targets ``x`` under Bernoulli logits ``s``.

    Per entry, with :math:`p = \sigma(s)`, eq. (bce-1):

    .. math:: \ell = -x \log p - (1 - x)\log(1 - p)
              = \max(s, 0) - s x + \log\left(1 + e^{-|s|}\right)

    The right-hand form never exponentiates a positive number, so it is exact for logits
    of any size (:math:`s = \pm 100` included). Gradient, eq. (bce-2), with
    :math:`\sigma(s)` computed from the same :math:`e^{-|s|}` as the loss:

    .. math:: \frac{\partial L}{\partial s} = \frac{1}{B}\left(\sigma(s) - x\right)

    Shapes: ``s`` and ``x`` ``(batch, d)``; ``x`` in [0, 1].
    Returns ``(L, ds)``. Both come from :func:`bce_entries`, one CUDA kernel on CuPy.
    """
    _check_same_shape("bce_with_logits", s=s, x=x)
    xp = namespace(s, x)
    B = s.shape[0]
    ell, ds = bce_entries(s, x, B)                                # eqs. (bce-1), (bce-2)
    L = xp.sum(ell) / B                                                           # eq. (bce-1)
    _ensure_finite("bce_with_logits", L, s=s, x=x)
    return L, ds


@elementwise("T s, T x, T B", "T ell, T ds", """
    T e = exp(-fabs(s));
    ell = (s > 0 ? s : (T)0) - s * x + log1p(e);
    ds = ((s >= 0 ? (T)1 : e) / ((T)1 + e) - x) / B;""")
def bce_entries(s, x, B):
    r"""Entry by entry, the loss :math:`\ell` of eq. (bce-1) and the gradient
    :math:`(\sigma(s) - x)/B` of eq. (bce-2), both from one :math:`e = e^{-|s|}`.
    Returns ``(ell, ds)``, each of the shape of ``s``."""
    xp = namespace(s, x)
    e = xp.exp(-xp.abs(s))
    return bce_terms(s, x, e), (sigmoid_from_exp(s, e) - x) / B


def bce_terms(s, x, e=None):
    r"""The entries :math:`\ell` of eq. (bce-1), unreduced: any shape, ``s`` and ``x``
    broadcast. ``e`` is :math:`e^{-|s|}` when the caller already has it (the gradient
    reuses it). The VAE's importance weights sum them over pixels, per example."""
    xp = namespace(s, x)
    e = xp.exp(-xp.abs(s)) if e is None else e
    return xp.maximum(s, 0.0) - s * x + log1p(e)


def bce(p, x, eps=1e-7):
    r"""Binary cross-entropy on probabilities ``p`` (the output of a sigmoid layer).

    The seed article's networks end in a sigmoid, so this is the loss its listings need.
    :math:`\log p` is infinite at :math:`p = 0` and :math:`\log(1 - p)` at :math:`p = 1`;
    a float32 sigmoid reaches 1 for logits above about 16.6, and 0 only below about -88.7
    (computed naively) or -104 (:func:`~nnscratch.activations.sigmoid`). So ``p`` is
    clipped to :math:`[\epsilon, 1 - \epsilon]` first, eq. (bce-3):

    .. math:: \ell = -x \log \tilde p - (1 - x) \log(1 - \tilde p), \quad
              \tilde p = \mathrm{clip}(p, \epsilon, 1 - \epsilon)

    Gradient, eq. (bce-4), zero where the clip is active (the clip's own derivative):

    .. math:: \frac{\partial L}{\partial p} = \frac1B \,
              \frac{\tilde p - x}{\tilde p (1 - \tilde p)} \, [\epsilon < p < 1 - \epsilon]

    Clipping caps the loss per entry at :math:`-\log\epsilon \approx 16.1` nats (15.9 at
    :math:`p = 1` in float32, where :math:`1 - \epsilon` rounds to :math:`1 - 2^{-23}`)
    and stops the gradient of saturated units; prefer :func:`bce_with_logits` whenever the logits
    are at hand. Returns ``(L, dp)``.
    """
    _check_same_shape("bce", p=p, x=x)
    xp = namespace(p, x)
    B = p.shape[0]
    p_c = xp.clip(p, eps, 1.0 - eps)
    L = -xp.sum(x * xp.log(p_c) + (1.0 - x) * xp.log(1.0 - p_c)) / B             # eq. (bce-3)
    _ensure_finite("bce", L, p=p, x=x)
    inside = xp.astype((p > eps) & (p < 1.0 - eps), p.dtype)
    dp = (p_c - x) / (p_c * (1.0 - p_c)) * inside / B                             # eq. (bce-4)
    return L, dp


def mse(y, t):
    r"""Squared error summed over features, averaged over the batch, eqs. (mse-1), (mse-2).

    .. math:: L = \frac1B \sum_n \lVert y_n - t_n \rVert^2, \qquad
              \frac{\partial L}{\partial y} = \frac{2}{B}(y - t)

    Shapes: ``y``, ``t`` ``(batch, d)``. Returns ``(L, dy)``.
    """
    _check_same_shape("mse", y=y, t=t)
    xp = namespace(y, t)
    B = y.shape[0]
    r = y - t
    L = xp.sum(r * r) / B                                                         # eq. (mse-1)
    _ensure_finite("mse", L, y=y, t=t)
    return L, (2.0 / B) * r                                                       # eq. (mse-2)


def kl_normal(mu, logvar):
    r"""KL divergence of :math:`q = \mathcal N(\mu, \mathrm{diag}(e^{\mathrm{logvar}}))`
    from the prior :math:`p_z = \mathcal N(0, I)`, eq. (kl-1):

    .. math:: L = \frac1B \sum_n \sum_j \tfrac12\left(e^{\mathrm{logvar}_{nj}}
              + \mu_{nj}^2 - 1 - \mathrm{logvar}_{nj}\right)

    Gradients, eqs. (kl-2) and (kl-3):

    .. math:: \frac{\partial L}{\partial \mu} = \frac{\mu}{B}, \qquad
              \frac{\partial L}{\partial\, \mathrm{logvar}} = \frac{e^{\mathrm{logvar}} - 1}{2B}

    The variance is :math:`e^{\mathrm{logvar}}`, the standard deviation
    :math:`e^{\mathrm{logvar}/2}`: the same parameterisation as the sampling
    :math:`z = \mu + e^{\mathrm{logvar}/2}\epsilon`.
    Shapes: ``mu``, ``logvar`` ``(batch, d_z)``. Returns ``(L, (dmu, dlogvar))``.
    """
    _check_same_shape("kl_normal", mu=mu, logvar=logvar)
    xp = namespace(mu, logvar)
    B = mu.shape[0]
    var = xp.exp(logvar)
    L = xp.sum(kl_terms(mu, logvar, var)) / B                                     # eq. (kl-1)
    _ensure_finite("kl_normal", L, mu=mu, logvar=logvar)
    dmu = mu / B                                                                  # eq. (kl-2)
    dlogvar = 0.5 * (var - 1.0) / B                                               # eq. (kl-3)
    return L, (dmu, dlogvar)


def kl_terms(mu, logvar, var=None):
    r"""The per-example KL of eq. (kl-1), unreduced over the batch: ``(..., d_z) -> (...)``,
    :math:`\tfrac12 \sum_j (e^{\mathrm{logvar}_j} + \mu_j^2 - 1 - \mathrm{logvar}_j)`.
    ``var`` is :math:`e^{\mathrm{logvar}}` when the caller already has it."""
    xp = namespace(mu, logvar)
    var = xp.exp(logvar) if var is None else var
    return 0.5 * xp.sum(var + mu * mu - 1.0 - logvar, axis=-1)


def log_softmax(s):
    r"""Stable log-softmax over the last axis, eq. (softmax-1):
    :math:`\log \mathrm{softmax}(s)_k = s_k - m - \log\sum_j e^{s_j - m}`,
    :math:`m = \max_j s_j`."""
    xp = namespace(s)
    shifted = s - xp.max(s, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def _check_labels(labels, onehot, K):
    """Class labels must be integers in ``[0, K)``: a label of K, -1 or 0.5 matches no
    column of the one-hot, and the loss would silently drop that example. A label out of
    range leaves its one-hot row empty, so one sum of ``onehot`` finds it (the values are
    read only to name them); like the finite checks, not inside a deferral."""
    if getattr(_deferred, "on", False) or labels.shape[0] == 0:
        return
    xp = namespace(labels)
    if int(xp.sum(onehot)) != labels.shape[0]:
        low, high = int(xp.min(labels)), int(xp.max(labels))
        raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {K}) for {K} classes, "
                         f"got values from {low} to {high}")


def softmax_cross_entropy(s, labels):
    r"""Cross-entropy of integer class ``labels`` under logits ``s``, eqs. (softmax-2), (softmax-3).

    .. math:: L = -\frac1B \sum_n \log \mathrm{softmax}(s_n)_{c_n}, \qquad
              \frac{\partial L}{\partial s}
              = \frac1B\left(\mathrm{softmax}(s) - \mathrm{onehot}(c)\right)

    with :math:`c` the ``labels``.

    Shapes: ``s`` ``(batch, K)``, ``labels`` ``(batch,)`` integers in ``[0, K)``.
    Returns ``(L, ds)``.
    """
    if s.ndim != 2 or labels.ndim != 1 or labels.shape[0] != s.shape[0]:
        raise ShapeError(f"softmax_cross_entropy: expected logits (batch, K) and labels (batch,), "
                         f"got {tuple(s.shape)} and {tuple(labels.shape)}")
    xp = namespace(s)
    B, K = s.shape
    dtype = str(labels.dtype).rsplit(".", 1)[-1]
    if not dtype.startswith(("int", "uint")):
        raise TypeError(f"softmax_cross_entropy: labels must be integers in [0, {K}), got "
                        f"dtype {dtype}")
    onehot = xp.astype(xp.arange(K)[None, :] == labels[:, None], s.dtype)
    _check_labels(labels, onehot, K)
    logp = log_softmax(s)
    L = -xp.sum(onehot * logp) / B                                                # eq. (softmax-2)
    _ensure_finite("softmax_cross_entropy", L, s=s)
    ds = (xp.exp(logp) - onehot) / B                                              # eq. (softmax-3)
    return L, ds
