# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 04 The GAN
#
# A generator $G$ turns noise into samples, a discriminator $D$ tells them from data, and
# each trains against the other. This chapter follows the derivations of the docs' pages
# "The generative adversarial network" and "The GAN game": the value function (game-1), the
# best discriminator $D^*$ (game-2), the Jensen-Shannon divergence the generator then
# minimises (game-3, game-4), why the code's generator loss is the non-saturating one
# (gan-3 to gan-6, game-5), the generator's gradient through $D$ (gan-7), mode collapse on
# 2-D mixtures and packing (gan-8, toy-1), then images. Each claim is checked by an
# assertion that runs in CI. Code: `nnscratch/models/gan.py`, `nnscratch/models/toy2d.py`.

# %%
import matplotlib.pyplot as plt
import numpy as np

import nnscratch as nn
from _common import FAST, FIGURES, savefig, show
from nnscratch import datasets
from nnscratch.models import toy2d
from nnscratch.models.gan import GAN, GANTrainer, discriminator_loss, generator_loss
from nnscratch.plots.gan import save_samples
from nnscratch.plots.toy2d import discriminator_map, samples_over_training
from nnscratch.training.loop import fit

# %% [markdown]
# ## The value function
# $V(D, G) = \mathbb E_{p_{data}}[\log D(x)] + \mathbb E_{p_z}[\log(1 - D(G(z)))]$ (game-1),
# with $D = \sigma(s)$. The discriminator loss of the code (gan-1), two binary
# cross-entropies, is $-V$ on a batch: $D$ climbs $V$ by descending $L_D$.

# %%
b = nn.Backend("numpy", "float64", seed=0)
rng = np.random.default_rng(0)
s_real, s_fake = rng.normal(1, 2, (64, 1)), rng.normal(-1, 2, (64, 1))


def sig(s):
    return 1 / (1 + np.exp(-s))


V_hat = np.mean(np.log(sig(s_real))) + np.mean(np.log(1 - sig(s_fake)))       # (game-1)
L_D, _, _ = discriminator_loss(b.asarray(s_real), b.asarray(s_fake))           # (gan-1)
print(f"V on the batch {V_hat:.6f}   -L_D {-float(L_D):.6f}")
assert np.isclose(V_hat, -float(L_D))

# %% [markdown]
# ## The best discriminator is a density ratio
# Against a fixed generator, $V$ is maximised pointwise by $D^*(x) = p_{data}(x) /
# (p_{data}(x) + p_g(x))$ (game-2). To check it, the "generator" here is a distribution we can
# write down: the data are the 8 Gaussians of the ring (made wider, standard deviation 0.15,
# so the densities overlap), and the generator has *dropped five modes*: it samples only modes
# 0, 1 and 2. Then $D^* = (1/8)/(1/8 + 1/3) \approx 0.27$ on the modes it keeps (it puts
# too much mass there) and $D^* = 1$ on the five it misses. A discriminator of the `toy`
# preset is trained alone (the generator never moves) and compared with the exact $D^*$ at
# points drawn from both distributions.

# %%
modes, spread = toy2d.ring_modes(), 0.15
kept = [0, 1, 2]


def draw(which, n):
    return modes[rng.choice(which, n)] + spread * rng.standard_normal((n, 2))


def density(x, which):
    d2 = ((x[:, None, :] - modes[which][None]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * spread ** 2)).mean(1) / (2 * np.pi * spread ** 2)


b32 = nn.Backend("numpy", "float32", seed=0)
toy = GAN(latent=2, data_dim=2, G_hidden=(8,), D_hidden=(128, 128, 128), G_alpha=0.0,
          D_alpha=0.0, output="linear", init="pytorch", backend=b32)
opt_D = nn.Adam(toy.D, lr=1e-3, betas=(0.5, 0.999))
n = 256
for step in range(600 if FAST else 3000):
    x = np.concatenate([draw(range(8), n), draw(kept, n)]).astype(np.float32)
    s = toy.D.forward(b32.asarray(x))
    L, ds_real, ds_fake = discriminator_loss(s[:n], s[n:])                       # (gan-1)
    toy.D.backward(np.concatenate([ds_real, ds_fake]), input_grad=False)           # (gan-2)
    opt_D.step()

x_data, x_gen = draw(range(8), 4000), draw(kept, 4000)
x_test = np.concatenate([x_data, x_gen])
p_data, p_g = density(x_test, list(range(8))), density(x_test, kept)
D_star = p_data / (p_data + p_g)                                                   # (game-2)
D_trained = sig(np.asarray(toy.D.forward(b32.asarray(x_test.astype(np.float32))),
                           dtype=np.float64))[:, 0]
err = np.abs(D_trained - D_star)
print(f"|D - D*| at {len(x_test)} points: mean {err.mean():.4f}, 99th percentile "
      f"{np.percentile(err, 99):.4f}")
print(f"on the kept modes: D* {D_star[4000:].mean():.3f}, trained D {D_trained[4000:].mean():.3f}")
assert err.mean() < 0.03

# %%
grid = np.linspace(-1.6, 1.6, 161)
gx, gy = np.meshgrid(grid, grid)
plane = np.stack([gx.ravel(), gy.ravel()], axis=1)
pd_plane, pg_plane = density(plane, list(range(8))), density(plane, kept)
with np.errstate(invalid="ignore"):
    D_star_plane = np.where(pd_plane + pg_plane > 1e-3, pd_plane / (pd_plane + pg_plane), np.nan)
D_plane = sig(np.asarray(toy.D.forward(b32.asarray(plane.astype(np.float32))), np.float64))[:, 0]
D_plane[np.isnan(D_star_plane)] = np.nan
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
for ax, img, title in zip(axes, (D_star_plane, D_plane), ("exact D* (game-2)", "trained D")):
    im = ax.imshow(img.reshape(gx.shape), origin="lower", extent=(-1.6, 1.6, -1.6, 1.6),
                   vmin=0, vmax=1, cmap="coolwarm")
    ax.scatter(*modes.T, marker="x", c="k", s=30)
    ax.scatter(*modes[kept].T, marker="o", facecolors="none", edgecolors="k", s=120)
    ax.set_title(title)
    ax.set_aspect("equal")
fig.colorbar(im, ax=axes, shrink=0.8, label="probability that x is real")
savefig(fig, "04_optimal_discriminator.png")

# %% [markdown]
# ## Against $D^*$, the generator minimises the Jensen-Shannon divergence
# $V(D^*, G) = -\log 4 + 2\,\mathrm{JS}(p_{data} \| p_g)$ (game-3). Each side is computed by
# its own method, on its own points:
#
# - the left, $V(D^*, G) = \int p_{data} \log D^* + p_g \log(1 - D^*)\,dx$, by numerical
#   integration on a grid of the plane (step 0.01 over $[-2.2, 2.2]^2$, fine and wide
#   enough for Gaussians of standard deviation 0.15 on the unit circle: the grid integrates
#   each density to 1 within $10^{-9}$);
# - the right from the definition of JS through the mixture $m = (p_{data} + p_g)/2$,
#   $\mathrm{JS} = \frac12 \mathbb E_{p_{data}}[\log (p_{data}/m)] + \frac12 \mathbb
#   E_{p_g}[\log (p_g/m)]$, by Monte Carlo from 20,000 fresh samples of each distribution.
#
# The Monte Carlo estimate carries a standard error, estimated from its own samples; the two
# sides must agree within four of them. (A wrong constant, $-\log 2$ for $-\log 4$, would be
# off by $0.69$, about 150 standard errors.) The trained discriminator's $-L_D$ on the test
# points comes within a few hundredths of $V(D^*, G)$ from below: a discriminator's loss
# measures how far apart the two distributions are.
#
# (game-4) says that $-\log 4$ is the minimum over generators, reached only at $p_g =
# p_{data}$. Along the generators that blend the three kept modes into the data, $p_t = (1 -
# t)\, p_g + t\, p_{data}$, the same grid integration gives $V(D^*, G_t)$ falling to $-\log
# 4$ at $t = 1$ and never below it.

# %%
step_grid = 0.01
axis = np.arange(-2.2, 2.2 + step_grid / 2, step_grid)
grid_points = np.stack([a.ravel() for a in np.meshgrid(axis, axis)], axis=1)
pd_grid, pg_grid = density(grid_points, list(range(8))), density(grid_points, kept)


def V_star_on_grid(pg):
    """(game-1) at D = D* (game-2), integrated on the grid: p_data log D* + p_g log(1 - D*).

    log D* and log(1 - D*) are written as log p - log(p_data + p_g): 1 - D* rounds to 0 where
    p_g is 1e-16 of p_data, and the term must be p_g times a finite number there."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_sum = np.log(pd_grid + pg)
        integrand = (np.where(pd_grid > 0, pd_grid * (np.log(pd_grid) - log_sum), 0)
                     + np.where(pg > 0, pg * (np.log(pg) - log_sum), 0))
    return integrand.sum() * step_grid ** 2


V_grid = V_star_on_grid(pg_grid)
mass = pd_grid.sum() * step_grid ** 2, pg_grid.sum() * step_grid ** 2
n_mc = 20000
x_d, x_g = draw(range(8), n_mc), draw(kept, n_mc)                  # fresh, not x_test's
pd_d, pg_d, pd_g, pg_g = (density(x_d, list(range(8))), density(x_d, kept),
                          density(x_g, list(range(8))), density(x_g, kept))
terms_d, terms_g = np.log(pd_d / ((pd_d + pg_d) / 2)), np.log(pg_g / ((pd_g + pg_g) / 2))
JS = 0.5 * terms_d.mean() + 0.5 * terms_g.mean()
se_JS = 0.5 * np.sqrt(terms_d.var() / n_mc + terms_g.var() / n_mc)
print(f"grid: V(D*, G) = {V_grid:.4f} (the densities integrate to 1 within "
      f"{max(abs(1 - mass[0]), abs(1 - mass[1])):.0e})")
print(f"Monte Carlo: JS = {JS:.4f} +- {se_JS:.4f} (of at most log 2 = {np.log(2):.4f}), "
      f"-log 4 + 2 JS = {-np.log(4) + 2 * JS:.4f} +- {2 * se_JS:.4f}")
assert max(abs(1 - mass[0]), abs(1 - mass[1])) < 1e-9
assert abs(V_grid - (-np.log(4) + 2 * JS)) < 4 * 2 * se_JS and 0 < JS < np.log(2)  # (game-3)

V_star = np.mean(np.log(D_star[:4000])) + np.mean(np.log(1 - D_star[4000:]))
V_trained = np.mean(np.log(D_trained[:4000])) + np.mean(np.log(1 - D_trained[4000:]))
print(f"on the 8,000 test points: V with D* {V_star:.4f}, -L_D of the trained D {V_trained:.4f}")
assert V_star - 0.03 < V_trained < V_star + 0.01

ts = np.linspace(0, 1, 6)
V_blend = [V_star_on_grid((1 - t_) * pg_grid + t_ * pd_grid) for t_ in ts]
print("V(D*, G_t) for t = 0, 0.2, ..., 1:", np.round(V_blend, 4), f"(-log 4 = {-np.log(4):.4f})")
assert all(v2 < v1 for v1, v2 in zip(V_blend, V_blend[1:]))                         # (game-4)
assert abs(V_blend[-1] + np.log(4)) < 1e-9 and min(V_blend[:-1]) > -np.log(4) + 1e-3

# %% [markdown]
# ## Saturating against non-saturating
# The generator of the value function minimises $\mathbb E[\log(1 - D(G(z)))]$, the minimax
# loss (gan-5). Early in training the discriminator rejects the fakes ($s \ll 0$) and that
# loss's gradient (gan-6), $-\sigma(s)/n$, vanishes. The non-saturating loss (gan-3)
# maximises $\log D(G(z))$ instead; its gradient (gan-4) is the minimax one times $e^{-s}$
# (game-5): the same sign for every sample, so the same fixed point ($p_g = p_{data}$,
# $D = 1/2$, where the logit is constant and both gradients through $D$ vanish), but large
# exactly where the generator is worst.

# %%
s = np.linspace(-8, 8, 201)[:, None]
grads = {loss: generator_loss(b.asarray(s), loss)[1] for loss in ("minimax", "non-saturating")}
assert np.allclose(grads["non-saturating"], np.exp(-s) * grads["minimax"])      # (game-5)
fig, ax = plt.subplots(figsize=(6, 3))
for loss, ds in grads.items():
    ax.plot(s[:, 0], ds[:, 0] * len(s), label=loss)       # times n: per-example gradient
ax.set_xlabel("discriminator logit s on a fake")
ax.set_ylabel("dL_G/ds")
ax.axvspan(-8, -2, alpha=0.1, color="gray")
ax.text(-7.5, -0.5, "D rejects the fakes")
ax.legend()
ax.grid(alpha=0.3)
savefig(fig, "04_generator_gradients.png")

# %% [markdown]
# ## The generator's gradient passes through D, and D is left untouched
# `D.backward(ds, param_grads=False)` returns $\partial L_G/\partial \tilde x$ without writing
# D's gradients (gan-7); a float64 check of $L_G$ against every generator parameter:

# %%
gan = GAN(latent=3, data_dim=4, G_hidden=(5,), D_hidden=(6,), output="sigmoid", backend=b)
z = b.normal((6, 3))
L, ds, _ = gan.g_loss(z)
gan.g_backward(ds)
report = nn.check_gradients(lambda: gan.g_loss(z)[0], dict(gan.G.params),
                            {k: g.copy() for k, g in gan.G.grads.items()})
print(nn.format_report(report))
assert max(report.values()) < 1e-6
print("D's gradients after the generator step:", dict(gan.D.grads) or "none written")
assert dict(gan.D.grads) == {}                     # param_grads=False: D is left untouched

# %% [markdown]
# ## Mode collapse on the grid, and packing
# Against $D^*$ the generator's objective has one minimum, the data (game-4); real training
# is not at $D^*$, and the non-saturating generator is punished far more for samples where
# there are no data than for missing modes. On the 25 modes of the grid the plain GAN ends
# with whole modes empty. Packing (PacGAN, gan-8) shows the discriminator $P$ samples at
# once (the pack size; $m$ is the mixture above): a generator that repeats itself is easy to catch,
# so it is pushed to cover the modes.
#
# The comparison takes a long run: the benchmark's setting for the grid (48,000 steps, the
# learning rate decayed over the second half, the plane scaled by 1/4) and several seeds.
# **Fast mode trains only 300 steps**: the samples have just started to spread out of the
# blob they start in, and the mode counts it prints say nothing about collapse yet. Full
# mode trains seed 0 of the benchmark (about four minutes) and asserts that packing finds more
# modes (measured: 19 of 25 for the plain GAN, all 25 with pack 4, both with about 97% of the
# samples high quality). Over 10 seeds (`benchmarks/toy2d.py`, `docs/benchmarks.md`): 15.5 of
# 25 modes for the plain GAN, 24.8 with pack 4. The figure of seed 0 from that benchmark:

# %%
show("../docs/figures/toy2d_grid.png")

# %%
steps = 300 if FAST else 48000
long_run = {} if FAST else {"lr_final": 1e-5, "decay_start": 0.5}
snaps = [0, steps // 3, 2 * steps // 3, steps]
rows, results = {}, {}
if FAST:
    print(f"FAST MODE, {steps} steps: the mode counts below prove nothing about collapse or "
          "packing (the samples have barely left their starting blob); the lesson is the full "
          "run's and the benchmark figure's above")
for label, cfg in [("GAN", {}), ("PacGAN4", {"pack": 4})]:
    trainer, log = toy2d.train("grid", steps, cfg, seed=0, scale=0.25, snapshots=snaps,
                               **long_run)
    rows[label], results[label] = log["snapshots"], log["metrics"]
    print(f"{label:8s} after {steps} steps: {log['metrics']['modes']} of 25 modes, "
          f"{100 * log['metrics']['high_quality']:.1f}% high quality, {log['seconds']:.1f} s")
if not FAST:
    assert results["PacGAN4"]["modes"] > results["GAN"]["modes"]
plt.close(samples_over_training(rows, "grid", path=f"{FIGURES}/04_grid_over_training.png"))
show(f"{FIGURES}/04_grid_over_training.png")
plt.close(discriminator_map(trainer, "grid", samples=log["samples"], scale=0.25,
                            path=f"{FIGURES}/04_grid_D.png"))
show(f"{FIGURES}/04_grid_D.png")

# %% [markdown]
# ## Images
# The `mlp` preset on the embedded Fashion-MNIST subset (fast mode: a few hundred images,
# one epoch; full mode: 50 epochs). `nnscratch train gan --dataset fashion-mnist` trains on the
# full set.

# %%
train = datasets.load("fashion-mnist-mini", "train")
if FAST:
    train.x, train.labels = train.x[:320], train.labels[:320]
trainer = GANTrainer({"preset": "mlp"}, backend=nn.Backend("numpy", seed=0))
records = fit(trainer, train, 1 if FAST else 50, 64, f"{FIGURES}/04_run", figures=False,
              progress=False, overwrite=True)
print(records[-1])
show(save_samples(trainer, f"{FIGURES}/04_samples.png"))

# %% [markdown]
# ## Stabilisers
# Beyond packing, the library has the usual remedies for a discriminator that wins too fast
# and a generator that collapses or oscillates, each with its own forward and backward pass
# derived on the docs' page "Stabilisers": spectral normalisation of D's layers (a bound on
# how steep its logit can get, exact once its power iteration has converged, so the
# generator's gradient neither vanishes nor explodes),
# batch normalisation in G, dropout in D, an exponential moving average of G's weights for
# sampling, and separate learning rates for D and G. They are options of the GAN's config
# (`nnscratch train gan --help` lists them), grouped in recipes: the image presets (`mlp`,
# used above, and `seed`) train with the `stable` recipe, spectral normalisation in D, batch
# normalisation in G, an averaged G and two time scales (D at twice the learning rate, G at
# half of it), unless told otherwise (`--recipe none` is the bare GAN); the `toy` preset of
# the 2-D experiments above is the bare GAN. Derivations: `docs/stabilisers.md` and the
# docs' GAN page, (sn-1) to (sn-8), (bn-1) to (bn-9), (ema-1).

# %% [markdown]
# ### What each stabiliser changes, measured
# `benchmarks/gan_recipes.py` trains the `mlp` preset for 5 epochs on the full Fashion-MNIST
# (seed 0), once bare (`none`), once with everything (`stable`), and once with each piece of
# `stable` taken out: `sn` is spectral normalisation in D, `bn` batch normalisation in G,
# `ema` the averaged G; every variant but `stable` trains both networks at the same learning
# rate, $2 \times 10^{-4}$, and `stable` adds the two time scales ($4 \times 10^{-4}$ for D,
# $10^{-4}$ for G). The samples are judged as in `docs/benchmarks.md`: the Frechet distance of
# 10,000 samples to the test set in the features of the project's classifier (lower is better), and
# the classes covered (those with at least 5% of the samples). D's loss and `D_fake` are the
# training means of the last epoch; a discriminator at chance has loss $2 \log 2 \approx
# 1.39$ and `D_fake` $= 1/2$. A run takes 7 to 11 minutes on two cores, too long for this
# chapter: the numbers and curves are read from `benchmarks/results/gan_recipes.json`.

# %%
import json

with open("../benchmarks/results/gan_recipes.json") as f:
    recipe_results = json.load(f)
ablation = recipe_results["mlp_e5"]["runs"]
print(f"{'variant':10s} {'Frechet':>8s} {'classes':>8s} {'loss_D':>7s} {'D_fake':>7s}  options")
for name, run in ablation.items():
    c = run["curves"]
    print(f"{name:10s} {run['frechet']:8.2f} {int(run['classes']):8d} "
          f"{c['train_loss_D'][-1]:7.3f} {c['train_D_fake'][-1]:7.3f}  "
          f"{' '.join(run['options'])}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for name, run in ablation.items():
    c = run["curves"]
    epochs = np.arange(1, len(c["train_loss_D"]) + 1)
    style = "--" if name in ("none", "bn+ema") else "-"          # dashed: no spectral norm
    axes[0].plot(epochs, c["train_loss_D"], style, marker=".", label=name)
    axes[1].plot(epochs, c["train_D_fake"], style, marker=".", label=name)
axes[0].axhline(2 * np.log(2), color="grey", lw=0.8, ls=":")
axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
axes[0].set(xlabel="epoch", ylabel="train loss_D", title="D's loss (dotted: 2 log 2, chance)")
axes[1].set(xlabel="epoch", ylabel="mean D(G(z))", title="D_fake (dotted: 1/2)")
axes[1].legend(fontsize=8, loc="lower right")
fig.suptitle("mlp preset, 5 epochs, full Fashion-MNIST (benchmarks/results/gan_recipes.json)")
fig.tight_layout()
savefig(fig, "04_recipe_ablation.png")

# %% [markdown]
# What the table says, stabiliser by stabiliser (the cell below asserts each number):
#
# - **Spectral normalisation is what stops D from winning.** The two variants without it
#   (dashed) end with D's loss at 0.88 and 0.98, far below chance, and `D_fake` at about
#   0.3; their samples have a Frechet distance of 97 to 118 and cover 6 classes: four fall
#   below the 5% threshold, sandals, sneakers and ankle boots at 0.0% and bags at 0.7% of
#   the samples (3.2% in `bn+ema`). Every variant with it keeps D's loss above 1.25 and `D_fake`
#   above 0.45, near the balance of the game (game-4), and covers all 10 classes with a
#   Frechet distance of at most 10.5.
# - **Batch normalisation and the moving average each take some off**, once D is held in
#   check: with spectral normalisation, taking batch normalisation out raises the Frechet
#   distance from 7.68 to 8.10, taking the average out raises it to 10.49 (the speckle of
#   the last steps). Without spectral normalisation the two together lower it from 118 to 97,
#   and the missing classes stay missing.
# - **Two time scales** take a little more off at 5 epochs (7.68 to 7.02) and much more at
#   20: the Frechet distance of the `seed` preset falls from 4.42 to 1.85, that of `mlp` from
#   4.05 to 2.23. A faster D keeps up with a generator that moves slowly, so its verdicts
#   stay accurate late in training, when the differences between real and fake are small.
#
# So the `stable` recipe is all four. Chapter 07 shows the article's own GAN with and
# without it.

# %%
runs = {key: recipe_results[key]["runs"] for key in ("mlp_e5", "seed_e20", "mlp_e20")}
fd = {name: run["frechet"] for name, run in ablation.items()}
last = {name: {k: v[-1] for k, v in run["curves"].items()} for name, run in ablation.items()}
without_sn, with_sn = ("none", "bn+ema"), ("sn+ema", "sn+bn", "sn+bn+ema", "stable")
footwear, bag = (5, 7, 9), 8                   # sandal, sneaker, ankle boot; bag
shares = {name: [float(v) for v in ablation[name]["class_histogram"].split()]
          for name in without_sn}
for name in without_sn:
    assert ablation[name]["classes"] == 6 and 97 <= round(fd[name]) <= 118
    assert last[name]["train_loss_D"] < 1.0 and last[name]["train_D_fake"] < 0.35
    assert all(shares[name][i] < 0.001 for i in footwear)
    assert sorted(i for i, v in enumerate(shares[name]) if v < 0.05) == [5, 7, 8, 9]
assert (round(100 * shares["none"][bag], 1), round(100 * shares["bn+ema"][bag], 1)) == (0.7, 3.2)
assert (round(last["none"]["train_loss_D"], 2), round(last["bn+ema"]["train_loss_D"], 2)) \
    == (0.88, 0.98)
for name in with_sn:
    assert ablation[name]["classes"] == 10 and fd[name] <= 10.5
    assert last[name]["train_loss_D"] > 1.25 and last[name]["train_D_fake"] > 0.45
assert [round(fd[n], 2) for n in ("sn+bn+ema", "sn+ema", "sn+bn", "stable")] \
    == [7.68, 8.10, 10.49, 7.02]
assert (round(fd["none"]), round(fd["bn+ema"])) == (118, 97)
gains = {}
for key, entry in runs.items():
    before, after = entry["sn+bn+ema"]["frechet"], entry["stable"]["frechet"]
    gains[key] = before / after
    print(f"{key}: without two time scales {before:.2f}, with {after:.2f} "
          f"(divided by {gains[key]:.2f})")
assert [round(runs[k][v]["frechet"], 2) for k in ("seed_e20", "mlp_e20")
        for v in ("sn+bn+ema", "stable")] == [4.42, 1.85, 4.05, 2.23]
assert gains["mlp_e5"] < 1.15 and min(gains["seed_e20"], gains["mlp_e20"]) > 1.5

# %% [markdown]
# ## Exercises
#
# 1. **Break it and watch: train with the minimax loss.** Train the discriminator of a fresh
#    `toy` GAN for a few hundred steps against its (untrained) generator on the ring, then
#    compute the generator's gradient under both losses (gan-3, gan-5). How much smaller is
#    the minimax gradient, and why does (game-5) predict it?
# 2. **When JS says nothing.** Move the generator of the $D^*$ experiment off the ring: its
#    three modes shifted by a distance $\Delta$ along the diagonal (by $\Delta/\sqrt 2$ in
#    each coordinate). Compute $\mathrm{JS}$ and $V(D^*, G)$ for $\Delta = 0, 0.25, 0.5, 1,
#    2, 4$ (the modes' standard deviation is 0.15). Where does JS stop changing, and what
#    does the generator learn from a perfect discriminator when the supports do not overlap?
# 3. **Label smoothing moves $D^*$.** With one-sided label smoothing $\varepsilon_{ls}$
#    (gan-1), real targets are $1 - \varepsilon_{ls}$. Redo the pointwise maximisation of (game-2)
#    and check your $D^*$ with `discriminator_loss`: at the optimum, the gradients (gan-2) of the
#    real and fake terms, weighted by the two densities, cancel.

# %% [markdown]
# <details><summary>Solution 1</summary>
#
# A discriminator that rejects the fakes has $s \ll 0$ on them, so the minimax gradient
# (gan-6), $-\sigma(s)/n \approx -e^{s}/n$, is tiny, and (game-5) says the non-saturating
# one is $e^{-s}$ times larger per sample: with $s \approx -8$, about 3,000 times. The whole
# gradients printed below differ by less (about 1,600): the fakes' logits spread
# around their mean, the minimax gradient is carried by the least-rejected fakes, and the mean
# of $e^{s}$ over the fakes exceeds $e^{\bar s}$, $\bar s$ their mean logit (Jensen).
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
b1 = nn.Backend("numpy", "float32", seed=1)
ex = GAN(latent=2, data_dim=2, G_hidden=(64, 64, 64), D_hidden=(128, 128, 128), G_alpha=0.0,
         D_alpha=0.0, output="linear", init="pytorch", backend=b1)
opt1 = nn.Adam(ex.D, lr=1e-3, betas=(0.5, 0.999))
rng1 = np.random.default_rng(1)
for _ in range(200):
    L, ds, _, _ = ex.d_loss(b1.asarray(toy2d.sample("ring", 256, rng1).astype(np.float32)),
                            ex.noise(256))
    ex.d_backward(ds)
    opt1.step()
z1 = ex.noise(256)
norms = {}
for loss in ("minimax", "non-saturating"):
    _, ds, s_fake = ex.g_loss(z1, loss)
    ex.g_backward(ds)
    norms[loss] = float(np.sqrt(sum(float((g ** 2).sum()) for g in ex.G.grads.values())))
print(f"mean logit on the fakes {float(np.mean(s_fake)):.1f}; generator gradient norm: "
      + ", ".join(f"{k} {v:.2e}" for k, v in norms.items()))
assert float(np.mean(s_fake)) < -3 and norms["non-saturating"] > 100 * norms["minimax"]

# %% [markdown]
# <details><summary>Solution 2</summary>
#
# While the shifted modes still overlap the ring's ($\Delta$ up to a few standard
# deviations), JS grows with $\Delta$: from about 0.28 at $\Delta = 0$ (the dropped modes
# alone; 0.287 from the grid integration above, this estimate uses 4,000 samples) to 0.43 at
# $\Delta = 0.25$ and 0.61 at $\Delta = 0.5$, and the generator is told which way to move.
# At $\Delta = 1$ (almost seven standard deviations) JS is 0.692, already within 0.002 of
# $\log 2 = 0.693$. Beyond that the supports barely overlap: $D^* = 1$ on the data and 0 on
# the fakes, $V(D^*, G) = -\log 4 + 2 \log 2 = 0$ and $\mathrm{JS} = \log 2$ whatever
# $\Delta$ is (from $\Delta = 2$ on, within $10^{-5}$). The divergence is flat there, so a perfect
# discriminator gives the generator no direction to move in (Arjovsky and Bottou, 2017). In practice
# the discriminator is not
# perfect, and its smooth logit still slopes towards the data; this is one motivation for the
# stabilisers above.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
def dens(x, centres):
    d2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * spread ** 2)).mean(1) / (2 * np.pi * spread ** 2)


js_of = {}
for delta in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0):
    shifted = modes.copy()
    shifted[kept] += delta / np.sqrt(2)                    # a distance delta along (1, 1)
    xg = shifted[rng.choice(kept, 4000)] + spread * rng.standard_normal((4000, 2))
    pd_d, pg_d = dens(x_data, modes), dens(x_data, shifted[kept])
    pd_g, pg_g = dens(xg, modes), dens(xg, shifted[kept])
    js_of[delta] = (0.5 * np.mean(np.log(2 * pd_d / (pd_d + pg_d)))
                    + 0.5 * np.mean(np.log(2 * pg_g / (pd_g + pg_g))))
    print(f"shift {delta:4.2f}: JS {js_of[delta]:.6f} (log 2 = {np.log(2):.6f}), "
          f"V(D*, G) {2 * js_of[delta] - np.log(4):+.2e}")
js_values = list(js_of.values())
assert all(j2 > j1 + 0.005 for j1, j2 in zip(js_values[:4], js_values[1:4]))   # still moving
assert js_of[1.0] - js_of[0.0] > 0.3                                            # visibly
assert 0 < np.log(2) - js_of[1.0] < 0.005                    # nearly saturated at delta = 1
assert abs(js_of[2.0] - np.log(2)) < 1e-5 and abs(js_of[4.0] - np.log(2)) < 1e-9  # flat

# %% [markdown]
# <details><summary>Solution 3</summary>
#
# Pointwise, $D$ now maximises $(1-\varepsilon_{ls})\, p_{data} \log D + (\varepsilon_{ls}\,
# p_{data} + p_g) \log(1 - D)$, of the form $a \log D + c \log(1 - D)$ with $a, c \ge 0$.
# Its derivative $a/D - c/(1 - D)$ vanishes at $D = a/(a + c)$, and the function is concave
# (second derivative $-a/D^2 - c/(1-D)^2 < 0$), so that is the maximum. Here $a + c =
# p_{data} + p_g$, so $D^*_{\varepsilon_{ls}} = (1 - \varepsilon_{ls})\, p_{data} / (p_{data}
# + p_g)$: never above $1 - \varepsilon_{ls}$, which is the point of smoothing (a
# discriminator that is never certain). At that value the density-weighted gradients (gan-2) cancel:
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
eps_ls = 0.1
for a_, b_ in ((0.3, 0.1), (0.05, 0.5), (1.0, 1.0)):
    d_star = (1 - eps_ls) * a_ / (a_ + b_)
    s_star = np.array([[np.log(d_star / (1 - d_star))]])
    _, ds_r, ds_f = discriminator_loss(b.asarray(s_star), b.asarray(s_star), eps_ls)
    assert abs(a_ * float(ds_r[0, 0]) + b_ * float(ds_f[0, 0])) < 1e-12
    print(f"p_data {a_}, p_g {b_}: D* = {d_star:.4f}, weighted gradient "
          f"{a_ * float(ds_r[0, 0]) + b_ * float(ds_f[0, 0]):.1e}")
