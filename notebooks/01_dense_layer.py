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
# A dense layer maps a batch of row vectors $x$, shape `(B, n_in)`, to
#
# $$ y = xW + b \qquad \text{(dense-1)} $$
#
# with $W$ of shape `(n_in, n_out)` and $b$ of shape `(n_out,)`. Given the upstream gradient
# $\delta = \partial L/\partial y$ (shape `(B, n_out)`), the chain rule gives (dense-2) to
# (dense-4), derived in `docs/dense.md`:
#
# $$\frac{\partial L}{\partial W} = x^\top\delta,\qquad
#   \frac{\partial L}{\partial b} = \sum_n \delta_{n,:},\qquad
#   \frac{\partial L}{\partial x} = \delta W^\top.$$
#
# The code is `nnscratch/dense.py`: `Dense.forward` and `Dense.backward`, a few lines each.
# This chapter derives the backward entry by entry, checks it against finite differences,
# and then breaks it on purpose to see the check fail.

# %%
import matplotlib.pyplot as plt
import numpy as np

import nnscratch as nn
from _common import FAST, savefig  # noqa: F401  (every chapter reads the mode)
from nnscratch.gradcheck import TOLERANCE, numerical_gradient, relative_error

bk = nn.Backend("numpy", dtype="float64", seed=0)   # float64 for finite differences; b is the bias
layer = nn.Dense(4, 3, backend=bk)
x = bk.normal((5, 4))
y = layer.forward(x)
print("x", x.shape, " W", layer.params["W"].shape, " b", layer.params["b"].shape,
      " y", y.shape)

# %% [markdown]
# Row $n$ of $y$ depends on row $n$ of $x$ only: the examples of a batch do not interact.

# %%
print("y[2] from x[2] alone equals y[2]:",
      np.allclose(layer.forward(x[2:3])[0], y[2]))
y = layer.forward(x)           # forward again on the whole batch: backward reads this cache

# %% [markdown]
# ## The backward by hand, entry by entry
# $y_{nj} = \sum_i x_{ni}W_{ij} + b_j$. So $W_{ij}$ reaches every example's $y_{nj}$, and
# $\partial L/\partial W_{ij} = \sum_n \delta_{nj} x_{ni}$; $b_j$ reaches them with weight
# 1, $\partial L/\partial b_j = \sum_n \delta_{nj}$; and $x_{ni}$ reaches the outputs of its
# own example, $\partial L/\partial x_{ni} = \sum_j \delta_{nj} W_{ij}$. Written as loops
# these are plainly the chain rule; as matrix products they are (dense-2) to (dense-4).

# %%
delta = bk.normal(y.shape)
dx = layer.backward(delta)
W = layer.params["W"]
B, n_in, n_out = 5, 4, 3
dW_loops = np.zeros((n_in, n_out))
db_loops = np.zeros(n_out)
dx_loops = np.zeros((B, n_in))
for n in range(B):
    for i in range(n_in):
        for j in range(n_out):
            dW_loops[i, j] += delta[n, j] * x[n, i]
            dx_loops[n, i] += delta[n, j] * W[i, j]
    db_loops += delta[n]
print("max |x^T delta   - loops| =", np.abs(layer.grads["W"] - dW_loops).max())
print("max |sum_n delta - loops| =", np.abs(layer.grads["b"] - db_loops).max())
print("max |delta W^T   - loops| =", np.abs(dx - dx_loops).max())

# %% [markdown]
# ## A gradient check
# `nn.gradcheck` reduces the layer's output to a scalar with a fixed random upstream
# gradient, $f = \sum \delta \odot y$ (gradcheck-2), and compares every analytic gradient
# with central differences (gradcheck-1); the error per array is (gradcheck-3), its worst
# entry relative to its largest gradient. In float64 a correct backward gives about
# $10^{-10}$; the threshold is $10^{-7}$.

# %%
report = nn.gradcheck(layer, x)
print(nn.format_report(report))
assert max(report.values()) < TOLERANCE

# %% [markdown]
# ## Why $10^{-7}$: the error as a function of the step $h$
# The central difference has a truncation error $\approx h^2 |f'''|/6$ and a rounding error
# $\approx \epsilon_{mach} |f| / h$. Their sum is smallest near $h \approx \epsilon^{1/3}$:
# about $6 \times 10^{-6}$ in float64, where, with $|f|$ and $|f'''|$ of order one, the two
# terms are $(6 \times 10^{-6})^2/6 \approx 6 \times 10^{-12}$ and $2.2 \times 10^{-16} /
# (6 \times 10^{-6}) \approx 4 \times 10^{-11}$: both near $10^{-11}$. The network below
# has its lowest measured error, $4 \times 10^{-11}$, at $h = 10^{-5}$. In float32
# ($\epsilon \approx 10^{-7}$, $\epsilon^{1/3} \approx 5 \times 10^{-3}$) the best one can
# get is about $5 \times 10^{-5}$, at a step chosen with care ($h \approx 3 \times 10^{-3}$),
# and at gradcheck's
# $h = 10^{-6}$ the error is $0.15$: a check in float32 cannot tell a correct backward from a
# one-percent mistake. Every check runs in float64.

# %%
net = nn.Sequential(nn.Dense(4, 6, backend=bk), nn.Tanh(backend=bk), nn.Dense(6, 2, backend=bk))
xs = bk.normal((3, 4))
up = bk.normal((3, 2))
net.forward(xs)
net.backward(up)
W0 = net.params["0.W"]
analytic = net.grads["0.W"].copy()
hs = np.logspace(-12, -1, 23)
errors = {}
for dtype in ("float64", "float32"):
    theta = W0.astype(dtype)
    def f(theta=theta, dtype=dtype):
        # the same network evaluated in `dtype`: W0 replaced by theta
        h1 = np.tanh(xs.astype(dtype) @ theta + net.params["0.b"].astype(dtype))
        out = h1 @ net.params["2.W"].astype(dtype) + net.params["2.b"].astype(dtype)
        return np.sum(up.astype(dtype) * out)
    errors[dtype] = [relative_error(analytic, numerical_gradient(f, theta, h)) for h in hs]
fig, ax = plt.subplots(figsize=(6, 3.2))
for dtype, e in errors.items():
    ax.loglog(hs, e, "o-", ms=3, label=dtype)
ax.axhline(TOLERANCE, color="k", lw=0.8, ls="--", label="threshold 1e-7")
ax.axvline(1e-6, color="gray", lw=0.8, ls=":", label="h used by gradcheck")
ax.set_xlabel("step h")
ax.set_ylabel("relative error (gradcheck-3)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
savefig(fig, "01_error_vs_h.png")
i6 = np.argmin(np.abs(hs - 1e-6))
for dtype, e in errors.items():
    print(f"{dtype}: best {min(e):.1e} (h = {hs[np.argmin(e)]:.0e}), at h = 1e-6 {e[i6]:.1e}")
# the optimum sits near eps^(1/3), float64's near 1e-10 and float32's a million times worse
assert 1e-6 < hs[np.argmin(errors["float64"])] < 3e-5 and min(errors["float64"]) < 1e-10
assert 1e-3 < hs[np.argmin(errors["float32"])] < 1e-2 and errors["float32"][i6] > 0.1

# %% [markdown]
# (The cell above writes the tiny network out with NumPy only to evaluate it in float32
# too; everywhere else the library's own forward is used.)
#
# ## Break it on purpose and watch the check fail
# Each of these is a mistake people make when they write a backward by hand. Change `BUGS`
# (or write your own in `BrokenDense.backward`) and rerun: every one is caught, by orders of
# magnitude, even a one-percent error.

# %%
BUGS = {
    "dW off by 1%": lambda g: {**g, "W": g["W"] * 1.01},
    "db: mean over the batch instead of sum": lambda g: {**g, "b": g["b"] / B},
    "dW = x^T delta forgotten for one row": lambda g: {**g, "W": np.concatenate(
        [g["W"][:1] * 0, g["W"][1:]])},
}


class BrokenDense(nn.Dense):
    bug = None

    def backward(self, dy, param_grads=True, input_grad=True):
        dx = super().backward(dy, param_grads, input_grad)
        self._grads = BUGS[self.bug](self._grads)
        return dx


for bug in BUGS:
    broken = BrokenDense(4, 3, backend=nn.Backend("numpy", dtype="float64", seed=0))
    broken.bug = bug
    r = nn.gradcheck(broken, x)
    print(f"--- {bug}\n{nn.format_report(r)}")
    assert max(r.values()) > 1e-4

# %% [markdown]
# ## Why the upstream gradient is random
# Checking with $f = \sum_i y_i$ (that is, $\delta = 1$) is a common shortcut, and it can
# pass a wrong backward. The softmax is the classic case: its outputs always sum to 1, so the
# gradient of their sum is exactly zero, and a backward that returns zeros "passes". A random
# $\delta$ exposes it.

# %%
s = bk.normal((3, 5))
softmax = lambda: np.exp(nn.log_softmax(s))          # eq. (softmax-1), exponentiated
wrong = np.zeros_like(s)                             # a backward that returns zeros
delta_r = bk.normal((3, 5))
p = softmax()
right = p * (delta_r - np.sum(delta_r * p, axis=1, keepdims=True))
summed = lambda: np.sum(softmax())
weighted = lambda: np.sum(delta_r * softmax())
for name, f, claimed in [("sum of outputs,  wrong backward  ", summed, wrong),
                         ("random upstream, wrong backward  ", weighted, wrong),
                         ("random upstream, correct backward", weighted, right)]:
    numeric = numerical_gradient(f, s)
    print(f"{name}: max |numerical| = {np.abs(numeric).max():.1e}, "
          f"max |claimed - numerical| = {np.abs(claimed - numeric).max():.1e}")

# %% [markdown]
# With $\delta = 1$ the true gradient is zero (up to rounding, $10^{-10}$), so the zeros of
# the wrong backward agree with it to $10^{-10}$: the check cannot see the bug. With a random
# $\delta$ the true gradient is of order one and the wrong backward misses it entirely.
#
# ## A network is layers in a row
# `Sequential` applies the chain rule layer by layer in reverse, each layer's backward
# reading only its own cache; the whole network passes the same check.

# %%
net = nn.Sequential(nn.Dense(4, 8, alpha=0.2, backend=bk), nn.LeakyReLU(0.2, backend=bk),
                    nn.Dense(8, 2, init="glorot", backend=bk), nn.Sigmoid(backend=bk))
print(nn.format_report(nn.gradcheck(net, x)))

# %% [markdown]
# ## Exercises
#
# 1. **Break it and watch: a forgotten transpose.** In a square layer (`n_in == n_out`),
#    $\delta W$ has the same shape as $\delta W^\top$, so writing `dx = dy @ W` instead of
#    (dense-4) raises no error. Make that mistake in a subclass of `nn.Dense` and find out
#    which entry of the gradient check catches it.
# 2. **Sum over the batch.** Show that $\partial L/\partial W = x^\top \delta$ (dense-2) is
#    the sum over the examples of the outer products $x_n^\top \delta_n$, and that when the
#    loss is a mean over the batch ($\delta$ divided by $B$, the convention of the docs'
#    notation page) the gradient is the mean of those outer products.
# 3. **Why central differences?** The forward difference $(f(\theta + h) - f(\theta))/h$
#    has an error of order $h$, the central one (gradcheck-1) of order $h^2$. Measure both at
#    $h = 10^{-4}$ on the network above.

# %% [markdown]
# <details><summary>Solution 1</summary>
#
# The parameter gradients are right, so their errors stay at $10^{-10}$; only the input
# gradient `x` is wrong, and by order one. A check that looked at the parameters only would
# miss it: `nn.gradcheck` checks the input too.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
class TransposeForgotten(nn.Dense):
    def backward(self, dy, param_grads=True, input_grad=True):
        super().backward(dy, param_grads, input_grad=False)
        return dy @ self.params["W"] if input_grad else None     # should be dy @ W.T


square = TransposeForgotten(4, 4, backend=nn.Backend("numpy", dtype="float64", seed=1))
r1 = nn.gradcheck(square, x)
print(nn.format_report(r1))
assert r1["x"] > 1e-2 and r1["W"] < TOLERANCE and r1["b"] < TOLERANCE

# %% [markdown]
# <details><summary>Solution 2</summary>
#
# On paper: entry $(i, j)$ of $x^\top \delta$ is $\sum_n (x^\top)_{in} \delta_{nj} =
# \sum_n x_{ni}\delta_{nj}$, and entry $(i, j)$ of the outer product $x_n^\top \delta_n$
# (a column times a row) is $x_{ni}\delta_{nj}$; so $x^\top\delta = \sum_n x_n^\top
# \delta_n$, one outer product per example. If the loss is the batch mean $L = \frac1B
# \sum_n \ell_n$, its upstream gradient is $\delta_n = \frac1B \partial \ell_n/\partial
# y_n$, and by linearity $\partial L/\partial W = \frac1B \sum_n x_n^\top\,
# \partial\ell_n/\partial y_n$: the mean of the per-example gradients. The cell checks both
# identities.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
layer.forward(x)
delta = bk.normal((5, 3))
layer.backward(delta)
outer = sum(np.outer(x[n], delta[n]) for n in range(5))
assert np.allclose(layer.grads["W"], outer)
layer.backward(delta / 5)                                  # the loss averaged over the batch
assert np.allclose(layer.grads["W"], outer / 5)
print("x^T delta = sum_n x_n^T delta_n; with a mean loss, their mean")

# %% [markdown]
# <details><summary>Solution 3</summary>
#
# Taylor: $f(\theta \pm h) = f \pm h f' + \frac{h^2}{2} f'' \pm \frac{h^3}{6} f''' +
# O(h^4)$. The forward difference keeps the $h^2$ term, $(f(\theta+h) - f(\theta))/h = f' +
# \frac h2 f'' + O(h^2)$; in the central one it cancels between the two sides, leaving $f' +
# \frac{h^2}{6} f''' + O(h^4)$. At $h = 10^{-4}$ the forward difference is off by $6 \times
# 10^{-5}$ relative (measured below), far above the $10^{-7}$ threshold; the central
# difference by $6 \times 10^{-9}$.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
def f_net():
    return float(np.sum(up * net.forward(xs)))


net = nn.Sequential(nn.Dense(4, 6, backend=bk), nn.Tanh(backend=bk), nn.Dense(6, 2, backend=bk))
net.forward(xs)
net.backward(up)
exact = net.grads["0.W"].copy()
W0 = net.params["0.W"]
h = 1e-4
forward_diff, central_diff = np.zeros_like(W0), np.zeros_like(W0)
for idx in np.ndindex(W0.shape):
    old = W0[idx]
    W0[idx] = old + h
    f_plus = f_net()
    W0[idx] = old - h
    f_minus = f_net()
    W0[idx] = old
    f_0 = f_net()
    forward_diff[idx] = (f_plus - f_0) / h
    central_diff[idx] = (f_plus - f_minus) / (2 * h)
e_fwd, e_ctr = relative_error(exact, forward_diff), relative_error(exact, central_diff)
print(f"h = 1e-4: forward difference {e_fwd:.1e}, central difference {e_ctr:.1e}")
assert e_fwd > TOLERANCE > e_ctr and e_fwd > 100 * e_ctr
