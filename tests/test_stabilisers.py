"""Dropout, batch normalisation, spectral normalisation: float64 gradient checks on every
backend, training and evaluation mode, buffers in the state and out of the optimizer.

Threshold: the relative error of eq. (gradcheck-3) must stay below TOLERANCE = 1e-7. These
layers are smooth (dropout with a fixed mask is linear), so float64 central differences with
h = 1e-6 agree to about 1e-10; a wrong backward (a missing term, a transpose) gives about 1.
"""
import numpy as np
import pytest

import nnscratch as nn
from nnscratch.training.checkpoint import load_checkpoint, save_checkpoint
from nnscratch.training.loop import new_loop_state
from nnscratch.training.trainer import Trainer

TOLERANCE = 1e-7


def upstream(b, shape, seed=1):
    """A fixed random upstream gradient (eq. gradcheck-2), as a backend array."""
    return b.asarray(np.random.default_rng(seed).standard_normal(shape))


def host(a):
    return np.asarray(nn.to_numpy(a), dtype=np.float64)


def converged(layer, steps=300):
    """A spectral layer after ``steps`` training-mode forwards: ``u`` at the top singular
    vector."""
    for _ in range(steps):
        layer.forward(layer.backend.zeros((1, layer.n_in)))
    return layer


# -- gradient checks ---------------------------------------------------------------------
def test_spectral_norm_gradcheck(b64):
    """With ``u`` converged and frozen (evaluation mode), the backward of eqs. (sn-5) to
    (sn-7) is the exact gradient of eqs. (sn-3), (sn-4)."""
    layer = converged(nn.SpectralNormDense(5, 3, backend=b64)).eval()
    report = nn.gradcheck(layer, b64.normal((4, 5)))
    assert set(report) == {"W", "b", "x"}
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


def test_spectral_norm_gradcheck_catches_a_missing_sigma_term(b64):
    """Dropping the rank-one term of eq. (sn-6), the path through sigma, must fail."""
    class NoSigmaPath(nn.SpectralNormDense):
        def backward(self, dy, param_grads=True, input_grad=True):
            x, z, u, v, sigma = self._cached()
            dx = super().backward(dy, param_grads, input_grad)
            self._grads["W"] = x.T @ (dy / sigma)
            return dx
    layer = converged(NoSigmaPath(5, 3, backend=b64)).eval()
    report = nn.gradcheck(layer, b64.normal((4, 5)))
    assert report["W"] > 1e-3 and report["x"] < TOLERANCE


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm_gradcheck(b64, training):
    layer = nn.BatchNorm1d(5, backend=b64)
    layer.params["gamma"][...] = b64.normal((5,))
    layer.params["beta"][...] = b64.normal((5,))
    layer.forward(b64.normal((8, 5)) * 2.0 + 1.0)      # running statistics away from (0, 1)
    layer.train(training)
    report = nn.gradcheck(layer, b64.normal((6, 5)) * 3.0 - 1.0)
    assert set(report) == {"gamma", "beta", "x"}
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


def test_batchnorm_in_a_network_gradcheck(b64):
    """Dense-Tanh-BatchNorm-SpectralNormDense-Sigmoid with BCE: the layers compose. (The
    Tanh keeps the bias of the first layer in play: right before a batch normalisation a
    bias has gradient zero, which is why networks drop it there.)"""
    net = nn.Sequential(nn.Dense(6, 8, backend=b64), nn.Tanh(backend=b64),
                        nn.BatchNorm1d(8, backend=b64), nn.SpectralNormDense(8, 4, backend=b64),
                        nn.Sigmoid(backend=b64))
    converged(net[3]).eval()
    target = b64.uniform((5, 4))
    report = nn.gradcheck(net, b64.normal((5, 6)), loss=lambda p: nn.bce(p, target))
    assert set(report) == {"0.W", "0.b", "2.gamma", "2.beta", "3.W", "3.b", "x"}
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


def test_dropout_gradcheck(b64):
    """The mask held fixed by reseeding the generator before every forward."""
    layer = nn.Dropout(0.3, backend=b64)
    x, delta = b64.normal((4, 6)), upstream(b64, (4, 6))

    def f():
        b64.seed(7)
        return b64.xp.sum(delta * layer.forward(x))
    f()
    dx = layer.backward(delta)
    report = nn.check_gradients(f, {"x": x}, {"x": host(dx)})
    assert report["x"] < TOLERANCE, nn.format_report(report)


# -- training and evaluation mode ----------------------------------------------------------
def test_train_and_eval_propagate_and_return_self(b32):
    net = nn.Sequential(nn.Dense(3, 4, backend=b32), nn.Dropout(0.5, backend=b32),
                        nn.Sequential(nn.BatchNorm1d(4, backend=b32)))
    assert all(m.training for m in (net, net[1], net[2], net[2][0]))
    assert net.eval() is net
    assert not any(m.training for m in (net, net[0], net[1], net[2], net[2][0]))
    assert net.train() is net and net[2][0].training


def test_modules_held_as_attributes_are_children(b32):
    """A container that is not a Sequential (the VAE, the classifier) needs no code of its
    own: its Module attributes are its children."""
    class Pair(nn.Module):
        def __init__(self, backend):
            super().__init__(backend)
            self.first = nn.Dense(3, 4, backend=backend)
            self.second = nn.Sequential(nn.BatchNorm1d(4, backend=backend))
    pair = Pair(b32).eval()
    assert not pair.second[0].training and not pair.first.training
    assert list(pair.buffers) == ["second.0.running_mean", "second.0.running_var"]
    vae = nn.VAE.from_preset("classic", latent=2, backend=b32).eval()
    assert list(vae.named_children()) == ["enc", "mu", "logvar", "dec"]
    assert not any(m.training for m in vae.enc.layers)


def test_dropout_eval_is_the_identity(b32):
    layer = nn.Dropout(0.5, backend=b32).eval()
    x, dy = b32.normal((8, 5)), b32.normal((8, 5))
    np.testing.assert_array_equal(host(layer.forward(x)), host(x))
    np.testing.assert_array_equal(host(layer.backward(dy)), host(dy))


def test_dropout_train_drops_p_and_scales_the_rest(b32):
    p = 0.3
    layer = nn.Dropout(p, backend=b32)
    x = b32.asarray(np.ones((200, 500), dtype=np.float32))
    y = host(layer.forward(x))
    kept = y != 0
    assert abs(1.0 - kept.mean() - p) < 0.01          # 100,000 draws: std 0.0015
    np.testing.assert_allclose(y[kept], 1.0 / (1.0 - p), rtol=1e-6)
    dy = b32.normal((200, 500))
    np.testing.assert_array_equal(host(layer.backward(dy)) != 0, kept)


def test_dropout_mask_is_reproducible_under_a_seed_and_after_restoring_the_rng(b32):
    layer = nn.Dropout(0.5, backend=b32)
    x = b32.asarray(np.ones((4, 50), dtype=np.float32))
    b32.seed(3)
    first = host(layer.forward(x))
    b32.seed(3)
    np.testing.assert_array_equal(host(layer.forward(x)), first)
    if b32.name == "cupy":
        return                                  # the device generator's state is not saved
    state = b32.rng_state()
    after = host(layer.forward(x))
    assert not np.array_equal(after, first)
    b32.set_rng_state(state)
    np.testing.assert_array_equal(host(layer.forward(x)), after)


def test_batchnorm_running_statistics_against_a_hand_computation(b64):
    layer = nn.BatchNorm1d(3, momentum=0.1, backend=b64)
    batches = [np.random.default_rng(i).normal(2.0, 3.0, (5, 3)) for i in range(3)]
    mean, var = np.zeros(3), np.ones(3)
    for x in batches:
        y = host(layer.forward(b64.asarray(x)))
        mean = 0.9 * mean + 0.1 * x.mean(axis=0)
        var = 0.9 * var + 0.1 * x.var(axis=0, ddof=1)           # unbiased, as PyTorch
        np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), atol=1e-12)
    np.testing.assert_allclose(host(layer.buffers["running_mean"]), mean, rtol=1e-12)
    np.testing.assert_allclose(host(layer.buffers["running_var"]), var, rtol=1e-12)
    # evaluation mode: the running statistics, which it does not change
    layer.eval()
    x = batches[0][:2]
    np.testing.assert_allclose(host(layer.forward(b64.asarray(x))),
                               (x - mean) / np.sqrt(var + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(host(layer.buffers["running_mean"]), mean, rtol=1e-12)


def test_batchnorm_training_needs_two_examples(b32):
    with pytest.raises(nn.ShapeError, match="at least 2"):
        nn.BatchNorm1d(3, backend=b32).forward(b32.normal((1, 3)))
    assert tuple(nn.BatchNorm1d(3, backend=b32).eval().forward(b32.normal((1, 3))).shape) == (1, 3)


def test_spectral_sigma_is_the_largest_singular_value(b64):
    layer = converged(nn.SpectralNormDense(7, 4, backend=b64))
    W = host(layer.params["W"])
    top = np.linalg.svd(W, compute_uv=False)[0]
    assert abs(float(host(layer.sigma()[2])) - top) < 1e-10 * top
    W_sn = W / top
    x = b64.normal((3, 7))
    np.testing.assert_allclose(host(layer.forward(x)), host(x) @ W_sn + host(layer.params["b"]),
                               rtol=1e-10, atol=1e-12)


def test_spectral_eval_does_not_advance_u_and_train_does(b32):
    layer = nn.SpectralNormDense(6, 5, backend=b32)
    u0 = host(layer.buffers["u"]).copy()
    assert abs(np.linalg.norm(u0) - 1.0) < 1e-6
    layer.eval().forward(b32.normal((2, 6)))
    np.testing.assert_array_equal(host(layer.buffers["u"]), u0)
    layer.train().forward(b32.normal((2, 6)))
    u1 = host(layer.buffers["u"])
    W = host(layer.params["W"])
    v = u0 @ W / np.linalg.norm(u0 @ W)                 # one step of eq. (sn-1), by hand
    np.testing.assert_allclose(u1, W @ v / np.linalg.norm(W @ v), rtol=1e-5, atol=1e-6)


def test_layers_keep_float32(b32):
    x = b32.normal((4, 6))
    for layer in (nn.SpectralNormDense(6, 6, backend=b32), nn.BatchNorm1d(6, backend=b32),
                  nn.Dropout(0.5, backend=b32)):
        for mode in (True, False):
            layer.train(mode)
            y = layer.forward(x)
            dx = layer.backward(b32.normal(tuple(y.shape)))
            arrays = [y, dx, *layer.params.values(), *layer.grads.values(),
                      *layer.buffers.values()]
            assert all("float32" in str(a.dtype) for a in arrays), layer.describe()


# -- buffers: saved, moved, not optimised --------------------------------------------------
def stabilised_net(b):
    return nn.Sequential(nn.Dense(6, 8, backend=b), nn.BatchNorm1d(8, backend=b),
                         nn.LeakyReLU(0.2, backend=b), nn.Dropout(0.2, backend=b),
                         nn.SpectralNormDense(8, 3, backend=b))


def test_buffers_are_in_the_state_but_not_in_params(b32):
    net = stabilised_net(b32)
    assert list(net.buffers) == ["1.running_mean", "1.running_var", "4.u"]
    assert not set(net.buffers) & set(net.params)
    assert set(net.state_dict()) == set(net.params) | set(net.buffers)
    opt = nn.Adam(net, lr=1e-3)
    net.backward(net.forward(b32.normal((4, 6))))
    buffers = {k: host(a).copy() for k, a in net.buffers.items()}
    opt.step()
    assert {k for k in opt.state_dict() if "/" in k} == {
        f"{slot}/{name}" for slot in ("m", "v") for name in net.params}
    for k, a in net.buffers.items():
        np.testing.assert_array_equal(host(a), buffers[k], err_msg=k)


def test_state_dict_round_trips_the_buffers(b32):
    net = stabilised_net(b32)
    for _ in range(3):
        net.forward(b32.normal((4, 6)))
    saved = net.state_dict()
    assert all(isinstance(a, np.ndarray) for a in saved.values())
    fresh = stabilised_net(nn.Backend(b32.name, "float32", seed=1))
    fresh.load_state_dict(saved)
    for k, a in fresh.state_dict().items():
        np.testing.assert_array_equal(a, saved[k], err_msg=k)
    with pytest.raises(KeyError, match=r"missing \['4.u'\]"):
        fresh.load_state_dict({k: a for k, a in saved.items() if k != "4.u"})


def test_a_state_without_buffers_loads_into_layers_without_buffers(b32):
    """States saved before buffers existed hold parameters only."""
    net = nn.Sequential(nn.Dense(3, 4, backend=b32), nn.Dropout(0.5, backend=b32),
                        nn.Dense(4, 2, backend=b32))
    old = {k: nn.to_numpy(p).copy() for k, p in net.params.items()}
    net.load_state_dict(old)
    assert net.buffers == {}


def test_to_moves_the_buffers():
    b = nn.Backend("numpy", "float32", seed=0)
    net = stabilised_net(b).to(nn.Backend("array_api_strict", "float64"))
    assert all("float64" in str(a.dtype) and type(a).__module__.startswith("array_api_strict")
               for a in net.buffers.values())


class StabilisedToy(Trainer):
    """The smallest trainer whose network holds every stabiliser: buffers, dropout masks."""

    kind = "toy_stabilised"

    def __init__(self, config=None, backend=None):
        super().__init__(config or {}, backend)
        self.net = stabilised_net(self.backend)
        self.networks = {"net": self.net}
        self.optimizers = {"net": nn.Adam(self.net, lr=1e-2)}

    def step(self, x):
        L, dy = nn.mse(self.net.train().forward(x), self.backend.zeros((x.shape[0], 3)))
        self.net.backward(dy, input_grad=False)
        self.optimizers["net"].step()
        return {"loss": float(L)}


Trainer.register(StabilisedToy)


def test_checkpoint_resume_is_bit_exact_with_buffers_and_dropout(tmp_path):
    trainer = StabilisedToy(backend=nn.Backend("numpy", seed=0))
    x = trainer.backend.normal((8, 6))
    for _ in range(3):
        trainer.step(x)
    path = save_checkpoint(tmp_path / "c.npz", trainer, new_loop_state(0))
    with np.load(path) as f:
        assert {"net/net/1.running_mean", "net/net/1.running_var", "net/net/4.u"} <= set(f.files)
    restored, _ = load_checkpoint(path)
    assert restored.step(x) == trainer.step(x)          # same dropout mask, same statistics
    for k, a in trainer.net.state_dict().items():
        np.testing.assert_array_equal(restored.net.state_dict()[k], a, err_msg=k)
