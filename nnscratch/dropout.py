r"""Inverted dropout (Srivastava et al., 2014), derived in ``docs/stabilisers.md``."""
from __future__ import annotations

from .module import Module


class Dropout(Module):
    r"""Zero each entry with probability ``p`` in training mode, and scale the survivors by
    :math:`1/(1-p)` so that the expected output equals the input; the identity in
    evaluation mode.

    Forward and backward in training mode, eqs. (drop-1), (drop-2), with a mask
    :math:`m_{ni} \sim \mathrm{Bernoulli}(1-p)` drawn afresh on every forward:

    .. math::
        y = \frac{m \odot x}{1 - p}, \qquad
        \frac{\partial L}{\partial x} = \frac{m \odot \delta}{1 - p}

    The mask comes from the backend's generator, so a seed reproduces it and a checkpoint
    (which saves the generator's state on NumPy) restores the masks of a resumed run.
    Shapes: ``x``, ``y`` ``(batch, n)``, any shape in fact. No parameters.

    Parameters
    ----------
    p : float in [0, 1)
        The probability of dropping an entry.
    """

    def __init__(self, p=0.5, backend=None):
        super().__init__(backend)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)

    def describe(self):
        return f"Dropout({self.p:g})"

    def forward(self, x):
        r"""Eq. (drop-1) in training mode, ``y = x`` in evaluation mode (or when ``p = 0``).
        Caches the shape and the scaled mask :math:`m / (1-p)` (None for the identity)."""
        mask = None
        if self.training and self.p > 0.0:
            keep = self.backend.uniform(tuple(x.shape)) >= self.p        # P = 1 - p
            mask = self.backend.xp.astype(keep, self.backend.dtype)
            mask *= 1.0 / (1.0 - self.p)
        self._cache = (tuple(x.shape), mask)
        return x if mask is None else x * mask                           # eq. (drop-1)

    def backward(self, dy, param_grads=True, input_grad=True):
        r"""Eq. (drop-2): :math:`\partial L/\partial x = \delta \odot m / (1-p)` (``dy`` itself
        for the identity), or None if not ``input_grad``."""
        shape, mask = self._cached()
        self._check_dy(dy, shape)
        if not input_grad:
            return None
        return dy if mask is None else dy * mask                         # eq. (drop-2)
