# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 03 Adam, step by step
#
# Kingma and Ba's Algorithm 1 (eqs. adam-1 to adam-5, `docs/optimizers.md`): a step counter
# $t$, two moment estimates per parameter, their bias corrections $1-\beta^t$, and $\epsilon$
# added to $\sqrt{\hat v}$:
#
# $$ m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
#    \quad \hat m = \frac{m}{1-\beta_1^t}, \quad \hat v = \frac{v}{1-\beta_2^t}, \quad
#    \theta \leftarrow \theta - \alpha \frac{\hat m}{\sqrt{\hat v} + \epsilon}. $$
#
# The code is `nnscratch/optim.py`. `backward` only computes gradients; `step` alone changes
# parameters, reading `module.params` and `module.grads`.

# %%
import matplotlib.pyplot as plt
import numpy as np

import nnscratch as nn
from _common import FAST, savefig


class Point(nn.Module):
    """A module whose only parameter is a vector theta, with the gradient set by hand."""

    def __init__(self, value, backend):
        super().__init__(backend)
        self._params = {"theta": backend.asarray(np.atleast_1d(value))}

    def set_grad(self, g):
        self._grads = {"theta": self.backend.asarray(np.atleast_1d(g))}


b = nn.Backend("numpy", dtype="float64")

# %% [markdown]
# ## Three steps, by hand and by `nn.Adam`
# The hand computation follows the five lines of Algorithm 1 literally; `nn.Adam` must agree
# to the last digit (the test suite checks the same trajectory).

# %%
alpha, beta1, beta2, eps = 0.1, 0.9, 0.999, 1e-8
model = Point(1.0, b)
opt = nn.Adam(model, lr=alpha, betas=(beta1, beta2), eps=eps)
theta, m, v = 1.0, 0.0, 0.0
print(f"{'t':>2} {'g':>5} {'m':>9} {'v':>11} {'m_hat':>9} {'v_hat':>9} {'theta (hand)':>14} "
      f"{'theta (nn.Adam)':>16}")
for t, g in enumerate([0.5, -0.3, 0.2], start=1):
    m = beta1 * m + (1 - beta1) * g                     # (adam-1)
    v = beta2 * v + (1 - beta2) * g * g                 # (adam-2)
    m_hat = m / (1 - beta1 ** t)                        # (adam-3)
    v_hat = v / (1 - beta2 ** t)                        # (adam-4)
    theta = theta - alpha * m_hat / (np.sqrt(v_hat) + eps)   # (adam-5)
    model.set_grad(g)
    opt.step()
    state = opt.state[id(model.params["theta"])]
    assert np.isclose(state["m"][0], m) and np.isclose(state["v"][0], v)
    print(f"{t:2d} {g:5.1f} {m:9.5f} {v:11.8f} {m_hat:9.5f} {v_hat:9.5f} {theta:14.10f} "
          f"{model.params['theta'][0]:16.10f}")
assert abs(theta - model.params["theta"][0]) < 1e-12

# %% [markdown]
# ## Bias correction made visible
# $m$ and $v$ start at zero, so early on they are too small: with a constant gradient $g$,
# $m_t = (1 - \beta_1^t) g$ and $v_t = (1-\beta_2^t) g^2$. Dividing by $1-\beta^t$ removes
# exactly that factor. Below, `nn.Adam` runs on a constant gradient; the raw moments are read
# from its state. Without the correction the first update would be
# $\alpha\, m_1/\sqrt{v_1} = \alpha\, 0.1 / \sqrt{0.001} \approx 3.2\alpha$, and it would
# take a few thousand steps (a few times $1/(1-\beta_2) = 1000$) to settle; with it, every
# step has size $\alpha$.

# %%
steps = 300 if FAST else 3000
model = Point(0.0, b)
opt = nn.Adam(model, lr=1e-3)
raw_m, raw_v, moved, uncorrected = [], [], [], []
for _ in range(steps):
    model.set_grad(1.0)
    before = float(model.params["theta"][0])
    opt.step()
    state = opt.state[id(model.params["theta"])]
    raw_m.append(float(state["m"][0]))
    raw_v.append(float(state["v"][0]))
    moved.append(before - float(model.params["theta"][0]))
    uncorrected.append(opt.lr * raw_m[-1] / (np.sqrt(raw_v[-1]) + opt.eps))
t = np.arange(1, steps + 1)
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
axes[0].semilogx(t, raw_m, label="m (raw)")
axes[0].semilogx(t, raw_v, label="v (raw)")
axes[0].semilogx(t, np.array(raw_m) / (1 - 0.9 ** t), "--", label="m_hat")
axes[0].semilogx(t, np.array(raw_v) / (1 - 0.999 ** t), ":", label="v_hat")
axes[0].set_title("moments for a constant gradient g = 1")
axes[1].semilogx(t, np.array(moved) / opt.lr, label="nn.Adam (corrected)")
axes[1].semilogx(t, np.array(uncorrected) / opt.lr, label="without bias correction")
axes[1].set_title("step size / alpha")
for ax in axes:
    ax.set_xlabel("step t")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
savefig(fig, "03_bias_correction.png")
print(f"first step / alpha: corrected {moved[0] / opt.lr:.4f}, "
      f"uncorrected {uncorrected[0] / opt.lr:.4f}")

# %% [markdown]
# The step size does not depend on the scale of the gradient: gradients of $10^{-3}$ and of
# $10^{3}$ both move the parameter by $\alpha$ on the first step (for $|g| \gg \epsilon$).

# %%
for g in (1e-3, 1.0, 1e3):
    model = Point(0.0, b)
    opt = nn.Adam(model, lr=1e-2)
    model.set_grad(g)
    opt.step()
    print(f"g = {g:7.0e}: first step {-float(model.params['theta'][0]):.6f}")

# %% [markdown]
# But $\alpha$ is not a bound on every step. After a long run of tiny gradients both moments
# are near zero and the bias corrections near 1; one large gradient $g$ then gives $m_t
# \approx (1 - \beta_1) g$ and $v_t \approx (1 - \beta_2) g^2$, a step of $\alpha (1 -
# \beta_1)/\sqrt{1 - \beta_2} \approx 3.16\alpha$ with the default $\beta$s: the bound
# Kingma and Ba give for the case $(1 - \beta_1) > \sqrt{1 - \beta_2}$. Approached below
# after 10,000 gradients of $10^{-9}$:

# %%
model = Point(0.0, b)
opt = nn.Adam(model, lr=1e-2)
for _ in range(10_000):
    model.set_grad(1e-9)
    opt.step()
before = float(model.params["theta"][0])
model.set_grad(1.0)
opt.step()
jump = (before - float(model.params["theta"][0])) / opt.lr
bound = (1 - 0.9) / np.sqrt(1 - 0.999)
print(f"one gradient of 1 after 10,000 of 1e-9: step {jump:.4f} alpha "
      f"(bound (1 - beta1) / sqrt(1 - beta2) = {bound:.4f})")
assert 3.1 < jump <= bound

# %% [markdown]
# ## Adam against SGD on an ill-conditioned valley
# $f(\theta) = \tfrac12(\theta_1^2 + 100\,\theta_2^2)$: the curvature differs a hundredfold
# between the two directions. SGD's learning rate must stay below $2/100$ for the steep
# direction, so it crawls along the shallow one; momentum helps. Adam divides each
# coordinate's step by its own $\sqrt{\hat v}$, so its steps have about the same size in
# both directions: it crosses the shallow one quickly, at the price of some oscillation
# across the steep one (its momentum, $\beta_1 = 0.9$).

# %%
def descend(make_opt, steps):
    model = Point([-4.0, 1.0], b)
    opt = make_opt(model)
    path = [model.params["theta"].copy()]
    for _ in range(steps):
        th = model.params["theta"]
        model.set_grad(th * np.array([1.0, 100.0]))      # the gradient of f
        opt.step()
        path.append(model.params["theta"].copy())
    return np.array(path)


n_valley = 60 if FAST else 150
paths = {"SGD, lr 0.015": descend(lambda m: nn.SGD(m, lr=0.015), n_valley),
         "SGD + momentum 0.9, lr 0.005": descend(lambda m: nn.SGD(m, lr=0.005, momentum=0.9),
                                                 n_valley),
         "Adam, lr 0.3": descend(lambda m: nn.Adam(m, lr=0.3), n_valley)}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
g1, g2 = np.meshgrid(np.linspace(-4.5, 1, 200), np.linspace(-1.3, 1.3, 200))
axes[0].contour(g1, g2, 0.5 * (g1 ** 2 + 100 * g2 ** 2), levels=np.logspace(-1, 2.5, 12),
                colors="gray", linewidths=0.5)
for name, path in paths.items():
    axes[0].plot(path[:, 0], path[:, 1], ".-", ms=3, lw=0.8, label=name)
    f = 0.5 * (path[:, 0] ** 2 + 100 * path[:, 1] ** 2)
    axes[1].semilogy(f, label=name)
axes[0].set_title("paths from (-4, 1)")
axes[1].set_title("f(theta)")
axes[1].set_xlabel("step")
for ax in axes:
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
savefig(fig, "03_valley.png")
for name, path in paths.items():
    f_end = 0.5 * (path[-1, 0] ** 2 + 100 * path[-1, 1] ** 2)
    print(f"{name:30s} f after {n_valley} steps: {f_end:.2e}")

# %% [markdown]
# ## Adam against SGD on a small network
# Fit a noisy sine with a 1-32-1 tanh network: the same initial weights, the same batches.

# %%
def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, (512, 1))
    return x, np.sin(x) + 0.05 * rng.standard_normal(x.shape)


def train(opt_name, steps):
    bb = nn.Backend("numpy", dtype="float32", seed=0)
    net = nn.Sequential(nn.Dense(1, 32, init="glorot", backend=bb), nn.Tanh(backend=bb),
                        nn.Dense(32, 1, init="glorot", backend=bb))
    opt = {"SGD + momentum": lambda: nn.SGD(net, lr=1e-2, momentum=0.9),
           "Adam": lambda: nn.Adam(net, lr=1e-2)}[opt_name]()
    x, y = make_problem()
    x, y = bb.asarray(x), bb.asarray(y)
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, 512, 64)
        L, dy = nn.mse(net.forward(x[idx]), y[idx])
        net.backward(dy, input_grad=False)
        opt.step()
        losses.append(float(L))
    return losses


steps = 200 if FAST else 3000
curves = {name: train(name, steps) for name in ("SGD + momentum", "Adam")}
fig, ax = plt.subplots(figsize=(6, 3))
for name, losses in curves.items():
    ax.semilogy(losses, label=name, lw=0.8)
ax.set_xlabel("step")
ax.set_ylabel("MSE per example")
ax.legend()
ax.grid(alpha=0.3)
savefig(fig, "03_adam_vs_sgd.png")
print({k: round(float(np.mean(v[-20:])), 4) for k, v in curves.items()})

# %% [markdown]
# ## AdamW: decay outside the moments
# `weight_decay` shrinks every parameter by the factor $1 - \alpha\lambda$ per step (adam-6),
# independently of the gradient; with a zero gradient nothing else moves it. Multiplying the
# decay by the learning rate $\alpha$ is PyTorch's convention (`torch.optim.AdamW`), and it is
# the one the code implements. In Loshchilov and Hutter's Algorithm 2 the decay is multiplied
# by the schedule multiplier $\eta_t$ instead, $\theta \leftarrow \theta - \eta_t(\alpha\,
# \hat m/(\sqrt{\hat v} + \epsilon) + \lambda\theta)$, so without a schedule ($\eta_t = 1$)
# their $\lambda$ is $\alpha$ times ours for the same decay.

# %%
model = Point(1.0, b)
opt = nn.Adam(model, lr=0.1, weight_decay=0.5)
for _ in range(10):
    model.set_grad(0.0)
    opt.step()
print(f"after 10 steps: {float(model.params['theta'][0]):.6f} = (1 - 0.1 * 0.5)^10 = "
      f"{(1 - 0.05) ** 10:.6f}")

# %% [markdown]
# ## Exercises
#
# 1. **Break it and watch: drop the bias correction.** Write an Adam whose update uses the raw
#    $m$ and $v$ instead of (adam-3) and (adam-4), and run it on the ill-conditioned valley
#    above next to `nn.Adam`. How large are its first steps, and what does that do in the
#    steep direction?
# 2. **Adam does not care about the scale of the loss.** Multiply the valley's gradient by
#    $1000$ and by $10^{-3}$ and compare the trajectories of `nn.Adam` with the original one.
#    Which term of (adam-5) breaks the invariance, and when does it matter?
# 3. **Momentum's effective learning rate.** With a constant gradient $g$, show that SGD's
#    velocity (sgd-1) tends to $g/(1 - \mu)$, so momentum $\mu = 0.9$ multiplies the step by
#    ten; check it with `nn.SGD`.

# %% [markdown]
# <details><summary>Solution 1</summary>
#
# Without the correction the first step is $\alpha (1 - \beta_1)/\sqrt{1 - \beta_2} \approx
# 3.2\alpha$ per coordinate, whatever the gradient, and the steps stay too long while $v$
# warms up ($\sqrt{v_t}$ grows like $\sqrt{1 - \beta_2^t}$, far slower than $m_t$). On the
# valley with $\alpha = 0.3$ the shallow coordinate, which should creep from $-4$ towards its
# minimum at 0, overshoots it to about +2.5 within a few steps.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
class AdamNoCorrection(nn.Adam):
    """Adam with the bias correction dropped: the broken version of (adam-3), (adam-4)."""

    def _update(self, p, g, state):
        m, v = state["m"], state["v"]
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        p -= self.lr * m / (np.sqrt(v) + self.eps)


right = descend(lambda m: nn.Adam(m, lr=0.3), 20)
broken = descend(lambda m: AdamNoCorrection(m, lr=0.3), 20)
first = {name: np.abs(path[1] - path[0]) for name, path in (("nn.Adam", right),
                                                            ("no correction", broken))}
print("first step per coordinate:", {k: np.round(v, 3) for k, v in first.items()})
assert np.allclose(first["nn.Adam"], 0.3) and np.allclose(first["no correction"],
                                                           0.3 * 0.1 / np.sqrt(0.001))
print(f"largest theta_1 over the first 10 steps (the minimum is at 0): nn.Adam "
      f"{right[:10, 0].max():.2f}, no correction {broken[:10, 0].max():.2f}")
assert right[:10, 0].max() < 0 < 1 < broken[:10, 0].max()

# %% [markdown]
# <details><summary>Solution 2</summary>
#
# $\hat m$ scales with the gradient and $\sqrt{\hat v}$ too, so their ratio does not: only
# $\epsilon$ in the denominator breaks the invariance, and only for gradients near $\epsilon
# = 10^{-8}$ or below, where $\sqrt{\hat v} \ll \epsilon$ and the step $\alpha\hat
# m/\epsilon$ is that of SGD with momentum (on the averaged gradient $\hat m$) and learning
# rate $\alpha/\epsilon$.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
def descend_scaled(scale, steps=50):
    model = Point([-4.0, 1.0], b)
    opt = nn.Adam(model, lr=0.3)
    for _ in range(steps):
        model.set_grad(scale * model.params["theta"] * np.array([1.0, 100.0]))
        opt.step()
    return model.params["theta"].copy()


base = descend_scaled(1.0)
for scale in (1e3, 1e-3, 1e-9):
    end = descend_scaled(scale)
    print(f"gradient x {scale:.0e}: end point {np.round(end, 6)} (unscaled {np.round(base, 6)})")
assert np.allclose(descend_scaled(1e3), base, atol=1e-6)
assert np.allclose(descend_scaled(1e-3), base, atol=1e-4)
assert not np.allclose(descend_scaled(1e-9), base, atol=1e-2)      # eps takes over

# %% [markdown]
# <details><summary>Solution 3</summary>
#
# The velocity of (sgd-1) with $\bar g_0 = 0$, $\bar g_t = \mu \bar g_{t-1} + g$, is a
# geometric series, $\bar g_t = g (1 - \mu^t)/(1 - \mu) \to g/(1 - \mu)$, so each step
# (sgd-2) tends to $\eta g/(1 - \mu)$, ten times $\eta g$ for $\mu = 0.9$. (The velocity
# is written $\bar g$, not $v$: in this chapter $v$ is Adam's second moment.)
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
model = Point(0.0, b)
opt = nn.SGD(model, lr=0.01, momentum=0.9)
for _ in range(200):
    model.set_grad(1.0)
    before = float(model.params["theta"][0])
    opt.step()
step = before - float(model.params["theta"][0])
print(f"step after 200 iterations: {step:.6f} = lr * g / (1 - mu) = {0.01 / 0.1:.6f}")
assert np.isclose(step, 0.1, rtol=1e-6)
