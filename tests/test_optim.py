"""Optimizers: Adam against a hand-computed trajectory, state keyed by identity, saving and
restoring state, and moving it with the model."""
import math

import numpy as np
import pytest

import nnscratch as nn


class Scalar(nn.Module):
    """One parameter theta whose gradient the test sets by hand."""

    def __init__(self, value, backend):
        super().__init__(backend)
        self._params = {"theta": backend.asarray([value])}

    def set_grad(self, g):
        self._grads = {"theta": self.backend.asarray([g])}


def test_adam_matches_hand_computed_three_steps(b64):
    """Kingma & Ba, Algorithm 1, by hand: alpha=0.1, betas (0.9, 0.999), eps=1e-8, theta0=1,
    gradients 0.5, -0.3, 0.2.

    t=1: m=0.05,  v=0.00025,    m_hat=0.5,         v_hat=0.25          -> theta=0.900000002
    t=2: m=0.015, v=0.00033975, m_hat=0.015/0.19,  v_hat=0.00033975/0.001999
         theta = 0.900000002 - 0.1 * 0.0789473684 / (0.4122620...+1e-8) = 0.8808501989...
    t=3: m=0.0335, v=0.00037941025, m_hat=0.0335/0.271, v_hat=0.00037941025/0.002997001
         theta = 0.8461074307...
    """
    model = Scalar(1.0, b64)
    opt = nn.Adam(model, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    expected = [0.900000002, 0.8808501989417752, 0.846107430790882]
    for g, want in zip([0.5, -0.3, 0.2], expected):
        model.set_grad(g)
        opt.step()
        assert float(nn.to_numpy(model.params["theta"])[0]) == pytest.approx(want, abs=1e-12)
    state = opt.state[id(model.params["theta"])]
    assert float(nn.to_numpy(state["m"])[0]) == pytest.approx(0.0335, abs=1e-15)
    assert float(nn.to_numpy(state["v"])[0]) == pytest.approx(0.00037941025, abs=1e-15)
    assert opt.t == 3


def test_adam_first_step_has_size_lr_whatever_the_gradient_scale(b64):
    """Bias correction: after one step m_hat / sqrt(v_hat) = sign(g)."""
    for g in (1e-2, 1.0, 1e4):     # eps=1e-8 matters only for |g| near 1e-8
        model = Scalar(0.0, b64)
        model.set_grad(g)
        nn.Adam(model, lr=0.01).step()
        assert float(nn.to_numpy(model.params["theta"])[0]) == pytest.approx(-0.01, rel=2e-6)


def test_adamw_decay_is_decoupled(b64):
    """With a zero gradient, Adam's step is zero and only the decay acts: theta *= 1 - lr*wd."""
    model = Scalar(2.0, b64)
    model.set_grad(0.0)
    nn.Adam(model, lr=0.1, weight_decay=0.5).step()
    assert float(nn.to_numpy(model.params["theta"])[0]) == pytest.approx(2.0 * (1 - 0.05))


def test_sgd_momentum_by_hand(b64):
    model = Scalar(1.0, b64)
    opt = nn.SGD(model, lr=0.1, momentum=0.9)
    trajectory = []
    for g in (1.0, 1.0, -2.0):
        model.set_grad(g)
        opt.step()
        trajectory.append(float(nn.to_numpy(model.params["theta"])[0]))
    # v: 1, 1.9, -0.29  -> theta: 0.9, 0.71, 0.739
    np.testing.assert_allclose(trajectory, [0.9, 0.71, 0.739], atol=1e-12)


def make_net(b):
    return nn.Sequential(nn.Dense(3, 4, backend=b), nn.Tanh(backend=b), nn.Dense(4, 2, backend=b))


def train_steps(net, opt, b, n, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x = b.asarray(rng.standard_normal((5, 3)))
        t = b.asarray(rng.standard_normal((5, 2)))
        _, dy = nn.mse(net.forward(x), t)
        net.backward(dy)
        opt.step()


def test_state_is_keyed_by_identity_not_name(b32):
    """Both Dense layers own a parameter called "W": each must get its own moments."""
    net = make_net(b32)
    opt = nn.Adam(net)
    train_steps(net, opt, b32, 1)
    assert len(opt.state) == 4
    assert set(opt.state) == {id(p) for p in net.params.values()}


def test_step_changes_every_parameter(b32):
    net = make_net(b32)
    before = net.state_dict()
    train_steps(net, nn.Adam(net, lr=1e-2), b32, 1)
    for name, p in net.params.items():
        assert np.all(nn.to_numpy(p) != before[name]), name


def test_step_without_backward_is_a_clear_error(b32):
    with pytest.raises(RuntimeError, match="call backward"):
        nn.Adam(make_net(b32)).step()


def test_state_dict_restores_the_same_trajectory(b64):
    net_a, net_b = make_net(b64), make_net(b64)
    net_b.load_state_dict(net_a.state_dict())
    opt_a, opt_b = nn.Adam(net_a, lr=1e-2), nn.Adam(net_b, lr=1e-2)
    train_steps(net_a, opt_a, b64, 3)
    train_steps(net_b, opt_b, b64, 3)
    # Restore b from a snapshot of a, then both take the same further steps.
    net_b.load_state_dict(net_a.state_dict())
    opt_b.load_state_dict(opt_a.state_dict())
    train_steps(net_a, opt_a, b64, 2, seed=7)
    train_steps(net_b, opt_b, b64, 2, seed=7)
    for name in net_a.params:
        np.testing.assert_array_equal(nn.to_numpy(net_a.params[name]),
                                      nn.to_numpy(net_b.params[name]))
    assert opt_b.t == 5


def test_moving_moves_parameters_gradients_and_state_together(backend_name):
    src = nn.Backend("numpy", "float32", seed=0)
    dst = nn.Backend(backend_name, "float32", seed=0)
    net = make_net(src)
    opt = nn.Adam(net)
    train_steps(net, opt, src, 2)
    saved = opt.state_dict()
    opt.to(dst)
    assert net.backend is dst
    for p in list(net.params.values()) + list(net.grads.values()):
        assert dst.is_array(p)
    assert set(opt.state) == {id(p) for p in net.params.values()}
    for key, value in opt.state_dict().items():
        np.testing.assert_array_equal(value, saved[key])
    train_steps(net, opt, dst, 1)   # and it keeps training there


def test_invalid_hyperparameters():
    net = make_net(nn.Backend("numpy"))
    with pytest.raises(ValueError, match="learning rate"):
        nn.Adam(net, lr=0)
    with pytest.raises(ValueError, match="betas"):
        nn.Adam(net, betas=(1.0, 0.999))
