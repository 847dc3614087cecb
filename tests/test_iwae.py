"""IWAE training: the objective -L_K (eq. vae-13) and its hand-derived gradient (eqs. vae-14
to vae-16) checked against finite differences in float64 on every backend; K = 1 against
the ELBO step; the normalised weights; the trainer and the command line.
"""
import contextlib
import io

import numpy as np
import pytest

import nnscratch as nn
from conftest import TOLERANCE
from nnscratch.cli import main
from nnscratch.models.conditional import one_hot
from nnscratch.models.vae import VAE, VAETrainer, logmeanexp, normalized_weights
from nnscratch.training.checkpoint import load_checkpoint


def tiny_vae(b, alpha=0.2, n_classes=0):
    return VAE(n_in=6, enc_hidden=(5, 4), latent=2, alpha=alpha, init="he", backend=b,
               n_classes=n_classes)


def grads(net):
    return {k: nn.to_numpy(g).copy() for k, g in net.grads.items()}


#: Step of the central differences. The IWAE's logvar gradients partly cancel (the direct
#: term -1/(2B) against the path through z), leaving entries of about 4e-3 on an objective
#: of about 5 nats: at h = 1e-6 the round-off of the difference, about 1e-16 * 5 / h =
#: 5e-10, is 1e-7 of that scale; at h = 1e-5 it is ten times smaller, and the truncation
#: error (h^2 times the third derivative) stays below it (measured on the first case: 1.1e-7,
#: 9.4e-9 and 1.0e-9 at h = 1e-6, 1e-5, 1e-4; the error falls as h grows, which round-off
#: does and a wrong gradient would not).
H = 1e-5


@pytest.mark.parametrize("K", [1, 3, 7, 50])
def test_iwae_gradcheck(b64, K):
    """Every parameter, through the K reparameterised draws (eps fixed) and the weights."""
    vae = tiny_vae(b64)
    x, eps = b64.uniform((4, 6)), b64.normal((K, 4, 2))
    _, dy = vae.iwae_loss(x, eps)
    vae.backward(dy)
    report = nn.check_gradients(lambda: vae.iwae_loss(x, eps)[0], dict(vae.params), grads(vae),
                                H)
    assert set(report) == set(vae.params)
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


def test_iwae_gradcheck_tanh_and_conditional(b64):
    """The likelihood benchmark's tanh networks, and the conditional model's concatenation."""
    vae = VAE(n_in=6, enc_hidden=(5, 4), latent=2, alpha="tanh", init="glorot", backend=b64,
              n_classes=3)
    x, eps = b64.uniform((5, 6)), b64.normal((4, 5, 2))
    y = one_hot(np.array([0, 2, 1, 1, 0]), 3, b64)
    _, dy = vae.iwae_loss(x, eps, y)
    dx = vae.backward(dy, input_grad=True)
    arrays, analytic = dict(vae.params), grads(vae)
    report = nn.check_gradients(lambda: vae.iwae_loss(x, eps, y)[0], arrays, analytic, H)
    assert max(report.values()) < TOLERANCE, nn.format_report(report)
    assert tuple(dx.shape) == (5, 6)


def definition_of_L(vae, x, eps, y=None):
    """-1/B sum_n log 1/K sum_k w_k, from the definitions, on the host: the posterior's
    density evaluated at z_k (not in the eps form the code uses), log p(x|z) as x log
    sigma(s) + (1 - x) log(1 - sigma(s)), and log-sum-exp by np.logaddexp. The networks'
    forward passes are the model's own (checked in their tests)."""
    mu, logvar = vae.encode(x, y)
    mu, logvar, e = nn.to_numpy(mu), nn.to_numpy(logvar), nn.to_numpy(eps)
    z = mu + np.exp(0.5 * logvar) * e                                   # (K, B, d_z)
    s = nn.to_numpy(vae._decode_logits(vae.backend.asarray(z), y))
    xh = nn.to_numpy(x)
    log_px = -np.sum(xh * np.logaddexp(0, -s) + (1 - xh) * np.logaddexp(0, s), axis=-1)
    log_pz = -0.5 * np.sum(z ** 2 + np.log(2 * np.pi), axis=-1)
    log_qz = -0.5 * np.sum((z - mu) ** 2 / np.exp(logvar) + logvar + np.log(2 * np.pi), axis=-1)
    L_K = np.logaddexp.reduce(log_pz + log_px - log_qz, axis=0) - np.log(len(e))
    return -float(np.mean(L_K))


@pytest.mark.parametrize("K", [1, 50])
def test_iwae_gradient_is_that_of_the_definition(b64, K):
    """The implemented gradient (eqs. vae-14 to vae-16) against central differences of L_K
    computed from its definition (eq. vae-13 with the posterior's density at z_k), not from
    the code's own objective: the eps form of log q and the weighting are checked, not
    assumed. The tanh networks of the likelihood benchmark, conditional."""
    vae = VAE(n_in=6, enc_hidden=(5, 4), latent=2, alpha="tanh", init="glorot", backend=b64,
              n_classes=3)
    x, eps = b64.uniform((4, 6)), b64.normal((K, 4, 2))
    y = one_hot(np.array([0, 2, 1, 1]), 3, b64)
    L, dy = vae.iwae_loss(x, eps, y)
    assert float(L) == pytest.approx(definition_of_L(vae, x, eps, y), rel=1e-12)
    vae.backward(dy)
    report = nn.check_gradients(lambda: definition_of_L(vae, x, eps, y), dict(vae.params),
                                grads(vae), H)
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


def test_iwae_loss_is_minus_the_mean_of_L_K(b64):
    """Eq. (vae-13) against log_weights (eq. vae-7) and logmeanexp (eq. vae-8)."""
    vae = tiny_vae(b64)
    x, eps = b64.uniform((4, 6)), b64.normal((5, 4, 2))
    L, _ = vae.iwae_loss(x, eps)
    log_w, _, _ = vae.log_weights(x, eps)
    assert float(L) == pytest.approx(-float(np.mean(nn.to_numpy(logmeanexp(log_w)))), rel=1e-12)


def test_normalized_weights_are_a_stable_softmax(b64):
    log_w = b64.asarray(np.array([[-900.0, -1.0], [-901.0, -3.0], [-905.0, -2.0]]))
    w = nn.to_numpy(normalized_weights(log_w))
    lw = nn.to_numpy(log_w)
    ref = np.exp(lw - lw.max(0)) / np.exp(lw - lw.max(0)).sum(0)
    assert np.all(np.isfinite(w)) and np.allclose(w.sum(0), 1.0) and np.allclose(w, ref)


def test_k1_is_the_elbo_step_with_the_kl_of_the_draw(b64):
    """K = 1: the weight is 1 and the IWAE step is the ELBO step, reconstruction and all,
    with the KL estimated from the same draw, log q(z|x) - log p(z), instead of in closed
    form: its gradients dmu = z / B, dlogvar = (e^{logvar/2} eps z - 1) / (2B) replace those
    of eq. (kl-1). Same loss value (with that KL), same gradient of every parameter."""
    vae = tiny_vae(b64)
    x, eps = b64.uniform((4, 6)), b64.normal((4, 2))
    L_iw, dy = vae.iwae_loss(x, b64.xp.reshape(eps, (1, 4, 2)))
    vae.backward(dy)
    iwae = grads(vae)
    L, rec, kl, (ds, _, _) = vae.loss(x, eps)
    mu, logvar = (nn.to_numpy(a) for a in vae.encode(x))
    e, std = nn.to_numpy(eps), np.exp(0.5 * nn.to_numpy(logvar))
    z = mu + std * e
    kl_draw = np.mean(np.sum(0.5 * (z ** 2 - e ** 2 - nn.to_numpy(logvar)), axis=1))
    assert float(L_iw) == pytest.approx(float(rec) + kl_draw, rel=1e-12)
    B = 4
    vae.loss(x, eps)
    vae.backward((ds, b64.asarray(z / B), b64.asarray((std * e * z - 1.0) / (2 * B))))
    elbo = grads(vae)
    for name in iwae:
        assert np.allclose(iwae[name], elbo[name], rtol=1e-10, atol=1e-13), name


def test_k1_gradient_averages_to_the_analytic_elbo_gradient(b64):
    """In expectation over the draw the K = 1 step is the ELBO step of eq. (vae-4): the
    batch repeats one image M times (M independent draws), so its gradient is their mean;
    it approaches the analytic-KL ELBO gradient within Monte-Carlo error."""
    vae = tiny_vae(b64)
    M = 20000
    x = b64.asarray(np.repeat(nn.to_numpy(b64.uniform((1, 6))), M, axis=0))
    eps = b64.normal((M, 2))
    _, dy = vae.iwae_loss(x, b64.xp.reshape(eps, (1, M, 2)))
    vae.backward(dy)
    iwae = grads(vae)
    _, _, _, dy = vae.loss(x, eps)
    vae.backward(dy)
    elbo = grads(vae)
    for name in ("mu.W", "mu.b", "logvar.W", "logvar.b", "enc.0.W"):
        scale = np.abs(elbo[name]).max()
        # the per-draw KL gradients have O(1) spread: the mean of M is within ~4 / sqrt(M)
        assert np.abs(iwae[name] - elbo[name]).max() < 4 * scale / np.sqrt(M) + 0.03 * scale, \
            name


def test_one_weight_dominating_gives_that_draws_gradient(b64):
    """When one draw's weight is ~1 the IWAE gradient is that draw's own K = 1 gradient
    (the others' reach the parameters with weights ~0)."""
    vae = tiny_vae(b64)
    x = b64.uniform((1, 6))
    good = b64.normal((1, 1, 2)) * 0.0
    bad = b64.asarray(np.full((2, 1, 2), 30.0))          # far in the prior's tail
    _, dy = vae.iwae_loss(x, b64.xp.concat([good, bad], axis=0))
    assert np.allclose(nn.to_numpy(normalized_weights(vae.log_weights(
        x, b64.xp.concat([good, bad], axis=0))[0]))[:, 0], [1, 0, 0], atol=1e-12)
    vae.backward(dy)
    mixed = grads(vae)
    _, dy = vae.iwae_loss(x, good)
    vae.backward(dy)
    alone = grads(vae)
    for name in mixed:
        assert np.allclose(mixed[name], alone[name], rtol=1e-8, atol=1e-12), name


def test_trainer_iwae_step_lowers_the_bound_and_changes_every_parameter():
    b = nn.Backend("numpy", "float32", seed=0)
    t = VAETrainer({"preset": "burda", "objective": "iwae", "iwae_k": 5},
                   backend=b)
    x = np.random.default_rng(0).random((32, 784), dtype=np.float32)
    before = {k: nn.to_numpy(p).copy() for k, p in t.parameters()}
    losses = [t.step(x)["loss"] for _ in range(15)]
    assert all(not np.array_equal(before[k], nn.to_numpy(p)) for k, p in t.parameters())
    assert losses[-1] < losses[0] - 5           # random pixels: about 545 nats is the floor
    assert set(t.step(x)) == {"loss"}


def test_trainer_objective_errors():
    b = nn.Backend("numpy", "float32", seed=0)
    with pytest.raises(ValueError, match="objective"):
        VAETrainer({"objective": "elbo2"}, backend=b)
    with pytest.raises(ValueError, match="iwae objective only"):
        VAETrainer({"iwae_k": 5}, backend=b)
    with pytest.raises(ValueError, match="iwae_k must be >= 1"):
        VAETrainer({"objective": "iwae", "iwae_k": 0}, backend=b)
    assert VAETrainer({"objective": "iwae"}, backend=b).config["iwae_k"] is None   # 50


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


QUICK = ["--latent", "2", "--limit", "64", "--test-limit", "32", "--batch-size", "32",
         "--epochs", "1", "--quiet", "--no-figures"]


def test_cli_trains_with_the_iwae_objective(tmp_path):
    code, _, err = run_cli(["train", "vae", "--objective", "iwae", "--k", "4", *QUICK,
                            "--out", str(tmp_path / "v")])
    assert code == 0, err
    t, _ = load_checkpoint(str(tmp_path / "v" / "checkpoint.npz"))
    assert t.config["objective"] == "iwae" and t.config["iwae_k"] == 4


@pytest.mark.parametrize("args, message", [
    (["--objective", "iwae", "--k", "0"], "expected a positive integer"),
    (["--k", "5"], "iwae objective only"),
    (["--objective", "nope"], "invalid choice"),
])
def test_cli_objective_errors_are_one_line_with_status_2(tmp_path, args, message):
    code, _, err = run_cli(["train", "vae", *args, *QUICK, "--out", str(tmp_path / "v")])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
