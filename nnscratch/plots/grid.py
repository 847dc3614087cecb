"""Generic figures: image grids and training curves."""
from __future__ import annotations

import math
import os

import numpy as np


def pyplot():
    """matplotlib's pyplot with a file-only backend, or a clear ImportError."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("figures need matplotlib: pip install 'nnscratch[plot]'") from err
    return plt


def image_grid(images, nrow=None, side=28, pad=2):
    """Tile images ``(N, side*side)`` in [0, 1] into one 2-D array with ``nrow`` per row."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0).reshape(-1, side, side)
    n = len(images)
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    ncol_rows = int(math.ceil(n / nrow))
    grid = np.ones((ncol_rows * (side + pad) + pad, nrow * (side + pad) + pad), np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, nrow)
        top, left = pad + r * (side + pad), pad + c * (side + pad)
        grid[top:top + side, left:left + side] = img
    return grid


def save_image_grid(images, path, nrow=None, title=None, row_names=None):
    """Save a grid of images ``(N, 784)`` in [0, 1] as a PNG, ``nrow`` per row (default: a
    square), each row named by ``row_names`` when given; returns ``path``."""
    plt = pyplot()
    grid = image_grid(images, nrow)
    height = grid.shape[0] / 40 + (0.4 if title else 0)
    width = grid.shape[1] / 40 + (1.0 if row_names else 0)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    if row_names:
        # the middle of row r of image_grid (pad 2, side 28)
        ax.set_xticks([])
        ax.set_yticks([2 + 30 * r + 14 for r in range(len(row_names))], row_names, fontsize=7)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.tick_params(left=False)
    else:
        ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    try:
        save_atomic(fig, path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def save_class_grid(images, path, per_class, class_names=None, title=None):
    """Save images ``(C * per_class, 784)``, class by class, as a grid with one row per
    class, each row named by its class (``class_names``, default the class indices)."""
    n_rows = len(images) // per_class
    names = list(class_names) if class_names else [str(c) for c in range(n_rows)]
    return save_image_grid(images, path, per_class, title, row_names=names[:n_rows])


def save_atomic(fig, path, **options):
    """``fig.savefig(path)`` through the project's temporary file and rename
    (:func:`nnscratch.training.checkpoint.atomic_file`), so that a full disk or a kill never
    leaves a truncated figure where a good one was, a symbolic link at ``path`` is replaced
    rather than written through, and a killed write leaves a temporary file that the next
    run recognises as its own."""
    import io

    from ..training.checkpoint import atomic_file
    # drawn in memory first (a figure is small), so a full disk's message says its size
    image = io.BytesIO()
    fig.savefig(image, format=os.path.splitext(str(path))[1][1:] or "png", **options)
    with atomic_file(path, image.tell()) as f:
        f.write(image.getbuffer())


def metric_keys(records):
    """The ``train_*`` and ``test_*`` keys of the per-epoch log ``records``, in log order."""
    keys = []
    for r in records:
        keys += [k for k in r if k.startswith(("train_", "test_")) and k not in keys]
    return keys


def save_curves(records, keys, path, title=None, ylabel=None):
    """Plot ``keys`` of the per-epoch log ``records`` against the epoch; returns ``path``.

    An epoch without a value for a key (held-out metrics computed every few epochs only) is
    left out of that key's line rather than drawn as a gap."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key in keys:
        points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
        if points:
            epochs, values = zip(*points)
            ax.plot(epochs, values, marker="o", ms=3, label=key)
    ax.set_xlabel("epoch")
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path
