"""The ``Dataset`` record, dynamic binarisation and mini-batch index generation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = ["Dataset", "binarize", "batches"]


@dataclass
class Dataset:
    """One split of an image dataset, ready for a model.

    Attributes:
        x: ``(N, 784)`` float32 pixel intensities in ``[0, 1]`` (the stored ``uint8 / 255``),
            or ``{0, 1}`` after binarisation. Rows are 28x28 images in row-major order.
        labels: ``(N,)`` int64 class indices in ``0..9``.
        name: dataset name, e.g. ``"fashion-mnist"``.
        split: ``"train"`` or ``"test"``.
        source: the directory or file the data was read from.
        class_names: the 10 human-readable class names, ``class_names[labels[i]]``.
    """

    x: np.ndarray
    labels: np.ndarray
    name: str
    split: str
    source: str
    class_names: tuple[str, ...]

    image_shape = (28, 28)  # class constant, not a field

    def __len__(self) -> int:
        return len(self.labels)

    def images(self) -> np.ndarray:
        """``x`` reshaped to ``(N, 28, 28)`` for plotting (a view, no copy)."""
        return self.x.reshape(len(self), *self.image_shape)


def binarize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r"""Dynamic binarisation: sample each pixel as a Bernoulli variable with mean ``x``.

    .. math:: x^{bin}_{ij} \sim \mathrm{Bernoulli}(x_{ij}), \qquad
              x^{bin}_{ij} = [u_{ij} < x_{ij}], \; u_{ij} \sim U[0, 1)

    This is the usual way to train a VAE with a Bernoulli decoder on grey-level images.
    "Dynamic" means a fresh sample each time a batch is seen, so call this per batch inside
    the training loop rather than once on the whole dataset.

    Args:
        x: ``(..., D)`` intensities in ``[0, 1]``.
        rng: the numpy Generator; the same state gives the same sample.

    Returns:
        float32 array of 0s and 1s, same shape as ``x``.
    """
    x = np.asarray(x)
    u = rng.random(x.shape, dtype=np.float32)  # float32 halves the memory of the uniform draw
    return (u < x).astype(np.float32)


def batches(
    n: int,
    batch_size: int,
    rng: np.random.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = True,
) -> Iterator[np.ndarray]:
    """Index arrays of the mini-batches of one epoch over ``n`` examples.

    The permutation is drawn once, when ``batches`` is called (not lazily at the first
    ``next``), with exactly one ``rng.permutation(n)``. So a trainer that owns ``rng`` can
    checkpoint ``rng.bit_generator.state`` just before the call, and on resume restore it,
    call ``batches`` again and skip the batches already done: it gets the same epoch.

    Args:
        n: number of examples.
        batch_size: examples per batch.
        rng: numpy Generator for the shuffle (needed only when ``shuffle``).
        shuffle: random order (the default) or ``0..n-1`` in order.
        drop_last: drop the final, smaller batch, so every batch has ``batch_size`` rows
            (stable statistics for GAN training); with ``False`` every index appears once.

    Returns:
        iterator of int64 arrays of shape ``(batch_size,)`` (the last may be shorter when
        ``drop_last=False``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if shuffle:
        if rng is None:
            raise ValueError("batches(shuffle=True) needs rng=np.random.default_rng(seed)")
        order = rng.permutation(n)
    else:
        order = np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return (order[i:i + batch_size] for i in range(0, stop, batch_size))
