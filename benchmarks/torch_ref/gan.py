"""The dense GANs of nnscratch (presets ``mlp`` and ``seed``) in PyTorch, for
``benchmarks/gan_parity.py`` only (never imported by the library or its tests).

Same model as :class:`nnscratch.models.gan.GANTrainer`:

* generator ``G``: ``100 -> 256 -> 512 -> 1024 -> 784`` (``mlp``) or
  ``100 -> 4096 -> 2048 -> 1024 -> 784`` (``seed``), leaky ReLU (slope 0.2) after every
  hidden layer, a sigmoid on the output (images in [0, 1]);
* discriminator ``D``: ``784 -> 1024 -> 512 -> 256 -> 1`` (``mlp``) or
  ``784 -> 1024 -> 2048 -> 4096 -> 1`` (``seed``), leaky ReLU 0.2, one **logit** out;
* initialisation of the preset: ``"pytorch"`` for ``mlp`` (``nn.Linear``'s default,
  ``W, b ~ U(-1/sqrt(n_in), 1/sqrt(n_in))``, nnscratch's eq. init-3), ``"he"`` for ``seed``
  (``W ~ N(0, g^2 / n_in)``, ``g = sqrt(2 / (1 + 0.2^2))`` on hidden layers, Glorot uniform
  on each network's last layer, zero biases: eqs. init-1, init-2);
* losses from logits: ``L_D = BCE(D(x), 1) + BCE(D(G(z)), 0)``, each a mean over its rows
  (nnscratch's eq. gan-1 without label smoothing); the non-saturating generator loss
  ``L_G = BCE(D(G(z)), 1)`` (eq. gan-3);
* one step (``GANTrainer.step`` with ``k = 1``): a discriminator step on a real batch and
  as many generated images from fresh noise, with real and fake rows in one concatenated
  forward pass through ``D``, then a generator step on fresh noise of the same size;
  ``z ~ N(0, I)`` of dimension 100; Adam, lr 2e-4, betas (0.5, 0.999), for both networks.

Written the efficient PyTorch way, so the comparison is with ordinary good PyTorch code:
the discriminator step runs ``G`` under ``no_grad`` (nnscratch does not back-propagate
into ``G`` there either), and ``D``'s parameters stop requiring gradients during the
generator step (nnscratch's ``param_grads=False``: only the input gradient of ``D``).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

PRESETS = {
    "mlp": {"G": (100, 256, 512, 1024, 784), "D": (784, 1024, 512, 256, 1), "init": "pytorch"},
    "seed": {"G": (100, 4096, 2048, 1024, 784), "D": (784, 1024, 2048, 4096, 1), "init": "he"},
}
ALPHA = 0.2
ADAM = {"lr": 2e-4, "betas": (0.5, 0.999)}


def init_linear(layer, init, last, alpha=ALPHA):
    """nnscratch's ``init_dense`` on a ``nn.Linear`` (whose weight is ``(n_out, n_in)``)."""
    n_out, n_in = layer.weight.shape
    with torch.no_grad():
        if init == "pytorch":                                   # eq. (init-3)
            a = 1.0 / math.sqrt(n_in)
            layer.weight.uniform_(-a, a)
            layer.bias.uniform_(-a, a)
        elif init == "glorot" or (init == "he" and last):       # eq. (init-2)
            a = math.sqrt(6.0 / (n_in + n_out))
            layer.weight.uniform_(-a, a)
            layer.bias.zero_()
        elif init == "he":                                      # eq. (init-1)
            layer.weight.normal_(0.0, math.sqrt(2.0 / (1.0 + alpha * alpha)) / math.sqrt(n_in))
            layer.bias.zero_()
        else:
            raise ValueError(f"unknown init {init!r}")


def mlp(sizes, init, sigmoid_output=False, alpha=ALPHA):
    """Linear layers ``sizes[0] -> ... -> sizes[-1]``, leaky ReLU between them."""
    layers = []
    n = len(sizes) - 1
    for i in range(n):
        layer = nn.Linear(sizes[i], sizes[i + 1])
        init_linear(layer, init, last=i == n - 1, alpha=alpha)
        layers.append(layer)
        if i < n - 1:
            layers.append(nn.LeakyReLU(alpha))
    if sigmoid_output:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class GANTrainer:
    """``G``, ``D``, their Adam optimizers and a noise generator; ``step(x)`` as nnscratch's."""

    def __init__(self, preset="mlp", seed=0, lr=ADAM["lr"], betas=ADAM["betas"]):
        torch.manual_seed(seed)
        p = PRESETS[preset]
        self.latent = p["G"][0]
        self.G = mlp(p["G"], p["init"], sigmoid_output=True)
        self.D = mlp(p["D"], p["init"])
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=lr, betas=betas)
        self.gen = torch.Generator().manual_seed(seed)

    def n_params(self):
        return sum(q.numel() for net in (self.G, self.D) for q in net.parameters())

    def noise(self, n, generator=None):
        return torch.randn(n, self.latent, generator=generator or self.gen)

    def d_step(self, x):
        """Eq. (gan-1) on real ``x`` ``(B, 784)`` and ``B`` fresh fakes; one Adam step on D."""
        B = x.shape[0]
        with torch.no_grad():
            fake = self.G(self.noise(B))
        s = self.D(torch.cat([x, fake]))
        s_real, s_fake = s[:B], s[B:]
        bce = F.binary_cross_entropy_with_logits
        loss_D = (bce(s_real, torch.ones_like(s_real), reduction="sum")
                  + bce(s_fake, torch.zeros_like(s_fake), reduction="sum")) / B
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()
        with torch.no_grad():
            return {"loss_D": loss_D.item(), "D_real": torch.sigmoid(s_real).mean().item(),
                    "D_fake": torch.sigmoid(s_fake).mean().item()}

    def g_step(self, B):
        """Eq. (gan-3) on ``B`` fresh fakes; gradients through D (frozen) into G."""
        self.D.requires_grad_(False)
        s = self.D(self.G(self.noise(B)))
        loss_G = F.binary_cross_entropy_with_logits(s, torch.ones_like(s), reduction="sum") / B
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        return loss_G.item()

    def step(self, x):
        """One D step then one G step; ``{"loss_D", "loss_G", "D_real", "D_fake"}``."""
        out = self.d_step(x)
        out["loss_G"] = self.g_step(x.shape[0])
        return out

    @torch.no_grad()
    def sample(self, n, seed=None, batch=4096):
        """``n`` images ``G(z)``, host float32 NumPy ``(n, 784)`` in [0, 1]; ``seed``: a
        fresh noise generator (the same samples on every call)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else self.gen
        self.G.eval()
        out = [self.G(self.noise(min(batch, n - i), gen)) for i in range(0, n, batch)]
        return torch.cat(out).numpy()
