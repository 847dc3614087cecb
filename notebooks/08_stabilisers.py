# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 08 Stabilisers: batch norm, spectral norm, dropout
#
# Three layers that a GAN leans on (`docs/stabilisers.md` derives them; the default `stable`
# recipe of the image presets puts spectral normalisation in the discriminator and batch
# normalisation in the generator). Each has a backward pass that is easy to get subtly wrong,
# and two of them behave differently in training and in evaluation. This chapter
#
# - derives batch norm's backward twice: as a staged computational graph, one local gradient
#   per node, and as the closed form (bn-7) of `BatchNorm1d.backward`; checks both against
#   finite differences and each other, and times them;
# - watches the running statistics (bn-3) converge and compares evaluation mode (bn-4) with
#   training mode (bn-2);
# - measures how fast power iteration (sn-1), (sn-2) finds the spectral norm, what the
#   training-mode gradient (sn-6) misses before it has, and how far above 1 the normalised
#   layer's norm is before it has;
# - checks dropout's expectation (drop-1) by Monte Carlo.
#
# Notation as in `docs/stabilisers.md`: a batch $x$ of shape `(B, F)`, $n$ indexes the
# examples and $i$ the features; $\delta = \partial L/\partial y$ the upstream gradient.
# Everything is float64 where finite differences are involved.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import nnscratch as nn
from _common import FAST, savefig
from nnscratch.gradcheck import TOLERANCE, check_gradients, numerical_gradient, relative_error

b = nn.Backend("numpy", dtype="float64", seed=0)
xp = b.xp

# %% [markdown]
# ## Batch norm's backward, first as a staged graph
# Take one feature (features do not interact; the code does all of them at once along
# axis 0). The forward (bn-1), (bn-2) is a chain of small steps, each with a local gradient
# one can write down without thinking:
#
# 1. $\mu_B = \frac1B\sum_n x_n$, with $\partial\mu_B/\partial x_n = 1/B$;
# 2. $c_n = x_n - \mu_B$, with $\partial c_n/\partial x_n = 1$ and
#    $\partial c_n/\partial\mu_B = -1$;
# 3. $\sigma_B^2 = \frac1B\sum_n c_n^2$, with $\partial\sigma_B^2/\partial c_n = 2c_n/B$;
# 4. $\tilde\sigma_B = \sqrt{\sigma_B^2 + \epsilon_{bn}}$, with
#    $\partial\tilde\sigma_B/\partial\sigma_B^2 = 1/(2\tilde\sigma_B)$;
# 5. $q = 1/\tilde\sigma_B$, with $\partial q/\partial\tilde\sigma_B = -1/\tilde\sigma_B^2$;
# 6. $\hat x_n = c_n\, q$, with $\partial\hat x_n/\partial c_n = q$ and
#    $\partial\hat x_n/\partial q = c_n$;
# 7. $y_n = \gamma\hat x_n + \beta$, with $\partial y_n/\partial\hat x_n = \gamma$,
#    $\partial y_n/\partial\gamma = \hat x_n$ and $\partial y_n/\partial\beta = 1$.
#
# The backward walks the list from the bottom up, multiplying each incoming gradient by
# the local one and *summing* where a value fans out: $c_n$ feeds both node 3 and node 6,
# $\mu_B$ feeds every $c_n$, $q$ feeds every $\hat x_n$. Written with the library's arrays
# (the backend's `xp`), node by node:

# %%
def bn_forward_staged(x, gamma, beta, eps):
    """Eqs. (bn-1), (bn-2) as seven nodes; returns y and the nodes the backward reads."""
    B = x.shape[0]
    mu = xp.sum(x, axis=0) / B                 # node 1
    c = x - mu                                 # node 2
    var = xp.sum(c * c, axis=0) / B            # node 3
    std = xp.sqrt(var + eps)                   # node 4
    q = 1.0 / std                              # node 5
    x_hat = c * q                              # node 6
    y = gamma * x_hat + beta                   # node 7
    return y, (x_hat, c, std, q, gamma)


def bn_backward_staged(dy, nodes):
    """The seven nodes read bottom-up: one local gradient per node, sums where a value fans out."""
    x_hat, c, std, q, gamma = nodes
    B = dy.shape[0]
    dbeta = xp.sum(dy, axis=0)                 # node 7, summed over the batch: (bn-5)
    dgamma = xp.sum(dy * x_hat, axis=0)        # node 7: (bn-6)
    dx_hat = dy * gamma                        # node 7
    dq = xp.sum(dx_hat * c, axis=0)            # node 6, q fans out to every x_hat_n
    dc = dx_hat * q                            # node 6, first path to c
    dstd = -dq / (std * std)                   # node 5
    dvar = dstd / (2.0 * std)                  # node 4
    dc = dc + dvar * 2.0 * c / B               # node 3, second path to c
    dmu = -xp.sum(dc, axis=0)                  # node 2, mu fans out to every c_n
    dx = dc + dmu / B                          # nodes 2 and 1
    return dx, dgamma, dbeta


# %% [markdown]
# Both are checked against central differences (gradcheck-1) with a random upstream
# gradient (gradcheck-2), in float64: the staged version through the library's
# `check_gradients`, the library's `BatchNorm1d` through `nn.gradcheck`. A correct backward
# shows $10^{-10}$ to a few $10^{-9}$, the threshold is $10^{-7}$.

# %%
B, F = 6, 4
bn = nn.BatchNorm1d(F, backend=b)
bn.params["gamma"][...] = b.normal((F,))
bn.params["beta"][...] = b.normal((F,))
# x is not the generator's first draw: gradcheck's upstream gradient is the first draw of
# seed 0, and an upstream gradient that is an affine function of x, feature by feature, has
# an input gradient of almost zero (exercise 4), too small for a relative error to mean much
x = b.normal((B, F)) * 3.0 + 1.0
gamma, beta = bn.params["gamma"], bn.params["beta"]
delta = b.normal((B, F))

y_staged, nodes = bn_forward_staged(x, gamma, beta, bn.eps)
dx_staged, dgamma_staged, dbeta_staged = bn_backward_staged(delta, nodes)
staged_report = check_gradients(
    lambda: xp.sum(delta * bn_forward_staged(x, gamma, beta, bn.eps)[0]),
    {"x": x, "gamma": gamma, "beta": beta},
    {"x": dx_staged, "gamma": dgamma_staged, "beta": dbeta_staged})
library_report = nn.gradcheck(bn, x)
print("staged graph\n" + nn.format_report(staged_report))
print("BatchNorm1d.backward, eq. (bn-7)\n" + nn.format_report(library_report))
assert max(staged_report.values()) < TOLERANCE and max(library_report.values()) < TOLERANCE

# %% [markdown]
# ## ... then as the closed form, and the two against each other
# Collapsing the seven nodes on paper (`docs/stabilisers.md` does it through the Jacobian
# (bn-9), $\partial\hat x_m/\partial x_n = \frac{1}{\tilde\sigma_B}\big([m=n] - \frac1B -
# \frac{\hat x_m\hat x_n}{B}\big)$) gives (bn-7),
#
# $$ \frac{\partial L}{\partial x} = \frac{\gamma}{B\,\tilde\sigma_B}\odot\Big(B\delta -
#    \frac{\partial L}{\partial\beta} - \hat x\odot\frac{\partial L}{\partial\gamma}\Big), $$
#
# which reuses the two parameter gradients and needs only $\hat x$ and $1/\tilde\sigma_B$
# from the forward. The Jacobian itself is checked first, entry by entry against finite
# differences of $\hat x$; then the two backwards against each other, to rounding.

# %%
j = 0                                               # one feature: the others do not interact
xj = x[:, j].copy()


def x_hat_of(v):
    return (v - xp.mean(v)) / xp.sqrt(xp.mean((v - xp.mean(v)) ** 2) + bn.eps)


xh = x_hat_of(xj)
std_j = float(xp.sqrt(xp.mean((xj - xp.mean(xj)) ** 2) + bn.eps))
J_formula = (np.eye(B) - 1.0 / B - np.outer(xh, xh) / B) / std_j         # eq. (bn-9)
J_numeric = np.stack([numerical_gradient(lambda m=m: x_hat_of(xj)[m], xj) for m in range(B)])
print(f"Jacobian (bn-9) against finite differences: {relative_error(J_formula, J_numeric):.1e}")
assert relative_error(J_formula, J_numeric) < TOLERANCE

bn.forward(x)
dx_library = bn.backward(delta)
print("max |staged - closed form|:",
      f"dx {np.abs(dx_staged - dx_library).max():.1e},",
      f"dgamma {np.abs(dgamma_staged - bn.grads['gamma']).max():.1e},",
      f"dbeta {np.abs(dbeta_staged - bn.grads['beta']).max():.1e}")
assert np.allclose(dx_staged, dx_library, rtol=1e-12, atol=1e-12)
assert np.allclose(y_staged, bn.forward(x), rtol=1e-12, atol=1e-12)

# %% [markdown]
# ### Timing the two
# The same backward, two ways: the staged graph makes a temporary per node (about ten passes
# over `(B, F)` arrays), the closed form three or four. Timed in float32, the dtype of
# training, as the median of repeated calls of the backward alone (the forward runs once and
# both read what it kept), the two calls alternated so that other work on the machine slows
# both alike.

# %%
b32 = nn.Backend("numpy", dtype="float32", seed=0)
sizes = [(64, 128), (256, 512)] if FAST else [(64, 128), (256, 512), (1024, 1024), (4096, 1024)]
repeats = 5 if FAST else 50


def median_ms(fns, repeats):
    """Median time of each function in ms, the calls alternated so that a busy machine slows
    them alike."""
    for fn in fns:
        fn()                                          # warm-up: allocation, caches
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [1e3 * float(np.median(t)) for t in times]


rows = []
for B_t, F_t in sizes:
    layer = nn.BatchNorm1d(F_t, backend=b32)
    x_t, dy_t = b32.normal((B_t, F_t)), b32.normal((B_t, F_t))
    layer.forward(x_t)
    _, nodes_t = bn_forward_staged(x_t, layer.params["gamma"], layer.params["beta"],
                                   np.float32(layer.eps))
    t_staged, t_closed = median_ms([lambda: bn_backward_staged(dy_t, nodes_t),
                                    lambda: layer.backward(dy_t)], repeats)
    rows.append((B_t, F_t, t_staged, t_closed))
print(f"{'B':>5} {'F':>5} {'staged (ms)':>12} {'closed form (ms)':>17} {'ratio':>6}")
for B_t, F_t, t_s, t_c in rows:
    print(f"{B_t:>5} {F_t:>5} {t_s:>12.3f} {t_c:>17.3f} {t_s / t_c:>6.2f}")
print(f"(median of {repeats} calls each; numpy {np.__version__}, one BLAS thread in CI)")

# %% [markdown]
# The closed form wins at every size, by a factor of about 1.5 to 4 (runs on the project's
# busy 2-core build machine, from $64\times128$ to $4096\times1024$; the factor varies from
# run to run on a shared machine): fewer passes
# over `(B, F)` arrays and fewer temporaries. It also keeps less: $\hat x$ and
# $1/\tilde\sigma_B$, where the staged graph keeps $\hat x$, $c$ and three vectors.
#
# ## Training mode, evaluation mode, and the running statistics
# In training mode each forward normalises with the batch's own $\mu_B, \sigma_B^2$ and moves
# the running mean $\bar\mu$ and variance $\bar\sigma^2$ towards them (bn-3), with momentum
# $\rho = 0.1$ and the unbiased variance $\frac{B}{B-1}\sigma_B^2$. From $\bar\mu = 0$,
# $\bar\sigma^2 = 1$ the expected running mean after $t$ batches is
# $\mathbb E[x]\,(1 - (1-\rho)^t)$: the gap shrinks by $1 - \rho = 0.9$ per step. In evaluation mode
# (bn-4) the layer uses $\bar\mu, \bar\sigma^2$ and is a fixed affine map, so an example's output no
# longer depends on the rest of its batch. Below, three features with means $(2, -1, 0.5)$
# and standard deviations $(3, 0.5, 1)$, batches of 16.

# %%
mu_data, sd_data = np.array([2.0, -1.0, 0.5]), np.array([3.0, 0.5, 1.0])
rho, B_rs, steps = 0.1, 16, 100
bn_rs = nn.BatchNorm1d(3, momentum=rho, backend=b)
probe = b.normal((256, 3)) * sd_data + mu_data          # a fixed batch to compare the modes
history, snapshots = [], {}
for t in range(1, steps + 1):
    bn_rs.train().forward(b.normal((B_rs, 3)) * sd_data + mu_data)
    history.append((bn_rs.buffers["running_mean"].copy(), bn_rs.buffers["running_var"].copy()))
    if t in (5, steps):
        y_eval = bn_rs.eval().forward(probe)              # eq. (bn-4): the running statistics
        snapshots[t] = y_eval
bn_rs.train()
y_train = bn_rs.forward(probe)                           # eq. (bn-2): the probe's own statistics
running_mean = np.array([h[0] for h in history])
running_var = np.array([h[1] for h in history])

fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
ts = np.arange(1, steps + 1)
for i, colour in enumerate(["C0", "C1", "C2"]):
    axes[0].plot(ts, running_mean[:, i], colour, lw=1.2)
    axes[0].plot(ts, mu_data[i] * (1 - (1 - rho) ** ts), colour, ls=":", lw=1)
    axes[0].axhline(mu_data[i], color=colour, lw=0.6, ls="--")
    axes[1].semilogy(ts, running_var[:, i], colour, lw=1.2)
    axes[1].semilogy(ts, sd_data[i] ** 2 + (1 - sd_data[i] ** 2) * (1 - rho) ** ts, colour,
                     ls=":", lw=1)
    axes[1].axhline(sd_data[i] ** 2, color=colour, lw=0.6, ls="--")
axes[0].set(title="running mean (bn-3)", xlabel="training forwards t")
axes[1].set(title="running variance (bn-3)", xlabel="training forwards t")
axes[0].plot([], [], "k:", label="expected, gap x 0.9 per step")
axes[0].plot([], [], "k--", lw=0.6, label="data")
axes[0].legend(fontsize=8)
for t, style in ((5, "C3."), (steps, "C0.")):
    axes[2].plot(y_train[:, 0], snapshots[t][:, 0], style, ms=3, label=f"eval mode after {t} steps")
lim = [y_train[:, 0].min(), y_train[:, 0].max()]
axes[2].plot(lim, lim, "k", lw=0.6, label="eval = train")
axes[2].set(title="feature 0 of one batch of 256", xlabel="training-mode output (bn-2)",
            ylabel="evaluation-mode output (bn-4)")
axes[2].legend(fontsize=8)
fig.tight_layout()
savefig(fig, "08_bn_running_stats.png")

# the running averages' stationary spread: an EMA of weight rho over batch means whose
# standard deviation is sd / sqrt(B) has standard deviation sd / sqrt(B) * sqrt(rho / (2 - rho))
spread = sd_data / np.sqrt(B_rs) * np.sqrt(rho / (2 - rho))
print("running mean", np.round(running_mean[-1], 3), " data", mu_data,
      " expected spread", np.round(spread, 3))
print("running var ", np.round(running_var[-1], 3), " data", sd_data ** 2)
expected_mean = mu_data * (1 - (1 - rho) ** ts[:, None])    # the dotted curves
assert np.all(np.abs(running_mean - expected_mean) < 5 * spread)
assert np.all(np.abs(running_var[-1] / sd_data ** 2 - 1) < 0.5)
print("eval-mode output of the probe, mean and std per feature:",
      np.round(snapshots[steps].mean(0), 2), np.round(snapshots[steps].std(0), 2))
print("train-mode output of the probe, mean and std per feature:",
      np.round(y_train.mean(0), 2), np.round(y_train.std(0), 2))

# %% [markdown]
# Why the factor $\frac{B}{B-1}$ in (bn-3): the biased $\sigma_B^2$ of a batch of $B$
# averages $\frac{B-1}{B}$ of the data's variance, a quarter too little for $B = 4$. Over many
# small batches the running variance, which averages the unbiased $\frac{B}{B-1}\sigma_B^2$,
# settles on the data's variance instead (its average over the steps after a burn-in):

# %%
# a generator of its own: the number of draws differs between fast and full mode, and the
# sections below should see the same numbers in both
b_small = nn.Backend("numpy", dtype="float64", seed=4)
bn_small = nn.BatchNorm1d(3, momentum=rho, backend=b_small)
var_avg, n_avg = np.zeros(3), 0
for t in range(600 if FAST else 3000):
    bn_small.forward(b_small.normal((4, 3)) * sd_data + mu_data)
    if t >= 100:
        var_avg += bn_small.buffers["running_var"]
        n_avg += 1
var_ratio = var_avg / n_avg / sd_data ** 2
print(f"B = 4: running variance / data variance, averaged over {n_avg} steps:",
      np.round(var_ratio, 3), f"(the biased sigma_B^2 would give {3 / 4})")
# a variance of 4 normal samples has relative spread sqrt(2 / 3); the running average adds
# nothing to the mean, so the average over n steps has about sqrt(2 / 3) / sqrt(n)
se = np.sqrt(2 / 3) / np.sqrt(n_avg)
print(f"standard error {se:.3f}: the biased variance would be {0.25 / se:.0f} of them away")
assert np.all(np.abs(var_ratio - 1) < 3 * se) and 0.25 > 6 * se

# %% [markdown]
# After 5 steps the running statistics are still far from the data's (the red points leave
# the diagonal: evaluation mode shifts and scales every output); after 100 the two modes
# nearly agree. Training mode standardises each batch exactly (mean 0, std 1 up to
# $\epsilon_{bn}$), evaluation mode only approximately. And in training mode an example's
# output depends on its batch, in evaluation mode not:

# %%
one = probe[:1]
others_a, others_b = b.normal((7, 3)) * sd_data + mu_data, b.normal((7, 3)) * sd_data + mu_data
in_a = bn_rs.train().forward(xp.concat((one, others_a)))[0]
in_b = bn_rs.forward(xp.concat((one, others_b)))[0]
ev_a = bn_rs.eval().forward(xp.concat((one, others_a)))[0]
ev_b = bn_rs.forward(xp.concat((one, others_b)))[0]
alone = bn_rs.forward(one)[0]
print("train mode, same example in two batches:", np.round(in_a, 3), np.round(in_b, 3))
print("eval mode,  same example in two batches:", np.round(ev_a, 3), np.round(ev_b, 3),
      "alone:", np.round(alone, 3))
assert not np.allclose(in_a, in_b) and np.allclose(ev_a, ev_b) and np.allclose(ev_a, alone)

# %% [markdown]
# ## Spectral norm: how fast power iteration finds $\sigma_1$
# `SpectralNormDense` divides $W$ by an estimate $\hat\sigma$ of its largest singular value
# $\sigma_1$, refined by one power-iteration step (sn-1) per training forward:
# $v_{sn} \propto W^\top u$, $u \leftarrow W v_{sn}/\lVert W v_{sn}\rVert$,
# $\hat\sigma = \lVert W v_{sn}\rVert$ (sn-2). Write $u$ in the basis of the left singular
# vectors $a_k$ of $W$: each step multiplies the coefficient of $a_k$ by $\sigma_k^2$, so after
# $t$ steps the angle between $u$ and $a_1$ has a tangent that shrinks like
# $(\sigma_2/\sigma_1)^{2t}$. The estimate $\hat\sigma$ is a Rayleigh quotient, stationary at
# the top singular vector, so its error is of the order of the angle *squared*:
# $(\sigma_1 - \hat\sigma)/\sigma_1 \propto (\sigma_2/\sigma_1)^{4t}$.
#
# A $20\times 12$ matrix built with singular values $2, 1.6, 1.2, \dots$: $\sigma_2/\sigma_1 =
# 0.8$, a small gap, so the convergence is slow enough to watch.

# %%
n_in, n_out = 20, 12
rng = np.random.default_rng(0)
Q_left, _ = np.linalg.qr(rng.standard_normal((n_in, n_in)))
Q_right, _ = np.linalg.qr(rng.standard_normal((n_out, n_out)))
sv = np.concatenate([[2.0, 1.6], np.linspace(1.2, 0.1, n_out - 2)])
W_gap = Q_left[:, :n_out] @ np.diag(sv) @ Q_right.T
ratio = sv[1] / sv[0]

sn = nn.SpectralNormDense(n_in, n_out, backend=b)
sn.params["W"][...] = W_gap
u0 = sn.buffers["u"].copy()                                  # the random start, kept for later
T = 30
sigma_err, angle = [], []
for t in range(1, T + 1):
    _, _, sigma_hat = sn.power_iteration()                   # what a training forward does
    sigma_err.append((sv[0] - float(sigma_hat)) / sv[0])
    cos = abs(float(sn.buffers["u"] @ Q_left[:, 0]))
    angle.append(np.sqrt(max(1.0 - cos * cos, 0.0)) / cos)  # tan of the angle to a_1
sigma_err, angle, ts = np.array(sigma_err), np.array(angle), np.arange(1, T + 1)
# measured rates: least-squares slopes of log error over the second half of the steps
tail = ts > T // 2
rate_sigma = np.exp(np.polyfit(ts[tail], np.log(sigma_err[tail]), 1)[0])
rate_angle = np.exp(np.polyfit(ts[tail], np.log(angle[tail]), 1)[0])
print(f"sigma_2/sigma_1 = {ratio}: predicted per step (ratio)^2 = {ratio ** 2:.4f} for u, "
      f"(ratio)^4 = {ratio ** 4:.4f} for sigma_hat")
print(f"measured per step: u {rate_angle:.4f}, sigma_hat {rate_sigma:.4f}")
assert abs(rate_angle / ratio ** 2 - 1) < 0.01 and abs(rate_sigma / ratio ** 4 - 1) < 0.01
assert np.all(sigma_err > -1e-15)                           # sigma_hat never above sigma_1
t_4 = int(ts[np.argmax(sigma_err < 1e-4)])
print(f"sigma_hat within 1e-4 of sigma_1 (relative) from step {t_4} on")
assert t_4 == 6 and np.all(sigma_err[t_4 - 1:] < 1e-4)

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.semilogy(ts, sigma_err, "o", ms=3, color="C0", label=r"$(\sigma_1 - \hat\sigma)/\sigma_1$")
ax.semilogy(ts, sigma_err[-1] * ratio ** (4 * (ts - T)), color="C0", lw=0.8,
            label=r"$\propto (\sigma_2/\sigma_1)^{4t}$")
ax.semilogy(ts, angle, "s", ms=3, color="C1", label=r"$\tan\angle(u, a_1)$")
ax.semilogy(ts, angle[-1] * ratio ** (2 * (ts - T)), color="C1", lw=0.8,
            label=r"$\propto (\sigma_2/\sigma_1)^{2t}$")
ax.set(xlabel="power-iteration steps t (training forwards)", ylabel="error",
       title=r"power iteration, $\sigma_2/\sigma_1 = 0.8$")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
savefig(fig, "08_sn_power_iteration.png")

# %% [markdown]
# The measured slopes match the predictions to three digits: the vector converges like
# $(\sigma_2/\sigma_1)^{2t}$, the estimate of the norm twice as fast in the exponent (the
# lines are anchored at the last point; only their slopes are predictions). With $0.8$,
# $\hat\sigma$ is within $10^{-4}$ of $\sigma_1$ after 6 steps (printed above the figure).
# In training the weights move little from one step to the next, so the $u$ carried over is
# already nearly converged for the new $W$: one step per forward keeps up.
#
# ### The normalised layer's norm before $u$ has converged
# Spectral normalisation bounds the layer's Lipschitz constant by 1 only when $\hat\sigma =
# \sigma_1$. For any unit vectors, $\lVert W^\top u\rVert \le \sigma_1$ and $\lVert W
# v_{sn}\rVert \le \sigma_1$, so $\hat\sigma \le \sigma_1$ always, and the layer's norm
# $\lVert W/\hat\sigma\rVert_2 = \sigma_1/\hat\sigma$ is at least 1. How much more, for a
# freshly built layer (random $u$), measured with `numpy.linalg.svd`:

# %%
n_layers = 20 if FAST else 200
first_forward, no_step = [], []
for seed in range(n_layers):
    layer = nn.SpectralNormDense(64, 32, backend=nn.Backend("numpy", dtype="float64", seed=seed))
    sigma_1 = np.linalg.svd(layer.params["W"], compute_uv=False)[0]
    no_step.append(sigma_1 / float(layer.sigma()[2]))        # eval mode, eq. (sn-4): u as drawn
    first_forward.append(sigma_1 / float(layer.power_iteration()[2]))   # one step, eq. (sn-2)
no_step, first_forward = np.array(no_step), np.array(first_forward)
print(f"{n_layers} random 64x32 layers, ||W / sigma_hat||_2 = sigma_1 / sigma_hat:")
print(f"  u as drawn (eval mode):        median {np.median(no_step):.2f}, "
      f"range {no_step.min():.2f} to {no_step.max():.2f}")
print(f"  after the first training step: median {np.median(first_forward):.2f}, "
      f"range {first_forward.min():.2f} to {first_forward.max():.2f}")
assert np.all(no_step >= 1.0) and np.all(first_forward >= 1.0) and first_forward.min() > 1.1

# %% [markdown]
# So a discriminator's first steps run with layers of norm about 1.3 each, not 1; a network
# of several such layers is bounded by the product. The bound of 1 is reached as $u$
# converges, within tens of steps (above).
#
# ### The Jacobian behind the backward
# With $u$ held fixed (evaluation mode), $\hat\sigma = \lVert W^\top u\rVert$ and
# $\partial\hat\sigma/\partial W_{ij} = u_i v_{sn,j}$, so the Jacobian of $W_{SN} =
# W/\hat\sigma$ is (sn-8), $\partial W_{SN,kl}/\partial W_{ij} = [kl = ij]/\hat\sigma -
# W_{kl} u_i v_{sn,j}/\hat\sigma^2$. The backward (sn-6) never forms it (it contracts it with
# $\partial L/\partial W_{SN}$ at once); here it is formed for a small layer and compared,
# entry by entry, with finite differences of $W/\lVert W^\top u\rVert$.

# %%
small = nn.SpectralNormDense(4, 3, backend=nn.Backend("numpy", dtype="float64", seed=5)).eval()
W_s, u_s = small.params["W"], small.buffers["u"]
_, v_s, sigma_s = small.sigma()
J_sn = (np.eye(12) / float(sigma_s)
        - np.outer(W_s.ravel(), np.outer(u_s, v_s).ravel()) / float(sigma_s) ** 2)   # (sn-8)
J_sn_numeric = np.stack([numerical_gradient(lambda kl=kl: (W_s / xp.sqrt(xp.sum((u_s @ W_s)
                                                         ** 2))).ravel()[kl], W_s).ravel()
                         for kl in range(12)])
print(f"Jacobian (sn-8) against finite differences: {relative_error(J_sn, J_sn_numeric):.1e}")
assert relative_error(J_sn, J_sn_numeric) < TOLERANCE

# %% [markdown]
# ### The training-mode gradient before $u$ has converged
# (sn-6) holds $u$ and $v_{sn}$ fixed. In evaluation mode that is exact whatever $u$
# (`docs/stabilisers.md`), but in training mode the forward first moves $u$ by (sn-1), a
# function of $W$, and (sn-6) neglects that path. The neglected term is of first order in the
# misalignment of $v_{sn}$, so it vanishes as power iteration converges. Measure it: start
# from the random $u_0$ of the matrix above, take $t$ steps, then compare (sn-6) with central
# differences of the *training-mode* forward, resetting $u$ before each evaluation so that
# every forward takes its one step from the same place.

# %%
x_sn = b.normal((5, n_in))
delta_sn = b.normal((5, n_out))


def train_mode_error(t):
    sn.buffers["u"][...] = u0
    for _ in range(t):
        sn.power_iteration()
    u_t = sn.buffers["u"].copy()

    def f():
        sn.buffers["u"][...] = u_t                # each forward steps from u_t, as in training
        return xp.sum(delta_sn * sn.train().forward(x_sn))

    f()
    sn.backward(delta_sn)
    analytic = {"W": sn.grads["W"].copy()}
    err_train = check_gradients(f, {"W": sn.params["W"]}, analytic)["W"]
    sn.buffers["u"][...] = u_t
    err_eval = nn.gradcheck(sn.eval(), x_sn)["W"]      # the same u, frozen: exact
    sn.train()
    return err_train, err_eval


steps_checked = range(0, 21, 4) if FAST else range(0, 31, 2)
errors = np.array([train_mode_error(t) for t in steps_checked])
print(f"{'t':>3} {'train-mode error':>17} {'eval-mode error':>16}")
for t, (e_train, e_eval) in zip(steps_checked, errors):
    print(f"{t:>3} {e_train:>17.1e} {e_eval:>16.1e}")
ts_c = np.array(list(steps_checked))
late = ts_c >= 12
rate_grad = np.exp(np.polyfit(ts_c[late], np.log(errors[late, 0]), 1)[0])
print(f"training-mode error per step, from t = 12 on: {rate_grad:.3f} "
      f"(predicted (sigma_2/sigma_1)^2 = {ratio ** 2:.3f})")
assert np.all(errors[:, 1] < TOLERANCE)                 # exact in evaluation mode, any u
assert errors[0, 0] > 1e-2 and abs(rate_grad / ratio ** 2 - 1) < 0.05

fig, ax = plt.subplots(figsize=(6, 3.4))
ax.semilogy(ts_c, errors[:, 0], "o-", ms=4, label="training mode (sn-6) vs finite differences")
ax.semilogy(ts_c, errors[:, 1], "s-", ms=4, label="evaluation mode (sn-6) vs finite differences")
ax.semilogy(ts_c, errors[-1, 0] * ratio ** (2 * (ts_c - ts_c[-1])), "k:", lw=1,
            label=r"$\propto (\sigma_2/\sigma_1)^{2t}$")
ax.axhline(TOLERANCE, color="gray", lw=0.6, ls="--", label="threshold 1e-7")
ax.set(xlabel="power-iteration steps before the check", ylabel="relative error (gradcheck-3)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
savefig(fig, "08_sn_train_grad.png")

# %% [markdown]
# From a random $u$ the training-mode gradient is wrong by tens of percent; after a faster
# start it improves like the angle of $u$, $(\sigma_2/\sigma_1)^{2t}$ (measured: 0.640 per
# step), and it is never exact: with this gap it passes the threshold of $10^{-7}$ only after
# about 25 steps. That is why the test suite (and
# `docs/stabilisers.md`) checks the backward in evaluation mode, where it is exact for every
# $u$, after converging $u$ so that the checked gradient is also the one training uses.
#
# ## Dropout: the expectation
# Inverted dropout (drop-1) keeps each entry with probability $1-p$ and scales the survivors
# by $1/(1-p)$, so $\mathbb E[y] = (1-p)\cdot x/(1-p) = x$: the training-mode output is, on
# average, the evaluation-mode output $y = x$. A Monte Carlo check over $N$ masks: the mean's
# standard error per entry is $|x|\sqrt{p/(1-p)}/\sqrt N$ (one draw has variance
# $x^2 p/(1-p)$), so the measured error should fall like $1/\sqrt N$ and stay within a few
# standard errors.

# %%
p = 0.3
x_d = b.normal((4, 8))
drop = nn.Dropout(p, backend=nn.Backend("numpy", dtype="float64", seed=2))   # N masks: its own
y_eval = drop.eval().forward(x_d)
drop.train()
N = 4000 if FAST else 100_000
draws = np.stack([drop.forward(x_d) for _ in range(N)])
Ns = np.unique(np.logspace(1, np.log10(N), 12).astype(int))
mc_error = [np.abs(draws[:n].mean(0) - y_eval).max() / np.abs(x_d).max() for n in Ns]
z = (draws.mean(0) - y_eval) / (np.abs(x_d) * np.sqrt(p / (1 - p) / N))
print(f"p = {p}, N = {N}: eval-mode output equals x: {np.array_equal(y_eval, x_d)}; "
      f"worst |mean - x| in standard errors: {np.abs(z).max():.2f} (of {z.size} entries)")
assert np.array_equal(y_eval, x_d) and np.abs(z).max() < 5

fig, ax = plt.subplots(figsize=(6, 3.4))
ax.loglog(Ns, mc_error, "o-", ms=4, label="max |mean of N draws - x| / max |x|")
ax.loglog(Ns, np.sqrt(p / (1 - p) / Ns), "k:", label=r"$\sqrt{p/(1-p)}/\sqrt{N}$")
ax.set(xlabel="masks N", ylabel="relative error", title="dropout (drop-1), p = 0.3")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
savefig(fig, "08_dropout_mc.png")

# %% [markdown]
# The backward (drop-2) applies the same scaled mask: with the mask held fixed the layer is
# linear, and its gradient check (the generator reseeded before every forward, as the test
# suite does) is exact:

# %%
class FixedMask(nn.Module):
    """A dropout layer whose generator is reseeded before every forward: one mask, so the
    layer is a fixed linear map (the test suite holds the mask so too)."""

    def __init__(self, layer, seed=7):
        super().__init__(layer.backend)
        self.layer, self.seed = layer, seed

    def forward(self, x):
        self.backend.seed(self.seed)
        return self.layer.forward(x)

    def backward(self, dy, param_grads=True, input_grad=True):
        return self.layer.backward(dy, param_grads, input_grad)


drop_check = nn.Dropout(p, backend=nn.Backend("numpy", dtype="float64"))
report = nn.gradcheck(FixedMask(drop_check), x_d)
print(nn.format_report(report))
assert report["x"] < TOLERANCE

# %% [markdown]
# ## Exercises
#
# 1. **Break it and watch: batch norm without the mean term.** Drop the path through
#    $\mu_B$ from the backward: in (bn-7) that is the term $-\partial L/\partial\beta$ (in
#    the staged graph, node 2's `dmu`). Gradient-check the result in training mode, and
#    in evaluation mode. Which arrays does the check flag, and why does evaluation mode not
#    care?
# 2. **Break it and watch: spectral norm without the $\sigma$ term.** Replace (sn-6) by the
#    plain $x^\top\delta/\hat\sigma$, forgetting that $\hat\sigma$ depends on $W$. Check it in
#    evaluation mode with a converged $u$. How large is the error, and which direction of
#    $\partial L/\partial W$ is wrong?
# 3. **Break it and watch: dropout without $1/(1-p)$.** Make a dropout that zeroes entries
#    with probability $p$ but does not rescale the survivors. Its gradient check passes (why?),
#    yet the network it sits in sees something else in evaluation mode: measure the bias of the
#    training-mode mean against the evaluation-mode output by Monte Carlo.
# 4. **On paper: what the two subtracted terms of (bn-7) remove.** For one feature, with
#    $\hat\delta_n = \gamma\delta_n$, write
#    $w_n = B\hat\delta_n - \sum_m \hat\delta_m - \hat x_n \sum_m \hat\delta_m \hat x_m$,
#    so that $\partial L/\partial x_n = w_n/(B\tilde\sigma_B)$.
#    Show that $\sum_n w_n = 0$ exactly, and compute $\sum_n \hat x_n w_n$. Is the gradient
#    orthogonal to $\hat x$ (a change that rescales the feature)? When exactly?

# %% [markdown]
# <details><summary>Solution 1</summary>
#
# Without the mean term the input gradient no longer sums to zero over the batch, and the
# check flags `x` by order one; `gamma` and `beta` stay exact, since (bn-5) and (bn-6) do not
# involve the path through $\mu_B$. In evaluation mode the mean is the constant $\bar\mu$:
# there is no path through it, (bn-8) is used, and the broken training-mode formula is never
# reached, so the check passes. A bug in a training-only branch hides from any check run
# in evaluation mode: check both modes.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
class BatchNormNoMean(nn.BatchNorm1d):
    def backward(self, dy, param_grads=True, input_grad=True):
        super().backward(dy, param_grads, input_grad=False)
        x_hat, inv_std, training = self._cache
        scale = self.params["gamma"] * inv_std
        if not training:
            return dy * scale                                         # eq. (bn-8)
        B = dy.shape[0]
        return (scale / B) * (B * dy - x_hat * xp.sum(dy * x_hat, axis=0))   # no -dbeta


broken_bn = BatchNormNoMean(F, backend=b)
broken_bn.params["gamma"][...] = b.normal((F,))
broken_bn.forward(b.normal((16, F)) * 2.0 + 1.0)                 # running stats away from 0, 1
r_train = nn.gradcheck(broken_bn.train(), x)
r_eval = nn.gradcheck(broken_bn.eval(), x)
print("training mode\n" + nn.format_report(r_train))
print("evaluation mode\n" + nn.format_report(r_eval))
assert r_train["x"] > 1e-2 and r_train["gamma"] < TOLERANCE and r_train["beta"] < TOLERANCE
assert max(r_eval.values()) < TOLERANCE

# %% [markdown]
# <details><summary>Solution 2</summary>
#
# The error on `W` is $1.6\times10^{-2}$, five orders above the threshold and eight above a
# correct backward's; `b` and
# `x` stay exact (the input gradient (sn-7) does not involve the derivative of
# $\hat\sigma$). The missing term is $-\lambda\, u v_{sn}^\top/\hat\sigma$, a
# rank-one matrix along the top singular direction: the broken gradient is right on every
# direction orthogonal to $u v_{sn}^\top$ and wrong only along it. Projecting both gradients
# on $u v_{sn}^\top$ (the inner product $u^\top (\cdot)\, v_{sn}$) shows the whole discrepancy
# there; what remains after removing that component agrees to rounding. What the missing
# term does: $W_{SN} = W/\hat\sigma$ does not change when $W$ is scaled ($\hat\sigma$ scales
# with it), so the true gradient is orthogonal to $W$: with $\langle \partial L/\partial
# W_{SN}, W\rangle = \hat\sigma\lambda$ (sn-5) and $u^\top W v_{sn} = \hat\sigma$, (sn-6)
# gives $\langle \partial L/\partial W, W\rangle = (\hat\sigma\lambda -
# \lambda\hat\sigma)/\hat\sigma = 0$. The broken gradient has $\langle\cdot, W\rangle =
# \lambda$: part of every step it asks for changes only the scale of $W$, which the division
# by $\hat\sigma$ undoes.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
class SpectralNoSigma(nn.SpectralNormDense):
    def backward(self, dy, param_grads=True, input_grad=True):
        x_in, z, u, v, sigma = self._cache
        dx = super().backward(dy, param_grads, input_grad)
        if param_grads:
            self._grads["W"] = x_in.T @ (dy / sigma)                 # (sn-6) without lambda
        return dx


good = nn.SpectralNormDense(n_in, n_out, backend=b)
bad = SpectralNoSigma(n_in, n_out, backend=b)
for layer in (good, bad):
    layer.params["W"][...] = W_gap
    layer.buffers["u"][...] = u0
    for _ in range(100):
        layer.power_iteration()                                     # converge u
    layer.eval()
r_bad = nn.gradcheck(bad, x_sn)
print(nn.format_report(r_bad))
assert r_bad["W"] > 1e-3 and r_bad["x"] < TOLERANCE and r_bad["b"] < TOLERANCE
good.forward(x_sn)
good.backward(delta_sn)
bad.forward(x_sn)
bad.backward(delta_sn)
u_c, v_c, _ = good.sigma()
diff = bad.grads["W"] - good.grads["W"]
along = float(u_c @ diff @ v_c)
rest = diff - along * np.outer(u_c, v_c)
print(f"discrepancy along u v_sn^T: {along:.3e}; the rest: {np.abs(rest).max():.1e}")
assert abs(along) > 1e-2 and np.abs(rest).max() < 1e-12
lam = float(xp.sum((x_sn.T @ delta_sn) * W_gap)) / float(good.sigma()[2])   # (sn-5)
print(f"<dL/dW, W>: correct {float(xp.sum(good.grads['W'] * W_gap)):.1e}, "
      f"broken {float(xp.sum(bad.grads['W'] * W_gap)):.6f} (lambda = {lam:.6f})")
assert abs(float(xp.sum(good.grads["W"] * W_gap))) < 1e-12 * np.abs(W_gap).sum()
assert np.isclose(float(xp.sum(bad.grads["W"] * W_gap)), lam, rtol=1e-9)

# %% [markdown]
# <details><summary>Solution 3</summary>
#
# With the mask held fixed the unscaled layer is still linear, $y = r\odot x$, and its
# backward $r\odot\delta$ is its exact gradient: a gradient check cannot see a wrong
# *forward*. The bias is in the forward: $\mathbb E[y] = (1-p)\,x$, so the training-mode
# mean is $30\%$ below the evaluation-mode output for $p = 0.3$: tens of standard errors
# with the 4,000 draws of fast mode, hundreds with the 100,000 of full mode. A network trained with
# it sees activations scaled by $1-p$; at evaluation they are suddenly $1/(1-p)$ larger. (Original,
# non-inverted dropout scaled by
# $1-p$ at evaluation instead; inverted dropout moves that to training so evaluation is the
# identity.)
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
class DropoutNoScale(nn.Dropout):
    def forward(self, x):
        if not self.training:
            self._cache = (tuple(x.shape), None)
            return x
        keep = self.backend.uniform(tuple(x.shape)) >= self.p
        r = xp.astype(keep, self.backend.dtype)                     # missing: / (1 - p)
        self._cache = (tuple(x.shape), r)
        return x * r


bare = DropoutNoScale(p, backend=nn.Backend("numpy", dtype="float64"))
r_bare = nn.gradcheck(FixedMask(bare), x_d)
print(nn.format_report(r_bare))
assert r_bare["x"] < TOLERANCE                                  # the check passes
bare.train()
draws_bare = np.stack([bare.forward(x_d) for _ in range(N)])
y_eval_bare = bare.eval().forward(x_d)
bias = draws_bare.mean(0) / x_d                                 # the mean's factor per entry
z_bare = (draws_bare.mean(0) - y_eval_bare) / (np.abs(x_d) * np.sqrt(p * (1 - p) / N))
print(f"training-mode mean / eval-mode output: {bias.mean():.3f} (1 - p = {1 - p}); "
      f"smallest |bias| in standard errors: {np.abs(z_bare).min():.0f}")
assert abs(bias.mean() - (1 - p)) < 0.02 and np.abs(z_bare).min() > 10

# %% [markdown]
# <details><summary>Solution 4</summary>
#
# Sum over $n$: $\sum_n w_n = B\sum_n\hat\delta_n - B\sum_m\hat\delta_m - \big(\sum_n \hat
# x_n\big)\sum_m\hat\delta_m\hat x_m = 0$, because $\sum_n\hat x_n = \sum_n (x_n -
# \mu_B)/\tilde\sigma_B = 0$ whatever $\epsilon_{bn}$. So the gradient never shifts a feature
# as a whole: shifting all $x_n$ by the same amount changes nothing after normalisation.
#
# Against $\hat x$:
#
# $$ \sum_n \hat x_n w_n = B\sum_n\hat\delta_n\hat x_n - 0 - \Big(\sum_n\hat x_n^2\Big)
#    \sum_m\hat\delta_m\hat x_m = \Big(B - \sum_n \hat x_n^2\Big)\sum_m\hat\delta_m\hat x_m. $$
#
# Now $\sum_n\hat x_n^2 = \sum_n (x_n - \mu_B)^2/\tilde\sigma_B^2 = B\sigma_B^2/(\sigma_B^2 +
# \epsilon_{bn})$, so
#
# $$ \sum_n \hat x_n w_n = \frac{B\,\epsilon_{bn}}{\sigma_B^2 + \epsilon_{bn}}
#    \sum_m \hat\delta_m \hat x_m. $$
#
# The gradient is orthogonal to $\hat x$ only for $\epsilon_{bn} = 0$: then rescaling a
# feature is undone exactly by the normalisation. With $\epsilon_{bn} > 0$ a larger feature
# is normalised to a slightly larger $\hat x$ ($\sigma_B/\tilde\sigma_B$ grows with
# $\sigma_B$), and the gradient keeps the fraction $\epsilon_{bn}/(\sigma_B^2 +
# \epsilon_{bn})$ of its component along $\hat x$: negligible for $\sigma_B^2 \gg 10^{-5}$,
# all of it for a feature that is nearly constant.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
for eps_bn, spread_x in ((1e-5, 1.0), (1e-5, 1e-3), (0.5, 1.0)):
    layer = nn.BatchNorm1d(F, eps=eps_bn, backend=b)
    layer.params["gamma"][...] = b.normal((F,))
    x4 = b.normal((B, F)) * spread_x
    x_hat4 = (layer.forward(x4) - layer.params["beta"]) / layer.params["gamma"]
    dx4 = layer.backward(delta)
    d_hat = layer.params["gamma"] * delta                         # delta-hat = gamma delta
    var4 = xp.mean((x4 - xp.mean(x4, axis=0)) ** 2, axis=0)
    w = dx4 * B * xp.sqrt(var4 + eps_bn)                           # w_n = B sigma~_B dx_n
    predicted = B * eps_bn / (var4 + eps_bn) * xp.sum(d_hat * x_hat4, axis=0)
    on_x_hat = xp.sum(x_hat4 * w, axis=0)
    print(f"eps {eps_bn:g}, sigma_B ~ {spread_x:g}: max |sum_n w_n| = "
          f"{np.abs(w.sum(0)).max():.1e}\n  sum_n x_hat_n w_n {np.round(on_x_hat, 6)}"
          f"\n  predicted         {np.round(predicted, 6)}")
    assert np.abs(w.sum(0)).max() < 1e-9
    assert np.allclose(on_x_hat, predicted, rtol=1e-6, atol=1e-12)
