"""The one builder of every dense network in the models: a stack of :class:`Dense` layers
with a (leaky) ReLU between them, as the VAE's encoder and decoder and the GAN's generator
and discriminator all are."""
from __future__ import annotations

from ..activations import Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from ..batchnorm import BatchNorm1d
from ..dense import Dense
from ..dropout import Dropout
from ..module import Sequential
from ..spectral import SpectralNormDense

OUTPUTS = ("linear", "sigmoid", "hidden")


def mlp(sizes, alpha, init, backend, output="linear", norm="none", spectral=False,
        dropout=0.0):
    """Dense layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    A (leaky) ReLU of slope ``alpha`` (0: ReLU; ``"tanh"``: a tanh, as in the networks of
    the likelihood benchmarks) follows every layer but the last; after
    the last comes ``output``: ``"linear"`` an :class:`Identity` (logits, points of the
    plane; it marks the output as linear for a reader of the layer list), ``"sigmoid"`` a
    :class:`Sigmoid` (images in [0, 1]) or
    ``"hidden"`` the same activation (a feature extractor such as the VAE's encoder body).
    ``init="he"`` uses He's gain on layers an activation follows and Glorot on a last
    layer that none follows.

    The GAN's stabilisers: ``norm="batch"`` puts a :class:`BatchNorm1d` between each hidden
    layer and its activation, ``spectral`` makes every layer a :class:`SpectralNormDense`,
    ``dropout`` > 0 puts a :class:`Dropout` after each hidden activation.
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
    layers = []
    n = len(sizes) - 1
    for i in range(n):
        activated = i < n - 1 or output == "hidden"
        layer_init = init if (activated or init != "he") else "glorot"
        dense = SpectralNormDense if spectral else Dense
        layers.append(dense(sizes[i], sizes[i + 1], init=layer_init,
                            alpha=0.0 if alpha == "tanh" else alpha, backend=backend))
        if activated:
            if norm == "batch":
                layers.append(BatchNorm1d(sizes[i + 1], backend=backend))
            layers.append(_activation(alpha, backend))
            if dropout:
                layers.append(Dropout(dropout, backend=backend))
    if output == "sigmoid":
        layers.append(Sigmoid(backend=backend))
    elif output == "linear":
        layers.append(Identity(backend=backend))
    return Sequential(*layers, backend=backend)


def _activation(alpha, backend):
    """The hidden activation: ``"tanh"``, a leaky ReLU of slope ``alpha``, or a ReLU (0)."""
    if alpha == "tanh":
        return Tanh(backend=backend)
    return LeakyReLU(alpha, backend=backend) if alpha else ReLU(backend=backend)
