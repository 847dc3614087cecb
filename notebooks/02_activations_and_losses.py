# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 02 Activations and losses
#
# Leaky ReLU (lrelu-1, lrelu-2) and the sigmoid (sigmoid-1, sigmoid-2) with their derivatives,
# then why binary cross-entropy is computed from logits (bce-1, bce-2).

# %%
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import nnscratch as nn
from _common import savefig

b = nn.Backend("numpy", dtype="float64")
z = np.linspace(-5, 5, 401)[None, :]
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for layer, name in [(nn.LeakyReLU(0.2, backend=b), "leaky ReLU (0.2)"),
                    (nn.Sigmoid(backend=b), "sigmoid")]:
    y = layer.forward(z)
    dydz = layer.backward(np.ones_like(z))       # delta = 1 gives f'(z) itself
    axes[0].plot(z[0], y[0], label=name)
    axes[1].plot(z[0], dydz[0], label=name)
axes[0].set_title("f(z)"); axes[1].set_title("f'(z)")
for ax in axes:
    ax.legend(); ax.grid(alpha=0.3)
print(savefig(fig, "02_activations.png"))

# %% [markdown]
# The sigmoid's derivative is $y(1-y)$, at most 1/4: stacking sigmoids shrinks gradients.
#
# ## BCE, the naive way and the stable way
# Naively $\ell = -x\log\sigma(s) - (1-x)\log(1-\sigma(s))$. In float32, $\sigma(s)$ rounds to
# exactly 1 for $s \gtrsim 17$, and $\log(1 - 1) = -\infty$:

# %%
b32 = nn.Backend("numpy", dtype="float32")
s = np.array([[1.0, 10.0, 20.0, 50.0, 100.0]], dtype=np.float32)
x = np.zeros_like(s)                   # the target is 0: the true loss is about s
with np.errstate(divide="ignore", invalid="ignore"):
    p = 1 / (1 + np.exp(-s))
    naive = -(x * np.log(p) + (1 - x) * np.log(1 - p))
stable = np.maximum(s, 0) - s * x + np.log1p(np.exp(-np.abs(s)))     # eq. (bce-1)
print("logit      ", s[0])
print("naive BCE  ", naive[0])
print("stable BCE ", stable[0])
L, ds = nn.bce_with_logits(b32.asarray(s), b32.asarray(x))
print("nnscratch  ", float(L), "(summed over the 5 entries)  gradient", ds[0])

# %% [markdown]
# The gradient of the stable form is simply $\sigma(s) - x$ (bce-2): the sigmoid's derivative
# cancels the logarithm's. It stays finite and correct for any logit.

# %%
for name, fn, kwargs in [("bce_with_logits", nn.bce_with_logits, {}), ("mse", nn.mse, {})]:
    sv = b.normal((3, 4)) * 3
    t = b.uniform((3, 4))
    _, g = fn(sv, t)
    num = nn.check_gradients(lambda: fn(sv, t)[0], {"s": sv}, {"s": g})
    print(f"{name:16s} gradient check: {num['s']:.1e}")
