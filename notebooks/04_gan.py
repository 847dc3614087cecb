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
# The minimax game, saturating against non-saturating generator losses (gan-3 to gan-6), the
# generator's gradient through the discriminator by hand (gan-7), mode collapse on the 2-D
# ring and grid and packing as its remedy (gan-8, toy-1), then images. Code: `nnscratch/models/gan.py`,
# `nnscratch/models/toy2d.py`.

# %%
import matplotlib.pyplot as plt
import numpy as np

import nnscratch as nn
from nnscratch import datasets
from nnscratch.models import toy2d
from nnscratch.models.gan import GAN, GANTrainer, generator_loss
from nnscratch.training.loop import fit
from nnscratch.plots.gan import save_samples
from nnscratch.plots.toy2d import discriminator_map, samples_over_training
from _common import FAST, FIGURES, savefig, show

# %% [markdown]
# ## Saturating against non-saturating
# The gradient of each generator loss with respect to the discriminator's logit $s$ on a fake.
# When the discriminator rejects the fakes ($s \ll 0$, early in training), the minimax
# gradient $-\sigma(s)$ vanishes; the non-saturating one, $-(1-\sigma(s))$, does not.

# %%
b = nn.Backend("numpy", "float64")
s = np.linspace(-8, 8, 201)[:, None]
fig, ax = plt.subplots(figsize=(6, 3))
for loss in ("minimax", "non-saturating"):
    _, ds = generator_loss(b.asarray(s), loss)
    ax.plot(s[:, 0], ds[:, 0] * len(s), label=loss)       # times n: per-example gradient
ax.set_xlabel("discriminator logit s on a fake"); ax.set_ylabel("dL_G/ds")
ax.axvspan(-8, -2, alpha=0.1, color="gray"); ax.text(-7.5, -0.5, "D rejects the fakes")
ax.legend(); ax.grid(alpha=0.3)
savefig(fig, "04_generator_gradients.png")

# %% [markdown]
# ## The generator's gradient passes through D, and D is left untouched
# `D.backward(ds, param_grads=False)` returns $\partial L_G/\partial \tilde x$ without writing
# D's gradients; a float64 check of $L_G$ against every generator parameter:

# %%
gan = GAN(latent=3, data_dim=4, G_hidden=(5,), D_hidden=(6,), output="sigmoid", backend=b)
z = b.normal((6, 3))
L, ds, _ = gan.g_loss(z)
gan.g_backward(ds)
report = nn.check_gradients(lambda: gan.g_loss(z)[0], dict(gan.G.params),
                            {k: g.copy() for k, g in gan.G.grads.items()})
print(nn.format_report(report))
print("D's gradients written by the generator step:", dict(gan.D.grads) == {})

# %% [markdown]
# ## Mode collapse on the ring, and packing
# Fast mode trains a few hundred steps (enough to see the samples move); full mode trains
# long enough to compare a plain GAN with PacGAN (see `benchmarks/toy2d.py` for 10 seeds).

# %%
steps = 100 if FAST else 6000
snaps = [0, steps // 3, 2 * steps // 3, steps]
rows = {}
for label, cfg in [("GAN", {}), ("PacGAN2", {"pack": 2})]:
    trainer, log = toy2d.train("ring", steps, cfg, seed=0, snapshots=snaps)
    rows[label] = log["snapshots"]
    print(label, log["metrics"]["modes"], "modes,", f"{100 * log['metrics']['high_quality']:.1f}% high quality,",
          f"{log['seconds']:.1f} s")
plt.close(samples_over_training(rows, "ring", path=f"{FIGURES}/04_ring_over_training.png"))
show(f"{FIGURES}/04_ring_over_training.png")
plt.close(discriminator_map(trainer, "ring", samples=log["samples"], path=f"{FIGURES}/04_ring_D.png"))
show(f"{FIGURES}/04_ring_D.png")

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
              progress=False)
print(records[-1])
show(save_samples(trainer, f"{FIGURES}/04_samples.png"))
