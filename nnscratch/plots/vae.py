"""Figures of a VAE: samples, reconstructions, and for a 2-D latent the scatter of the
test codes coloured by class and the decoded manifold."""
from __future__ import annotations

import os

import numpy as np

from .grid import image_grid, pyplot, save_curves, save_image_grid

SAMPLE_SEED = 1234        # the same prior draws every epoch, so grids are comparable


def save_reconstructions(trainer, x, path, n=16):
    """Originals (top row) above their reconstructions sigma(f_dec(mu(x))) (bottom row)."""
    x = np.asarray(x[:n])
    return save_image_grid(np.concatenate([x, trainer.reconstruct(x)]), path, nrow=len(x),
                           title="data (top) and reconstructions (bottom)")


def save_latent_scatter(trainer, data, path, n=5000):
    """Posterior means mu(x) of ``n`` test images, coloured by label (k = 2 only)."""
    plt = pyplot()
    mu = trainer.encode(data.x[:n])
    labels = data.labels[:n]
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
    bar = fig.colorbar(points, ticks=range(10))
    names = getattr(data, "class_names", None)
    if names:
        bar.ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("$\\mu_1$")
    ax.set_ylabel("$\\mu_2$")
    ax.set_title("test images in the latent space")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_manifold(trainer, path, n=15):
    """Decode a grid of z over the Gaussian quantiles 0.05..0.95 (Kingma & Welling, fig. 4)."""
    from statistics import NormalDist
    q = np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, n)], np.float32)
    z = np.array([[z1, z2] for z2 in q[::-1] for z1 in q], np.float32)
    return save_image_grid(trainer.decode(z), path, nrow=n, title="decoded latent manifold")


def epoch_figures(trainer, out_dir, data, records):
    """What the training loop writes after every epoch (overwriting the previous epoch's)."""
    paths = [save_curves(records, ["train_loss", "test_neg_elbo", "test_iwae"],
                         os.path.join(out_dir, "loss.png"), "VAE", "nats per image"),
             save_image_grid(trainer.sample(64, seed=SAMPLE_SEED),
                             os.path.join(out_dir, "samples.png"), nrow=8,
                             title=f"samples from the prior, epoch {records[-1]['epoch']}"),
             save_reconstructions(trainer, data.x, os.path.join(out_dir, "reconstructions.png"))]
    if trainer.vae.latent == 2:
        paths.append(save_latent_scatter(trainer, data, os.path.join(out_dir, "latent.png")))
        paths.append(save_manifold(trainer, os.path.join(out_dir, "manifold.png")))
    return paths


__all__ = ["image_grid", "save_reconstructions", "save_latent_scatter", "save_manifold",
           "epoch_figures"]
