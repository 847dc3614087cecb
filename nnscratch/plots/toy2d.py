"""Figures of the 2-D benchmark: samples over training, and the discriminator over the plane.

matplotlib is imported inside the functions (through :func:`nnscratch.plots.grid.pyplot`),
so importing this module costs nothing.
"""
from __future__ import annotations

import numpy as np

from ..models.toy2d import mixture
from .grid import pyplot, save_atomic


def _limits(name):
    modes, std = mixture(name)
    pad = 0.35 * (modes.max() - modes.min()) / 2 + 6 * std
    return modes.min() - pad, modes.max() + pad


def _panel(ax, x, name, title=None, marker_size=2.0):
    modes, _ = mixture(name)
    lo, hi = _limits(name)
    ax.scatter(x[:, 0], x[:, 1], s=marker_size, c="tab:blue", alpha=0.35, linewidths=0,
               rasterized=True)
    ax.scatter(modes[:, 0], modes[:, 1], s=30, marker="x", c="tab:red", linewidths=1.0)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def samples_over_training(rows, name, path=None, panel_size=1.6, dpi=100):
    """A grid of scatter plots: one row per run, one panel per training step.

    Parameters
    ----------
    rows : dict
        label (e.g. "GAN", "PacGAN2") -> {step: samples ``(n, 2)``}; all rows should share
        the steps. The real modes are marked with red crosses, so a collapsed generator shows
        as crosses without blue points around them.
    name : {"ring", "grid"}
    path : str, optional
        Where to save the figure (PNG); the figure is returned either way.
    """
    plt = pyplot()
    labels = list(rows)
    steps = sorted({s for r in rows.values() for s in r})
    fig, axes = plt.subplots(len(labels), len(steps), squeeze=False,
                             figsize=(panel_size * len(steps), panel_size * len(labels) + 0.2))
    for i, label in enumerate(labels):
        for j, step in enumerate(steps):
            ax = axes[i, j]
            if step in rows[label]:
                _panel(ax, np.asarray(rows[label][step]), name,
                       title=f"step {step}" if i == 0 else None)
            else:
                ax.axis("off")
        axes[i, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout(pad=0.3)
    if path is not None:
        save_atomic(fig, path, dpi=dpi)
    return fig


def discriminator_map(trainer, name, samples=None, path=None, resolution=200, title=None,
                      ax=None, scale=1.0, dpi=100):
    r"""The discriminator's probability :math:`D(x) = \sigma(s(x))` as a heat map over the
    plane, with generated ``samples`` ``(n, 2)`` and the real modes overlaid.

    With pack ``m`` > 1, D judges ``m`` points at once; the map shows D on ``m`` copies of
    the same point (what D says about a fully collapsed pack at ``x``). ``scale``: the
    factor the networks were trained with (:func:`nnscratch.models.toy2d.train`); D is evaluated
    at ``scale * x``.
    """
    plt = pyplot()

    lo, hi = _limits(name)
    g = np.linspace(lo, hi, resolution)
    X, Y = np.meshgrid(g, g)
    p = trainer.discriminator_probability(scale * np.stack([X.ravel(), Y.ravel()], axis=1))
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
    else:
        fig = ax.figure
    im = ax.imshow(p.reshape(X.shape), origin="lower", extent=(lo, hi, lo, hi), cmap="RdBu_r",
                   vmin=0.0, vmax=1.0, interpolation="bilinear")
    if samples is not None:
        samples = np.asarray(samples)
        ax.scatter(samples[:, 0], samples[:, 1], s=1.5, c="k", alpha=0.5, linewidths=0,
                   rasterized=True)
    modes, _ = mixture(name)
    ax.scatter(modes[:, 0], modes[:, 1], s=30, marker="x", c="lime", linewidths=1.0)
    ax.set_aspect("equal")
    ax.set_title(title or r"$D(x) = \sigma(s(x))$ with samples of $G$", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if own:
        fig.tight_layout(pad=0.3)
        if path is not None:
            save_atomic(fig, path, dpi=dpi)
    return fig
