"""PyTorch versions of the networks nnscratch trains, with the same losses and training steps.

Used by ``benchmarks/bench_steps.py`` (speed and memory against nnscratch). Every network
here has the layer sizes, activations and loss of its nnscratch counterpart:

* ``"vae"``: the classic VAE of the PyTorch examples (``examples/vae/main.py``), encoder
  784-400-(20, 20) with ReLU, decoder 20-400-784 giving Bernoulli logits; loss the negative
  ELBO, BCE from logits summed over pixels plus the analytic KL, averaged over the batch
  (nnscratch's eqs. vae-4, bce-1, kl-1).
* ``"mlp"`` and ``"seed"`` GANs: generator ``100 -> ... -> 784`` with leaky ReLU (0.2) and a
  sigmoid output, discriminator ``784 -> ... -> 1`` with leaky ReLU and a logit output;
  non-saturating GAN loss as BCE from logits (means over the real and over the fake
  rows, as nnscratch's ``GANTrainer``); one discriminator step on a batch of real and
  generated images, then one generator step; Adam with lr = 2e-4, betas = (0.5, 0.999).

The training steps are written the efficient PyTorch way, so the comparison is with the
strongest ordinary PyTorch code: the generator's output is detached for the discriminator
step, and the discriminator's parameters stop requiring gradients during the generator
step (nnscratch's ``param_grads=False``), so neither framework computes gradients it
throws away.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

GAN_SIZES = {
    "mlp": {"G": (100, 256, 512, 1024, 784), "D": (784, 1024, 512, 256, 1)},
    "seed": {"G": (100, 4096, 2048, 1024, 784), "D": (784, 1024, 2048, 4096, 1)},
}
GAN_ADAM = {"lr": 2e-4, "betas": (0.5, 0.999)}


class VAE(nn.Module):
    """784-400-20 encoder with two heads, 20-400-784 decoder, ReLU; returns logits, mu, logvar."""

    def __init__(self, n_in=784, hidden=400, latent=20):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, n_in)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


def vae_loss(s, x, mu, logvar):
    """Negative ELBO in nats per example: BCE from logits + KL, summed, divided by the batch."""
    B = x.shape[0]
    rec = F.binary_cross_entropy_with_logits(s, x, reduction="sum") / B
    kl = 0.5 * torch.sum(logvar.exp() + mu * mu - 1.0 - logvar) / B
    return rec + kl, rec, kl


def mlp(sizes, alpha=0.2, sigmoid_output=False):
    """Linear layers ``sizes[0] -> sizes[1] -> ...`` with leaky ReLU between them."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(alpha))
    if sigmoid_output:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class VAEStep:
    """One Adam step on the negative ELBO of a batch; ``step(x)`` returns the loss."""

    def __init__(self, lr=1e-3, device="cpu", **adam):
        self.model = VAE().to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr, **adam)

    def step(self, x):
        s, mu, logvar = self.model(x)
        loss, _, _ = vae_loss(s, x, mu, logvar)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.item()


class GANStep:
    """One discriminator step and one generator step (non-saturating loss from logits)."""

    def __init__(self, preset="mlp", device="cpu", **adam):
        sizes = GAN_SIZES[preset]
        self.nz = sizes["G"][0]
        self.G = mlp(sizes["G"], sigmoid_output=True).to(device)
        self.D = mlp(sizes["D"]).to(device)
        adam = {**GAN_ADAM, **adam}
        self.opt_G = torch.optim.Adam(self.G.parameters(), **adam)
        self.opt_D = torch.optim.Adam(self.D.parameters(), **adam)
        self.device = device

    def step(self, x):
        B = x.shape[0]
        # discriminator: real images labelled 1, generated ones 0
        with torch.no_grad():
            fake = self.G(torch.randn(B, self.nz, device=self.device))
        s = self.D(torch.cat([x, fake]))
        t = torch.cat([torch.ones(B, 1, device=self.device), torch.zeros(B, 1, device=self.device)])
        # nnscratch's eq. (gan-1): mean over the real rows plus mean over the fake rows
        loss_D = F.binary_cross_entropy_with_logits(s, t, reduction="sum") / B
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()
        # generator: non-saturating loss, -log D(G(z)); D's weights are not trained here
        self.D.requires_grad_(False)
        s = self.D(self.G(torch.randn(B, self.nz, device=self.device)))
        loss_G = F.binary_cross_entropy_with_logits(s, torch.ones_like(s), reduction="sum") / B
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        return loss_D.item(), loss_G.item()


def make_step(model, device="cpu", **adam):
    """The training-step object for ``model`` in {"vae", "mlp", "seed"}."""
    if model == "vae":
        return VAEStep(device=device, **adam)
    return GANStep(model, device=device, **adam)
