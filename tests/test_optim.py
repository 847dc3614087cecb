"""Optimizers: Adam against a hand-computed trajectory, state keyed by identity, saving and
restoring state, and moving it with the model."""

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


def test_adam_step_exceeds_alpha_up_to_kingma_and_ba_bound():
    """docs/optimizers.md: alpha does not bound every step. After a long run of tiny
    gradients, one large gradient moves theta by alpha (1 - beta1) / sqrt(1 - beta2), about
    3.16 alpha with the default betas (Kingma and Ba, section 2.1), and never more. The
    arithmetic, not the backend, is under test: NumPy only (10,000 steps)."""
    model = Scalar(0.0, nn.Backend("numpy", "float64", seed=0))
    opt = nn.Adam(model, lr=1e-3)
    for _ in range(10000):
        model.set_grad(1e-6)
        opt.step()
    before = float(model.params["theta"][0])
    model.set_grad(1.0)
    opt.step()
    step = (before - float(model.params["theta"][0])) / 1e-3
    bound = 0.1 / np.sqrt(1e-3)
    assert 3.1 < step <= bound * (1 + 1e-4)


def test_adam_first_step_has_size_lr_whatever_the_gradient_scale(b64):
    """Bias correction: after one step m_hat / sqrt(v_hat) = sign(g)."""
    for g in (1e-2, 1.0, 1e4):     # eps=1e-8 matters only for |g| near 1e-8
        model = Scalar(0.0, b64)
        model.set_grad(g)
        nn.Adam(model, lr=0.01).step()
        assert float(nn.to_numpy(model.params["theta"])[0]) == pytest.approx(-0.01, rel=2e-6)


def test_adamw_decay_is_decoupled(b64):
    """With a zero gradient, Adam's step is zero and only the decay acts: theta *= 1 - lr*wd,
    4 -> 3.8. Coupled L2 (wd * theta added to the gradient) would give the gradient 2, whose
    first Adam step has size lr whatever its scale: 4 -> 3.9."""
    model = Scalar(4.0, b64)
    model.set_grad(0.0)
    nn.Adam(model, lr=0.1, weight_decay=0.5).step()
    assert float(nn.to_numpy(model.params["theta"])[0]) == pytest.approx(4.0 * (1 - 0.05))


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
    # and it keeps training there: the next step is the one a twin that stayed takes
    twin = make_net(nn.Backend("numpy", "float32", seed=0))
    twin_opt = nn.Adam(twin)
    train_steps(twin, twin_opt, src, 2)
    before = {k: nn.to_numpy(p).copy() for k, p in net.params.items()}
    train_steps(net, opt, dst, 1, seed=1)
    train_steps(twin, twin_opt, src, 1, seed=1)
    for key, p in net.params.items():
        assert not np.array_equal(nn.to_numpy(p), before[key]), key
        np.testing.assert_allclose(nn.to_numpy(p), nn.to_numpy(twin.params[key]),
                                   rtol=1e-5, atol=1e-6, err_msg=key)


def test_invalid_hyperparameters():
    net = make_net(nn.Backend("numpy"))
    with pytest.raises(ValueError, match="learning rate"):
        nn.Adam(net, lr=0)
    with pytest.raises(ValueError, match="betas"):
        nn.Adam(net, betas=(1.0, 0.999))


# -- the fast updates against the readable one ------------------------------------------------
class Matrix(nn.Module):
    """One parameter matrix whose gradients the test sets."""

    def __init__(self, backend, shape=(300, 257), seed=0):
        super().__init__(backend)
        self.rng = np.random.default_rng(seed)
        self._params = {"W": backend.asarray(self.rng.standard_normal(shape))}

    def new_grad(self):
        g = self.rng.standard_normal(tuple(self.params["W"].shape)) * 1e-2
        self._grads = {"W": self.backend.asarray(g)}
        return g


def adam_reference(W, grads, lr, betas):
    """:func:`nnscratch.optim.adam_step`, in float64 on the host, over a list of gradients."""
    theta, m, v = (np.asarray(W, np.float64), np.zeros(W.shape), np.zeros(W.shape))
    for t, g in enumerate(grads, start=1):
        theta, m, v = nn.optim.adam_step(theta, g, m, v, t, lr, *betas)
    return theta, m, v


def check_against_the_readable_update(backend, steps=3):
    """Adam's in-place update (blockwise, or fused on CuPy) for ``steps`` steps against
    the readable one: equal to float32 rounding of the parameter and the moments."""
    module = Matrix(backend)
    W0 = nn.to_numpy(module.params["W"]).copy()
    opt = nn.Adam(module, lr=1e-2, betas=(0.5, 0.999))
    opt.block_size = 1000                     # many blocks, one of them partial
    grads = []
    for _ in range(steps):
        grads.append(module.new_grad().astype(np.float32).astype(np.float64))
        opt.step()
    theta, m, v = adam_reference(W0, grads, 1e-2, (0.5, 0.999))
    state = opt.state_dict()
    np.testing.assert_allclose(nn.to_numpy(module.params["W"]), theta, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(state["m/W"], m, rtol=2e-6, atol=1e-9)
    np.testing.assert_allclose(state["v/W"], v, rtol=2e-6, atol=1e-12)


def test_the_in_place_update_agrees_with_the_readable_one(b32):
    check_against_the_readable_update(b32)


ADAM_HARNESS = """
#include <cstdio>
#include <cstdlib>
#include <cmath>
template <typename T> void update(const T* gs, double b1, double b2, double step, double c2,
                                  double eps, double decay, T* ps, T* ms, T* vs, long n) {
  for (long i = 0; i < n; i++) {
    const T g = gs[i]; T &p = ps[i]; T &m = ms[i]; T &v = vs[i];
%s
  }
}
int main() {
  long n; double b1, b2, lr, eps, decay; int steps;
  if (scanf("%%ld %%d %%lf %%lf %%lf %%lf %%lf", &n, &steps, &b1, &b2, &lr, &eps, &decay) != 7)
    return 1;
  float *p = new float[n], *m = new float[n], *v = new float[n], *g = new float[n];
  for (long i = 0; i < n; i++) { if (scanf("%%f", &p[i]) != 1) return 1; m[i] = v[i] = 0; }
  for (int t = 1; t <= steps; t++) {
    for (long i = 0; i < n; i++) if (scanf("%%f", &g[i]) != 1) return 1;
    update<float>(g, b1, b2, lr / (1 - pow(b1, t)), 1 - pow(b2, t), eps, decay, p, m, v, n);
  }
  for (long i = 0; i < n; i++) printf("%%.9g %%.9g %%.9g\\n", p[i], m[i], v[i]);
}
"""


@pytest.mark.skipif(__import__("shutil").which("c++") is None, reason="no C++ compiler")
def test_the_fused_cuda_update_compiled_for_the_host_agrees_with_the_readable_one(tmp_path):
    """The CUDA body of the fused Adam update, compiled as C++ on the CPU, against
    :func:`nnscratch.optim.adam_step`: a break in the kernel shows without a GPU."""
    import subprocess
    (tmp_path / "adam.cpp").write_text(ADAM_HARNESS % nn.optim.ADAM_CUDA)
    subprocess.run(["c++", "-O1", "-ffp-contract=off", "-o", str(tmp_path / "adam"),
                    str(tmp_path / "adam.cpp")], check=True)
    rng = np.random.default_rng(1)
    W = rng.standard_normal(500).astype(np.float32)
    grads = [(rng.standard_normal(500) * 1e-2).astype(np.float32) for _ in range(3)]
    text = "500 3 0.5 0.999 0.01 1e-8 1.0\n" + " ".join(map(repr, W.tolist())) + "\n"
    text += "\n".join(" ".join(map(repr, g.tolist())) for g in grads) + "\n"
    out = subprocess.run([str(tmp_path / "adam")], input=text, capture_output=True, text=True,
                         check=True).stdout
    p, m, v = np.array(out.split(), np.float64).reshape(-1, 3).T
    theta, m_ref, v_ref = adam_reference(W, [g.astype(np.float64) for g in grads], 1e-2,
                                         (0.5, 0.999))
    np.testing.assert_allclose(p, theta, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(m, m_ref, rtol=2e-6, atol=1e-9)
    np.testing.assert_allclose(v, v_ref, rtol=2e-6, atol=1e-12)
