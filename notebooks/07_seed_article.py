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
# nnscratch began from a Chinese-language blog post that introduces GANs and VAEs side by
# side and gives one TensorFlow 1 listing for each (`docs/seed_article.md` describes it).
# The listings fix the layer sizes and activations, and stop there: the GAN's training
# function is an ellipsis, and the VAE is not a VAE and its loss does not run.
#
# This chapter translates both listings line for line into nnscratch, runs them to show
# what is missing or wrong, completes and corrects them, and puts the result next to the
# `seed` presets of `nnscratch.models.gan` and `nnscratch.models.vae`, which are those corrections.
# Fast mode (CI) takes a couple of steps of each; full mode trains long enough to see the
# difference in samples.

# %%
import matplotlib.pyplot as plt
import numpy as np

import nnscratch as nn
from _common import FAST, FIGURES, savefig, show
from nnscratch import datasets
from nnscratch.models.gan import GANTrainer
from nnscratch.models.vae import VAETrainer
from nnscratch.plots.grid import image_grid
from nnscratch.training.loop import fit

b = nn.Backend("numpy", seed=0)
train = datasets.load("fashion-mnist-mini", "train")
n_train = 16 if FAST else len(train.x)
x_train = train.x[:n_train]
batch = 8 if FAST else 64
x_real = b.asarray(x_train[:batch])


def tf_dense_stack(sizes, last_activation):
    """``tf.layers.dense(h, n, activation=tf.nn.leaky_relu)`` for every hidden width, then
    the output layer. TF1's defaults: Glorot-uniform weights, zero biases, slope 0.2."""
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Dense(n_in, n_out, init="glorot", backend=b), nn.LeakyReLU(0.2, backend=b)]
    layers.append(nn.Dense(sizes[-2], sizes[-1], init="glorot", backend=b))
    if last_activation is not None:
        layers.append(last_activation)
    return nn.Sequential(*layers)


# %% [markdown]
# ## The GAN listing, translated
# The widths are written `4*4*256`, `4*4*128`, `4*4*64`, the reshape sizes of a
# convolutional DCGAN with the convolutions taken out: 4096, 2048 and 1024 units of a plain
# dense layer. Both networks end in a sigmoid. The listing never says how large $z$ is.

# %%
z_dim = 100                                   # the listing leaves z undefined; 100 is usual
generator = tf_dense_stack([z_dim, 4096, 2048, 1024, 784], nn.Sigmoid(backend=b))
discriminator = tf_dense_stack([784, 1024, 2048, 4096, 1], nn.Sigmoid(backend=b))
print(f"generator {generator.n_params():,} parameters, discriminator "
      f"{discriminator.n_params():,}")


def train_as_listed(z):
    generated_samples = generator.forward(z)
    discriminator_output = discriminator.forward(generated_samples)  # noqa: F841 (as listed)
    # "adjust the parameters of the generator and the discriminator"
    ...


before = {k: p.copy() for k, p in generator.params.items()}
train_as_listed(b.normal((batch, z_dim)))
moved = sum(float(np.abs(p - before[k]).max()) for k, p in generator.params.items())
print("parameters changed by the listed train():", moved)
assert moved == 0                                   # nothing trains, in every mode

# %% [markdown]
# Nothing trains. What `...` stands for:
#
# 1. a discriminator loss, which needs $D$ on **real** images as well as on fakes (the listing
#    never feeds $D$ a real image), eq. (gan-1);
# 2. a generator loss, eq. (gan-3) (the non-saturating one; the minimax (gan-5) stalls
#    early, see chapter 04);
# 3. two optimizers and an alternating loop: a $D$ step, then a $G$ step whose gradient
#    flows *through* $D$ without changing it, eq. (gan-7);
# 4. in TF1, `tf.variable_scope(..., reuse=True)` around the second call of
#    `discriminator`, or the real and the fake batch go through two different networks.
#
# Completed in the listing's own terms (sigmoid outputs), the loss must be the BCE on
# probabilities, clipped (bce-3), because a float32 sigmoid reaches exactly 0 or 1:

# %%
opt_D = nn.Adam(discriminator, lr=2e-4, betas=(0.5, 0.999))
opt_G = nn.Adam(generator, lr=2e-4, betas=(0.5, 0.999))
ones, zeros = b.asarray(np.ones((batch, 1))), b.asarray(np.zeros((batch, 1)))
for step in range(2 if FAST else 3):
    fake = generator.forward(b.normal((batch, z_dim)))
    L_real, dp_real = nn.bce(discriminator.forward(x_real), ones)
    discriminator.backward(dp_real, input_grad=False)
    grads_real = {k: g.copy() for k, g in discriminator.grads.items()}
    L_fake, dp_fake = nn.bce(discriminator.forward(fake), zeros)
    discriminator.backward(dp_fake, input_grad=False)
    for k, g in discriminator.grads.items():      # L_D = L_real + L_fake: gradients add
        g += grads_real[k]                         # (in place: the layer's own array)
    opt_D.step()
    L_G, dp = nn.bce(discriminator.forward(generator.forward(b.normal((batch, z_dim)))), ones)
    generator.backward(discriminator.backward(dp, param_grads=False), input_grad=False)
    opt_G.step()
    print(f"step {step}: L_D = {float(L_real + L_fake):.3f}  L_G = {float(L_G):.3f}")
moved = sum(float(np.abs(p - before[k]).max()) for k, p in generator.params.items())
print("now the generator's parameters move:", moved > 0)
assert moved > 0

# %% [markdown]
# That works, but the clip has a cost (chapter 02): where $D$ is confident, the clipped loss
# is flat and the gradient is exactly zero. The correction keeps the model and moves the
# discriminator's last sigmoid into the loss: the network returns the logit $s$ (so that
# $D = \sigma(s)$, the probability that its input is real), and the losses are the stable BCE
# from logits (bce-1), whose gradient $\sigma(s) - x$ (bce-2) never vanishes for a wrong
# answer.
#
# ## Corrected: the `seed` preset of the GAN, side by side
#
# | | the listing | `GANTrainer({"preset": "seed"})` |
# |---|---|---|
# | generator | z-4096-2048-1024-784, leaky ReLU 0.2, sigmoid | the same |
# | discriminator | 784-1024-2048-4096-1, leaky ReLU 0.2, **sigmoid** | the same, **logit** out |
# | $z$ | undefined | 100-dimensional, $\mathcal N(0, I)$ |
# | losses | `...` | (gan-1), (gan-3) from logits, stable |
# | real data | never seen | every $D$ step |
# | optimizer | `...` | Adam, lr $2 \times 10^{-4}$, $\beta_1 = 0.5$ |
# | loop | `...` | $n_D$ $D$ steps per $G$ step (1 by default), gradient through $D$ (gan-7) |
# | initialisation | TF default (Glorot) | He's gain for slope 0.2, Glorot on output layers |
# | stabilisers | none | the `stable` recipe by default (below); `"recipe": "none"` here |

# %%
del generator, discriminator, opt_D, opt_G
gan = GANTrainer({"preset": "seed", "recipe": "none"},
                backend=nn.Backend("numpy", seed=0))
print(f"G {gan.gan.G.n_params():,} + D {gan.gan.D.n_params():,} parameters")
gan_records = fit(gan, x_train, 1 if FAST else 2, batch, f"{FIGURES}/07_gan_run",
                  figures=False, progress=False, overwrite=True)
print({k: round(v, 3) for k, v in gan_records[-1].items() if k.startswith("train_")})

# %% [markdown]
# The corrected losses are still the bare GAN (`"recipe": "none"` above): they keep the
# generator's gradient alive, from the logit (gan-4) it tends to $-1/n$ however confident $D$
# is, while on clipped probabilities (bce-3) it is exactly zero for every fake with
# $\sigma(s) < 10^{-7}$. They do not stop the discriminator from winning, and with networks this
# wide it wins fast: the next section shows it.

# %% [markdown]
# ## The article's GAN collapses, then trains
# Bare, the article's GAN does not learn to make images: within the first hundred or two
# steps the discriminator separates real from fake almost perfectly, the mean of
# $D(G(z)) = \sigma(s(G(z)))$ (`D_fake`) falls towards 0, and every sample ends as the same noise
# pattern. So the `seed` preset trains, unless told otherwise, with the recipe `stable`
# (`nnscratch.models.gan.RECIPES`): four stabilisers, each a layer or a training rule with
# its own forward and backward pass, derived in `docs/stabilisers.md` and measured in
# `docs/gan.md` ("Stabilisers and recipes"):
#
# - **spectral normalisation of D** (sn-1) to (sn-8): each layer divides its weights by their
#   largest singular value, estimated by one power-iteration step per training forward, so
#   D's logit cannot get arbitrarily steep. This is the one that stops D from winning
#   (chapter 04's ablation: without it, D's loss stays far below chance);
# - **batch normalisation in G** (bn-1) to (bn-9): after each hidden layer, every unit is
#   standardised over the batch, which keeps a deep generator's activations in range from
#   the first step;
# - **a moving average of G's weights** (ema-1), decay 0.999: samples and evaluations come
#   from the average, which sits nearer the centre of the generator's oscillation than its
#   last step and takes away the pixel speckle;
# - **two time scales** (Heusel et al., 2017): D learns at twice the learning rate, G at half
#   of it (`ttur` = [2, 1/2]).
#
# The same networks, the same data and the same batches, trained bare and with `stable`.
# **Fast mode** takes the regression test of the suite
# (`tests/test_gan_stabilisers.py`): the seed networks at 1/8 of their width (G
# 100-512-256-128-784, D 784-128-256-512-1), 200 steps of batch 64 on the embedded subset.
# **Full mode** takes the real widths (23 million parameters) on 4,096 images, 300 steps.
# The criterion is the test's: bare, `D_fake` averages below 0.05 over the last 50 steps
# (collapsed); with `stable` it stays above 0.05 at every step from step 100 on.

# %%
del gan
widths = ({"G_hidden": [512, 256, 128], "D_hidden": [128, 256, 512]} if FAST else {})
x_gan, steps = (train.x, 200) if FAST else (train.x[:4096], 300)
d_fake, gan_samples = {}, {}
for recipe in ("none", "stable"):
    trainer = GANTrainer({"preset": "seed", "recipe": recipe, **widths},
                         backend=nn.Backend("numpy", "float32", seed=0))
    order = np.random.default_rng(0)                  # the same batches for both recipes
    d_fake[recipe] = np.array([trainer.step(x_gan[order.integers(0, len(x_gan), 64)])
                               ["D_fake"] for _ in range(steps)])
    gan_samples[recipe] = trainer.sample(16, seed=0)
    print(f"recipe {recipe:6s}: G {trainer.gan.G.n_params():,} + D "
          f"{trainer.gan.D.n_params():,} parameters; D_fake over the last 50 steps "
          f"{d_fake[recipe][-50:].mean():.3f}, lowest from step 100 on "
          f"{d_fake[recipe][100:].min():.3f}")
    del trainer
assert d_fake["none"][-50:].mean() < 0.05                 # bare: D has won
assert d_fake["stable"][100:].min() > 0.05                # stable: it never does

# %%
fig = plt.figure(figsize=(11, 3.4))
ax = fig.add_subplot(1, 3, 1)
for recipe, label in (("none", "bare (recipe none)"), ("stable", "recipe stable")):
    ax.plot(np.arange(1, steps + 1), d_fake[recipe], lw=0.8, label=label)
ax.axhline(0.05, color="k", lw=0.8, ls=":", label="0.05 (the criterion)")
ax.axhline(0.5, color="grey", lw=0.8, ls="--")
ax.set_yscale("log")
ax.set_ylim(1e-3, 1)
ax.set(xlabel="step", ylabel="mean D(G(z))", title="D_fake per step")
ax.legend(fontsize=8)
for i, (recipe, title) in enumerate((("none", "bare"), ("stable", "stable")), start=2):
    ax = fig.add_subplot(1, 3, i)
    ax.imshow(image_grid(gan_samples[recipe], nrow=4), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"{title}: samples after {steps} steps", fontsize=9)
    ax.axis("off")
savefig(fig, "07_gan_collapse.png")

# %% [markdown]
# A few hundred steps show the collapse and its cure, not garments: the `stable` samples
# are still blurs. Twenty epochs of the full Fashion-MNIST (60,000 images), seed 0, make the
# difference. The bare seed GAN never leaves the collapse (measured on a GPU for the issue
# that asked for these stabilisers, 8 epochs: `D_fake` $8 \times 10^{-8}$, every sample the
# same noise pattern, all of them in one class). With `stable`, the numbers of
# `benchmarks/gan_recipes.py` (Frechet distance in the project's classifier's features and
# classes covered by 10,000 samples, as in `docs/benchmarks.md`; chapter 04 has the ablation):

# %%
import json

with open("../benchmarks/results/gan_recipes.json") as f:
    recipe_results = json.load(f)
seed20 = recipe_results["seed_e20"]["runs"]
for name, run in seed20.items():
    c = run["curves"]
    print(f"seed preset, 20 epochs, {name:10s} ({' '.join(run['options'])}): Frechet distance "
          f"{run['frechet']:.2f}, {int(run['classes'])} of 10 classes; last epoch loss_D "
          f"{c['train_loss_D'][-1]:.3f}, D_fake {c['train_D_fake'][-1]:.3f}")
stable20 = seed20["stable"]
assert stable20["classes"] == 10 and 2 * stable20["frechet"] < seed20["sn+bn+ema"]["frechet"]
assert min(stable20["curves"]["train_D_fake"]) > 0.4      # D never wins, in 20 epochs
show("../docs/figures/gan_seed20_stable_samples.png")

# %% [markdown]
# The second line is the same recipe with one learning rate for both networks (no two time
# scales): all ten classes too, but a Frechet distance more than twice as large.
# `nnscratch train gan --preset seed --dataset fashion-mnist --epochs 20` trains this
# recipe; `--recipe none` trains the article's GAN as it was.

# %% [markdown]
# ## The VAE listing, translated, and its error
# The encoder outputs one code, the decoder is applied to that code directly, and the loss
# is a squared error summed over axes `[1, 2, 3]`, as if the images were `(batch, 28, 28,
# 1)` tensors. They are flat `(batch, 784)` vectors (the first layer is a dense layer on
# 784 inputs), so the reduction fails: TensorFlow raises an error for axes 2 and 3, and so
# does NumPy. `z_dim` is left as `...`; 20 here.

# %%
z_dim = 20
encoder = tf_dense_stack([784, 4096, 2048, z_dim], None)          # one code, linear
decoder = tf_dense_stack([z_dim, 2048, 4096, 784], nn.Sigmoid(backend=b))
decoded = decoder.forward(encoder.forward(x_real))
failed = False
try:
    np.sum(np.square(x_real - decoded), axis=(1, 2, 3))
except np.exceptions.AxisError as err:
    failed = True
    print("the listing's loss fails:", err)
assert failed
print("what it meant, per example:", np.sum(np.square(x_real - decoded), axis=1)[:3])

# %% [markdown]
# With the axis fixed, the listing trains, and what it trains is a plain autoencoder: no
# $\mu$ and $\mathrm{logvar}$, no sampling, no KL term. Its codes go wherever reconstruction
# wants them, so decoding draws from the prior $\mathcal N(0, I)$, which is how a VAE
# generates, decodes codes the decoder has never seen. Here the listing is trained with the
# squared error it meant (`nn.mse`: summed over pixels, averaged over the batch) and Adam:

# %%
steps = 2 if FAST else 3 * (n_train // batch)
ae = nn.Sequential(encoder, decoder)
opt = nn.Adam(ae, lr=1e-3)
rng = np.random.default_rng(0)
for step in range(steps):
    xb = b.asarray(x_train[rng.integers(0, n_train, batch)])
    L, dy = nn.mse(ae.forward(xb), xb)
    ae.backward(dy, input_grad=False)
    opt.step()
codes = nn.to_numpy(encoder.forward(b.asarray(x_train[:512])))
print(f"after {steps} steps: squared error {float(L):.1f} per image; its codes have, per "
      f"unit, means from {codes.mean(0).min():+.2f} to {codes.mean(0).max():+.2f} and standard "
      f"deviations from {codes.std(0).min():.2f} to {codes.std(0).max():.2f} (the prior: 0 and 1)")
ae_samples = nn.to_numpy(decoder.forward(b.normal((16, z_dim))))

# %% [markdown]
# ## Corrected: the `seed` preset of the VAE, side by side
#
# | the listing | `VAETrainer({"preset": "seed"})` |
# |---|---|
# | `encoded = encoder(x)` (one code) | `mu, logvar = encode(x)`: two linear heads (vae-1) |
# | `decoder(encoded)` | `s = decoder(z)`, `z = mu + exp(logvar / 2) * eps` (vae-2), (vae-3) |
# | `reduce_sum(square(x - decoded), axis=[1, 2, 3])` (fails) | `bce_with_logits(s, x)` (bce-1) |
# | no KL term | `+ kl_normal(mu, logvar)` (kl-1): the loss is the negative ELBO (vae-4) |
# | sigmoid output | logits; the sigmoid lives in the stable BCE |
# | `z_dim = ...` | $d_z = 20$ |
# | no optimizer, no loop | Adam lr $10^{-3}$, the shared training loop |

# %%
del encoder, decoder, ae, opt
vae = VAETrainer({"preset": "seed"}, backend=nn.Backend("numpy", seed=0))
print(vae.vae.describe(), f"{vae.vae.n_params():,} parameters")
assert 23.2e6 < vae.vae.n_params() < 23.4e6          # "a 23M-parameter model"
vae_records = fit(vae, x_train, 1 if FAST else 3, batch, f"{FIGURES}/07_vae_run",
                  figures=False, progress=False, overwrite=True)
print({k: round(v, 1) for k, v in vae_records[-1].items() if k.startswith("train_")})
vae_samples = vae.sample(16, seed=0)
mu, logvar = (nn.to_numpy(a) for a in vae.vae.encode(vae.backend.asarray(x_train[:512])))
z = mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)             # (vae-2)
print(f"its codes z ~ q(z|x) have, per unit, means from {z.mean(0).min():+.2f} to "
      f"{z.mean(0).max():+.2f} and standard deviations from {z.std(0).min():.2f} to "
      f"{z.std(0).max():.2f}")

# %% [markdown]
# The KL term pulls the VAE's codes towards the prior: in full mode their means per unit
# stay within about 0.2 of 0 and their standard deviations between about 0.7 and 1.2. The
# autoencoder's are under no such pull.
#
# Both decoders, fed $z \sim \mathcal N(0, I)$, the way a VAE generates (in full mode:
# the same images, three epochs each; in fast mode both are untrained). The autoencoder's
# codes are wherever reconstruction put them, with a spread that differs from unit to unit,
# and nothing trained its decoder on the codes in between: its samples tend to be blurred
# overlays of garments. The VAE's decoder is trained on noisy codes spread like the prior,
# and its samples are individual garments, grainy after only three epochs of a 23M-parameter
# model. Chapter 05 shows what the smaller `classic` preset reaches in 30 epochs.

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 4.3))
for ax, images, title in [(axes[0], ae_samples, "the listing (an autoencoder)"),
                          (axes[1], vae_samples, "seed preset (a VAE)")]:
    ax.imshow(image_grid(images, nrow=4), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"{title}\ndecoding z ~ N(0, I)", fontsize=9)
    ax.axis("off")
savefig(fig, "07_prior_samples.png")

# %% [markdown]
# ## Exercises
#
# 1. **Break it and watch: two discriminators.** Point 4 above: without
#    `reuse=True`, the real and the fake batch go through two different networks. Build that
#    mistake on the 2-D ring with small networks (a fixed "generator": a blob at the
#    centre of the ring), train both "halves" with their own parts of (gan-1), and ask each
#    what it says about real data. What can the generator learn from the half it is trained
#    against?
# 2. **Count the parameters.** Compute by hand the parameter counts of the listing's
#    networks (a dense layer $n_{in} \to n_{out}$ has $n_{in} n_{out} + n_{out}$) and check
#    them against `n_params()` and the `seed` VAE's 23.3 million.
# 3. **What the listing's reduction meant.** Find the shape for which
#    `reduce_sum(..., axis=[1, 2, 3])` runs, and show it gives the same per-example squared
#    error as the sum over axis 1 of the flat images.

# %% [markdown]
# <details><summary>Solution 1</summary>
#
# The half that sees only fakes learns "everything is fake": its $D = \sigma(s)$ is near 0 on
# the real data too, so the generator, trained against it, is pushed away from fakes without
# ever being pulled towards the data. The half that sees only real images learns "everything
# is real". Neither is a discriminator; a shared network is.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
from nnscratch.models import toy2d
from nnscratch.models.gan import discriminator_loss

bt = nn.Backend("numpy", "float32", seed=0)
rng1 = np.random.default_rng(1)


def toy_D():
    return nn.Sequential(nn.Dense(2, 64, backend=bt), nn.ReLU(backend=bt),
                         nn.Dense(64, 1, backend=bt))


D_real, D_fake, D_shared = toy_D(), toy_D(), toy_D()
opts = {id(d): nn.Adam(d, lr=1e-3) for d in (D_real, D_fake, D_shared)}
ones, zeros = np.ones((128, 1), np.float32), np.zeros((128, 1), np.float32)
for _ in range(300):
    real = toy2d.sample("ring", 128, rng1).astype(np.float32)
    fake = (0.3 * rng1.standard_normal((128, 2))).astype(np.float32)
    D_real.backward(nn.bce_with_logits(D_real.forward(real), ones)[1], input_grad=False)
    D_fake.backward(nn.bce_with_logits(D_fake.forward(fake), zeros)[1], input_grad=False)
    s = D_shared.forward(np.concatenate([real, fake]))                            # (gan-1)
    _, ds_r, ds_f = discriminator_loss(s[:128], s[128:])
    D_shared.backward(np.concatenate([ds_r, ds_f]), input_grad=False)
    for d in (D_real, D_fake, D_shared):
        opts[id(d)].step()
held_out = bt.asarray(toy2d.sample("ring", 500, rng1).astype(np.float32))
say = {name: float(np.mean(nn.sigmoid(d.forward(held_out))))
       for name, d in (("real half", D_real), ("fake half", D_fake), ("shared", D_shared))}
print("mean D = sigma(s) on held-out real data:", {k: round(v, 3) for k, v in say.items()})
assert say["fake half"] < 0.1 and say["real half"] > 0.9 and say["shared"] > 0.6

# %% [markdown]
# <details><summary>Solution 2</summary>
#
# On paper, one layer at a time ($n_{in} n_{out}$ weights and $n_{out}$ biases):
#
# - generator $100 \to 4096 \to 2048 \to 1024 \to 784$: $413{,}696 + 8{,}390{,}656 +
#   2{,}098{,}176 + 803{,}600 = 11{,}706{,}128$, about 11.7 million;
# - discriminator $784 \to 1024 \to 2048 \to 4096 \to 1$: $803{,}840 + 2{,}099{,}200 +
#   8{,}392{,}704 + 4{,}097 = 11{,}299{,}841$, about 11.3 million;
# - the `seed` VAE: the encoder $784 \to 4096 \to 2048$ ($11{,}606{,}016$), two heads
#   $2048 \to 20$ for $\mu$ and logvar ($2 \times 40{,}980$), the decoder $20 \to 2048 \to
#   4096 \to 784$ ($11{,}647{,}760$): $23{,}335{,}736$, the 23.3 million.
#
# The largest layer, $2048 \times 4096$, holds 8.4 million of each network's weights.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
def dense_count(sizes):
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


generator = tf_dense_stack([100, 4096, 2048, 1024, 784], nn.Sigmoid(backend=b))
discriminator = tf_dense_stack([784, 1024, 2048, 4096, 1], nn.Sigmoid(backend=b))
assert generator.n_params() == dense_count([100, 4096, 2048, 1024, 784])
assert discriminator.n_params() == dense_count([784, 1024, 2048, 4096, 1])
vae_count = (dense_count([784, 4096, 2048]) + 2 * dense_count([2048, 20])
             + dense_count([20, 2048, 4096, 784]))
print(f"G {generator.n_params():,}, D {discriminator.n_params():,}, "
      f"seed VAE {vae_count:,} = {vae.vae.n_params():,}")
assert vae.vae.n_params() == vae_count and round(vae_count / 1e6, 1) == 23.3
assert (generator.n_params(), discriminator.n_params(), vae_count) \
    == (11_706_128, 11_299_841, 23_335_736)                    # the counts done on paper

# %% [markdown]
# <details><summary>Solution 3</summary>
#
# The axes `[1, 2, 3]` are those of a `(batch, 28, 28, 1)` tensor (TensorFlow's image
# layout); reshaped so, the sum runs and equals the flat sum over the 784 pixels.
#
# </details>

# %% tags=["solution", "hide-cell"] jupyter={"source_hidden": true, "outputs_hidden": true}
diff = np.square(x_train[:4] - vae_samples[:4])
assert np.allclose(diff.reshape(4, 28, 28, 1).sum(axis=(1, 2, 3)), diff.sum(axis=1))
print("per-example squared error, both ways:", np.round(diff.sum(axis=1), 2))
