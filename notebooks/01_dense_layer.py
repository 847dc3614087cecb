# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 01 A dense layer, forward and backward
#
# A dense layer computes $y = xW + b$ (eq. dense-1 in `docs/dense.md`) for a batch of row
# vectors $x$ of shape `(B, n_in)`. Given the upstream gradient $\delta = \partial L/\partial y$
# the chain rule gives (dense-2) to (dense-4):
#
# $$\frac{\partial L}{\partial W} = x^\top\delta,\qquad \frac{\partial L}{\partial b} = \sum_n \delta_{n,:},\qquad \frac{\partial L}{\partial x} = \delta W^\top.$$
#
# The code is `nnscratch/dense.py`: `Dense.forward` and `Dense.backward`, a few lines each.

# %%
import numpy as np

import nnscratch as nn
from _common import FAST  # noqa: F401  (every chapter reads the mode)

b = nn.Backend("numpy", dtype="float64", seed=0)
layer = nn.Dense(4, 3, backend=b)
x = b.normal((5, 4))
y = layer.forward(x)
print("x", x.shape, "W", layer.params["W"].shape, "y", y.shape)

# %% [markdown]
# ## The backward by hand, entry by entry
# $y_{nj} = \sum_i x_{ni}W_{ij} + b_j$, so $\partial L/\partial W_{ij} = \sum_n \delta_{nj} x_{ni}$.
# Written as loops it is obviously the chain rule; as a matrix product it is $x^\top\delta$.

# %%
delta = b.normal(y.shape)
dx = layer.backward(delta)
dW_loops = np.zeros((4, 3))
for i in range(4):
    for j in range(3):
        dW_loops[i, j] = sum(delta[n, j] * x[n, i] for n in range(5))
print("max |x^T delta - loops| =", np.abs(layer.grads["W"] - dW_loops).max())

# %% [markdown]
# ## A gradient check
# Central differences (eq. gradcheck-1) against the manual backward, with a random upstream
# gradient (eq. gradcheck-2). In float64 the errors are around $10^{-10}$.

# %%
report = nn.gradcheck(layer, x)
print(nn.format_report(report))
assert max(report.values()) < 1e-7

# %% [markdown]
# ## Break it on purpose and watch the check fail
# Forget the transpose in $\partial L/\partial x$... or, here, scale $\partial L/\partial W$
# by 1.01: a one-percent mistake gives an error of $10^{-2}$, far above $10^{-7}$.

# %%
class BrokenDense(nn.Dense):
    def backward(self, dy, param_grads=True, input_grad=True):
        dx = super().backward(dy, param_grads, input_grad)
        self._grads["W"] = self._grads["W"] * 1.01      # the bug
        return dx


broken = nn.gradcheck(BrokenDense(4, 3, backend=b), x)
print(nn.format_report(broken))
assert broken["W"] > 1e-3

# %% [markdown]
# ## A network is layers in a row
# `Sequential` applies the chain rule layer by layer in reverse; the whole network passes the
# same check.

# %%
net = nn.Sequential(nn.Dense(4, 8, backend=b), nn.LeakyReLU(0.2, backend=b),
                    nn.Dense(8, 2, backend=b))
print(nn.format_report(nn.gradcheck(net, x)))
