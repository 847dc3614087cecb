"""The classic VAE in PyTorch, for ``benchmarks/vae_parity.py`` only (never imported by the
library or its tests).

The model of the PyTorch examples (``examples/vae/main.py``): encoder 784-400 with ReLU,
heads 400 -> 20 for ``mu`` and ``logvar``, decoder 20-400-784 with ReLU giving Bernoulli
logits; ``nn.Linear``'s default initialisation (``U(-1/sqrt(n_in), 1/sqrt(n_in))`` for
weights and biases, nnscratch's ``init="pytorch"``, eq. init-3). Loss: the negative ELBO
in nats per example, BCE from logits summed over pixels plus the analytic KL, divided by
the batch size (nnscratch's eqs. vae-4, bce-1, kl-1). The example uses a sigmoid output and
``F.binary_cross_entropy`` on probabilities; ``binary_cross_entropy_with_logits`` is the same
function computed stably, and is what nnscratch computes. Adam, lr 1e-3.

Evaluation mirrors ``VAETrainer.evaluate``: ``neg_elbo`` is the analytic KL plus the
reconstruction term averaged over ``K`` draws, ``iwae`` minus the log-mean-exp of the
importance weights (eqs. vae-7, vae-8), both written here independently with ``torch``.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)


class VAE(nn.Module):
    """784-400-(20, 20) encoder, 20-400-784 decoder, ReLU; ``forward`` returns (s, mu, logvar)."""

    def __init__(self, n_in=784, hidden=400, latent=20):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc21 = nn.Linear(hidden, latent)     # mu
        self.fc22 = nn.Linear(hidden, latent)     # logvar
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, n_in)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode_logits(self, z):
        return self.fc4(F.relu(self.fc3(z)))

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decode_logits(z), mu, logvar


def neg_elbo(s, x, mu, logvar):
    """Negative ELBO, nats per example: (BCE summed + KL summed) / batch."""
    B = x.shape[0]
    rec = F.binary_cross_entropy_with_logits(s, x, reduction="sum") / B
    kl = 0.5 * torch.sum(logvar.exp() + mu * mu - 1.0 - logvar) / B
    return rec + kl, rec, kl


class Trainer:
    """Model + Adam; ``step(x)`` takes one optimisation step and returns the loss (float)."""

    def __init__(self, latent=20, lr=1e-3):
        self.model = VAE(latent=latent)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)

    def step(self, x):
        s, mu, logvar = self.model(x)
        loss, _, _ = neg_elbo(s, x, mu, logvar)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(self, x, iw_samples=1, batch=1000, seed=0):
        """``{"neg_elbo", "iwae"}`` in nats per example on ``x`` ``(N, 784)`` (a tensor)."""
        gen = torch.Generator().manual_seed(seed)
        K, total_elbo, total_iwae = iw_samples, 0.0, 0.0
        for i in range(0, x.shape[0], batch):
            xb = x[i:i + batch]
            mu, logvar = self.model.encode(xb)
            eps = torch.randn((K, *mu.shape), generator=gen)
            z = mu + torch.exp(0.5 * logvar) * eps                                # (K, B, k)
            s = self.model.decode_logits(z)                                       # (K, B, 784)
            log_px = -F.binary_cross_entropy_with_logits(
                s, xb.expand_as(s), reduction="none").sum(-1)
            log_pz = -0.5 * (z * z + LOG_2PI).sum(-1)
            log_qz = -0.5 * (eps * eps + logvar + LOG_2PI).sum(-1)
            kl = 0.5 * (logvar.exp() + mu * mu - 1.0 - logvar).sum(-1)
            total_elbo += float((-log_px.mean(0) + kl).sum())
            log_w = log_px + log_pz - log_qz
            total_iwae -= float((torch.logsumexp(log_w, 0) - math.log(K)).sum())
        n = x.shape[0]
        return {"neg_elbo": total_elbo / n, "iwae": total_iwae / n}
