"""Figures of a GAN: samples from a fixed noise batch, the two losses, and the means of
D(x) and D(G(z)) over training.

matplotlib is imported inside the functions (through :func:`nnscratch.plots.grid.pyplot`).
"""
from __future__ import annotations

import os

import numpy as np

from .grid import pyplot, save_atomic, save_class_grid, save_image_grid

SAMPLE_SEED = 1234        # the same noise every epoch, so successive grids are comparable


def save_samples(trainer, path, n=64, seed=SAMPLE_SEED, title=None, class_names=None):
    """A grid of ``n`` images ``G(z)`` from the fixed noise batch drawn with ``seed``; a
    conditional GAN: one row of 8 per class, ``G([z, y])``."""
    if getattr(trainer, "conditional", False):
        labels = trainer.class_grid_labels(8)
        return save_class_grid(trainer.sample(len(labels), seed=seed, labels=labels), path, 8,
                               class_names, title or "samples G([z, y]), fixed z, a row per class")
    return save_image_grid(trainer.sample(n, seed=seed), path, nrow=int(np.ceil(np.sqrt(n))),
                           title=title or "samples G(z), fixed z")


def running_mean(values, window):
    """Mean of the last ``window`` values at each position (shorter at the start)."""
    v = np.asarray(values, dtype=np.float64)
    c = np.cumsum(np.insert(v, 0, 0.0))
    lo = np.maximum(np.arange(1, len(v) + 1) - window, 0)
    return (c[1:] - c[lo]) / (np.arange(1, len(v) + 1) - lo)


def _curves(axes, x, series, xlabel):
    ax_loss, ax_d = axes
    for key, style in (("loss_D", "-"), ("loss_G", "-")):
        if key in series:
            ax_loss.plot(x, series[key], style, label=key)
    for key in ("D_real", "D_fake"):
        if key in series:
            label = key.replace("D_real", "D(x)").replace("D_fake", "D(G(z))")
            ax_d.plot(x, series[key], label=label)
    for key in ("test_D_real", "test_D_fake"):
        if key in series:
            label = "held-out D(x)" if key == "test_D_real" else "held-out D(G(z))"
            ax_d.plot(x, series[key], "--", label=label)
    ax_d.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax_loss.set_ylabel("loss (nats)")
    ax_d.set_ylabel(r"mean $D(\cdot) = \sigma(s(\cdot))$")
    ax_d.set_ylim(0.0, 1.0)
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def save_epoch_curves(records, path, title="GAN"):
    r"""Per-epoch means from the training loop's log (``train_loss_D``, ``train_D_real``...,
    and ``test_D_real``/``test_D_fake`` when evaluated): losses left, the mean probabilities
    :math:`D = \sigma(s)` right. At the equilibrium of the GAN game both means of D tend to
    1/2 (dotted line)."""
    plt = pyplot()
    x = [r["epoch"] for r in records]
    series = {}
    for key in ("loss_D", "loss_G", "D_real", "D_fake"):
        if any(f"train_{key}" in r for r in records):
            series[key] = [r.get(f"train_{key}", np.nan) for r in records]
    for key in ("test_D_real", "test_D_fake"):
        if any(key in r for r in records):
            series[key] = [r.get(key, np.nan) for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    _curves(axes, x, series, "epoch")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def save_step_curves(history, path, window=50, every=1, title="GAN"):
    """Running means (over ``window`` entries) of the dicts returned by ``trainer.step``,
    logged every ``every`` steps: losses left, mean D(x) and D(G(z)) right."""
    plt = pyplot()
    x = np.arange(1, len(history) + 1) * every
    series = {key: running_mean([h[key] for h in history], window)
              for key in ("loss_D", "loss_G", "D_real", "D_fake") if history and key in history[0]}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    _curves(axes, x, series, "step")
    fig.suptitle(f"{title} (running means over {window * every} steps)", fontsize=10)
    fig.tight_layout()
    save_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def epoch_figures(trainer, out_dir, data, records):
    """What the training loop writes after every epoch (overwriting the previous epoch's):
    ``samples.png`` (images only) and ``curves.png``."""
    paths = [save_epoch_curves(records, os.path.join(out_dir, "curves.png"),
                               f"GAN ({trainer.config.get('preset')}, pack "
                               f"{trainer.config.get('pack')})")]
    if trainer.config.get("data_dim") == 784:
        paths.append(save_samples(trainer, os.path.join(out_dir, "samples.png"),
                                  title=f"samples G(z), fixed z, epoch {records[-1]['epoch']}",
                                  class_names=getattr(data, "class_names", None)))
    return paths


__all__ = ["save_samples", "running_mean", "save_epoch_curves", "save_step_curves",
           "epoch_figures"]
