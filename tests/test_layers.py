"""Layers: float64 gradient checks on every backend, the module contract, clear errors.

Threshold: 1e-7 relative error (nnscratch.gradcheck explains why: smooth functions in
float64 with h = 1e-6 give about 1e-10; a wrong backward gives about 1). Inputs of the
ReLU family are kept at least 0.1 away from the kink at 0, where finite differences with
h = 1e-6 are exact again.
"""
import math

import numpy as np
import pytest

import nnscratch as nn
from conftest import TOLERANCE


def test_every_gradient_check_uses_the_suites_own_threshold():
    """conftest.TOLERANCE, 1e-7, is the one threshold; a test that took the library's (in
    nnscratch/gradcheck.py) would pass any gradient if that were set to 10."""
    import pathlib
    import re
    assert TOLERANCE == 1e-7
    library = re.compile(r"^from nnscratch[.\w]* import [^\n]*\bTOLERANCE\b"
                         r"|\bgradcheck[.]TOLERANCE", re.MULTILINE)
    offenders = [p.name for p in pathlib.Path(__file__).parent.glob("test_*.py")
                 if library.search(p.read_text())]
    assert offenders == []


def away_from_zero(b, shape, margin=0.1):
    x = nn.to_numpy(b.normal(shape))
    x = np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin + x, x)
    return b.asarray(x)


@pytest.mark.parametrize("init", ["he", "glorot", "pytorch"])
def test_dense_gradcheck(b64, init):
    layer = nn.Dense(5, 3, init=init, backend=b64)
    report = nn.gradcheck(layer, b64.normal((4, 5)))
    assert set(report) == {"W", "b", "x"}
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


@pytest.mark.parametrize("make", [
    lambda b: nn.ReLU(backend=b),
    lambda b: nn.LeakyReLU(0.2, backend=b),
    lambda b: nn.LeakyReLU(0.01, backend=b),
    lambda b: nn.Sigmoid(backend=b),
    lambda b: nn.Tanh(backend=b),
    lambda b: nn.Identity(backend=b),
], ids=["relu", "lrelu0.2", "lrelu0.01", "sigmoid", "tanh", "identity"])
def test_activation_gradcheck(b64, make):
    layer = make(b64)
    report = nn.gradcheck(layer, away_from_zero(b64, (4, 6)))
    assert report["x"] < TOLERANCE, nn.format_report(report)


def test_composed_network_with_bce_gradcheck(b64):
    """Dense-LeakyReLU-Dense-Sigmoid trained with BCE on probabilities."""
    net = nn.Sequential(nn.Dense(6, 8, backend=b64), nn.LeakyReLU(0.2, backend=b64),
                        nn.Dense(8, 4, init="glorot", backend=b64), nn.Sigmoid(backend=b64))
    x = b64.normal((5, 6))
    target = b64.uniform((5, 4))
    report = nn.gradcheck(net, x, loss=lambda y: nn.bce(y, target))
    assert set(report) == {"0.W", "0.b", "2.W", "2.b", "x"}
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


def test_composed_network_with_bce_from_logits_gradcheck(b64):
    net = nn.Sequential(nn.Dense(6, 8, backend=b64), nn.Tanh(backend=b64),
                        nn.Dense(8, 8, backend=b64), nn.ReLU(backend=b64),
                        nn.Dense(8, 3, backend=b64))
    x = b64.normal((5, 6))
    target = b64.uniform((5, 3))
    report = nn.gradcheck(net, x, loss=lambda s: nn.bce_with_logits(s, target))
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


def test_gradcheck_catches_a_wrong_backward(b64):
    """A check that cannot fail proves nothing: break dW and watch it fail."""
    class BrokenDense(nn.Dense):
        def backward(self, dy, param_grads=True, input_grad=True):
            dx = super().backward(dy, param_grads, input_grad)
            self._grads["W"] = self._grads["W"] * 1.01
            return dx
    report = nn.gradcheck(BrokenDense(4, 3, backend=b64), b64.normal((5, 4)))
    assert report["W"] > 1e-3 and report["b"] < TOLERANCE


def test_sequential_names_and_live_params(b32):
    net = nn.Sequential(nn.Dense(3, 4, backend=b32), nn.ReLU(backend=b32),
                        nn.Dense(4, 2, backend=b32))
    assert list(net.params) == ["0.W", "0.b", "2.W", "2.b"]
    assert net.params["0.W"] is net[0].params["W"]
    assert net.n_params() == 3 * 4 + 4 + 4 * 2 + 2
    assert net.grads == {}
    net.backward(net.forward(b32.normal((2, 3))))
    assert list(net.grads) == list(net.params)


def test_backward_changes_no_parameter(b32):
    net = nn.Sequential(nn.Dense(3, 4, backend=b32), nn.LeakyReLU(backend=b32),
                        nn.Dense(4, 2, backend=b32))
    before = {k: nn.to_numpy(v).copy() for k, v in net.params.items()}
    net.backward(net.forward(b32.normal((2, 3))))
    for k, v in net.params.items():
        np.testing.assert_array_equal(nn.to_numpy(v), before[k])


def test_param_grads_false_leaves_grads_alone(b32):
    net = nn.Sequential(nn.Dense(3, 4, backend=b32), nn.Dense(4, 2, backend=b32))
    x = b32.normal((2, 3))
    net.backward(net.forward(x))
    saved = {k: nn.to_numpy(g).copy() for k, g in net.grads.items()}
    dx = net.backward(b32.normal((2, 2)), param_grads=False)
    assert tuple(dx.shape) == (2, 3)
    for k, g in net.grads.items():
        np.testing.assert_array_equal(nn.to_numpy(g), saved[k])


def test_input_grad_false_returns_none(b32):
    layer = nn.Dense(3, 2, backend=b32)
    layer.forward(b32.normal((2, 3)))
    assert layer.backward(b32.normal((2, 2)), input_grad=False) is None
    assert set(layer.grads) == {"W", "b"}


def test_sigmoid_is_stable_for_large_inputs(b32):
    z = b32.asarray([[-1000.0, -100.0, -20.0, 0.0, 20.0, 100.0, 1000.0]])
    y = nn.to_numpy(nn.sigmoid(z))
    assert np.all(np.isfinite(y))
    assert y[0, 0] == 0.0 and y[0, 3] == 0.5 and y[0, -1] == 1.0
    np.testing.assert_allclose(y[0, 2], np.exp(-20.0) / (1 + np.exp(-20.0)), rtol=1e-6)


@pytest.mark.parametrize("init,alpha,std", [
    ("he", 0.0, math.sqrt(2 / 400)),
    ("he", 0.2, math.sqrt(2 / (1 + 0.04) / 400)),
    ("glorot", 0.0, math.sqrt(2 / (400 + 300))),
    ("pytorch", 0.0, 1 / math.sqrt(3 * 400)),
])
def test_initialisation_scale(init, alpha, std):
    layer = nn.Dense(400, 300, init=init, alpha=alpha, backend=nn.Backend("numpy", seed=0))
    W = nn.to_numpy(layer.params["W"])
    assert W.dtype == np.float32
    assert abs(W.std() / std - 1) < 0.02
    assert abs(W.mean()) < 0.05 * std


def test_shape_mismatch_names_layer_and_shapes(b32):
    layer = nn.Dense(784, 400, backend=b32)
    with pytest.raises(nn.ShapeError, match=r"Dense\(784->400\).*\(batch, 784\).*\(8, 100\)"):
        layer.forward(b32.zeros((8, 100)))
    layer.forward(b32.zeros((8, 784)))
    with pytest.raises(nn.ShapeError, match=r"upstream gradient has shape \(8, 3\)"):
        layer.backward(b32.zeros((8, 3)))


@pytest.mark.parametrize("make", [lambda b: nn.Dense(2, 2, backend=b),
                                  lambda b: nn.Sigmoid(backend=b)], ids=["dense", "sigmoid"])
def test_backward_before_forward_says_so(b32, make):
    with pytest.raises(RuntimeError, match="before forward"):
        make(b32).backward(b32.zeros((1, 2)))


def test_invalid_leaky_slope():
    with pytest.raises(ValueError, match="alpha"):
        nn.LeakyReLU(1.5)


def test_state_dict_round_trip_keeps_identity(b32):
    net = nn.Sequential(nn.Dense(3, 4, backend=b32), nn.Dense(4, 2, backend=b32))
    saved = net.state_dict()
    W = net.params["0.W"]
    W -= 1.0
    net.load_state_dict(saved)
    assert net.params["0.W"] is W
    np.testing.assert_array_equal(nn.to_numpy(W), saved["0.W"])
    with pytest.raises(KeyError, match="missing"):
        net.load_state_dict({"0.W": saved["0.W"]})
