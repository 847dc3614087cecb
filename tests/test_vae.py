"""The VAE: a gradient check of the whole model through the sampling, the loss against an
independent computation, the reparameterisation, the IWAE bound, the trainer contract.

Gradient checks use a tiny float64 model (6-5-2) with eps held fixed, threshold 1e-7
(see nnscratch.gradcheck); everything else runs in float32 as training does.
"""
import json
import math

import numpy as np
import pytest

import nnscratch as nn
from conftest import TOLERANCE, assert_plotted
from nnscratch.models.vae import (
    PRESETS,
    VAE,
    VAETrainer,
    log_normal_posterior,
    log_normal_prior,
    logmeanexp,
    reparameterize,
)
from nnscratch.training.trainer import Trainer


def tiny_vae(b, alpha=0.0, enc_hidden=(5,), dec_hidden=None):
    return VAE(n_in=6, enc_hidden=enc_hidden, latent=2, dec_hidden=dec_hidden, alpha=alpha,
               init="he", backend=b)


def small_trainer(b, **config):
    return VAETrainer({"preset": "classic", "latent": 4, **config}, backend=b)


def host_batch(n, seed=0, d=784):
    return np.random.default_rng(seed).random((n, d), dtype=np.float32)


# -- gradients ------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha, enc_hidden, dec_hidden", [
    (0.0, (5,), None), (0.2, (5, 4), (3, 5))], ids=["relu-6-5-2", "lrelu-6-5-4-2"])
def test_whole_vae_gradcheck_with_fixed_eps(b64, alpha, enc_hidden, dec_hidden):
    vae = tiny_vae(b64, alpha, enc_hidden, dec_hidden)
    x = b64.uniform((4, 6))
    eps = b64.normal((4, 2))

    def f():
        return vae.loss(x, eps)[0]

    _, _, _, dy = vae.loss(x, eps)
    assert vae.backward(dy) is None                   # input_grad=False by default
    analytic = {k: nn.to_numpy(g).copy() for k, g in vae.grads.items()}
    report = nn.check_gradients(f, dict(vae.params), analytic)
    assert set(report) == set(vae.params)
    assert {"enc.0.W", "mu.W", "mu.b", "logvar.W", "logvar.b", "dec.0.W"} <= set(report)
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


def test_vae_input_gradient_through_the_encoder(b64):
    """With the BCE target held fixed, dL/dx flows only through the encoder and sampling."""
    vae = tiny_vae(b64)
    x, target, eps = b64.uniform((3, 6)), b64.uniform((3, 6)), b64.normal((3, 2))

    def loss():
        s, mu, logvar = vae.forward(x, eps)
        rec, ds = nn.bce_with_logits(s, target)
        kl, (dmu, dlogvar) = nn.kl_normal(mu, logvar)
        return rec + kl, (ds, dmu, dlogvar)

    _, dy = loss()
    dx = vae.backward(dy, input_grad=True)
    report = nn.check_gradients(lambda: loss()[0], {"x": x}, {"x": nn.to_numpy(dx).copy()})
    assert report["x"] < TOLERANCE, nn.format_report(report)


# -- values ---------------------------------------------------------------------------------
def test_neg_elbo_matches_an_independent_float64_computation(b32):
    vae = tiny_vae(b32, alpha=0.2, enc_hidden=(5, 4))
    xh = host_batch(5, d=6)
    eh = np.random.default_rng(1).standard_normal((5, 2)).astype(np.float32)
    L, rec, kl, _ = vae.loss(b32.asarray(xh), b32.asarray(eh))

    P = {k: v.astype(np.float64) for k, v in vae.state_dict().items()}
    lrelu = lambda a: np.where(a > 0, a, 0.2 * a)
    h = lrelu(lrelu(xh @ P["enc.0.W"] + P["enc.0.b"]) @ P["enc.2.W"] + P["enc.2.b"])
    mu, logvar = h @ P["mu.W"] + P["mu.b"], h @ P["logvar.W"] + P["logvar.b"]
    z = mu + np.sqrt(np.exp(logvar)) * eh
    s = lrelu(lrelu(z @ P["dec.0.W"] + P["dec.0.b"]) @ P["dec.2.W"] + P["dec.2.b"]) \
        @ P["dec.4.W"] + P["dec.4.b"]
    p = 1.0 / (1.0 + np.exp(-s))
    rec_ref = -np.sum(xh * np.log(p) + (1 - xh) * np.log(1 - p)) / 5
    kl_ref = -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar)) / 5   # Kingma & Welling, app. B
    assert float(rec) == pytest.approx(rec_ref, rel=1e-5)
    assert float(kl) == pytest.approx(kl_ref, rel=1e-5)
    assert float(L) == pytest.approx(rec_ref + kl_ref, rel=1e-5)


def test_sampling_uses_the_standard_deviation_and_matches_the_kl(b64):
    """z = mu + exp(logvar/2) eps: std 2 for logvar = log 4 (the variance, 4, would be the
    classic bug); the analytic KL equals the Monte-Carlo E_q[log q(z|x) - log p(z)]."""
    vae = tiny_vae(b64)
    for head, value in ((vae.mu, 1.5), (vae.logvar, math.log(4.0))):
        head.params["W"][...] = 0.0
        head.params["b"][...] = value
    n = 40000
    mu, logvar = vae.encode(b64.uniform((n, 6)))
    eps = b64.normal((n, 2))
    z, std = reparameterize(mu, logvar, eps)
    zh = nn.to_numpy(z)
    assert np.allclose(nn.to_numpy(std), 2.0)
    assert np.allclose(zh.mean(axis=0), 1.5, atol=0.05)
    assert np.allclose(zh.std(axis=0), 2.0, rtol=0.02)
    kl, _ = nn.kl_normal(mu, logvar)
    kl_mc = float(np.mean(nn.to_numpy(log_normal_posterior(eps, logvar) - log_normal_prior(z))))
    kl_exact = 2 * 0.5 * (4.0 + 1.5 ** 2 - 1.0 - math.log(4.0))
    assert float(kl) == pytest.approx(kl_exact, rel=1e-12)
    assert kl_mc == pytest.approx(kl_exact, rel=0.03)


def test_log_densities_are_the_gaussian_densities(b64):
    z, eps, logvar = b64.normal((3, 2)), b64.normal((3, 2)), b64.normal((3, 2))
    zh, eh, lh = (nn.to_numpy(a) for a in (z, eps, logvar))
    ref_prior = np.sum(-0.5 * zh ** 2 - 0.5 * np.log(2 * np.pi), axis=1)
    sd = np.exp(lh / 2)
    zq = 0.3 + sd * eh                                  # any mu: the density depends on eps only
    ref_post = np.sum(-0.5 * ((zq - 0.3) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi), axis=1)
    assert np.allclose(nn.to_numpy(log_normal_prior(z)), ref_prior)
    assert np.allclose(nn.to_numpy(log_normal_posterior(eps, logvar)), ref_post)


def test_logmeanexp_is_stable(b64):
    a = b64.asarray(np.array([[-1000.0, 800.0], [-1001.0, 801.0], [-1002.0, 799.0]]))
    ref = [-1000.0 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3),
           801.0 + math.log((math.exp(-1) + 1 + math.exp(-2)) / 3)]
    assert np.allclose(nn.to_numpy(logmeanexp(a, axis=0)), ref)


# -- IWAE ------------------------------------------------------------------------------------
def test_iwae_with_one_sample_is_the_one_sample_elbo(b32):
    t = small_trainer(b32)
    xh = host_batch(50)
    got = t.evaluate(xh, iw_samples=1, seed=3)
    # the same noise, the bound written out by hand from the log-weights' three terms
    noise = nn.Backend(b32.name, "float32", seed=3)
    eps = noise.normal((1, 50, 4))
    x = b32.asarray(xh)
    mu, logvar = t.vae.encode(x)
    z, _ = reparameterize(mu, logvar, eps[0, ...])
    s = t.vae.dec.forward(z)
    sh, xh64 = nn.to_numpy(s).astype(np.float64), xh.astype(np.float64)
    log_px = -np.sum(np.maximum(sh, 0) - sh * xh64 + np.log1p(np.exp(-np.abs(sh))), axis=1)
    log_w = log_px + nn.to_numpy(log_normal_prior(z)) - \
        nn.to_numpy(log_normal_posterior(eps[0, ...], logvar))
    assert got["iwae"] == pytest.approx(-np.mean(log_w), rel=1e-5)


def test_iwae_bound_orders(b32):
    """E[log w] = ELBO; log-mean-exp >= mean (Jensen); IWAE_K tightens with K."""
    t = small_trainer(b32)
    xh = host_batch(40)
    log_w, rec, kl = t.vae.log_weights(b32.asarray(xh), b32.normal((400, 40, 4)))
    lw = nn.to_numpy(log_w).astype(np.float64)
    neg_elbo = float(np.mean(nn.to_numpy(rec).mean(axis=0) + nn.to_numpy(kl)))
    assert -lw.mean() == pytest.approx(neg_elbo, rel=2e-3)          # same expectation
    assert np.all(nn.to_numpy(logmeanexp(log_w, axis=0)) >= lw.mean(axis=0) - 1e-3)
    e1 = t.evaluate(xh, iw_samples=1)
    e20 = t.evaluate(xh, iw_samples=20)
    assert e20["iwae"] < e1["iwae"]
    assert e20["iwae"] < e20["neg_elbo"]


def test_evaluate_batches_do_not_change_the_result(b32):
    t = small_trainer(b32)
    xh = host_batch(30)
    full = t.evaluate(xh, iw_samples=4)
    t.eval_rows = 8                                   # batches of 2 examples x 4 samples
    chunked = t.evaluate(xh, iw_samples=4)
    # the noise is drawn per batch, so the values differ a little; both are estimates
    assert chunked["iwae"] == pytest.approx(full["iwae"], rel=0.02)
    assert chunked["neg_elbo"] == pytest.approx(full["neg_elbo"], rel=0.02)
    assert t.evaluate(xh, iw_samples=4) == chunked   # deterministic for a given seed


# -- the trainer -----------------------------------------------------------------------------
def test_one_step_changes_every_parameter_and_lowers_the_loss(b32):
    t = small_trainer(b32)
    before = t.vae.state_dict()
    x = b32.asarray(host_batch(16))
    first = t.step(x)
    assert set(first) == {"loss", "rec", "kl"}
    if b32.name == "cupy":          # left on the device for the loop to read (Trainer.metrics)
        assert all(b32.is_array(v) and v.shape == () for v in first.values())
        first = {k: float(v) for k, v in first.items()}
    assert all(isinstance(v, float) for v in first.values())
    assert first["loss"] == pytest.approx(first["rec"] + first["kl"], rel=1e-5)
    after = t.vae.state_dict()
    unchanged = [k for k in before if np.array_equal(before[k], after[k])]
    assert not unchanged, f"parameters not updated: {unchanged}"
    for _ in range(5):
        last = t.step(x)
    assert last["loss"] < first["loss"]


def test_float32_everywhere(b32):
    t = small_trainer(b32, binarize=True)
    x = b32.asarray(host_batch(8))
    t.step(x)
    s, mu, logvar = t.vae.forward(x)
    arrays = {"s": s, "mu": mu, "logvar": logvar, "eps": t.vae._cache[0], "std": t.vae._cache[1]}
    arrays.update({f"param {k}": p for k, p in t.vae.params.items()})
    arrays.update({f"grad {k}": g for k, g in t.vae.grads.items()})
    for net in (t.vae.enc, t.vae.dec):
        for i, layer in enumerate(net.layers):
            if isinstance(layer, nn.Dense):
                arrays[f"input of {i}"] = layer._cache
    for key, slots in t.optimizers["vae"].state.items():
        arrays.update({f"adam {slot} {key}": a for slot, a in slots.items()})
    wrong = {k: str(a.dtype) for k, a in arrays.items() if a.dtype != b32.dtype}
    assert not wrong, wrong


def test_sample_reconstruct_encode_decode_shapes(b32):
    t = small_trainer(b32)
    images = t.sample(7)
    assert images.shape == (7, 784) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert np.array_equal(t.sample(3, seed=5), t.sample(3, seed=5))
    xh = host_batch(5)
    assert t.reconstruct(xh).shape == (5, 784)
    assert t.encode(xh).shape == (5, 4)
    assert t.decode(np.zeros((2, 4), np.float32)).shape == (2, 784)


def test_state_dict_round_trip_through_the_trainer(backend_name):
    a = small_trainer(nn.Backend(backend_name, "float32", seed=0), binarize=True)
    x = a.backend.asarray(host_batch(8))
    for _ in range(2):
        a.step(x)
    state = a.state_dict()
    config = json.loads(str(state["config"]))
    assert config["kind"] == "vae"
    b = Trainer.from_config(config, backend=nn.Backend(backend_name, "float32", seed=99))
    assert isinstance(b, VAETrainer) and b.config == a.config
    b.load_state_dict(state)
    for key, value in a.vae.state_dict().items():
        assert np.array_equal(value, b.vae.state_dict()[key]), key
    # same parameters, Adam moments, step count and RNG: the next step is identical
    assert a.step(x) == b.step(x)
    for key, value in a.vae.state_dict().items():
        assert np.array_equal(value, b.vae.state_dict()[key]), key


def test_config_defaults_and_errors():
    t = VAETrainer({"preset": "classic", "latent": None}, backend=nn.Backend("numpy", seed=0))
    assert t.config == {"preset": "classic", "latent": 20, "lr": 1e-3, "binarize": False,
                        "init": "pytorch", "iw_samples": 50, "objective": "elbo",
                        "iwae_k": None, "conditional": False, "betas": [0.9, 0.999],
                        "adam_eps": 1e-8}
    assert t.vae.n_params() == 784 * 400 + 400 + 2 * (400 * 20 + 20) + 20 * 400 + 400 \
        + 400 * 784 + 784
    with pytest.raises(ValueError, match="preset"):
        VAETrainer({"preset": "nope"})
    with pytest.raises(ValueError, match="iw_samples"):
        t.evaluate(host_batch(2), iw_samples=0)


def test_seed_preset_builds_with_the_articles_layer_sizes():
    b = nn.Backend("numpy", "float32", seed=0)
    vae = VAE.from_preset("seed", backend=b)
    shapes = {k: tuple(p.shape) for k, p in vae.params.items() if k.endswith("W")}
    assert shapes == {"enc.0.W": (784, 4096), "enc.2.W": (4096, 2048),
                      "mu.W": (2048, 20), "logvar.W": (2048, 20),
                      "dec.0.W": (20, 2048), "dec.2.W": (2048, 4096), "dec.4.W": (4096, 784)}
    assert all(isinstance(vae.enc[i], nn.LeakyReLU) and vae.enc[i].alpha == 0.2 for i in (1, 3))
    s, mu, logvar = vae.forward(b.asarray(host_batch(2)))
    assert s.shape == (2, 784) and mu.shape == logvar.shape == (2, PRESETS["seed"]["latent"])
    assert np.isfinite(nn.to_numpy(s)).all() and s.dtype == np.float32


# -- figures -------------------------------------------------------------------------------
def test_figures_write_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    from types import SimpleNamespace

    from nnscratch.plots import vae as plots
    t = VAETrainer({"preset": "classic", "latent": 2}, backend=nn.Backend("numpy", seed=0))
    data = SimpleNamespace(x=host_batch(60), labels=np.arange(60) % 10,
                           class_names=tuple(f"class {c}" for c in range(10)))
    paths = plots.epoch_figures(t, str(tmp_path), data, [{"epoch": 1, "train_loss": 500.0}])
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == ["latent.png", "loss.png", "manifold.png", "reconstructions.png",
                     "samples.png"]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        name = p.rsplit("/", 1)[-1]
        assert_plotted(p, lines=name in ("latent.png", "loss.png"),
                       images=name in ("manifold.png", "reconstructions.png", "samples.png"))
    z = plots.manifold_codes(5)
    assert z.shape == (25, 2) and z[0, 0] < 0 < z[0, 1]     # top-left: low z1, high z2
    with pytest.raises(ValueError, match="2-D latent"):
        plots.save_manifold(small_trainer(nn.Backend("numpy", seed=0)), str(tmp_path / "m.png"))


def test_import_nnscratch_vae_does_not_import_matplotlib():
    import subprocess
    import sys
    code = "import sys, nnscratch, nnscratch.models.vae; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
