"""Figures of a VAE: prior samples, reconstructions, and for a 2-D latent the scatter of the
test codes coloured by class and the decoded manifold (Kingma & Welling, 2014, fig. 4).

Every function takes a :class:`nnscratch.models.vae.VAETrainer`, writes one PNG and returns its
path. matplotlib is imported inside the functions (through :func:`.grid.pyplot`) only.
"""
from __future__ import annotations

import os
from statistics import NormalDist

import numpy as np

from .grid import image_grid, pyplot, save_atomic, save_class_grid, save_curves, save_image_grid

SAMPLE_SEED = 1234        # the same prior draws every epoch, so grids are comparable


def save_samples(trainer, path, n=64, seed=SAMPLE_SEED, title="samples from the prior",
                 class_names=None):
    r"""``n`` images :math:`\sigma(f_{dec}(z))`, :math:`z \sim \mathcal N(0, I)`, 8 per row;
    a conditional model: one row of 8 per class, :math:`\sigma(f_{dec}([z, y]))`."""
    if getattr(trainer, "conditional", False):
        labels = trainer.class_grid_labels(8)
        return save_class_grid(trainer.sample(len(labels), seed=seed, labels=labels), path, 8,
                               class_names, title)
    return save_image_grid(trainer.sample(n, seed=seed), path, nrow=8, title=title)


def save_reconstructions(trainer, x, path, n=16, labels=None):
    r"""Originals (top row) above their reconstructions :math:`\sigma(f_{dec}(\mu(x)))`
    (bottom row), for the first ``n`` rows of ``x`` ``(N, 784)`` (and of their ``labels``
    for a conditional model)."""
    x = np.asarray(x[:n], dtype=np.float32)
    labels = None if labels is None else labels[:n]
    return save_image_grid(np.concatenate([x, trainer.reconstruct(x, labels)]), path,
                           nrow=len(x), title="data (top) and reconstructions (bottom)")


def _require_2d(trainer, what):
    if trainer.vae.latent != 2:
        raise ValueError(f"{what} needs a 2-D latent space (train with --latent 2); "
                         f"this model has k = {trainer.vae.latent}")


def save_latent_scatter(trainer, data, path, n=5000):
    """Posterior means ``mu(x)`` of the first ``n`` images of ``data`` (a Dataset), one colour
    per class, with the class names in the legend (k = 2 only)."""
    _require_2d(trainer, "the latent scatter")
    plt = pyplot()
    labels = np.asarray(data.labels[:n])
    mu = trainer.encode(data.x[:n], labels if getattr(trainer, "conditional", False) else None)
    names = getattr(data, "class_names", None) or [str(c) for c in range(10)]
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for c in np.unique(labels):
        sel = labels == c
        ax.scatter(mu[sel, 0], mu[sel, 1], s=3, color=cmap(int(c) % 10), label=names[int(c)])
    ax.legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel(r"$\mu_1$")
    ax.set_ylabel(r"$\mu_2$")
    ax.set_title("test images in the latent space")
    fig.tight_layout()
    save_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def manifold_codes(n=15, lo=0.05, hi=0.95):
    r"""The ``(n*n, 2)`` grid of codes :math:`z = (\Phi^{-1}(u_1), \Phi^{-1}(u_2))` for
    :math:`u` on an even grid of ``[lo, hi]``: equal probability mass between neighbours
    under the prior. Rows run top to bottom in decreasing :math:`z_2`."""
    q = np.array([NormalDist().inv_cdf(u) for u in np.linspace(lo, hi, n)], np.float32)
    return np.array([[z1, z2] for z2 in q[::-1] for z1 in q], np.float32)


def save_manifold(trainer, path, n=15):
    """Decode the grid of :func:`manifold_codes` into an ``n x n`` image (k = 2 only)."""
    _require_2d(trainer, "the manifold")
    if getattr(trainer, "conditional", False):
        raise ValueError("the manifold of a conditional VAE depends on the class; "
                         "draw it per class with trainer.decode(codes, labels=c)")
    return save_image_grid(trainer.decode(manifold_codes(n)), path, nrow=n,
                           title="decoded latent manifold")


def epoch_figures(trainer, out_dir, data, records):
    """What the training loop writes after every epoch (overwriting the previous epoch's)."""
    paths = [save_curves(records, ["train_loss", "test_neg_elbo", "test_iwae"],
                         os.path.join(out_dir, "loss.png"), "VAE", "nats per image"),
             save_samples(trainer, os.path.join(out_dir, "samples.png"),
                          title=f"samples from the prior, epoch {records[-1]['epoch']}",
                          class_names=getattr(data, "class_names", None)),
             save_reconstructions(trainer, data.x, os.path.join(out_dir, "reconstructions.png"),
                                  labels=data.labels if trainer.conditional else None)]
    if trainer.vae.latent == 2:
        paths.append(save_latent_scatter(trainer, data, os.path.join(out_dir, "latent.png")))
        if not trainer.conditional:
            paths.append(save_manifold(trainer, os.path.join(out_dir, "manifold.png")))
    return paths


__all__ = ["image_grid", "save_samples", "save_reconstructions", "save_latent_scatter",
           "manifold_codes", "save_manifold", "epoch_figures"]
