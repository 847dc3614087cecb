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
# The leaky ReLU (lrelu-1, lrelu-2), the sigmoid (sigmoid-1, sigmoid-2) and tanh (tanh-1,
# tanh-2) with their derivatives; then the losses, and above all why binary cross-entropy is
# computed from logits (bce-1, bce-2) rather than from probabilities. Derivations:
# `docs/activations.md`, `docs/losses.md`; code: `nnscratch/activations.py`,
# `nnscratch/losses.py`.

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np

import nnscratch as nn
from _common import FAST, savefig  # noqa: F401

b = nn.Backend("numpy", dtype="float64", seed=0)
b32 = nn.Backend("numpy", dtype="float32", seed=0)

# %% [markdown]
# ## Activations and their derivatives
# An activation's backward multiplies the upstream gradient by $f'(x)$ entry by entry, so a
# backward with $\delta = 1$ returns the derivative itself. The leaky ReLU keeps a slope
# $\alpha = 0.2$ for $x < 0$; the sigmoid's derivative $y(1-y)$ is at most $1/4$, and tanh's
# $1 - y^2$ at most 1.

# %%
z = np.linspace(-5, 5, 401)[None, :]
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for layer, name in [(nn.LeakyReLU(0.2, backend=b), "leaky ReLU (0.2)"),
                    (nn.Sigmoid(backend=b), "sigmoid"), (nn.Tanh(backend=b), "tanh")]:
    y = layer.forward(z)
    dydz = layer.backward(np.ones_like(z))       # delta = 1 gives f'(z) itself
    axes[0].plot(z[0], y[0], label=name)
    axes[1].plot(z[0], dydz[0], label=name)
axes[0].set_title("f(z)")
axes[1].set_title("f'(z), from backward with delta = 1")
axes[0].set_ylim(-1.5, 3)
for ax in axes:
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
savefig(fig, "02_activations.png")

# %% [markdown]
# Each passes a gradient check (inputs kept 0.1 away from the leaky ReLU's kink at 0, where
# the derivative jumps and central differences straddle it):

# %%
xk = b.normal((4, 6))
xk = xk + 0.1 * np.sign(xk)
for layer in (nn.LeakyReLU(0.2, backend=b), nn.Sigmoid(backend=b), nn.Tanh(backend=b)):
    print(f"{layer.describe():16s} {nn.gradcheck(layer, xk)['x']:.1e}")

# %% [markdown]
# ## The sigmoid, naive and stable
# $1/(1 + e^{-z})$ computes $e^{100}$ for $z = -100$, which overflows float32 (its largest
# number is $3.4 \times 10^{38} \approx e^{88.7}$). The result, $1/\infty = 0$, is close to
# right but not right: the true $\sigma(-100) \approx 3.7 \times 10^{-44}$ is a (subnormal)
# float32, which the stable form below returns. And NumPy warns, and the test suite turns that
# warning into an error. `nn.sigmoid`
# (sigmoid-1) uses $1/(1+e^{-z})$ for $z \ge 0$ and $e^{z}/(1+e^{z})$ for $z < 0$, both
# written with $e^{-|z|} \le 1$: nothing can overflow.

# %%
zs = np.array([[-100.0, -20.0, 0.0, 20.0, 100.0]], dtype=np.float32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    naive = 1 / (1 + np.exp(-zs))
print("naive  ", naive[0], " warnings:", [str(w.message) for w in caught])
print("stable ", nn.sigmoid(zs)[0])

# %% [markdown]
# ## Binary cross-entropy: why from logits
# For a target $x \in [0, 1]$ and $p = \sigma(s)$,
# $\ell = -x\log p - (1-x)\log(1-p)$. Computed that way, in float32, $\sigma(s) = 1/(1 +
# e^{-s})$ is exactly 1 as soon as $s > 16.6$: the floats just above 1 are $2^{-23}$ apart, so
# $1 + e^{-s}$ rounds to 1 once $e^{-s} < 2^{-24} \approx 6 \times 10^{-8} \approx e^{-16.6}$
# (the true $\sigma(17) = 1 - 4 \times 10^{-8}$ would round to the float $1 - 6 \times
# 10^{-8}$, not to 1: the sum in the denominator is what loses it). Then $\log(1 - p) =
# \log 0 = -\infty$. Rewritten with
# logits (bce-1),
#
# $$\ell = \max(s, 0) - sx + \log\left(1 + e^{-|s|}\right),$$
#
# nothing is exponentiated but $e^{-|s|} \le 1$, and the loss is exact for any $s$. For a
# target $x = 0$ the true loss is $\log(1 + e^{s}) \approx s$ for large $s$:

# %%
s = np.array([[1.0, 10.0, 17.0, 20.0, 50.0, 100.0]], dtype=np.float32)
x = np.zeros_like(s)
with np.errstate(divide="ignore", invalid="ignore"):
    p = nn.sigmoid(s)
    naive = -(x * np.log(p) + (1 - x) * np.log(1 - p))
stable = [float(nn.bce_with_logits(b32.asarray(s[:, [i]]), b32.asarray(x[:, [i]]))[0])
          for i in range(s.shape[1])]                      # one entry per call: the entry's loss
print(f"{'logit s':>10} {'sigma(s)':>12} {'naive loss':>12} {'from logits':>12}")
for si, pi, ni, st in zip(s[0], p[0], naive[0], stable):
    print(f"{si:10.0f} {pi:12.8f} {ni:12.4f} {st:12.4f}")

# %% [markdown]
# Where the 1 comes from: the denominator $1 + e^{-17}$ is already 1 in float32, while the
# exact $\sigma(17)$, rounded once, is not.

# %%
one, e17 = np.float32(1), np.float32(np.exp(-17.0))
print("1 + e^-17 == 1 in float32:", one + e17 == one,
      "| exact sigma(17) rounded to float32:", np.float32(1 - np.exp(-17.0) + np.exp(-34.0)))
assert one + e17 == one and np.float32(1 - np.exp(-17.0)) < one

# %% [markdown]
# The gradient tells the same story. Through the sigmoid, the chain rule is
# $\partial\ell/\partial p \cdot \sigma'(s) = \frac{p - x}{p(1-p)} \cdot p(1-p)$, computed
# in two steps, the loss's backward and then the sigmoid's. Once $p$ has rounded to exactly 1
# (for $s > 16.6$, above), $1 - p$ is exactly 0: not a tiny number that underflowed, but the
# difference of two equal floats, all of $e^{-s}$ lost to rounding before the subtraction.
# With $x = 0$ the first step is then $\partial\ell/\partial p = 1/0 = \infty$ (NumPy warns
# "divide by zero"), and the second multiplies it by $p(1 - p) = 0$: $\infty \cdot 0$, which
# IEEE arithmetic defines as NaN. Simplified first, the product is just $\sigma(s) - x$
# (bce-2), which `bce_with_logits` returns, divided by the batch size.

# %%
with np.errstate(divide="ignore", invalid="ignore"):
    dl_dp = (p - x) / (p * (1 - p))                     # the loss's backward: 1/0 = inf
    naive_grad = dl_dp * (p * (1 - p))                  # the sigmoid's: inf * 0 = NaN
_, ds = nn.bce_with_logits(b32.asarray(s), b32.asarray(x))
print("1 - p               ", (1 - p)[0])
print("dl/dp               ", dl_dp[0])
print("naive gradient      ", naive_grad[0])
print("from logits (bce-2) ", ds[0])
saturated = s[0] >= 17
assert np.all((1 - p)[0, saturated] == 0) and np.all(np.isinf(dl_dp[0, saturated]))
assert np.all(np.isnan(naive_grad[0, saturated])) and np.allclose(ds[0, saturated], 1)

# %% [markdown]
# ## When only probabilities are at hand: the clipped BCE
# The networks of the article this project started from end in a sigmoid, so their loss
# sees $p$, not $s$. Then $p$ must be clipped to $[\epsilon, 1-\epsilon]$ (bce-3) with
# $\epsilon = 10^{-7}$: the loss stays finite, but each entry is capped at about
# $-\log\epsilon \approx 16$ nats (15.9 in float32, where $1 - 10^{-7}$ rounds down), and
# where the clip is active the gradient (bce-4) is zero, so a confidently wrong unit receives
# no signal at all. From logits, the gradient pushes hardest exactly there.

# %%
x1 = np.zeros_like(s)
Lc, dp = nn.bce(nn.sigmoid(s), x1)
ds_through_sigmoid = dp * p * (1 - p)                  # the sigmoid layer's backward, (sigmoid-2)
for i, si in enumerate(s[0]):
    Li = float(nn.bce(nn.sigmoid(s[:, [i]]), x1[:, [i]])[0])
    print(f"s = {si:5.0f}: clipped loss {Li:7.3f}   "
          f"gradient via sigmoid {ds_through_sigmoid[0, i]:.3f}   from logits {ds[0, i]:.3f}")

# %% [markdown]
# ## The reduction convention
# Every loss sums over the features of an example and averages over the batch (see
# `docs/notation.md`), so a batch's loss is the mean of the per-example losses, and every
# gradient carries a factor $1/B$:

# %%
sb, xb = b.normal((8, 5)) * 3, b.uniform((8, 5))
L_batch = float(nn.bce_with_logits(sb, xb)[0])
L_rows = [float(nn.bce_with_logits(sb[[n]], xb[[n]])[0]) for n in range(8)]
print(f"batch loss {L_batch:.6f} = mean of the 8 per-example losses {np.mean(L_rows):.6f}")

# %% [markdown]
# ## Every loss passes a gradient check

# %%
t = b.uniform((3, 4))
sv = b.normal((3, 4)) * 3
pv = nn.sigmoid(sv)
mu, logvar = b.normal((3, 2)), b.normal((3, 2))
labels = np.array([0, 3, 1])
checks = {   # name: (f recomputing the loss, arrays it reads, the loss's own gradients)
    "bce_with_logits": (lambda: nn.bce_with_logits(sv, t)[0], {"s": sv},
                        {"s": nn.bce_with_logits(sv, t)[1]}),
    "bce (clipped)": (lambda: nn.bce(pv, t)[0], {"p": pv}, {"p": nn.bce(pv, t)[1]}),
    "mse": (lambda: nn.mse(sv, t)[0], {"y": sv}, {"y": nn.mse(sv, t)[1]}),
    "kl_normal": (lambda: nn.kl_normal(mu, logvar)[0], {"mu": mu, "logvar": logvar},
                  dict(zip(("mu", "logvar"), nn.kl_normal(mu, logvar)[1]))),
    "softmax_cross_entropy": (lambda: nn.softmax_cross_entropy(sv, labels)[0], {"s": sv},
                              {"s": nn.softmax_cross_entropy(sv, labels)[1]}),
}
for name, (f, arrays, analytic) in checks.items():
    report = nn.check_gradients(f, arrays, analytic)
    print(f"{name:22s}", "  ".join(f"{k} {v:.1e}" for k, v in report.items()))
    assert max(report.values()) < 1e-7

# %% [markdown]
# ## Exercises
#
# 1. **Break it and watch: a gradient check at a kink.** The leaky ReLU has no derivative at
#    $x = 0$; the code takes the slope $\alpha$ there (lrelu-2). Put one input entry at
#    exactly 0 and run `nn.gradcheck`: what does the central difference see, and is the
#    backward wrong?
# 2. **Break it and watch: the naive BCE in training.** Take one logit $s = 20$ with target
#    $x = 0$ (a confidently wrong unit) and do gradient descent on it in float32, once with
#    the naive loss's chain rule through $p = \sigma(s)$ and once with (bce-2). Which one
#    moves?
# 3. **Softmax is shift-invariant.** Show that adding a constant to every logit of an example
#    changes neither the softmax cross-entropy (softmax-2) nor its gradient (softmax-3), and
#    why `log_softmax` uses that freedom.

# %% [markdown]
# <details><summary>Solution 1</summary>
#
# At a kink, $(f(h) - f(-h))/2h$ straddles both slopes and returns their mean,
# $(1 + \alpha)/2 = 0.6$, while the backward returns $\alpha = 0.2$: the check reports a
# large error although the code is as intended. A relative error far above the threshold at
# a kink is the check's limitation, not a bug; test activations away from their kinks
# (as the gradient checks above do, with inputs at least $h$ away from 0).
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
xk0 = b.normal((4, 5))
xk0 += np.sign(xk0) * 0.1                                 # every entry at least 0.1 from 0
leaky = nn.LeakyReLU(0.2, backend=b)
away = nn.gradcheck(leaky, xk0)["x"]
xk0[1, 2] = 0.0
at_kink = nn.gradcheck(leaky, xk0)["x"]
print(f"inputs away from 0: {away:.1e}; one input at exactly 0: {at_kink:.1e}")
assert away < 1e-7 < at_kink

# %% [markdown]
# <details><summary>Solution 2</summary>
#
# Through $p$, $\sigma(20)$ is exactly 1 in float32 (see above), so $1 - p = 0$, the loss's
# backward is $1/0 = \infty$ and the sigmoid's turns it into $\infty \cdot 0 = $ NaN: the
# first step ruins the parameter. From logits the gradient is $\sigma(s) - x = 1$: the unit
# moves straight back.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
def descend(gradient, s0=20.0, lr=2.0, steps=10):
    s_ = np.array([[s0]], dtype=np.float32)
    for _ in range(steps):
        with np.errstate(divide="ignore", invalid="ignore"):
            s_ = s_ - lr * gradient(s_)
    return float(s_[0, 0])


zero = np.zeros((1, 1), np.float32)


def naive_gradient(s_):
    p_ = nn.sigmoid(s_)
    return (p_ - zero) / (p_ * (1 - p_)) * (p_ * (1 - p_))      # dl/dp * dp/ds, as written


from_logits = lambda s_: nn.bce_with_logits(b32.asarray(s_), b32.asarray(zero))[1]
print(f"after 10 steps: naive {descend(naive_gradient)}, from logits {descend(from_logits):.2f}")
assert np.isnan(descend(naive_gradient)) and descend(from_logits) < 2

# %% [markdown]
# <details><summary>Solution 3</summary>
#
# $\mathrm{softmax}(s + c)_k = e^{c} e^{s_k} / (e^{c} \sum_j e^{s_j})$: the $e^{c}$ cancels,
# so the probabilities are unchanged; the loss $-\log \mathrm{softmax}(s)_y$ (softmax-2) and
# the gradient $\mathrm{softmax}(s) - \mathrm{onehot}(y)$ (softmax-3), divided by the batch
# size, are functions of the probabilities only, so they are unchanged too. `log_softmax` subtracts
# each row's maximum first, so the largest exponent is $e^0 = 1$ and nothing overflows.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
s3 = b.normal((4, 6))
y3 = np.array([0, 5, 2, 2])
L3, g3 = nn.softmax_cross_entropy(s3, y3)
L3c, g3c = nn.softmax_cross_entropy(s3 + b.normal((4, 1)) * 100, y3)
assert np.isclose(float(L3), float(L3c)) and np.allclose(g3, g3c)
big = nn.softmax_cross_entropy(s3 + 1e4, y3)[0]
print(f"loss {float(L3):.6f}; shifted rows {float(L3c):.6f}; shifted by 1e4 {float(big):.6f}")
assert np.isclose(float(big), float(L3))
