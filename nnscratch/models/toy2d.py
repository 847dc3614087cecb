r"""Mode coverage on mixtures of Gaussians in the plane: the 2-D benchmark of GAN papers.

The two mixtures and the metric follow the PacGAN code (Lin et al., 2018,
``synthetic_data_experiments/2D{Ring,Grid}_GAN&PacGAN/config.py`` and
``pacgan/extensions.py``), which took them from VEEGAN (Srivastava et al., 2017):

``ring``
    8 Gaussians of standard deviation 0.01 with equal weights, centred at
    :math:`(\cos(2\pi i/8), \sin(2\pi i/8))`, :math:`i = 0..7` (the circle of radius 1).
``grid``
    25 Gaussians of standard deviation 0.05 with equal weights, centred at
    :math:`\{-4, -2, 0, 2, 4\}^2`.

Metric, eq. (toy-1): of ``N = 2500`` generated samples, a sample is **high quality** when its
distance to the nearest mode is under 3 standard deviations; a mode is **captured** when it is
the nearest mode of at least one high-quality sample:

.. math:: \mathrm{HQ} = \frac1N \sum_i
          \big[\min_j \lVert \tilde x_i - \mu_j \rVert < 3\sigma_{mode}\big],
          \qquad \mathrm{modes} = \big|\{ j^*(i) : \tilde x_i \text{ high quality} \}\big|

with :math:`\sigma_{mode}` the modes' standard deviation and :math:`j^*(i) = \arg\min_j
\lVert \tilde x_i - \mu_j \rVert`. (Real data scores :math:`1 - e^{-9/2} = 98.9\%` high
quality: the squared distance over :math:`\sigma_{mode}^2` is :math:`\chi^2_2`.)

:func:`train` is a tight training loop for these data (fresh samples from the mixture at
every step, no epochs, no checkpoints) used by ``benchmarks/toy2d.py`` and the tests.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..backend import Backend
from .gan import GANTrainer

N_EVAL = 2500
THRESHOLD = 3.0


def ring_modes(n_modes=8, radius=1.0):
    """Centres ``(n_modes, 2)`` equally spaced on the circle of ``radius``."""
    angle = 2.0 * math.pi * np.arange(n_modes) / n_modes
    return radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def grid_modes(values=(-4.0, -2.0, 0.0, 2.0, 4.0)):
    """Centres ``(len(values)**2, 2)`` on the grid ``values x values``."""
    a, b = np.meshgrid(values, values, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1).astype(np.float64)


#: name -> (mode centres, standard deviation of each Gaussian)
MIXTURES = {"ring": (ring_modes(), 0.01), "grid": (grid_modes(), 0.05)}


def mixture(name):
    """``(modes (K, 2), std)`` of the mixture ``"ring"`` or ``"grid"``."""
    if name not in MIXTURES:
        raise ValueError(f"unknown 2-D mixture {name!r}; choose one of {', '.join(MIXTURES)}")
    return MIXTURES[name]


def sample(name, n, rng):
    """``n`` points ``(n, 2)`` float32 of the mixture, equal weights; ``rng`` a NumPy Generator."""
    modes, std = mixture(name)
    j = rng.integers(0, len(modes), size=n)
    x = modes[j] + std * rng.standard_normal((n, 2))
    return x.astype(np.float32)


def nearest_mode(x, modes):
    """Index ``(N,)`` of the nearest centre and the distance ``(N,)`` to it, for ``x``
    ``(N, 2)``."""
    x = np.asarray(x, dtype=np.float64)
    d2 = np.sum((x[:, None, :] - modes[None, :, :]) ** 2, axis=-1)
    j = np.argmin(d2, axis=1)
    return j, np.sqrt(d2[np.arange(len(x)), j])


def mode_metrics(x, name):
    """Eq. (toy-1) for samples ``x`` ``(N, 2)`` of mixture ``name``.

    Returns ``{"modes": captured modes, "high_quality": fraction in [0, 1], "counts":
    high-quality samples per mode (list of K ints)}``.
    """
    modes, std = mixture(name)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"mode_metrics: expected samples of shape (N, 2), got {x.shape}")
    finite = np.all(np.isfinite(x), axis=1)
    counts = np.zeros(len(modes), dtype=np.int64)
    if finite.any():
        j, dist = nearest_mode(x[finite], modes)
        good = dist < THRESHOLD * std
        counts = np.bincount(j[good], minlength=len(modes))
    return {"modes": int(np.count_nonzero(counts)),
            "high_quality": float(counts.sum()) / max(len(x), 1),
            "counts": counts.tolist()}


def train(name, steps, config=None, batch=None, seed=0, lr_final=None, decay_start=0.0, scale=1.0,
          snapshots=(), n_eval=N_EVAL, backend="numpy"):
    """Train a GAN on mixture ``name`` with fresh data every step; return the trainer and a log.

    Parameters
    ----------
    name : {"ring", "grid"}
    steps : int
        Discriminator steps (each on a fresh real batch); ``k`` of them per generator step.
    config : dict, optional
        :class:`~nnscratch.models.gan.GANTrainer` config; the ``"toy"`` preset by default.
    batch : int, optional
        Samples per step (real and fake each); the preset's ``batch_size`` by default. Must be
        a multiple of ``pack``.
    seed : int
        Seeds the initialisation, the noise and the data.
    lr_final : float, optional
        If given, both learning rates decay geometrically from ``lr`` to ``lr_final``
        between step ``decay_start * steps`` and the last step (precise modes need a small
        final step; Adam's steps are about ``lr`` in size whatever the gradient).
    decay_start : float
        Fraction of the run at the constant learning rate ``lr`` before the decay.
    scale : float
        The networks see ``scale * x``: the generator's samples are divided by ``scale``
        before they are measured or returned (a fixed change of units, see the module
        docstring).
    snapshots : iterable of int
        Steps after which to keep ``n_eval`` samples (``0``: before training).

    Returns
    -------
    trainer : GANTrainer
    log : dict
        ``"metrics"`` (eq. toy-1 on ``n_eval`` samples from a fixed noise batch after the
        last step), ``"seconds"`` (training time), ``"snapshots"`` ({step: samples (n, 2)}),
        ``"history"`` (the dicts returned by ``step``, every 10th step).
    """
    config = {"preset": "toy", **(config or {})}
    b = Backend(backend, "float32", seed=seed)
    trainer = GANTrainer(config, backend=b)
    batch = int(batch or trainer.config["batch_size"])
    rng = np.random.default_rng(seed + 10_000)
    snapshots = set(int(s) for s in snapshots)
    snaps, history = {}, []
    lr0 = float(trainer.config["lr"])
    t0 = int(decay_start * steps)
    decay = 1.0 if lr_final is None else (float(lr_final) / lr0) ** (1.0 / max(steps - t0, 1))
    def draw():
        return trainer.sample(n_eval, seed=seed + 20_000) / np.float32(scale)

    if 0 in snapshots:
        snaps[0] = draw()
    start = time.perf_counter()
    for t in range(1, steps + 1):
        out = trainer.step(b.asarray(np.float32(scale) * sample(name, batch, rng)))
        if decay != 1.0 and t > t0:
            for opt in trainer.optimizers.values():
                opt.lr *= decay
        if t % 10 == 0:
            history.append({k: float(v) for k, v in out.items()})
        if t in snapshots:
            snaps[t] = draw()
    seconds = time.perf_counter() - start
    x = draw()
    return trainer, {"metrics": mode_metrics(x, name), "seconds": seconds,
                     "snapshots": snaps, "history": history, "samples": x}
