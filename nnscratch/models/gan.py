r"""The generative adversarial network (Goodfellow et al., 2014) with dense networks.

Model and notation (the docs use the same labels):

* Generator :math:`G`: a dense stack maps noise :math:`z \sim \mathcal N(0, I)`
  ``(batch, latent)`` to samples :math:`\tilde x = G(z)` ``(batch, d)``; a sigmoid output
  for images (values in [0, 1], like the data), a linear one for points of the plane.
* Discriminator :math:`D`: a dense stack that outputs one **logit** :math:`s(x)` per
  example; :math:`D(x) = \sigma(s(x))` is the probability that :math:`x` is real (the
  docs' convention: :math:`D` a probability, :math:`s` the logit). The sigmoid lives
  inside the stable binary cross-entropy (eq. bce-1), never in the network.

* Discriminator loss, eq. (gan-1), on ``n`` real and ``n`` generated examples, with
  one-sided label smoothing :math:`\varepsilon_{ls}` (Salimans et al., 2016; 0 by default):

  .. math:: L_D = \mathrm{BCE}(s_{real}, 1 - \varepsilon_{ls}) + \mathrm{BCE}(s_{fake}, 0)
            = -\frac1n \sum_i \Big[(1 - \varepsilon_{ls}) \log \sigma(s_{real,i})
              + \varepsilon_{ls} \log(1 - \sigma(s_{real,i})) + \log(1 - \sigma(s_{fake,i}))\Big]

  with gradients, eq. (gan-2), from eq. (bce-2):

  .. math:: \frac{\partial L_D}{\partial s_{real}}
            = \frac{\sigma(s_{real}) - (1 - \varepsilon_{ls})}{n}, \qquad
            \frac{\partial L_D}{\partial s_{fake}} = \frac{\sigma(s_{fake})}{n}

* Generator loss, non-saturating (the default; Goodfellow et al., section 3), eq. (gan-3),
  and its gradient with respect to the logit, eq. (gan-4):

  .. math:: L_G = -\frac1n \sum_i \log \sigma(s_i) = \mathrm{BCE}(s, 1), \qquad
            \frac{\partial L_G}{\partial s_i} = -\frac{1 - \sigma(s_i)}{n}

* Generator loss, minimax (the "saturating" one of the value function), eq. (gan-5), and its
  gradient, eq. (gan-6):

  .. math:: L_G = \frac1n \sum_i \log\big(1 - \sigma(s_i)\big) = -\mathrm{BCE}(s, 0), \qquad
            \frac{\partial L_G}{\partial s_i} = -\frac{\sigma(s_i)}{n}

  Early in training the discriminator rejects the fakes confidently, :math:`s \ll 0`, so
  :math:`\sigma(s) \to 0`: the minimax gradient (gan-6) **vanishes** exactly where the
  generator is worst, while the non-saturating one (gan-4) tends to :math:`-1/n`. Both
  losses have the same fixed point; only the strength of the signal differs.

* Generator step, eq. (gan-7): the chain rule through the discriminator, whose parameters
  are held fixed (``D.backward(ds, param_grads=False)`` computes only :math:`\partial L_G /
  \partial \tilde x`), then through the generator:

  .. math:: \frac{\partial L_G}{\partial \tilde x} = J_s(\tilde x)^\top
            \frac{\partial L_G}{\partial s}, \qquad
            \frac{\partial L_G}{\partial \theta_G} = J_G(z)^\top
            \frac{\partial L_G}{\partial \tilde x}

* Packing (PacGAN, Lin et al., 2018), eq. (gan-8): with pack size :math:`P` (``pack``;
  ``m`` in the code) the discriminator judges :math:`P` samples at once, all real or all
  generated, concatenated into one vector; a batch ``(B, d)`` becomes ``(B/P, P d)`` (row
  ``j`` holds samples ``jP .. jP + P - 1``) and the input layer of :math:`D` is ``P d``
  wide. A collapsed generator yields :math:`P` near-identical samples, which is easy to
  tell from :math:`P` independent real ones. The gradient with respect to the packed batch
  is reshaped back to ``(B, d)``. ``n = B/P`` above.

* Class-conditional GAN (Mirza & Osindero, 2014), eqs. (cond-1) to (cond-3) of
  :mod:`nnscratch.models.conditional`: with ``conditional`` the one-hot label :math:`y`
  joins the generator's input, :math:`\tilde x = G([z, y])`, and the discriminator's, whose
  logit is :math:`s([x, \lambda y])`; with packing, the pairs :math:`[x, \lambda y]` are
  packed (D's input is ``m (d + C)`` wide). The fakes of a step get the labels of its real
  batch, so D sees the same classes on both sides. Eqs. (gan-1) to (gan-7) are unchanged:
  the label is data. D reads the label scaled, :math:`\lambda = \sqrt d / 2` (14 for
  images, ``D_label_scale``): spectral normalisation caps the gain of every input direction
  at 1, and a unit label beside an image of norm about 12 could move D's first layer by a
  twelfth of what the image does; scaled, the two are comparable.

* Training (Goodfellow et al., Algorithm 1): :math:`n_D` (config ``k``) discriminator
  steps, each on a fresh real batch and fresh noise, per generator step; Adam with
  :math:`\beta_1 = 0.5` (Radford et al., 2016) for both networks.

Presets (:data:`PRESETS`):

``"seed"``
    The seed article's networks (section 4.1, a TF1 listing whose ``train()`` is ``...``:
    no loss, no optimizer, no loop): generator ``z``-4096-2048-1024-784 and discriminator
    784-1024-2048-4096-1, ``tf.nn.leaky_relu`` (slope 0.2), a sigmoid on the generator's
    output. The listing's discriminator also ends in a sigmoid; here it outputs the logit
    and the sigmoid lives in the stable BCE (the same model, computed stably). The article
    leaves the noise dimension open; we use 100. About 23M parameters (G 11.7M, D 11.3M;
    batch normalisation adds 14,336 to G).
    Initialisation ``"he"`` (He's gain for slope 0.2 on the hidden layers, Glorot on the
    output layers); ``init="glorot"`` gives TF's ``tf.layers.dense`` default everywhere.
``"mlp"``
    The usual small fully connected GAN: generator 100-256-512-1024-784, discriminator
    784-1024-512-256-1, leaky ReLU 0.2, PyTorch's ``nn.Linear`` initialisation, Adam lr 2e-4,
    betas (0.5, 0.999), batch 64.
``"toy"``
    Points of the plane for the mode-coverage benchmark of :mod:`nnscratch.models.toy2d`:
    generator 2-64-64-64-2 (linear output), discriminator ``2m``-128-128-128-1, both with
    **ReLU** and PyTorch's initialisation, Adam lr 1e-3, batch 256. In the spirit of the
    PacGAN code (ReLU generator on a 2-D noise, a wider discriminator), without its batch
    normalisation and maxout units. Two choices matter a lot on these data: a ReLU (not
    leaky) generator can map whole regions of the noise onto one point, which tight modes
    need (a leaky ReLU network contracts no region to nothing); random initial biases
    (PyTorch's initialisation) put the units' kinks all over the plane, where zero biases
    put every kink through the origin and the networks start out as functions of the angle
    only.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..activations import sigmoid
from ..backend import get_backend, namespace, to_numpy
from ..ema import EMA
from ..losses import bce_with_logits
from ..module import ShapeError
from ..optim import Adam
from ..training.checks import check_images, check_memory, check_sizes, dense_parameters
from ..training.trainer import Trainer
from .conditional import N_CLASSES, Conditioned, concat, cut, one_hot, require_labels
from .mlp import mlp

LOSSES = ("non-saturating", "minimax")

PRESETS = {
    "seed": {"latent": 100, "data_dim": 784, "G_hidden": (4096, 2048, 1024),
             "D_hidden": (1024, 2048, 4096), "G_alpha": 0.2, "D_alpha": 0.2,
             "output": "sigmoid", "init": "he",
             "lr": 2e-4, "betas": (0.5, 0.999), "batch_size": 64},
    "mlp": {"latent": 100, "data_dim": 784, "G_hidden": (256, 512, 1024),
            "D_hidden": (1024, 512, 256), "G_alpha": 0.2, "D_alpha": 0.2,
            "output": "sigmoid", "init": "pytorch",
            "lr": 2e-4, "betas": (0.5, 0.999), "batch_size": 64},
    "toy": {"latent": 2, "data_dim": 2, "G_hidden": (64, 64, 64),
            "D_hidden": (128, 128, 128), "G_alpha": 0.0, "D_alpha": 0.0, "output": "linear",
            "init": "pytorch", "lr": 1e-3, "betas": (0.5, 0.999), "batch_size": 256},
}

#: Config keys shared by every preset, with their defaults. The learning rates are
#: ``lr_D`` and ``lr_G`` when given, else ``lr`` times the factors ``ttur`` (D's, G's).
DEFAULTS = {"k": 1, "pack": 1, "loss": "non-saturating", "label_smoothing": 0.0,
            "lr_D": None, "lr_G": None, "ttur": [1.0, 1.0], "ema": 0.0, "G_norm": "none",
            "D_spectral": False, "D_dropout": 0.0, "conditional": False,
            "D_label_scale": None}

#: Recipes: the stabilisers a preset trains with, on top of its architecture. ``"none"``
#: is the bare GAN. A recipe sets defaults only: a key given in the config wins. The
#: choices are measured, not folklore: see the ablation table in ``docs/gan.md``.
RECIPES = {
    "none": {},
    "stable": {"D_spectral": True, "G_norm": "batch", "ema": 0.999, "ttur": [2.0, 0.5]},
}

#: A saved config (a checkpoint's: it names its ``kind`` and holds all of these) keeps the
#: run it describes: without ``recipe`` it predates recipes (the bare GAN), and a key in
#: :data:`ADDED_LATER` that it lacks takes the value that reproduces that run.
SAVED_KEYS = ("kind", "k", "pack", "loss", "label_smoothing", "G_hidden", "D_hidden", "init")
ADDED_LATER = {"ttur": [1.0, 1.0]}

#: The recipe each preset trains with unless told otherwise.
PRESET_RECIPES = {"seed": "stable", "mlp": "stable", "toy": "none"}


# -- the pieces of the math, as functions ---------------------------------------------------
def pack(x, m):
    """Eq. (gan-8): ``(B, d)`` -> ``(B/m, m d)``, ``m`` consecutive samples per row."""
    B, d = x.shape
    if B % m:
        raise ShapeError(f"pack: the batch ({B}) must be a multiple of the pack size ({m})")
    return x if m == 1 else namespace(x).reshape(x, (B // m, m * d))


def unpack(dxp, m, d):
    """The inverse reshape of :func:`pack`, for gradients: ``(B/m, m d)`` -> ``(B, d)``."""
    return dxp if m == 1 else namespace(dxp).reshape(dxp, (dxp.shape[0] * m, d))


def discriminator_loss(s_real, s_fake, label_smoothing=0.0):
    r"""Eqs. (gan-1), (gan-2): ``L_D`` and its gradients with respect to both logits.
    Without label smoothing, ``-L_D`` is the game's value function, eq. (game-1),
    estimated on the batch.

    Shapes: ``s_real``, ``s_fake`` ``(n, 1)``. Returns ``(L_D, ds_real, ds_fake)``.
    """
    xp = namespace(s_real)
    target = xp.ones_like(s_real) * (1.0 - label_smoothing)     # one-sided: fakes keep 0
    L_real, ds_real = bce_with_logits(s_real, target)           # eq. (bce-1), (bce-2)
    L_fake, ds_fake = bce_with_logits(s_fake, xp.zeros_like(s_fake))
    return L_real + L_fake, ds_real, ds_fake                    # eq. (gan-1), (gan-2)


def generator_loss(s_fake, loss="non-saturating"):
    r"""Eqs. (gan-3) to (gan-6): ``L_G`` and :math:`\partial L_G / \partial s` for the
    ``"non-saturating"`` or the ``"minimax"`` generator loss. Shape ``(n, 1)``.
    Returns ``(L_G, ds)``. Per sample the two gradients differ by the positive factor
    :math:`e^{-s}`, eq. (game-5): same direction, same fixed point."""
    xp = namespace(s_fake)
    if loss == "non-saturating":
        return bce_with_logits(s_fake, xp.ones_like(s_fake))   # eqs. (gan-3), (gan-4)
    if loss == "minimax":
        L, ds = bce_with_logits(s_fake, xp.zeros_like(s_fake))
        return -L, -ds                                          # eqs. (gan-5), (gan-6)
    raise ValueError(f"unknown generator loss {loss!r}; choose one of {', '.join(LOSSES)}")


# -- the model ------------------------------------------------------------------------------
class GAN:
    """A generator ``G`` and a discriminator ``D`` (two :class:`Sequential` networks) and the
    forward/backward passes of both losses. It computes gradients only; the optimizers (in
    :class:`GANTrainer`) change the parameters.

    Parameters
    ----------
    latent : int
        Dimension of the noise ``z``.
    data_dim : int
        ``d``: 784 for images, 2 for points of the plane.
    G_hidden, D_hidden : tuple of int
        Hidden widths.
    G_alpha, D_alpha : float
        Slopes of the leaky ReLUs of G and D (0: ReLU).
    output : {"sigmoid", "linear"}
        The generator's output.
    init : {"he", "glorot", "pytorch"}
        The initialisation of every layer (see :mod:`nnscratch.init`).
    pack : int
        :math:`P` of eq. (gan-8) (``self.m``); D's input is ``P d`` wide.
    G_norm : {"none", "batch"}
        Batch normalisation after each hidden layer of G (eqs. bn-1 to bn-8).
    D_spectral : bool
        Spectral normalisation of every layer of D (eqs. sn-1 to sn-7).
    D_dropout : float
        Dropout probability after each hidden layer of D (eq. drop-1), 0 for none.
    n_classes : int
        ``C`` > 0: the class-conditional GAN, G reads ``[z, y]`` and D ``[x, lambda y]`` (eq.
        cond-2); 0: unconditional.
    label_scale : float, optional
        ``lambda``, the scale of the one-hot label in D's input (default ``sqrt(d) / 2``).
    """

    def __init__(self, latent=100, data_dim=784, G_hidden=(256, 512, 1024),
                 D_hidden=(1024, 512, 256), G_alpha=0.2, D_alpha=0.2, output="sigmoid",
                 init="he", pack=1, G_norm="none", D_spectral=False, D_dropout=0.0,
                 backend=None, n_classes=0, label_scale=None):
        b = get_backend() if backend is None else backend
        self.backend = b
        self.latent, self.data_dim, self.m = int(latent), int(data_dim), int(pack)
        self.n_classes = int(n_classes)
        self.label_scale = float(self.data_dim ** 0.5 / 2 if label_scale is None
                                 else label_scale)
        if self.m < 1:
            raise ValueError(f"pack must be >= 1, got {pack}")
        self.G_sizes = (self.latent + self.n_classes, *G_hidden, self.data_dim)
        self.G_options = {"alpha": G_alpha, "init": init, "output": output, "norm": G_norm}
        self.G = self.new_generator()
        self.D = mlp((self.m * (self.data_dim + self.n_classes), *D_hidden, 1), D_alpha, init,
                     b, "linear", spectral=D_spectral, dropout=D_dropout)
        self._y = None

    def new_generator(self):
        """A fresh generator of this GAN's architecture (the EMA copy is another one)."""
        o = self.G_options
        return mlp(self.G_sizes, o["alpha"], o["init"], self.backend, o["output"],
                   norm=o["norm"])

    def noise(self, n, backend=None):
        """``z`` ``(n, latent)`` from N(0, I), drawn by ``backend`` (default: the model's)."""
        return (backend or self.backend).normal((n, self.latent))

    def _label(self, y):
        """``y`` checked against the model: required when conditional, refused otherwise."""
        return require_labels(y, self.n_classes, "GAN")

    def generate(self, z, y=None, G=None):
        """``G([z, y])`` (eq. cond-2; ``G(z)`` unconditional) with ``G`` (default the
        trained generator)."""
        return (self.G if G is None else G).forward(concat(z, self._label(y)))

    def discriminate(self, x, y=None):
        """Logits ``(B/m, 1)`` of ``x`` ``(B, d)`` (and its one-hot labels ``y`` ``(B, C)``
        when conditional), packed by eq. (gan-8)."""
        return self.D.forward(pack(self._d_input(x, self._label(y)), self.m))

    def _d_input(self, x, y):
        """D's input ``[x, lambda y]`` (``x`` unconditional): the label scaled so that
        spectral normalisation leaves it a say (see the module docstring)."""
        return concat(x, None if y is None else self.label_scale * y)

    # -- discriminator step -----------------------------------------------------------------
    def d_loss(self, x, z, label_smoothing=0.0, y=None):
        """Forward for eq. (gan-1): real ``x`` ``(B, d)`` and fakes ``G(z)``, ``z`` ``(B, latent)``,
        through D in one concatenated batch (conditional: both with the labels ``y``, the
        game of eq. (cond-5)).
        Returns ``(L_D, ds, s_real, s_fake)``, ``ds`` ``(2B/m, 1)`` ready for
        :meth:`d_backward`. G is not back-propagated (its output is treated as data: no
        gradient flows into G in this step)."""
        xp = self.backend.xp
        x_fake = self.generate(z, y)
        n = x.shape[0] // self.m
        s = self.D.forward(xp.concat([pack(self._d_input(x, y), self.m),
                                      pack(self._d_input(x_fake, y), self.m)], axis=0))
        s_real, s_fake = s[:n, :], s[n:, :]
        L, ds_real, ds_fake = discriminator_loss(s_real, s_fake, label_smoothing)
        return L, xp.concat([ds_real, ds_fake], axis=0), s_real, s_fake

    def d_backward(self, ds):
        """Fill ``D.grads`` with eq. (gan-2) back-propagated through D (its input is data)."""
        self.D.backward(ds, input_grad=False)

    # -- generator step ---------------------------------------------------------------------
    def g_loss(self, z, loss="non-saturating", y=None):
        """Forward for eq. (gan-3) or (gan-5): ``z`` ``(B, latent)`` -> G -> pack -> D
        (conditional: G and D both read the labels ``y``, eq. (cond-5)). Returns
        ``(L_G, ds, s_fake)``."""
        s = self.discriminate(self.generate(z, y), y)
        self._y = y
        L, ds = generator_loss(s, loss)
        return L, ds, s

    def g_backward(self, ds):
        """Eq. (gan-7): dL/dx through D with D's parameters and gradients untouched, reshaped
        back to ``(B, d)`` (the label's columns cut off, eq. cond-3), then through G,
        filling ``G.grads``."""
        dx = self.D.backward(ds, param_grads=False)
        dxy = unpack(dx, self.m, self.data_dim + self.n_classes)
        self.G.backward(cut(dxy, self.data_dim, self._y), input_grad=False)


@contextlib.contextmanager
def evaluating(net):
    """``net`` in evaluation mode (dropout off, batch normalisation on its running
    statistics, no power iteration) for the block, then back in the mode it was in."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        if was_training:
            net.train()


def _check(cfg):
    """Refuse a config that cannot train, with a message that names the key."""
    if cfg["loss"] not in LOSSES:
        raise ValueError(f"unknown GAN loss {cfg['loss']!r}; choose one of {', '.join(LOSSES)}")
    if int(cfg["k"]) < 1:
        raise ValueError(f"k (discriminator steps per generator step) must be >= 1, "
                         f"got {cfg['k']}")
    if not 0.0 <= float(cfg["label_smoothing"]) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {cfg['label_smoothing']}")
    if not 0.0 <= float(cfg["ema"]) < 1.0:
        raise ValueError(f"ema (the decay of the generator's average) must be in [0, 1), "
                         f"got {cfg['ema']}")
    if not 0.0 <= float(cfg["D_dropout"]) < 1.0:
        raise ValueError(f"D_dropout must be in [0, 1), got {cfg['D_dropout']}")
    if cfg["G_norm"] not in ("none", "batch"):
        raise ValueError(f"G_norm must be 'none' or 'batch', got {cfg['G_norm']!r}")
    for key in ("lr", "lr_D", "lr_G"):
        if cfg[key] is not None and not float(cfg[key]) > 0:
            raise ValueError(f"{key} must be positive, got {cfg[key]}")
    if len(cfg["ttur"]) != 2 or not all(float(f) > 0 for f in cfg["ttur"]):
        raise ValueError(f"ttur must be two positive factors (D's, G's), got {cfg['ttur']}")


# -- the trainer the shared loop drives ----------------------------------------------------
@Trainer.register
class GANTrainer(Conditioned, Trainer):
    """Trains a :class:`GAN`: ``k`` discriminator steps per generator step, Adam on both.

    Config keys (None or absent -> the preset's default, see :data:`PRESETS` and
    :data:`DEFAULTS`): ``preset`` ("seed" | "mlp" | "toy"), ``latent``, ``data_dim``,
    ``lr``, ``betas``, ``k``, ``pack``, ``loss`` ("non-saturating" | "minimax"),
    ``label_smoothing``, ``conditional`` (the class-conditional GAN: :meth:`step`,
    :meth:`sample` and :meth:`evaluate` take labels), and, to change the architecture,
    ``G_hidden``, ``D_hidden``, ``G_alpha``, ``D_alpha`` (leaky ReLU slopes, 0 for ReLU),
    ``init``. ``batch_size`` is
    the preset's suggestion to the loop (the pack size must divide the batch).

    Stabilisers (``recipe`` picks a set, :data:`RECIPES`; each key can be set alone):
    ``ttur`` (factors of ``lr`` for D and G: the two time-scale update rule, Heusel et al.,
    2017) or ``lr_D``, ``lr_G`` (the learning rates themselves), ``ema`` (decay
    of the generator's moving average, eq. ema-1, 0 for none; :meth:`sample` draws from
    the average unless ``raw=True``), ``G_norm`` ("none" | "batch": batch normalisation
    after each hidden layer of G), ``D_spectral`` (spectral normalisation of every layer
    of D), ``D_dropout`` (dropout after each hidden layer of D).

    Each :meth:`step` consumes one real batch and takes one discriminator step; every
    ``k``-th call also takes a generator step (on fresh noise of the same batch size), so
    ``k`` D steps see ``k`` different real batches, as in Goodfellow et al.'s Algorithm 1.
    """

    kind = "gan"
    eval_batch = 4096

    def __init__(self, config=None, backend=None):
        super().__init__(config or {}, backend)
        cfg = self._resolve(self.config)
        self.config.update(cfg)
        self.config.pop("kind", None)
        self.conditional = bool(cfg["conditional"])
        self.n_classes = N_CLASSES if self.conditional else 0
        self._check_size(self.config)
        self.gan = GAN(cfg["latent"], cfg["data_dim"], cfg["G_hidden"], cfg["D_hidden"],
                       cfg["G_alpha"], cfg["D_alpha"], cfg["output"], cfg["init"], cfg["pack"],
                       cfg["G_norm"], cfg["D_spectral"], cfg["D_dropout"], backend=self.backend,
                       n_classes=self.n_classes, label_scale=cfg["D_label_scale"])
        self.networks = {"G": self.gan.G, "D": self.gan.D}
        self.optimizers = {name: Adam(net, lr=self._lr(name), betas=tuple(cfg["betas"]))
                           for name, net in self.networks.items()}
        self.ema = None
        #: True: :meth:`sample` and :meth:`generate` use G's own weights even with ``ema``
        self.sample_raw = False
        if float(cfg["ema"]) > 0:
            self.networks["G_ema"] = self.gan.new_generator().eval()
            self.ema = EMA(self.gan.G, self.networks["G_ema"], float(cfg["ema"]))
        self.d_steps = 0

    def _lr(self, name):
        """Network ``name``'s learning rate: ``lr_<name>`` if given, else ``lr`` times its
        factor in ``ttur`` (two time scales, Heusel et al., 2017)."""
        cfg = self.config
        given = cfg[f"lr_{name}"]
        return float(given) if given else float(cfg["lr"]) * float(cfg["ttur"]["DG".index(name)])

    def set_network_lr(self, name, lr):
        """Give network ``name`` ("D" or "G") the learning rate ``lr`` (``lr_<name>`` in the
        config), e.g. to slow down only D when resuming."""
        self.config[f"lr_{name}"] = float(lr)
        self.optimizers[name].lr = self._lr(name)

    def set_lr(self, lr):
        """Scale both learning rates so that ``lr`` replaces ``lr`` (their ratio is kept), e.g.
        to resume a diverged run with a smaller step."""
        scale = float(lr) / float(self.config["lr"])
        for key in ("lr_D", "lr_G"):
            if self.config[key]:
                self.config[key] = float(self.config[key]) * scale
        self.config["lr"] = float(lr)
        for name, opt in self.optimizers.items():
            opt.lr = self._lr(name)

    @staticmethod
    def _resolve(config):
        """The full config: the preset's architecture, then its recipe's stabilisers, then
        :data:`DEFAULTS`; a key given (not None) in ``config`` wins over all three. A saved
        config (see :data:`SAVED_KEYS`) rebuilds the run that saved it."""
        preset = config.get("preset") or "mlp"
        if preset not in PRESETS:
            raise ValueError(f"unknown GAN preset {preset!r}; choose one of {', '.join(PRESETS)}")
        saved = all(key in config for key in SAVED_KEYS)
        recipe = config.get("recipe") or ("none" if saved else PRESET_RECIPES[preset])
        if recipe not in RECIPES:
            raise ValueError(f"unknown GAN recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
        defaults = {**DEFAULTS, **PRESETS[preset], **RECIPES[recipe]}
        if saved:
            defaults.update({k: v for k, v in ADDED_LATER.items() if k not in config})
        cfg = {key: (config.get(key) if config.get(key) is not None else value)
               for key, value in defaults.items()}
        for key in ("betas", "G_hidden", "D_hidden", "ttur"):
            cfg[key] = [int(v) if key.endswith("hidden") else float(v) for v in cfg[key]]
        _check(cfg)
        return {**cfg, "preset": preset, "recipe": recipe}

    #: What :meth:`step` returns, in this order.
    STEP_METRICS = ("loss_D", "loss_G", "D_real", "D_fake")

    def d_step(self, x, with_loss_G=True, y=None):
        """One discriminator step on real ``x`` ``(B, d)`` and ``B`` fresh fakes.

        Returns ``loss_D``, ``D_real``, ``D_fake`` and, if ``with_loss_G``, ``loss_G``: the
        generator loss of these fakes under D before its update (a value only: no generator
        step). :meth:`step` asks for it only when no generator step follows to report its own.
        ``y``: the one-hot labels of ``x`` (conditional), which the fakes get too."""
        cfg = self.config
        L, ds, s_real, s_fake = self.gan.d_loss(x, self.gan.noise(x.shape[0]),
                                                float(cfg["label_smoothing"]), y)
        self.gan.d_backward(ds)
        self.optimizers["D"].step()
        # G steps next: D's gradients would sit in memory unused through it
        self.gan.D.clear_grads()
        xp = self.backend.xp
        values = {"loss_D": L}
        if with_loss_G:
            values["loss_G"] = generator_loss(s_fake, cfg["loss"])[0]
        values["D_real"], values["D_fake"] = xp.mean(sigmoid(s_real)), xp.mean(sigmoid(s_fake))
        return self.metrics(**values)

    def g_step(self, batch, y=None):
        """One generator step on ``batch`` fresh noise vectors (with the one-hot labels ``y``
        when conditional); returns ``L_G``."""
        L, ds, _ = self.gan.g_loss(self.gan.noise(batch), self.config["loss"], y)
        self.gan.g_backward(ds)
        self.optimizers["G"].step()
        self.gan.G.clear_grads()                  # as in d_step: D steps next
        if self.ema is not None:
            self.ema.update()                     # eq. (ema-1)
        return self.metrics(loss_G=L)["loss_G"]   # a float; on CuPy left on the device

    def _check_size(self, cfg):
        """Widths of at least 1, and a model that fits in memory, before allocating it."""
        check_sizes("GAN", latent=cfg["latent"], data_dim=cfg["data_dim"], pack=cfg["pack"],
                    G_hidden=cfg["G_hidden"], D_hidden=cfg["D_hidden"])
        d, c = cfg["data_dim"], self.n_classes
        n = dense_parameters((cfg["latent"] + c, *cfg["G_hidden"], d)) + \
            dense_parameters((cfg["pack"] * (d + c), *cfg["D_hidden"], 1))
        check_memory(n, np.dtype(self.backend.dtype_name).itemsize, "this GAN")

    def check_data(self, x, where):
        """Raise ValueError unless ``x`` is a non-empty ``(N, data_dim)`` floating batch, in
        [0, 1] for a generator with a sigmoid output (values of device arrays unchecked)."""
        value_range = (0.0, 1.0) if self.config["output"] == "sigmoid" else None
        check_images(x, where, self.gan.data_dim, value_range, backend=self.backend)

    def step(self, x, labels=None):
        """One D step on the batch ``x`` ``(B, d)`` and, every ``k``-th call, one G step;
        a conditional GAN takes the batch's class ``labels`` ``(B,)``, and its G step
        draws fakes of the same classes.

        Returns ``{"loss_D", "loss_G", "D_real", "D_fake"}`` (host floats, device scalars on
        CuPy: :meth:`~nnscratch.training.trainer.Trainer.metrics`): ``D_real`` and
        ``D_fake`` are the means of :math:`D(x)` and :math:`D(G(z))` (:math:`D = \\sigma(s)`) in
        the D step (before its update); ``loss_G`` is the loss of the generator step when
        this call takes one, else the generator loss of the D step's fakes.
        """
        self.check_data(x, "GANTrainer.step")
        y = self.labels_onehot(labels, "GANTrainer.step")
        if not self.backend.is_array(x):
            x = self.backend.asarray(x)
        takes_g_step = (self.d_steps + 1) % int(self.config["k"]) == 0
        out = self.d_step(x, with_loss_G=not takes_g_step, y=y)
        self.d_steps += 1                 # after the step: one that fails is not counted
        if takes_g_step:
            out["loss_G"] = self.g_step(x.shape[0], y)
        return {key: out[key] for key in self.STEP_METRICS}     # the log's column order

    def state_dict(self):
        """The generic state plus the count of D steps (where the next G step falls) and
        the count of EMA updates (the warm-up of eq. ema-1)."""
        state = super().state_dict()
        state["gan/d_steps"] = np.asarray(self.d_steps)
        if self.ema is not None:
            state["gan/ema_t"] = self.ema.state_dict()["t"]
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if "gan/d_steps" in state:
            self.d_steps = int(state["gan/d_steps"])
        if self.ema is not None and "gan/ema_t" in state:
            self.ema.load_state_dict({"t": state["gan/ema_t"]})

    def generator(self, raw=False):
        """The network that makes samples: the moving average of G (in evaluation mode)
        when the config has ``ema``, unless ``raw``; else G itself."""
        raw = raw or self.sample_raw
        return self.gan.G if (self.ema is None or raw) else self.networks["G_ema"]

    # -- generation and evaluation (host arrays in, host arrays out) --------------------------
    def sample(self, n, seed=None, raw=False, labels=None):
        """``n`` samples ``G(z)``, ``z ~ N(0, I)``: host float32 ``(n, data_dim)`` (in [0, 1]
        for the image presets). ``seed``: draw z from a fresh generator (the same samples
        every call, e.g. for a grid of images over training) instead of the training one.
        ``raw``: from the trained weights of G, not their moving average. ``labels``: the
        class of each sample (``(n,)`` or one integer) of a conditional GAN."""
        return self.generate(to_numpy(self.gan.noise(n, self.backend.seeded(seed))), raw=raw,
                             labels=labels)

    def generate(self, z, raw=False, labels=None):
        """``G(z)`` (``G([z, y])`` for a conditional GAN with the class ``labels``) for host
        noise ``z`` ``(n, latent)``, in batches, in evaluation mode: host float32 ``(n, d)``.
        ``raw`` as in :meth:`sample`."""
        z = np.asarray(z, dtype=np.float32)
        labels = self.host_labels(labels, len(z), "GANTrainer.generate")
        step = self.eval_batch

        def y(i):
            return None if labels is None else one_hot(labels[i:i + step], self.n_classes,
                                                       self.backend)
        with evaluating(self.generator(raw)) as G:
            out = [to_numpy(self.gan.generate(self.backend.asarray(z[i:i + step]), y(i), G))
                   for i in range(0, len(z), step)]
        return np.concatenate(out).astype(np.float32, copy=False) if out else \
            np.zeros((0, self.gan.data_dim), np.float32)

    def discriminator_probability(self, x):
        """:math:`D(x) = \\sigma(s(x))` for host ``x`` ``(N, d)``; each row is packed with itself
        ``m`` times when ``pack > 1`` (for heat maps of D over the plane)."""
        if self.conditional:
            raise ValueError("discriminator_probability: a conditional D needs labels; it "
                             "draws the heat maps of unconditional GANs only")
        x = np.asarray(x, dtype=np.float32)
        x = np.tile(x, (1, self.gan.m))
        out = []
        with evaluating(self.gan.D) as D:
            for i in range(0, len(x), self.eval_batch):
                s = D.forward(self.backend.asarray(x[i:i + self.eval_batch]))
                out.append(to_numpy(sigmoid(s))[:, 0])
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def evaluate(self, x, seed=0, labels=None):
        """Mean :math:`D(x) = \\sigma(s(x))` on held-out host data ``x`` ``(N, d)`` ("D_real") and
        on as many fresh fakes ("D_fake"), noise from a generator seeded with ``seed``.
        With pack ``m``, ``N`` is cut to a multiple of ``m``. A conditional GAN needs the
        ``labels`` of ``x``; its fakes get the same labels."""
        self.check_data(x, "GANTrainer.evaluate")
        x = np.asarray(x, dtype=np.float32)
        labels = self.host_labels(labels, len(x), "GANTrainer.evaluate")
        m = self.gan.m
        N = (len(x) // m) * m
        if N == 0:
            raise ValueError(f"evaluate: need at least pack = {m} examples, got {len(x)}")
        x_fake = self.sample(N, seed=seed, labels=None if labels is None else labels[:N])
        xp = self.backend.xp
        sums = {"D_real": 0.0, "D_fake": 0.0}
        step = max(m, (self.eval_batch // m) * m)
        with evaluating(self.gan.D):
            for i in range(0, N, step):
                y = None if labels is None else one_hot(labels[i:min(i + step, N)],
                                                        self.n_classes, self.backend)
                for key, a in (("D_real", x[i:min(i + step, N)]),
                               ("D_fake", x_fake[i:i + step])):
                    s = self.gan.discriminate(self.backend.asarray(a), y)
                    sums[key] += float(xp.sum(sigmoid(s)))
        return {key: v / (N // m) for key, v in sums.items()}
