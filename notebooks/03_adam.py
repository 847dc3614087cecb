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
# Kingma and Ba's Algorithm 1 (eqs. adam-1 to adam-5): a step counter, two moments, bias
# corrections $1-\beta^t$, and $\epsilon$ added to $\sqrt{\hat v}$.

# %%
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import nnscratch as nn
from _common import FAST, savefig


class Scalar(nn.Module):
    """One parameter whose gradient we set by hand."""

    def __init__(self, value, backend):
        super().__init__(backend)
        self._params = {"theta": backend.asarray([value])}

    def set_grad(self, g):
        self._grads = {"theta": self.backend.asarray([g])}


b = nn.Backend("numpy", dtype="float64")
model = Scalar(1.0, b)
opt = nn.Adam(model, lr=0.1)
for g in [0.5, -0.3, 0.2]:
    model.set_grad(g)
    opt.step()
    st = opt.state[id(model.params["theta"])]
    t = opt.t
    m, v = st["m"][0], st["v"][0]
    print(f"t={t}  m={m:.6f}  v={v:.8f}  m_hat={m / (1 - 0.9 ** t):.6f}  "
          f"v_hat={v / (1 - 0.999 ** t):.6f}  theta={model.params['theta'][0]:.10f}")

# %% [markdown]
# ## Bias correction made visible
# With a constant gradient $g = 1$, the raw moment $m$ needs ~20 steps to approach 1, while
# $\hat m$ is 1 from the first step; without the correction the first steps would be ten
# times too small ($\beta_1 = 0.9$) and $v$ even more biased.

# %%
beta1, beta2 = 0.9, 0.999
t = np.arange(1, 101)
m = 1 - beta1 ** t                 # m after t steps of g = 1
v = 1 - beta2 ** t
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(t, m, label="m (raw)")
ax.plot(t, v, label="v (raw)")
ax.plot(t, m / (1 - beta1 ** t), "--", label="m_hat = v_hat = 1")
ax.set_xlabel("step t"); ax.legend(); ax.grid(alpha=0.3)
print(savefig(fig, "03_bias_correction.png"))

# %% [markdown]
# ## Adam against SGD on a small problem
# Fit a small network to a noisy sine; same initial weights, same batches.

# %%
def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, (512, 1))
    return x, np.sin(x) + 0.05 * rng.standard_normal(x.shape)


def train(opt_name, steps):
    bb = nn.Backend("numpy", dtype="float32", seed=0)
    net = nn.Sequential(nn.Dense(1, 32, backend=bb), nn.Tanh(backend=bb),
                        nn.Dense(32, 1, init="glorot", backend=bb))
    opt = nn.Adam(net, lr=1e-2) if opt_name == "adam" else nn.SGD(net, lr=1e-2, momentum=0.9)
    x, y = make_problem()
    x, y = bb.asarray(x), bb.asarray(y)
    losses = []
    for step in range(steps):
        idx = np.random.default_rng(step).integers(0, 512, 64)
        L, dy = nn.mse(net.forward(x[idx]), y[idx])
        net.backward(dy, input_grad=False)
        opt.step()
        losses.append(float(L))
    return losses


steps = 100 if FAST else 2000
curves = {name: train(name, steps) for name in ("sgd", "adam")}
fig, ax = plt.subplots(figsize=(6, 3))
for name, losses in curves.items():
    ax.semilogy(losses, label=name)
ax.set_xlabel("step"); ax.set_ylabel("MSE"); ax.legend(); ax.grid(alpha=0.3)
print(savefig(fig, "03_adam_vs_sgd.png"))
print({k: round(float(np.mean(v[-20:])), 4) for k, v in curves.items()})
