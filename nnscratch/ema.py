r"""An exponential moving average of a network's weights (Polyak averaging; for GANs,
Yazici et al., 2019).

The generator of a GAN does not converge to a point: it circles around one, and its
samples carry the noise of the last few steps (speckle, colour drift). The average of its
recent weights sits nearer the centre. After every update of the network, eq. (ema-1):

.. math:: \theta_{ema} \leftarrow \beta_t\, \theta_{ema} + (1 - \beta_t)\, \theta,
          \qquad \beta_t = \min\Big(\beta, \frac{1 + t}{10 + t}\Big)

where :math:`t` counts the updates made so far (0 for the first). The warm-up
:math:`\beta_t` (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``) forgets
the initial weights almost at once: after :math:`t` updates they keep the weight
:math:`\prod_{i<t} \beta_i = 1 / \binom{t+9}{9}` (5e-4 after 5 updates, 1e-5 after 10),
where a constant 0.999 would keep :math:`0.999^t` (0.37 after 1000). Then the average
spans a window that grows with training, :math:`1 / (1 - \beta_t) = (10 + t) / 9`
updates (mean age :math:`t / 10`), until :math:`\beta_t` reaches :math:`\beta` (at
:math:`t = 8990` for 0.999). No gradient flows through the average: it is a second copy
of the network, used for sampling only.

Buffers that are not weights (a batch normalisation's running statistics) are copied from
the network, not averaged. Strictly they describe the trained network's activations, not
the average's; recomputing them for the average on a few batches of noise (BigGAN's
"standing statistics") is the exact alternative. The copy is what the measured results in
``docs/gan.md`` use.
"""
from __future__ import annotations

import numpy as np

from .fused import elementwise


@elementwise("T p, T keep, T take", "T a", "a = keep * a + take * p;")
def moving_average(p, keep, take, a):
    r"""One step of an exponential moving average of ``p`` into ``a``, in place:
    ``a = keep * a + take * p``; returns ``a``. Eq. (ema-1) has ``keep`` :math:`= \beta_t`
    and ``take`` :math:`= 1 - \beta_t`; the running statistics of batch normalisation,
    eq. (bn-3), have ``keep`` :math:`= 1 - \rho` and ``take`` :math:`= \rho` (the mean) or
    :math:`\rho B / (B - 1)` (the variance). In place: the average is a long-lived array
    that a new one would only replace."""
    a *= keep
    a += take * p
    return a


class EMA:
    """Keeps ``average`` (a module) the moving average, eq. (ema-1), of ``module``'s
    parameters; both have the same architecture. ``decay`` is :math:`\\beta` in (0, 1)."""

    def __init__(self, module, average, decay=0.999):
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f"EMA: decay must be in (0, 1), got {decay}")
        self.module, self.average, self.decay = module, average, float(decay)
        self.t = 0
        self.copy_weights()

    def beta(self):
        """:math:`\\beta_t` of eq. (ema-1) for the next update."""
        return min(self.decay, (1.0 + self.t) / (10.0 + self.t))

    def update(self):
        """One step of eq. (ema-1), in place; then copy the buffers."""
        beta = self.beta()
        params = self.module.params
        for name, a in self.average.params.items():
            moving_average(params[name], beta, 1.0 - beta, a)   # eq. (ema-1)
        self.t += 1
        self.copy_buffers()

    def copy_weights(self):
        """Set the average to the network's current weights (at the start of training)."""
        self.average.load_state_dict(self.module.state_dict())

    def copy_buffers(self):
        """The network's buffers (not weights) into the average."""
        buffers = self.module.buffers
        for name, a in self.average.buffers.items():
            a[...] = buffers[name]

    def state_dict(self):
        """The update count (the averaged weights are saved as a network of their own)."""
        return {"t": np.asarray(self.t)}

    def load_state_dict(self, state):
        self.t = int(state["t"])
