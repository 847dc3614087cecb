"""nnscratch: GANs and VAEs from scratch, every forward and backward pass written by hand.

The array library is chosen at run time (:func:`use_backend`, or ``NNSCRATCH_BACKEND``);
NumPy is the default. Importing nnscratch imports neither matplotlib nor CuPy.

Where each equation of the docs is computed (the label is cited beside the line):

- layers: ``init.py`` (init-*), ``dense.py`` (dense-*), ``activations.py`` (relu-*,
  lrelu-*, sigmoid-*, tanh-*, identity-*), ``dropout.py`` (drop-*), ``batchnorm.py``
  (bn-*), ``spectral.py`` (sn-*);
- losses and training rules: ``losses.py`` (bce-*, mse-*, kl-*, softmax-*), ``optim.py``
  (sgd-*, adam-*), ``ema.py`` (ema-*), ``gradcheck.py`` (gradcheck-*), ``counter_rng.py``
  (rng-*);
- models: ``models/vae.py`` (vae-*), ``models/gan.py`` (gan-*, game-*),
  ``models/toy2d.py`` (toy-*), ``models/conditional.py`` (cond-*);
- image metrics: ``metrics/classifier.py`` (clf-*), ``metrics/frechet.py`` (frechet-*).

See ``docs/package_map.md`` for the layers and which way the imports point.
"""
# isort: off
# First: a Ctrl-C while the nnscratch command imports is one line, not a traceback.
from . import _startup  # noqa: F401
# The math first, then training, then the models: the order in which a reader meets the layers.
from .backend import Backend, BackendError, get_backend, namespace, to_numpy, use_backend
from .module import Module, Sequential, ShapeError
from .dense import Dense
from .spectral import SpectralNormDense
from .batchnorm import BatchNorm1d
from .dropout import Dropout
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Tanh, sigmoid
from .losses import (NonFiniteError, bce, bce_with_logits, kl_normal, log_softmax, mse,
                     softmax_cross_entropy)
from .optim import SGD, Adam, Optimizer
from .gradcheck import check_gradients, format_report, gradcheck
from .training.trainer import Trainer
from .models.vae import VAE, VAETrainer
from .models.gan import GAN, GANTrainer
# isort: on

__version__ = "0.1.0"

__all__ = [
    "Backend", "BackendError", "get_backend", "namespace", "to_numpy", "use_backend",
    "Module", "Sequential", "ShapeError", "Dense", "SpectralNormDense", "BatchNorm1d",
    "Dropout",
    "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Tanh", "sigmoid",
    "NonFiniteError", "bce", "bce_with_logits", "kl_normal", "log_softmax", "mse",
    "softmax_cross_entropy", "SGD", "Adam", "Optimizer",
    "check_gradients", "format_report", "gradcheck",
    "Trainer", "VAE", "VAETrainer", "GAN", "GANTrainer",
]
