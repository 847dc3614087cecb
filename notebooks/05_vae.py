# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 05 The variational autoencoder
#
# The negative ELBO (vae-4) = reconstruction BCE from logits (bce-1) + the KL in closed form
# (kl-1); the reparameterisation $z = \mu + e^{\mathrm{logvar}/2}\epsilon$ (vae-2) lets the
# gradient pass through the sampling (vae-5, vae-6). Code: `nnscratch/models/vae.py`.

# %%
import matplotlib.pyplot as plt
import numpy as np

import nnscratch as nn
from _common import FAST, FIGURES, savefig, show
from nnscratch import datasets
from nnscratch.gradcheck import TOLERANCE, numerical_gradient, relative_error
from nnscratch.models.vae import VAE, VAETrainer
from nnscratch.plots.vae import save_latent_scatter, save_manifold, save_reconstructions
from nnscratch.training.loop import fit

# %% [markdown]
# ## The KL in closed form against Monte Carlo
# $\mathrm{KL}(q\|p) = \mathbb E_q[\log q(z) - \log p(z)]$; sampling with the *standard
# deviation* $e^{\mathrm{logvar}/2}$ (not the variance) makes the two agree.

# %%
rng = np.random.default_rng(0)
mu, logvar = np.array([[0.5, -1.0]]), np.array([[np.log(0.3), np.log(2.0)]])
eps = rng.standard_normal((200_000, 2))
z = mu + np.exp(logvar / 2) * eps
log_q = -0.5 * np.sum(eps ** 2 + logvar + np.log(2 * np.pi), axis=1)
log_p = -0.5 * np.sum(z ** 2 + np.log(2 * np.pi), axis=1)
b64 = nn.Backend("numpy", "float64", seed=0)
print(f"closed form (kl-1)                     {float(nn.kl_normal(mu, logvar)[0]):.4f}")
print(f"Monte Carlo, z = mu + exp(logvar/2) eps {np.mean(log_q - log_p):.4f}")

# %% [markdown]
# The derivation of (kl-1) in the docs goes in three steps (kl-4), (kl-5), (kl-6); each is
# checked here on the same draws: the log-densities against the Gaussian density itself,
# the two moments $\mathbb E_q[(z-\mu)^2] = \tau^2$ and $\mathbb E_q[z^2] = \tau^2 +
# \mu^2$, and the closed form against the Monte-Carlo mean of (kl-5). As in the docs,
# $\tau = e^{\mathrm{logvar}/2}$ is the standard deviation ($\sigma$ is the sigmoid).

# %%
tau = np.exp(logvar / 2)
density = np.exp(-(z - mu) ** 2 / (2 * tau ** 2)) / np.sqrt(2 * np.pi * tau ** 2)
log_q_k4 = -0.5 * np.log(2 * np.pi) - np.log(tau) - (z - mu) ** 2 / (2 * tau ** 2)
assert np.allclose(log_q_k4, np.log(density))                                  # (kl-4)
diff_k5 = -np.log(tau) - (z - mu) ** 2 / (2 * tau ** 2) + z ** 2 / 2           # (kl-5)
assert np.allclose(diff_k5.sum(axis=1), log_q - log_p)
moments = np.mean((z - mu) ** 2, axis=0), np.mean(z ** 2, axis=0)
print("E(z-mu)^2", moments[0].round(3), "tau^2", (tau[0] ** 2).round(3),
      "| E z^2", moments[1].round(3), "tau^2 + mu^2", (tau[0] ** 2 + mu[0] ** 2).round(3))
kl_k6 = 0.5 * (tau ** 2 + mu ** 2 - 1 - logvar)                                 # (kl-6)
assert np.allclose(kl_k6.sum(), float(nn.kl_normal(mu, logvar)[0]))
assert abs(diff_k5.sum(axis=1).mean() - kl_k6.sum()) < 0.01

# %% [markdown]
# Two well-known from-scratch libraries sample with the *variance* where the standard
# deviation belongs, $z = \mu + e^{\mathrm{logvar}}\epsilon$, while their KL term assumes
# the standard deviation. Then the samples do not come from the $q$ the KL is computed for:
# here their spread is wrong by a factor $e^{\mathrm{logvar}/2}$ per unit.

# %%
z_wrong = mu + np.exp(logvar) * eps
print("std of z per unit: intended", np.round(np.exp(logvar[0] / 2), 3),
      " sampled with the variance", np.round(z_wrong.std(axis=0), 3))

# %% [markdown]
# ## The whole VAE passes a gradient check through the sampling (eps held fixed)

# %%
vae = VAE(n_in=6, enc_hidden=(5,), latent=2, backend=b64)
x, eps = b64.uniform((4, 6)), b64.normal((4, 2))
_, _, _, dy = vae.loss(x, eps)
vae.backward(dy)
report = nn.check_gradients(lambda: vae.loss(x, eps)[0], dict(vae.params),
                            {k: g.copy() for k, g in vae.grads.items()})
print(nn.format_report(report))
assert max(report.values()) < TOLERANCE

# %% [markdown]
# These errors are larger than chapter 01's single layer, and on other random draws they can
# be much larger without any bug: (gradcheck-3) divides the error of an array by its largest
# gradient, and the rounding term $\epsilon_{mach}|f|/h$ of the central difference does not
# shrink with the gradient. The loss is about 4 nats, so at $h = 10^{-6}$ the rounding floor
# is about $2.2 \times 10^{-16} \cdot 4 / 10^{-6} \approx 10^{-9}$ in absolute terms; an
# array whose gradients are all small, like `logvar.W` when the decoder barely uses the noise,
# sees that floor magnified. With the backend seeded 7 instead of 0, `logvar.W`'s largest
# gradient is $6 \times 10^{-4}$ and its error at $h = 10^{-6}$ is $1.1 \times 10^{-6}$,
# above the threshold; a larger step, where rounding matters less, brings it back down,
# which a wrong backward never does:

# %%
b7 = nn.Backend("numpy", "float64", seed=7)
vae7 = VAE(n_in=6, enc_hidden=(5,), latent=2, backend=b7)
x7, eps7 = b7.uniform((4, 6)), b7.normal((4, 2))
L7, _, _, dy7 = vae7.loss(x7, eps7)
vae7.backward(dy7)
g7 = vae7.grads["logvar.W"]
errors7 = {h: relative_error(g7, numerical_gradient(lambda: float(vae7.loss(x7, eps7)[0]),
                                                    vae7.params["logvar.W"], h))
           for h in (1e-7, 1e-6, 1e-5, 1e-4)}
print(f"loss {float(L7):.2f}, largest |d loss / d logvar.W| {np.abs(g7).max():.1e}; error by h:",
      {h: f"{e:.1e}" for h, e in errors7.items()})
assert errors7[1e-6] > 1e-7 > errors7[1e-4] and errors7[1e-7] > errors7[1e-6]      # rounding

# %% [markdown]
# ## The ELBO, its gap, and the importance-weighted bound, exactly
# With a neural decoder $\log p(x)$ is out of reach, so the bound (vae-9) and its gap
# (vae-10) are checked on a model small enough to solve: $z \sim \mathcal N(0, 1)$,
# $x \mid z \sim \mathcal N(a z, s^2)$. Then $p(x) = \mathcal N(0, a^2 + s^2)$, the
# posterior is Gaussian with variance $v_* = 1/(1 + a^2/s^2)$ and mean $v_* a x / s^2$, and
# for a Gaussian encoder $q(z \mid x) = \mathcal N(c x, e^{d})$ the ELBO (vae-11) has a
# closed form: the expected log-likelihood plus the library's KL (kl-1).

# %%
from nnscratch.losses import kl_terms
from nnscratch.models.vae import logmeanexp, reparameterize

a, s2 = 2.0, 0.25
v_post = 1 / (1 + a * a / s2)
xs = rng.normal(0, np.sqrt(a * a + s2), 256)
log_px = -0.5 * (np.log(2 * np.pi * (a * a + s2)) + xs ** 2 / (a * a + s2))


def elbo(c, d, x):
    """(vae-11) in closed form for q = N(c x, e^d)."""
    m, v = c * x, np.exp(d)
    expected_loglik = -0.5 * np.log(2 * np.pi * s2) - ((x - a * m) ** 2 + a * a * v) / (2 * s2)
    return expected_loglik - kl_terms(m[:, None], np.full((len(x), 1), d))


def kl_to_posterior(c, d, x):
    m, v, m_post = c * x, np.exp(d), v_post * a * x / s2
    return 0.5 * (np.log(v_post / v) + (v + (m - m_post) ** 2) / v_post - 1)


c, d = 0.0, 0.0                                 # a poor encoder: q(z|x) = p(z)
z_draws, _ = reparameterize(c * xs[None, :, None], np.full((1, 1, 1), d),
                            rng.standard_normal((4000, len(xs), 1)))
mc = (-0.5 * np.log(2 * np.pi * s2) - (xs[None, :, None] - a * z_draws) ** 2 / (2 * s2)
      - 0.5 * (z_draws ** 2 + np.log(2 * np.pi)) + 0.5 * ((z_draws - c * xs[None, :, None]) ** 2
      / np.exp(d) + d + np.log(2 * np.pi))).mean(axis=0)[:, 0]
print(f"ELBO by Monte Carlo {mc.mean():.3f}, in closed form {elbo(c, d, xs).mean():.3f}")
assert abs(mc.mean() - elbo(c, d, xs).mean()) < 0.1
assert np.all(elbo(c, d, xs) <= log_px)                                          # (vae-9)
assert np.allclose(log_px - elbo(c, d, xs), kl_to_posterior(c, d, xs))           # (vae-10)
print(f"poor encoder: log p(x) {log_px.mean():.3f}, ELBO {elbo(c, d, xs).mean():.3f}, "
      f"gap = KL(q || p(z|x)) {kl_to_posterior(c, d, xs).mean():.3f}")

# %% [markdown]
# The encoder improves by gradient ascent on the mean ELBO (the decoder is fixed, so
# $\log p(x)$ is too): the gap, which is the KL from the true posterior (vae-10), shrinks
# to zero as $q(z \mid x)$ reaches $p(z \mid x)$.

# %%
gaps = []
for step in range(300):
    m, v = c * xs, np.exp(d)
    dm = a * (xs - a * m) / s2 - m                        # dELBO/dm
    dv = -a * a / (2 * s2) - 0.5 + 1 / (2 * v)            # dELBO/dv
    c, d = c + 0.05 * np.mean(dm * xs) / np.mean(xs * xs), d + 0.1 * np.mean(dv * v)
    gaps.append(float(np.mean(log_px - elbo(c, d, xs))))
print("gap every 50 steps:", np.round(gaps[::50], 4), "final", f"{gaps[-1]:.1e}")
assert all(g2 <= g1 + 1e-12 for g1, g2 in zip(gaps, gaps[1:])) and gaps[-1] < 1e-4
assert abs(np.exp(d) - v_post) < 1e-3

# %% [markdown]
# **The importance-weighted bound holds in expectation only** (vae-8), (vae-12). With a
# mediocre encoder (the posterior's mean, twice its variance) and one $x$, $\mathcal L_K$
# is drawn 2,000 times for each $K$: the mean rises towards $\log p(x)$ with $K$, while
# single draws scatter on both sides of it. A single $\mathcal L_K$ is an estimate, not a
# bound.

# %%
x0 = 1.5
log_px0 = -0.5 * (np.log(2 * np.pi * (a * a + s2)) + x0 ** 2 / (a * a + s2))
m0, lv0 = v_post * a * x0 / s2, np.log(2 * v_post)
previous = -np.inf
for K in (1, 5, 50):
    eps_k = rng.standard_normal((K, 2000))
    zk = m0 + np.exp(lv0 / 2) * eps_k
    log_w = (-0.5 * (np.log(2 * np.pi * s2) + (x0 - a * zk) ** 2 / s2)      # (vae-7)
             - 0.5 * (zk ** 2 + np.log(2 * np.pi)) + 0.5 * (eps_k ** 2 + lv0 + np.log(2 * np.pi)))
    L_K = logmeanexp(log_w, axis=0)
    above = float(np.mean(L_K > log_px0))
    print(f"K = {K:2d}: E[L_K] - log p(x) = {L_K.mean() - log_px0:+.4f}, "
          f"single draws above log p(x): {above:.0%}")
    if K == 50:
        assert L_K.mean() < log_px0 and above > 0.2
    assert L_K.mean() > previous
    previous = L_K.mean()

# %% [markdown]
# ## A 2-D latent space on Fashion-MNIST
# Fast mode trains on 1,024 embedded images for 2 epochs; full mode on the full embedded set
# for 30 epochs (or pass the full Fashion-MNIST with `datasets.load("fashion-mnist")`).

# %%
train = datasets.load("fashion-mnist-mini", "train")
test = datasets.load("fashion-mnist-mini", "test")
if FAST:
    train.x, train.labels = train.x[:1024], train.labels[:1024]
    test.x, test.labels = test.x[:200], test.labels[:200]
trainer = VAETrainer({"preset": "classic", "latent": 2}, backend=nn.Backend("numpy", seed=0))
records = fit(trainer, train, 2 if FAST else 30, 128, f"{FIGURES}/05_run", test=test,
              figures=False, progress=False, eval_kwargs={"iw_samples": 5 if FAST else 50},
              overwrite=True)
print({k: round(v, 2) for k, v in records[-1].items() if k.startswith(("train_", "test_"))})
show(save_latent_scatter(trainer, test, f"{FIGURES}/05_latent.png"))
show(save_manifold(trainer, f"{FIGURES}/05_manifold.png"))
show(save_reconstructions(trainer, test.x, f"{FIGURES}/05_reconstructions.png"))

# %% [markdown]
# ## Interpolation between two test images, through the latent space

# %%
mu_ab = trainer.encode(test.x[[0, 1]])
ts = np.linspace(0, 1, 10)[:, None]
images = trainer.decode((1 - ts) * mu_ab[0] + ts * mu_ab[1])
fig, axes = plt.subplots(1, 10, figsize=(10, 1.2))
for ax, img in zip(axes, images):
    ax.imshow(img.reshape(28, 28), cmap="gray")
    ax.axis("off")
savefig(fig, "05_interpolation.png")

# %% [markdown]
# ## The IWAE estimate tightens with K (vae-7, vae-8)
# `trainer.evaluate(x, iw_samples=K)` draws $K$ codes per test image and reports two numbers.
# `iwae` is $-\mathcal L_K$ (vae-8): its expectation falls with $K$ towards $-\log p(x)$,
# which is the point of importance weighting. `neg_elbo` is the negative ELBO (vae-4), the KL
# in closed form plus the reconstruction averaged over the same $K$ draws; its expectation
# does not depend on $K$ at all. It still moves a little from row to row because each $K$
# averages different draws: that is Monte Carlo noise, and it shrinks as $K$ grows. At
# $K = 1$ the two numbers estimate the same expectation (`iwae` with a Monte Carlo KL), so
# they differ by noise only. The second cell shows it: redrawn with 30 seeds of the
# evaluation noise, `neg_elbo`'s spread falls like $1/\sqrt K$ while its mean stays put
# within its standard error, and `iwae`'s mean falls by many standard errors.

# %%
Ks = (1, 5, 20) if FAST else (1, 5, 20, 100, 500)
by_K = {K: trainer.evaluate(test.x[:200], iw_samples=K) for K in Ks}
for K, metrics in by_K.items():
    print(f"K = {K:3d}: " + "  ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
iwae_K = [m["iwae"] for m in by_K.values()]
neg_elbo_K = [m["neg_elbo"] for m in by_K.values()]
assert all(i2 < i1 for i1, i2 in zip(iwae_K, iwae_K[1:]))          # the bound tightens

# %%
redrawn = {K: np.array([[trainer.evaluate(test.x[:200], iw_samples=K, seed=seed)[k]
                         for k in ("neg_elbo", "iwae")] for seed in range(30)])
           for K in (1, 5, 20)}
for K, r in redrawn.items():
    print(f"K = {K:2d}, 30 seeds: neg_elbo {r[:, 0].mean():.2f} (std {r[:, 0].std():.2f}), "
          f"iwae {r[:, 1].mean():.2f} (std {r[:, 1].std():.2f})")
se = {K: r[:, 0].std(ddof=1) / np.sqrt(len(r)) for K, r in redrawn.items()}
mean = {K: r[:, 0].mean() for K, r in redrawn.items()}
assert redrawn[1][:, 0].std() > redrawn[5][:, 0].std() > redrawn[20][:, 0].std()
assert abs(mean[1] - mean[20]) < 4 * np.hypot(se[1], se[20])      # same expectation
assert redrawn[1][:, 1].mean() - redrawn[20][:, 1].mean() > 10 * se[1]

# %% [markdown]
# ## Nats on grey levels, and on binarised images
# The Bernoulli likelihood of a grey level in (0, 1) is not a normalised density (see the
# docs' VAE page), so the numbers above are a training objective, not $-\log p(x)$ in nats.
# With `binarize=True` every batch is binarised by sampling ($x_i \sim
# \mathrm{Bernoulli}(\text{grey level})$), the data are binary, and the same numbers are
# log-likelihoods (the binarised-MNIST convention). The numbers barely move: the BCE is
# linear in the target, so its mean over the binarisations of an image is the BCE against the
# grey levels. What changes is what they mean: only the binarised column is a negative
# log-likelihood, an upper bound (in expectation) on $-\log p(x)$ for binary images.

# %%
binary = VAETrainer({"preset": "classic", "latent": 2, "binarize": True},
                    backend=nn.Backend("numpy", seed=0))
records_bin = fit(binary, train, 2 if FAST else 30, 128, f"{FIGURES}/05_run_bin", test=test,
                  figures=False, progress=False, eval_kwargs={"iw_samples": 5 if FAST else 50},
                  overwrite=True)
for key in ("test_neg_elbo", "test_iwae"):
    print(f"{key:14s} grey levels {records[-1][key]:7.2f}   binarised {records_bin[-1][key]:7.2f}")

# %% [markdown]
# ## Exercises
#
# 1. **Break it and watch: sample with the variance.** Replace the standard deviation by
#    the variance in the reparameterisation, $z = \mu + e^{\mathrm{logvar}}\epsilon$, and
#    estimate the KL by Monte Carlo from those samples as if they came from $q$. How far is
#    it from the closed form (kl-1), and for which units does the bug not matter?
# 2. **Break it and watch: drop the KL term.** Train the same small VAE twice, with the
#    loss (vae-4) and with the reconstruction term alone (pass zero KL gradients to
#    `backward`), then decode samples of the prior $\mathcal N(0, I)$. What happens to the
#    codes of the training images, and why are prior samples no longer like the data?
# 3. **When is $\mathcal L_K$ exact?** In the linear-Gaussian model above, take $q(z \mid x)$
#    equal to the true posterior. Show that every single draw of $\mathcal L_K$, for every
#    $K$, equals $\log p(x)$, and explain it with (vae-7).

# %% [markdown]
# <details><summary>Solution 1</summary>
#
# The wrong samples have standard deviation $e^{\mathrm{logvar}}$ instead of
# $e^{\mathrm{logvar}/2}$: units with $\mathrm{logvar} = 0$ ($\tau = 1$, where both are 1)
# are unaffected, every other unit gets the wrong spread, and the estimated KL is wrong.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
mu1, logvar1 = np.array([[0.5, -1.0, 0.3]]), np.array([[np.log(0.3), np.log(2.0), 0.0]])
eps1 = np.random.default_rng(1).standard_normal((200_000, 3))
closed = 0.5 * (np.exp(logvar1) + mu1 ** 2 - 1 - logvar1)[0]           # (kl-1), per unit
for name, z1 in (("std", mu1 + np.exp(logvar1 / 2) * eps1),
                 ("variance", mu1 + np.exp(logvar1) * eps1)):
    log_q1 = -0.5 * ((z1 - mu1) ** 2 / np.exp(logvar1) + logvar1 + np.log(2 * np.pi))
    log_p1 = -0.5 * (z1 ** 2 + np.log(2 * np.pi))
    mc1 = np.mean(log_q1 - log_p1, axis=0)
    print(f"sampled with the {name:8s}: Monte Carlo {np.round(mc1, 3)}, "
          f"closed form {np.round(closed, 3)}")
    if name == "std":
        assert np.allclose(mc1, closed, atol=0.02)
    else:
        assert abs(mc1[2] - closed[2]) < 0.02 and np.all(np.abs(mc1 - closed)[:2] > 0.1)

# %% [markdown]
# <details><summary>Solution 2</summary>
#
# Without the KL nothing ties $q(z \mid x)$ to the prior: the encoder is free to shrink the
# noise (logvar falls) and to place the codes wherever reconstruction is easiest, so the
# codes' KL from $\mathcal N(0, I)$ grows, their spread is not the prior's, and most of the
# prior's mass decodes to regions no training image maps to.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
def train_small(with_kl, steps):
    b = nn.Backend("numpy", seed=3)
    model = VAE(784, (128,), 2, backend=b)
    opt = nn.Adam(model, lr=1e-3)
    data = b.asarray(train.x[:1024])
    for i in range(steps):
        xb = data[(i * 128) % 1024:(i * 128) % 1024 + 128]
        _, _, _, (ds, dmu, dlogvar) = model.loss(xb)
        if not with_kl:
            dmu, dlogvar = np.zeros_like(dmu), np.zeros_like(dlogvar)
        model.backward((ds, dmu, dlogvar))
        opt.step()
    mu2, logvar2 = model.encode(data)
    kl = float(np.mean(kl_terms(mu2, logvar2)))
    return model, kl, float(np.std(mu2)), float(np.mean(logvar2))


steps2 = 150 if FAST else 2000
results2 = {}
for with_kl in (True, False):
    model2, kl2, spread2, lv2 = train_small(with_kl, steps2)
    print(f"{'with' if with_kl else 'without':7s} the KL: KL(q || prior) {kl2:8.2f} nats, "
          f"std of the codes {spread2:6.2f}, mean logvar {lv2:6.2f}")
    results2[with_kl] = kl2, lv2
    prior_images = np.asarray(model2.decode(model2.backend.normal((8, 2))))
    fig, axes = plt.subplots(1, 8, figsize=(8, 1.2))
    for ax, img in zip(axes, prior_images):
        ax.imshow(img.reshape(28, 28), cmap="gray")
        ax.axis("off")
    fig.suptitle(f"prior samples decoded, {'with' if with_kl else 'without'} the KL")
    savefig(fig, f"05_prior_{'kl' if with_kl else 'no_kl'}.png")
assert results2[False][0] > 3 * results2[True][0] and results2[False][1] < results2[True][1]

# %% [markdown]
# <details><summary>Solution 3</summary>
#
# With $q = p(z \mid x)$, each weight (vae-7) is $w_k = p(x, z_k)/p(z_k \mid x) = p(x)$,
# the same number whatever $z_k$ is, so $\mathcal L_K = \log p(x)$ exactly, with zero
# variance: a perfect proposal needs one sample.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
zk3 = v_post * a * x0 / s2 + np.sqrt(v_post) * rng.standard_normal((20, 100))
log_w3 = (-0.5 * (np.log(2 * np.pi * s2) + (x0 - a * zk3) ** 2 / s2)
          - 0.5 * (zk3 ** 2 + np.log(2 * np.pi))
          + 0.5 * ((zk3 - v_post * a * x0 / s2) ** 2 / v_post + np.log(v_post) + np.log(2 * np.pi)))
for K in (1, 5, 20):
    assert np.allclose(logmeanexp(log_w3[:K], axis=0), log_px0)
print("every draw of L_K equals log p(x) =", round(log_px0, 4))
