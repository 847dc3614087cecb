r"""The variational autoencoder (Kingma & Welling, 2014) with a Bernoulli decoder.

Model and notation (the docs use the same labels):

* Encoder, eq. (vae-1): a dense stack maps an image ``x`` ``(batch, 784)`` to hidden
  features ``h``; two linear heads give the approximate posterior
  :math:`q(z \mid x) = \mathcal N(\mu, \mathrm{diag}(e^{\mathrm{logvar}}))`:

  .. math:: h = f_{enc}(x), \qquad \mu = h W_\mu + b_\mu, \qquad
            \mathrm{logvar} = h W_{lv} + b_{lv}

* Reparameterisation, eq. (vae-2): the standard deviation is :math:`e^{\mathrm{logvar}/2}`
  (not the variance), with the noise drawn outside the network so gradients flow to
  :math:`\mu` and logvar:

  .. math:: z = \mu + e^{\mathrm{logvar}/2} \odot \epsilon, \qquad \epsilon \sim \mathcal N(0, I)

* Decoder, eq. (vae-3): a dense stack maps ``z`` to Bernoulli logits ``s`` ``(batch, 784)``,
  :math:`p(x \mid z) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(s_i))`. A sigmoid is applied
  only to produce images; the loss uses the logits (eq. bce-1), which is stable.

* Loss, eq. (vae-4): the negative ELBO in nats per example (sum over pixels and latent
  units, mean over the batch), a one-sample reconstruction term plus the analytic KL of
  eq. (kl-1):

  .. math:: L = \frac1B \sum_n \Big[ \sum_i \ell(s_{ni}, x_{ni})
            + \mathrm{KL}\big(q(z \mid x_n) \,\|\, \mathcal N(0, I)\big) \Big]

  with :math:`\ell` the binary cross-entropy of one pixel, eq. (bce-1).

* Backward through the sampling, eqs. (vae-5) and (vae-6), given
  :math:`\delta_z = \partial L / \partial z` from the decoder's backward:

  .. math:: \frac{\partial L}{\partial \mu} = \delta_z + \frac{\partial\,\mathrm{KL}}{\partial \mu},
            \qquad
            \frac{\partial L}{\partial\,\mathrm{logvar}} = \tfrac12\, \delta_z \odot \epsilon
            \odot e^{\mathrm{logvar}/2} + \frac{\partial\,\mathrm{KL}}{\partial\,\mathrm{logvar}}

* Importance-weighted bound (Burda et al., 2016), eqs. (vae-7) and (vae-8), for
  evaluation: with :math:`z_k = \mu + e^{\mathrm{logvar}/2}\epsilon_k`,

  .. math:: \log w_k = \log p(x \mid z_k) + \log \mathcal N(z_k; 0, I)
            - \log \mathcal N(z_k; \mu, \mathrm{diag}(e^{\mathrm{logvar}}))

  .. math:: \mathcal L_K = \log \frac1K \sum_{k=1}^K w_k
            = m + \log \frac1K \sum_k e^{\log w_k - m}, \quad m = \max_k \log w_k,
            \qquad \log p(x) \ge \mathbb E[\mathcal L_K]

  The bound holds in expectation over the draws (Burda et al., Theorem 1), not draw by
  draw: a single :math:`\mathcal L_K` can exceed :math:`\log p(x)`.
  :math:`\mathbb E[\mathcal L_1]` is the ELBO, and :math:`\mathbb E[\mathcal L_K]` increases
  with ``K`` towards :math:`\log p(x)`; ``-L_K`` (the "iwae" metric) is an estimate of
  :math:`-\log p(x)`, biased upwards by less the larger ``K`` is.

* IWAE training (Burda et al., 2016), eqs. (vae-13) to (vae-16): ``objective="iwae"``
  minimises :math:`-\frac1B \sum_n \mathcal L_K(x_n)`; its gradient is the sum over the
  ``K`` draws of each draw's one-sample ELBO gradient weighted by the normalised importance
  weight :math:`\tilde w_k = w_k / \sum_j w_j` (:meth:`VAE.iwae_loss`,
  :func:`normalized_weights`), through the reparameterisation of every draw.

* Class-conditional VAE (Sohn et al., 2015), eqs. (cond-1) to (cond-3) of
  :mod:`nnscratch.models.conditional`: with ``n_classes`` the encoder reads ``[x, y]`` and
  the decoder ``[z, y]``, ``y`` the one-hot label; the prior stays :math:`\mathcal N(0, I)`
  and every other equation is unchanged, read as conditioned on ``y``.

  On grey-level images (the default, ``binarize=False``) the Bernoulli "likelihood" of a
  value in (0, 1) is not a normalised density, so these nats (and :math:`\log p(x)`) are a
  training objective, not a log-likelihood comparable with the literature; train and
  evaluate with ``binarize=True`` for numbers that are (the binarised-MNIST convention).

Presets (:data:`PRESETS`):

``"classic"``
    784-400-:math:`d_z` with ReLU, the VAE of the PyTorch examples repository
    (``examples/vae/main.py``), latent size :math:`d_z = 20`, PyTorch's default ``nn.Linear``
    initialisation (eq. init-3), Adam with learning rate 1e-3.

``"burda"``
    The one-stochastic-layer network of Burda et al. (2016) for the likelihood benchmark
    (``benchmarks/vae_likelihood.py``): encoder 784-200-200-(50, 50) and decoder
    50-200-200-784 with tanh units, Glorot's initialisation, latent ``k = 50``.

``"seed"``
    The seed article's TF1 listing (section 4.2) made correct. The listing has encoder
    784-4096-2048-``z_dim`` and decoder ``z_dim``-2048-4096-784, ``tf.nn.leaky_relu``
    (slope 0.2) and a sigmoid output, but no sampling, no KL term, a single "encoded"
    output instead of (mu, logvar), and a squared error summed over axes [1, 2, 3] of what
    is a flat 784-vector (an error in TF). Here: the same layer sizes and activation, two
    heads 2048 -> :math:`d_z` for :math:`\mu` and logvar, the reparameterisation (vae-2), the KL
    term, and the sigmoid output replaced by logits with the stable BCE (the same model as
    a sigmoid followed by BCE, computed stably). The article leaves ``z_dim = ...``; we
    choose :math:`d_z = 20` (as the classic preset, so the two are comparable). Initialisation
    "he": He's gain for slope 0.2 (eq. init-1) on layers followed by a leaky ReLU,
    Glorot (eq. init-2) on the linear heads and the logit layer. About 23.3M parameters.
"""
from __future__ import annotations

import math

import numpy as np

from ..activations import sigmoid
from ..backend import namespace, to_numpy
from ..dense import Dense
from ..losses import bce_terms, bce_with_logits, kl_normal, kl_terms
from ..module import Module
from ..optim import Adam
from ..training.checks import check_images, check_memory, check_sizes, dense_parameters
from ..training.trainer import Trainer
from .conditional import N_CLASSES, Conditioned, concat, cut, one_hot, require_labels
from .mlp import mlp

LOG_2PI = math.log(2.0 * math.pi)

PRESETS = {
    "classic": {"enc_hidden": (400,), "dec_hidden": (400,), "alpha": 0.0, "latent": 20,
                "init": "pytorch", "lr": 1e-3, "iw_samples": 50},
    "seed": {"enc_hidden": (4096, 2048), "dec_hidden": (2048, 4096), "alpha": 0.2,
             "latent": 20, "init": "he", "lr": 1e-3, "iw_samples": 10},
    "burda": {"enc_hidden": (200, 200), "dec_hidden": (200, 200), "alpha": "tanh",
              "latent": 50, "init": "glorot", "lr": 1e-3, "iw_samples": 50},
}

#: The training objectives: the negative ELBO of eq. (vae-4) or the IWAE bound -L_K of
#: eq. (vae-8), whose gradient is eqs. (vae-13) to (vae-16).
OBJECTIVES = ("elbo", "iwae")
#: K of the IWAE objective when none is given (Burda et al.'s largest).
IWAE_K = 50


# -- the pieces of the math, as functions ---------------------------------------------
def reparameterize(mu, logvar, eps):
    r"""Eq. (vae-2): :math:`z = \mu + e^{\mathrm{logvar}/2} \odot \epsilon`.

    Shapes: ``mu``, ``logvar`` ``(batch, latent)``; ``eps`` ``(batch, latent)`` or
    ``(K, batch, latent)`` (broadcast). Returns ``(z, std)``.
    """
    xp = namespace(mu)
    std = xp.exp(0.5 * logvar)
    return mu + std * eps, std


def reparameterize_backward(dz, eps, logvar, std):
    r"""Eqs. (vae-5), (vae-6) without the KL's terms: the gradients that reach :math:`\mu`
    and logvar through :math:`z = \mu + e^{\mathrm{logvar}/2} \odot \epsilon`,
    :math:`(\delta_z, \tfrac12\, \delta_z \odot \epsilon \odot e^{\mathrm{logvar}/2})`.

    ``std`` is :math:`e^{\mathrm{logvar}/2}` as the forward computed it (reused, not
    recomputed). Shapes: all ``(batch, latent)``. Returns ``(dmu, dlogvar)``.
    """
    return dz, 0.5 * (dz * eps * std)


def log_bernoulli(x, s):
    r"""Per-example Bernoulli log-likelihood from logits, minus eq. (bce-1) summed over
    pixels: :math:`\log p(x \mid z) = -\sum_i \ell(s_i, x_i)`. Shapes ``(..., d)`` ->
    ``(...)``."""
    return -namespace(s).sum(bce_terms(s, x), axis=-1)


def log_normal_prior(z):
    r""":math:`\log \mathcal N(z; 0, I) = -\frac12 \sum_j (z_j^2 + \log 2\pi)`,
    ``(..., k) -> (...)``."""
    xp = namespace(z)
    return -0.5 * xp.sum(z * z + LOG_2PI, axis=-1)


def log_normal_posterior(eps, logvar):
    r""":math:`\log \mathcal N(z; \mu, \mathrm{diag}(e^{\mathrm{logvar}}))` at
    :math:`z = \mu + e^{\mathrm{logvar}/2}\epsilon`, where :math:`(z - \mu)^2 / \sigma^2 =
    \epsilon^2`: :math:`-\frac12 \sum_j (\epsilon_j^2 + \mathrm{logvar}_j + \log 2\pi)`."""
    xp = namespace(eps)
    return -0.5 * xp.sum(eps * eps + logvar + LOG_2PI, axis=-1)


# -- the model ---------------------------------------------------------------------------
class VAE(Module):
    r"""Encoder, two Gaussian heads, reparameterisation and a Bernoulli-logit decoder.

    ``forward(x, eps)`` returns ``(s, mu, logvar)``; ``backward((ds, dmu, dlogvar))`` takes
    the gradients of the loss with respect to those three outputs (the KL's own gradients
    enter as ``dmu``, ``dlogvar``) and fills ``grads`` for every parameter. Parameter names:
    ``"enc.0.W"``, ``"mu.W"``, ``"logvar.b"``, ``"dec.2.W"``..., so one optimizer
    (``nn.Adam(vae)``) updates the whole model.

    Parameters
    ----------
    n_in : int
        Pixels per image (784).
    enc_hidden, dec_hidden : tuple of int
        Hidden widths of the encoder and the decoder (``dec_hidden=None``: the encoder's
        reversed).
    latent : int
        ``k``, the dimension of ``z``.
    alpha : float
        0 for ReLU, otherwise the slope of a leaky ReLU.
    init : {"he", "glorot", "pytorch"}
    """

    def __init__(self, n_in=784, enc_hidden=(400,), latent=20, dec_hidden=None, alpha=0.0,
                 init="he", backend=None, n_classes=0):
        super().__init__(backend)
        b = self.backend
        enc_hidden = tuple(int(h) for h in enc_hidden)
        dec_hidden = tuple(reversed(enc_hidden)) if dec_hidden is None else \
            tuple(int(h) for h in dec_hidden)
        self.n_in, self.latent, self.n_classes = int(n_in), int(latent), int(n_classes)
        # conditional (n_classes > 0): both networks also read the one-hot label, eq. (cond-2)
        self.enc = mlp((self.n_in + self.n_classes, *enc_hidden), alpha, init, b,
                       output="hidden")
        head_init = "glorot" if init == "he" else init
        self.mu = Dense(enc_hidden[-1], self.latent, init=head_init, backend=b)
        self.logvar = Dense(enc_hidden[-1], self.latent, init=head_init, backend=b)
        self.dec = mlp((self.latent + self.n_classes, *dec_hidden, self.n_in), alpha, init, b,
                       output="linear")
        self._children = {"enc": self.enc, "mu": self.mu, "logvar": self.logvar, "dec": self.dec}

    @classmethod
    def from_preset(cls, preset="classic", latent=None, init=None, backend=None, n_classes=0):
        """Build the ``"classic"``, ``"seed"`` or ``"burda"`` architecture (see the module
        docstring); ``n_classes`` > 0: the conditional model of ``n_classes`` classes."""
        if preset not in PRESETS:
            raise ValueError(f"unknown VAE preset {preset!r}; choose one of {', '.join(PRESETS)}")
        p = PRESETS[preset]
        return cls(784, p["enc_hidden"], p["latent"] if latent is None else latent,
                   p["dec_hidden"], p["alpha"], p["init"] if init is None else init, backend,
                   n_classes)

    def describe(self):
        cond = f", classes={self.n_classes}" if self.n_classes else ""
        return f"VAE(enc={self.enc.describe()}, k={self.latent}, dec={self.dec.describe()}{cond})"

    @property
    def params(self):
        return {f"{c}.{k}": p for c, m in self._children.items() for k, p in m.params.items()}

    @property
    def grads(self):
        return {f"{c}.{k}": g for c, m in self._children.items() for k, g in m.grads.items()}

    def to(self, backend):
        for m in self._children.values():
            m.to(backend)
        self.backend = backend
        self._cache = None
        return self

    # -- forward and backward ------------------------------------------------------------
    def encode(self, x, y=None):
        """Eq. (vae-1): ``x`` ``(batch, 784)`` -> ``(mu, logvar)``, each ``(batch, latent)``; a
        conditional model also reads the one-hot label ``y`` ``(batch, C)``, eq. (cond-2)."""
        h = self.enc.forward(concat(x, self._label(y)))
        return self.mu.forward(h), self.logvar.forward(h)

    def _label(self, y):
        """``y`` checked against the model: required when conditional, refused otherwise."""
        return require_labels(y, self.n_classes, "VAE")

    def _decode_logits(self, z, y):
        """Eq. (vae-3): logits ``s`` of ``[z, y]`` (``y`` tiled over a leading ``K`` axis of
        ``z`` ``(K, batch, latent)``)."""
        xp = self.backend.xp
        if z.ndim == 3:
            K, B, k = z.shape
            if y is not None:
                y = xp.reshape(xp.broadcast_to(xp.expand_dims(y, axis=0), (K, *y.shape)),
                               (K * B, y.shape[1]))
            s = self.dec.forward(concat(xp.reshape(z, (K * B, k)), self._label(y)))
            return xp.reshape(s, (K, B, self.n_in))
        return self.dec.forward(concat(z, self._label(y)))

    def forward(self, x, eps=None, y=None):
        """Eqs. (vae-1) to (vae-3). ``eps`` ``(batch, latent)``: the noise, drawn from the backend's
        generator when None (pass it to hold it fixed, e.g. for a gradient check); ``eps``
        ``(K, batch, latent)``: ``K`` draws per example, for the IWAE objective. ``y``: the
        one-hot labels ``(batch, C)`` of a conditional model.

        Returns ``(s, mu, logvar)``: logits ``(batch, 784)`` (``(K, batch, 784)``), and
        ``(batch, latent)`` twice.
        """
        mu, logvar = self.encode(x, y)
        # a given eps is cast to the model's dtype, so float64 noise cannot upcast a float32 model
        eps = self.backend.normal(tuple(mu.shape)) if eps is None else self.backend.asarray(eps)
        z, std = reparameterize(mu, logvar, eps)                       # eq. (vae-2)
        self._cache = (eps, std, logvar, z, y)
        return self._decode_logits(z, y), mu, logvar                   # eq. (vae-3)

    def loss(self, x, eps=None, y=None):
        """Eq. (vae-4) on a batch: returns ``(L, rec, kl, dy)``, with ``L = rec + kl`` 0-d
        backend arrays in nats per example and ``dy = (ds, dmu, dlogvar)`` for ``backward``.
        ``L`` is minus the ELBO in the form of eq. (vae-11), the reconstruction term
        estimated with one draw of ``z``."""
        s, mu, logvar = self.forward(x, eps, y)
        rec, ds = bce_with_logits(s, x)                                # eq. (bce-1)
        kl, (dmu, dlogvar) = kl_normal(mu, logvar)                     # eq. (kl-1)
        return rec + kl, rec, kl, (ds, dmu, dlogvar)

    def iwae_loss(self, x, eps, y=None):
        r"""The IWAE objective :math:`-\mathcal L_K`, eq. (vae-13), averaged over the batch,
        with ``K`` draws ``eps`` ``(K, batch, k)`` held in the arguments (pass them fixed
        for a gradient check). Returns ``(L, dy)``, ``dy = (ds, dmu, dlogvar, dz)`` for
        :meth:`backward`: eqs. (vae-14) and (vae-15), the normalised importance weights
        :math:`\tilde w_k` times each draw's own ELBO gradient."""
        xp = self.backend.xp
        s, mu, logvar = self.forward(x, eps, y)
        eps, _, _, z, _ = self._cache
        B = x.shape[0]
        log_w = log_bernoulli(x, s) + log_normal_prior(z) \
            - log_normal_posterior(eps, logvar)                        # eq. (vae-7)
        L = -xp.sum(logmeanexp(log_w, axis=0)) / B                     # eq. (vae-13)
        w = xp.expand_dims(normalized_weights(log_w), axis=-1) / B     # eq. (vae-14)
        ds = w * (sigmoid(s) - x)                                      # eq. (vae-15)
        dz = w * z
        dlogvar = xp.full(logvar.shape, -0.5 / B, dtype=logvar.dtype)
        return L, (ds, xp.zeros_like(mu), dlogvar, dz)

    def backward(self, dy, param_grads=True, input_grad=False):
        """Backward through the decoder, the sampling (eqs. (vae-5), (vae-6); with ``K`` draws
        eq. (vae-16)) and the encoder.

        ``dy = (ds, dmu, dlogvar)``: dL/d(outputs of forward), the KL's own gradients
        entering as ``dmu`` and ``dlogvar``; the IWAE adds a fourth entry, the direct
        gradient with respect to ``z`` (from the prior's and the posterior's densities).
        Returns dL/dx through the encoder when ``input_grad`` (off by default: the input is
        data), else None."""
        eps, std, logvar, z, y = self._cached()
        if not isinstance(dy, tuple) or len(dy) not in (3, 4):
            raise TypeError("VAE.backward: dy must be the tuple (ds, dmu, dlogvar) that "
                            "VAE.loss returns (or the four entries of VAE.iwae_loss)")
        xp = self.backend.xp
        ds, dmu, dlogvar = dy[:3]
        dz = self._decoder_backward(ds, z.shape, y, param_grads)
        if len(dy) > 3:
            dz = dz + dy[3]
        if eps.ndim == 3:       # K draws per example: each reaches mu and logvar, eq. (vae-16)
            dmu = xp.sum(dz, axis=0) + dmu
            dlogvar = 0.5 * (xp.sum(dz * eps, axis=0) * std) + dlogvar
        else:
            dmu_z, dlogvar_z = reparameterize_backward(dz, eps, logvar, std)
            dmu = dmu_z + dmu                                          # eq. (vae-5)
            dlogvar = dlogvar_z + dlogvar                              # eq. (vae-6)
        dh = self.mu.backward(dmu, param_grads=param_grads)
        dh = dh + self.logvar.backward(dlogvar, param_grads=param_grads)
        dx = self.enc.backward(dh, param_grads=param_grads, input_grad=input_grad)
        return cut(dx, self.n_in, y)                                   # eq. (cond-3)

    def _decoder_backward(self, ds, z_shape, y, param_grads):
        """dL/dz ``z_shape`` from dL/ds through the decoder, the label's columns cut off."""
        xp = self.backend.xp
        if len(z_shape) == 3:
            ds = xp.reshape(ds, (z_shape[0] * z_shape[1], self.n_in))
        dz = cut(self.dec.backward(ds, param_grads=param_grads), self.latent, y)
        return xp.reshape(dz, z_shape)

    # -- evaluation ----------------------------------------------------------------------
    def decode(self, z, y=None):
        """Probabilities :math:`\\sigma(s)` ``(batch, 784)`` of the decoder at ``z``
        ``(batch, latent)`` (and the one-hot ``y`` ``(batch, C)`` of a conditional model)."""
        return sigmoid(self._decode_logits(z, y))

    def log_weights(self, x, eps, y=None):
        """Eq. (vae-7): ``log w`` ``(K, batch)`` for noise ``eps`` ``(K, batch, latent)``, plus
        the per-example one-sample reconstruction ``-log p(x|z_k)`` ``(K, batch)`` and the
        analytic KL ``(batch,)``. A conditional model: ``log w`` of :math:`p(x \\mid y)`."""
        xp = self.backend.xp
        mu, logvar = self.encode(x, y)
        z, _ = reparameterize(xp.expand_dims(mu, axis=0), xp.expand_dims(logvar, axis=0), eps)
        log_px = log_bernoulli(xp.expand_dims(x, axis=0), self._decode_logits(z, y))
        log_w = log_px + log_normal_prior(z) - log_normal_posterior(eps, logvar)
        return log_w, -log_px, kl_terms(mu, logvar)                    # eq. (kl-1)


def logmeanexp(a, axis=0):
    """Eq. (vae-8): :math:`\\log \\frac1K \\sum_k e^{a_k}`, shifted by the max so nothing
    overflows."""
    xp = namespace(a)
    m = xp.max(a, axis=axis, keepdims=True)
    out = m + xp.log(xp.mean(xp.exp(a - m), axis=axis, keepdims=True))
    return xp.squeeze(out, axis=axis)


def normalized_weights(log_w, axis=0):
    r"""Eq. (vae-14): :math:`\tilde w_k = w_k / \sum_j w_j`, a softmax of ``log_w`` over
    the ``K`` draws (shifted by the max: the weights themselves would overflow)."""
    xp = namespace(log_w)
    e = xp.exp(log_w - xp.max(log_w, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _check_objective(cfg):
    """Refuse an objective that cannot train, with a message that names the key."""
    if cfg["objective"] not in OBJECTIVES:
        raise ValueError(f"unknown VAE objective {cfg['objective']!r}; choose one of "
                         f"{', '.join(OBJECTIVES)}")
    if cfg["iwae_k"] is not None:
        if cfg["objective"] != "iwae":
            raise ValueError("iwae_k (the K of --k) applies to the iwae objective only")
        if int(cfg["iwae_k"]) < 1:
            raise ValueError(f"iwae_k must be >= 1, got {cfg['iwae_k']}")


# -- the trainer the shared loop drives ------------------------------------------------------
@Trainer.register
class VAETrainer(Conditioned, Trainer):
    """Trains a :class:`VAE` with Adam on the negative ELBO (eq. vae-4) or the IWAE bound
    (eq. vae-13).

    Config keys (None or absent -> the preset's default, see :data:`PRESETS`):
    ``preset`` ("classic" | "seed" | "burda"), ``latent`` (:math:`d_z`), ``lr``,
    ``binarize`` (False: the Bernoulli likelihood is evaluated on grey levels in [0, 1] as
    the PyTorch example does; True: each batch is dynamically binarised, x ~ Bernoulli(x)),
    ``init``,
    ``iw_samples`` (K of the IWAE bound in ``evaluate``), ``objective`` ("elbo", the
    default, or "iwae"), ``iwae_k`` (K of the IWAE objective, default 50), ``conditional``
    (True: the class-conditional VAE, eq. cond-2; :meth:`step`, :meth:`evaluate` and
    :meth:`sample` then take labels), ``betas``, ``adam_eps`` (Adam's, default (0.9, 0.999)
    and 1e-8; the likelihood benchmark uses Burda et al.'s 1e-4). The classic preset
    defaults to ``init="pytorch"`` so that it is the same model, initialisation included,
    as the PyTorch example the parity benchmark compares with.
    """

    kind = "vae"
    #: rows (examples x importance samples) per decoder pass in ``evaluate``
    eval_rows = 8192

    def __init__(self, config=None, backend=None):
        super().__init__(config or {}, backend)
        preset = self.config.get("preset") or "classic"
        if preset not in PRESETS:
            raise ValueError(f"unknown VAE preset {preset!r}; choose one of {', '.join(PRESETS)}")
        defaults = {**PRESETS[preset], "binarize": False, "objective": "elbo",
                    "iwae_k": None, "conditional": False, "betas": [0.9, 0.999],
                    "adam_eps": 1e-8}
        cfg = {key: (self.config.get(key) if self.config.get(key) is not None else defaults[key])
               for key in ("latent", "lr", "binarize", "init", "iw_samples", "objective",
                           "iwae_k", "conditional", "betas", "adam_eps")}
        _check_objective(cfg)
        cfg["betas"] = [float(v) for v in cfg["betas"]]
        self.config.update(cfg, preset=preset)
        self.config.pop("kind", None)
        check_sizes("VAE", iw_samples=cfg["iw_samples"])
        if not isinstance(cfg["binarize"], (bool, np.bool_)):     # "no" would be true
            raise ValueError(f"VAE: binarize must be True or False, got {cfg['binarize']!r}")
        self.conditional = bool(cfg["conditional"])
        self.n_classes = N_CLASSES if self.conditional else 0
        self._check_size(PRESETS[preset], cfg["latent"])
        self.vae = VAE.from_preset(preset, cfg["latent"], cfg["init"], backend=self.backend,
                                   n_classes=self.n_classes)
        self.networks = {"vae": self.vae}
        self.optimizers = {"vae": Adam(self.vae, lr=float(cfg["lr"]), betas=tuple(cfg["betas"]),
                                       eps=float(cfg["adam_eps"]))}

    def _check_size(self, preset, k):
        """A latent of at least 1, and a model that fits in memory, before allocating it."""
        check_sizes("VAE", latent=k)
        h, c = preset["enc_hidden"], self.n_classes
        n = dense_parameters((784 + c, *h)) + 2 * dense_parameters((h[-1], k)) + \
            dense_parameters((k + c, *preset["dec_hidden"], 784))
        check_memory(n, np.dtype(self.backend.dtype_name).itemsize, "this VAE")

    def check_data(self, x, where):
        """Raise ValueError unless ``x`` is a non-empty ``(N, 784)`` floating batch in [0, 1]
        (the Bernoulli likelihood needs it; values of device arrays unchecked)."""
        check_images(x, where, self.vae.n_in, backend=self.backend)

    def _binarize(self, x):
        xp = self.backend.xp
        return xp.astype(self.backend.uniform(tuple(x.shape)) < x, self.backend.dtype)

    def step(self, x, labels=None):
        """One Adam step on the objective (negative ELBO or IWAE bound) of the batch ``x``
        ``(batch, 784)``, with its class ``labels`` ``(batch,)`` for a conditional model.

        Returns ``{"loss": L, "rec": reconstruction, "kl": KL}`` in nats per example (the
        IWAE: ``{"loss": -L_K}``)."""
        self.check_data(x, "VAETrainer.step")
        y = self.labels_onehot(labels, "VAETrainer.step")
        if not self.backend.is_array(x):
            x = self.backend.asarray(x)
        if self.config["binarize"]:
            x = self._binarize(x)
        if self.config["objective"] == "iwae":
            K = int(self.config["iwae_k"] or IWAE_K)
            L, dy = self.vae.iwae_loss(x, self.backend.normal((K, x.shape[0], self.vae.latent)),
                                       y)
            values = {"loss": L}
        else:
            L, rec, kl, dy = self.vae.loss(x, y=y)
            values = {"loss": L, "rec": rec, "kl": kl}
        self.vae.backward(dy)
        self.optimizers["vae"].step()
        return self.metrics(**values)

    # -- generation and helpers for figures (host arrays in, host arrays out) ------------
    def _labelled_rows(self, fn, a, labels, where, batch=1024):
        """``fn(rows, y)`` over host rows ``a`` in batches, ``y`` the one-hot ``labels``
        (``(N,)`` or one integer) of a conditional model, None otherwise; a host array."""
        labels = self.host_labels(labels, len(a), where)
        a = np.asarray(a, dtype=np.float32)
        out = []
        for i in range(0, max(len(a), 1), batch):
            y = None if labels is None else one_hot(labels[i:i + batch], self.n_classes,
                                                    self.backend)
            out.append(to_numpy(fn(self.backend.asarray(a[i:i + batch]), y)))
        return np.concatenate(out)

    def sample(self, n, seed=None, labels=None):
        """``n`` images :math:`\\sigma(s)`, :math:`s = f_{dec}(z)`,
        :math:`z \\sim \\mathcal N(0, I)`:
        host float32 ``(n, 784)`` in [0, 1]. ``seed``: draw z from a fresh generator
        (the same images every call) instead of the training generator. ``labels``: the
        class of each image (``(n,)`` or one integer) for a conditional model."""
        z = self.backend.seeded(seed).normal((n, self.vae.latent))
        return self.decode(to_numpy(z), labels)

    def encode(self, x, labels=None):
        """Posterior means ``mu`` ``(N, latent)`` of host images ``x`` ``(N, 784)``."""
        return self._labelled_rows(lambda xb, y: self.vae.encode(xb, y)[0], x, labels,
                                   "VAETrainer.encode")

    def decode(self, z, labels=None):
        """Decoder probabilities ``(N, 784)`` at host latent codes ``z`` ``(N, latent)``."""
        return self._labelled_rows(self.vae.decode, z, labels, "VAETrainer.decode")

    def reconstruct(self, x, labels=None):
        """:math:`\\sigma(f_{dec}(\\mu(x)))`: the decoded posterior means, ``(N, 784)``."""
        return self._labelled_rows(lambda xb, y: self.vae.decode(self.vae.encode(xb, y)[0], y),
                                   x, labels, "VAETrainer.reconstruct")

    def evaluate(self, x, iw_samples=None, seed=0, labels=None):
        """Metrics on host images ``x`` ``(N, 784)``, in nats per example.

        ``neg_elbo``: eq. (vae-4), analytic KL plus the reconstruction averaged over the
        ``K = iw_samples`` draws; ``iwae``: ``-L_K`` of eq. (vae-8), an estimate of
        ``-log p(x)`` (``K = 1``: minus the one-sample ELBO with a Monte-Carlo KL,
        ``-log w_1``, whose expectation is ``neg_elbo``). The noise comes from its own
        generator seeded with ``seed`` (the
        training generator is untouched and every call sees the same noise), in batches of
        at most ``eval_rows`` decoder rows so memory stays bounded. ``binarize=True``
        models binarise ``x`` with a generator of the same seed. A conditional model needs
        the ``labels`` of ``x`` and measures :math:`-\\log p(x \\mid y)`.
        """
        K = self.config["iw_samples"] if iw_samples is None else iw_samples
        check_sizes("VAETrainer.evaluate", iw_samples=K)       # 2.5 is not 2 draws
        K = int(K)
        self.check_data(x, "VAETrainer.evaluate")
        x = np.asarray(x, dtype=np.float32)
        labels = self.host_labels(labels, len(x), "VAETrainer.evaluate")
        if self.config["binarize"]:
            u = np.random.default_rng(seed).random(x.shape, dtype=np.float32)
            x = (u < x).astype(np.float32)
        noise = self.backend.seeded(seed)
        batch = max(1, self.eval_rows // K)
        neg_elbo = iwae = 0.0
        for i in range(0, len(x), batch):
            xb = self.backend.asarray(x[i:i + batch])
            y = None if labels is None else one_hot(labels[i:i + batch], self.n_classes,
                                                    self.backend)
            if K > self.eval_rows:
                rec_mean, kl, log_mean_w = self._draws_in_blocks(xb, K, noise, y)
            else:
                eps = noise.normal((K, xb.shape[0], self.vae.latent))
                log_w, rec, kl = self.vae.log_weights(xb, eps, y)
                rec_mean, log_mean_w = self.backend.xp.mean(rec, axis=0), logmeanexp(log_w)
            xp = self.backend.xp
            neg_elbo += float(xp.sum(rec_mean + kl))
            iwae -= float(xp.sum(log_mean_w))           # eq. (vae-8)
        n = max(len(x), 1)
        return {"neg_elbo": neg_elbo / n, "iwae": iwae / n}

    def _draws_in_blocks(self, xb, K, noise, y=None):
        """``(mean reconstruction term, kl, log mean w)`` of one image over ``K`` draws
        taken ``eval_rows`` at a time (the decoder's memory stays that of ``eval_rows``
        rows however large ``K``): the log of a mean of blocks is the log-sum-exp of the
        blocks' ``logmeanexp`` weighted by their share of ``K``."""
        xp = self.backend.xp
        rec_sum, log_mean_w = 0.0, None
        for start in range(0, K, self.eval_rows):
            k = min(self.eval_rows, K - start)
            log_w, rec, kl = self.vae.log_weights(
                xb, noise.normal((k, xb.shape[0], self.vae.latent)), y)
            rec_sum = rec_sum + xp.sum(rec, axis=0)
            part = logmeanexp(log_w) + math.log(k / K)
            log_mean_w = part if log_mean_w is None else xp.logaddexp(log_mean_w, part)
        return rec_sum / K, kl, log_mean_w
