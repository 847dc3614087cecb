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
from nnscratch import datasets
from nnscratch.training.loop import fit
from nnscratch.plots.vae import save_latent_scatter, save_manifold, save_reconstructions
from nnscratch.models.vae import VAE, VAETrainer
from _common import FAST, FIGURES, savefig, show

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
b64 = nn.Backend("numpy", "float64")
print(f"closed form (kl-1)                     {float(nn.kl_normal(mu, logvar)[0]):.4f}")
print(f"Monte Carlo, z = mu + exp(logvar/2) eps {np.mean(log_q - log_p):.4f}")

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
              figures=False, progress=False, eval_kwargs={"iw_samples": 5 if FAST else 50})
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
    ax.imshow(img.reshape(28, 28), cmap="gray"); ax.axis("off")
savefig(fig, "05_interpolation.png")

# %% [markdown]
# ## The IWAE estimate tightens with K (vae-7, vae-8)

# %%
for K in (1, 5, 20) if FAST else (1, 5, 20, 100, 500):
    metrics = trainer.evaluate(test.x[:200], iw_samples=K)
    print(f"K = {K:3d}: " + "  ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
