r"""Weight initialisation: keep the variance of activations steady from layer to layer.

For ``W`` of shape ``(n_in, n_out)``:

* He / Kaiming (ReLU family), eq. (init-1): :math:`W_{ij} \sim \mathcal N(0, g^2 / n_{in})`
  with gain :math:`g = \sqrt{2 / (1 + \alpha^2)}` for a leaky ReLU of slope :math:`\alpha`
  (:math:`\alpha = 0`: plain ReLU, :math:`g = \sqrt 2`).
* Glorot / Xavier (sigmoid, tanh, linear), eq. (init-2):
  :math:`W_{ij} \sim \mathcal U(-a, a)`, :math:`a = \sqrt{6 / (n_{in} + n_{out})}`.
* ``"pytorch"``, eq. (init-3): PyTorch's ``nn.Linear`` default,
  :math:`W_{ij}, b_j \sim \mathcal U(-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}})`, kept for
  like-for-like comparisons with PyTorch.

Biases start at zero except for ``"pytorch"``.
"""
from __future__ import annotations

import math

INITS = ("he", "glorot", "pytorch")


def he_gain(alpha=0.0):
    """Gain of a leaky ReLU of negative slope ``alpha``: sqrt(2 / (1 + alpha^2))."""
    return math.sqrt(2.0 / (1.0 + alpha * alpha))


def init_dense(backend, n_in, n_out, init="he", alpha=0.0):
    """Return ``(W, b)`` of shapes ``(n_in, n_out)`` and ``(n_out,)`` drawn by ``init``:
    ``"he"`` eq. (init-1), ``"glorot"`` eq. (init-2), ``"pytorch"`` eq. (init-3)."""
    if init == "he":                                          # eq. (init-1)
        W = backend.normal((n_in, n_out), std=he_gain(alpha) / math.sqrt(n_in))
        b = backend.zeros((n_out,))
    elif init == "glorot":                                    # eq. (init-2)
        a = math.sqrt(6.0 / (n_in + n_out))
        W = backend.uniform((n_in, n_out), -a, a)
        b = backend.zeros((n_out,))
    elif init == "pytorch":                                   # eq. (init-3)
        a = 1.0 / math.sqrt(n_in)
        W = backend.uniform((n_in, n_out), -a, a)
        b = backend.uniform((n_out,), -a, a)
    else:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    return W, b
