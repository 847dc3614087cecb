"""The public API refuses bad arguments with a message a student can act on (issue 18, item 6).

Each case was, before its check, either a crash deep inside ("float division by zero",
"too many values to unpack") or, worse, a silently wrong result (a label of 10 dropping its
example from the loss, ``Dense(2.5, 3)`` becoming 2 -> 3, an empty gradient check reading
as success).
"""
import math

import numpy as np
import pytest

import nnscratch as nn


@pytest.fixture
def b():
    return nn.Backend("numpy", dtype="float64", seed=0)


# -- softmax cross-entropy: labels are integers in [0, K) ---------------------------------
@pytest.mark.parametrize("bad", [10, -1, 11])
def test_softmax_labels_out_of_range(b, bad):
    s = b.normal((3, 10))
    labels = np.array([0, bad, 2])
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        nn.softmax_cross_entropy(s, labels)


def test_softmax_labels_must_be_integers(b):
    with pytest.raises(TypeError, match="integers"):
        nn.softmax_cross_entropy(b.normal((3, 10)), np.array([0.0, 0.5, 2.0]))


def test_softmax_valid_labels_still_work(b):
    L, ds = nn.softmax_cross_entropy(b.normal((4, 10)), np.array([0, 9, 3, 3], dtype=np.uint8))
    assert math.isfinite(float(L)) and ds.shape == (4, 10)


# -- optimizers' hyperparameters ------------------------------------------------------------
def net(b):
    return nn.Sequential(nn.Dense(3, 2, backend=b))


@pytest.mark.parametrize("lr", [0, -1e-3, math.nan, math.inf, "0.1", None])
@pytest.mark.parametrize("opt", [nn.Adam, nn.SGD])
def test_learning_rate(b, opt, lr):
    with pytest.raises(ValueError, match="learning rate"):
        opt(net(b), lr=lr)


@pytest.mark.parametrize("kwargs, field", [
    ({"eps": 0.0}, "eps"), ({"eps": -1e-8}, "eps"), ({"eps": math.nan}, "eps"),
    ({"betas": (1.0, 0.999)}, "betas"), ({"betas": (0.9, math.nan)}, "betas"),
    ({"betas": (-0.1, 0.999)}, "betas"), ({"betas": (0.9,)}, "betas"),
    ({"weight_decay": -0.01}, "weight_decay"), ({"weight_decay": math.inf}, "weight_decay"),
])
def test_adam_hyperparameters(b, kwargs, field):
    with pytest.raises(ValueError, match=field):
        nn.Adam(net(b), **kwargs)


@pytest.mark.parametrize("momentum", [-0.5, 1.0, math.nan])
def test_sgd_momentum(b, momentum):
    with pytest.raises(ValueError, match="momentum"):
        nn.SGD(net(b), momentum=momentum)


# -- layer sizes ----------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [nn.Dense, nn.SpectralNormDense])
@pytest.mark.parametrize("n_in, n_out", [(0, 5), (5, 0), (-2, 3), (2.5, 3), (2, True),
                                         ("4", 3)])
def test_dense_sizes(b, layer, n_in, n_out):
    with pytest.raises(ValueError, match="positive integer"):
        layer(n_in, n_out, backend=b)


def test_dense_accepts_numpy_integers(b):
    layer = nn.Dense(np.int64(3), np.int32(2), backend=b)
    assert (layer.n_in, layer.n_out) == (3, 2) and type(layer.n_in) is int


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 1.5}, {"n": 4, "eps": -1e-5},
                                    {"n": 4, "momentum": math.nan}])
def test_batchnorm_arguments(b, kwargs):
    with pytest.raises(ValueError):
        nn.BatchNorm1d(backend=b, **kwargs)


# -- backward before forward ----------------------------------------------------------------
def test_vae_backward_before_forward(b):
    vae = nn.VAE(n_in=6, enc_hidden=(5,), latent=2, backend=b)
    dy = (b.zeros((2, 6)), b.zeros((2, 2)), b.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="before forward"):
        vae.backward(dy)


def test_vae_backward_wrong_upstream(b):
    vae = nn.VAE(n_in=6, enc_hidden=(5,), latent=2, backend=b)
    vae.loss(b.uniform((2, 6)))
    with pytest.raises(TypeError, match=r"\(ds, dmu, dlogvar\)"):
        vae.backward(b.zeros((2, 6)))


@pytest.mark.parametrize("make", [
    lambda b: nn.Dense(3, 2, backend=b), lambda b: nn.SpectralNormDense(3, 2, backend=b),
    lambda b: nn.BatchNorm1d(3, backend=b), lambda b: nn.Dropout(0.5, backend=b),
    lambda b: nn.LeakyReLU(0.2, backend=b), lambda b: nn.Sigmoid(backend=b),
    lambda b: nn.Sequential(nn.Dense(3, 2, backend=b), nn.Tanh(backend=b)),
])
def test_layer_backward_before_forward(b, make):
    layer = make(b)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(b.zeros((2, 2)))


# -- a gradient check that checks nothing ---------------------------------------------------
def test_gradcheck_with_nothing_to_check(b):
    with pytest.raises(ValueError, match="nothing would be checked"):
        nn.gradcheck(nn.Sigmoid(backend=b), b.normal((2, 3)), check_input=False)


def test_gradcheck_input_only_still_reports(b):
    report = nn.gradcheck(nn.Sigmoid(backend=b), b.normal((2, 3)))
    assert set(report) == {"x"} and report["x"] < 1e-7
