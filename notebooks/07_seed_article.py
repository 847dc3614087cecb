# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # 07 The article this project started from
#
# A Chinese-language blog post with two TensorFlow 1 listings (`shared/seed/`, described in
# `docs/seed_article.md`). Here its listings are translated faithfully to nnscratch, their
# gaps and errors shown, then completed and corrected next to the `seed` presets.

# %%
import numpy as np

import nnscratch as nn
from nnscratch import datasets
from nnscratch.vae import VAETrainer
from _common import FAST

b = nn.Backend("numpy", seed=0)


def dense_stack(sizes, out):
    """tf.layers.dense(..., activation=tf.nn.leaky_relu) repeated, then the output layer."""
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Dense(n_in, n_out, alpha=0.2, backend=b), nn.LeakyReLU(0.2, backend=b)]
    layers.append(nn.Dense(sizes[-2], sizes[-1], init="glorot", backend=b))
    if out is not None:
        layers.append(out)
    return nn.Sequential(*layers)


# %% [markdown]
# ## The GAN listing, translated
# Widths `4*4*256`, `4*4*128`, `4*4*64` = 4096, 2048, 1024; sigmoid outputs.

# %%
z_dim = 100                                  # the listing never says
generator = dense_stack([z_dim, 4096, 2048, 1024, 784], nn.Sigmoid(backend=b))
discriminator = dense_stack([784, 1024, 2048, 4096, 1], nn.Sigmoid(backend=b))
z = b.normal((8, z_dim))
generated = generator.forward(z)
d_out = discriminator.forward(generated)
print("generated", generated.shape, "D(G(z))", d_out.shape, "in (0, 1):", float(d_out.min()) > 0)

# %% [markdown]
# Its `train(z)` stops here with `...`: no losses, no optimizer, no update, and the
# discriminator never sees a real image. Completed (what `nnscratch.gan.GANTrainer` does
# with the `seed` preset): real and fake batches through D, the losses (gan-1), (gan-3)
# from the logits, Adam with beta1 = 0.5, and the generator's gradient through D (gan-7).
# With the sigmoid kept in the network, the loss must be the clipped BCE on probabilities
# (bce-3):

# %%
x_real = b.asarray(datasets.load("fashion-mnist-mini", "train").x[:8])
opt_D = nn.Adam(discriminator, lr=2e-4, betas=(0.5, 0.999))
opt_G = nn.Adam(generator, lr=2e-4, betas=(0.5, 0.999))
ones, zeros = b.asarray(np.ones((8, 1))), b.asarray(np.zeros((8, 1)))
for step in range(1 if FAST else 3):
    fake = generator.forward(b.normal((8, z_dim)))
    L_real, dp_real = nn.bce(discriminator.forward(x_real), ones)
    discriminator.backward(dp_real)
    grads_real = {k: g.copy() for k, g in discriminator.grads.items()}
    L_fake, dp_fake = nn.bce(discriminator.forward(fake), zeros)
    discriminator.backward(dp_fake)
    for k in discriminator.grads:                 # L_D = L_real + L_fake
        discriminator.grads[k] += grads_real[k]
    opt_D.step()
    L_G, dp = nn.bce(discriminator.forward(generator.forward(b.normal((8, z_dim)))), ones)
    generator.backward(discriminator.backward(dp, param_grads=False), input_grad=False)
    opt_G.step()
    print(f"step {step}: L_D = {float(L_real + L_fake):.3f}  L_G = {float(L_G):.3f}")

# %% [markdown]
# ## The VAE listing, translated, and its error
# One code, no sampling, no KL, and a squared error summed over axes [1, 2, 3] of a
# `(batch, 784)` array:

# %%
encoder = dense_stack([784, 4096, 2048, 20], None)
decoder = dense_stack([20, 2048, 4096, 784], nn.Sigmoid(backend=b))
decoded = decoder.forward(encoder.forward(x_real))
try:
    np.sum(np.square(x_real - decoded), axis=(1, 2, 3))
except np.exceptions.AxisError as err:
    print("the listing's loss fails:", err)
print("what it meant, per example:", np.sum(np.square(x_real - decoded), axis=1)[:3])

# %% [markdown]
# ## Corrected: the `seed` preset of the VAE
# Two heads (mu, logvar), the reparameterisation, the KL, logits with the stable BCE.

# %%
trainer = VAETrainer({"preset": "seed"}, backend=nn.Backend("numpy", seed=0))
print(trainer.vae.describe(), f"{trainer.vae.n_params():,} parameters")
for step in range(1 if FAST else 5):
    print(trainer.step(x_real))
