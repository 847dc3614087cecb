"""The class-conditional VAE and GAN: gradient checks in float64 through the label's
concatenation (eqs. cond-1 to cond-3), the label reaching both networks, class consistency
(eq. cond-4), checkpoints that remember the option, the loop feeding labels, the command
line (train --conditional, sample --label, eval) and its errors.
"""
import contextlib
import io
import json

import numpy as np
import pytest

import nnscratch as nn
from conftest import TOLERANCE
from nnscratch.cli import main
from nnscratch.metrics.frechet import class_consistency
from nnscratch.models.conditional import check_labels, class_rows, one_hot
from nnscratch.models.gan import GAN, GANTrainer
from nnscratch.models.vae import VAE, VAETrainer
from nnscratch.training.checkpoint import load_checkpoint, save_checkpoint
from nnscratch.training.loop import fit, new_loop_state

C = 3          # classes of the tiny models


def run_cli(argv):
    """``nnscratch argv``: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def tiny_cvae(b, alpha=0.2):
    return VAE(n_in=6, enc_hidden=(5,), latent=2, alpha=alpha, init="he", backend=b,
               n_classes=C)


def tiny_cgan(b, m=1, label_scale=None):
    return GAN(latent=3, data_dim=4, G_hidden=(5,), D_hidden=(7,), output="sigmoid",
               init="he", pack=m, backend=b, n_classes=C, label_scale=label_scale)


def labels_of(n, seed=0):
    return np.random.default_rng(seed).integers(0, C, n)


def analytic(net):
    return {k: nn.to_numpy(g).copy() for k, g in net.grads.items()}


# -- one-hot and concatenation -------------------------------------------------------------
def test_one_hot_is_eq_cond_1(b64):
    y = nn.to_numpy(one_hot(np.array([2, 0, 1, 2]), 3, b64))
    assert np.array_equal(y, np.eye(3)[[2, 0, 1, 2]])
    assert y.dtype == np.float64
    with pytest.raises(ValueError, match="0..2"):
        check_labels(np.array([0, 3]), 3, "here")
    with pytest.raises(ValueError, match="integer"):
        check_labels(np.array([0.5]), 3, "here")
    assert list(class_rows(3, 2)) == [0, 0, 1, 1, 2, 2]


# -- gradients --------------------------------------------------------------------------------
def test_conditional_vae_gradcheck(b64):
    """The whole conditional VAE, through the sampling (eps fixed) and both concatenations."""
    vae = tiny_cvae(b64)
    x, eps, y = b64.uniform((4, 6)), b64.normal((4, 2)), one_hot(labels_of(4), C, b64)
    _, _, _, dy = vae.loss(x, eps, y)
    vae.backward(dy)
    report = nn.check_gradients(lambda: vae.loss(x, eps, y)[0], dict(vae.params), analytic(vae))
    assert set(report) == set(vae.params)
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


def test_conditional_vae_input_gradient_is_cut_to_the_image(b64):
    """Eq. (cond-3): dL/dx has the image's width, and it is the right gradient."""
    vae = tiny_cvae(b64)
    x, target, eps = b64.uniform((3, 6)), b64.uniform((3, 6)), b64.normal((3, 2))
    y = one_hot(labels_of(3), C, b64)

    def loss():
        s, mu, logvar = vae.forward(x, eps, y)
        rec, ds = nn.bce_with_logits(s, target)
        kl, (dmu, dlogvar) = nn.kl_normal(mu, logvar)
        return rec + kl, (ds, dmu, dlogvar)

    dx = vae.backward(loss()[1], input_grad=True)
    assert tuple(dx.shape) == (3, 6)
    report = nn.check_gradients(lambda: loss()[0], {"x": x}, {"x": nn.to_numpy(dx).copy()})
    assert report["x"] < TOLERANCE, nn.format_report(report)


@pytest.mark.parametrize("m", [1, 2], ids=["pack1", "pack2"])
def test_conditional_generator_gradcheck_through_the_discriminator(b64, m):
    gan = tiny_cgan(b64, m, label_scale=3.0)
    z, y = b64.normal((6, 3)), one_hot(labels_of(6), C, b64)
    _, ds, _ = gan.g_loss(z, y=y)
    gan.g_backward(ds)
    report = nn.check_gradients(lambda: gan.g_loss(z, y=y)[0], dict(gan.G.params),
                                analytic(gan.G))
    assert set(report) == set(gan.G.params)
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


@pytest.mark.parametrize("m", [1, 2], ids=["pack1", "pack2"])
def test_conditional_discriminator_gradcheck(b64, m):
    gan = tiny_cgan(b64, m, label_scale=3.0)
    x, z, y = b64.uniform((6, 4)), b64.normal((6, 3)), one_hot(labels_of(6), C, b64)
    _, ds, _, _ = gan.d_loss(x, z, 0.1, y)
    gan.d_backward(ds)
    report = nn.check_gradients(lambda: gan.d_loss(x, z, 0.1, y)[0], dict(gan.D.params),
                                analytic(gan.D))
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


# -- the label reaches both networks ----------------------------------------------------------
def test_the_label_changes_both_networks_outputs(b32):
    vae, gan = tiny_cvae(b32), tiny_cgan(b32, m=2)
    x, z = b32.uniform((4, 6)), b32.normal((4, 2))
    ya, yb = one_hot(np.zeros(4, np.int64), C, b32), one_hot(np.ones(4, np.int64), C, b32)
    assert not np.allclose(nn.to_numpy(vae.encode(x, ya)[0]), nn.to_numpy(vae.encode(x, yb)[0]))
    assert not np.allclose(nn.to_numpy(vae.decode(z, ya)), nn.to_numpy(vae.decode(z, yb)))
    zg, xg = b32.normal((4, 3)), b32.uniform((4, 4))
    assert not np.allclose(nn.to_numpy(gan.generate(zg, ya)), nn.to_numpy(gan.generate(zg, yb)))
    assert not np.allclose(nn.to_numpy(gan.discriminate(xg, ya)),
                           nn.to_numpy(gan.discriminate(xg, yb)))
    # the packed D reads [x1, y1, x2, y2]: the input layer is m (d + C) wide
    assert gan.D.layers[0].n_in == 2 * (4 + C)
    with pytest.raises(ValueError, match="needs the one-hot labels"):
        vae.encode(x)
    with pytest.raises(ValueError, match="not conditional"):
        VAE(n_in=6, enc_hidden=(5,), latent=2, backend=b32).encode(x, ya)


def test_what_is_concatenated_where(b64):
    """Eq. (cond-2) and the packed D, recomputed from the weights: G reads [z, y], D reads
    the packed pairs [x_1, lambda y_1, x_2, lambda y_2], the VAE's encoder [x, y] and its
    decoder [z, y]."""
    def leaky(a):
        return np.where(a > 0, a, 0.2 * a)

    def host(net):
        return {k: nn.to_numpy(v) for k, v in net.params.items()}

    gan, labels = tiny_cgan(b64, m=2, label_scale=3.0), labels_of(4)
    y, yb = np.eye(C)[labels], one_hot(labels, C, b64)
    x, z = b64.uniform((4, 4)), b64.normal((4, 3))
    P = host(gan.D)
    rows = np.concatenate([nn.to_numpy(x), 3.0 * y], axis=1).reshape(2, 2 * (4 + C))
    s = leaky(rows @ P["0.W"] + P["0.b"]) @ P["2.W"] + P["2.b"]
    assert np.allclose(nn.to_numpy(gan.discriminate(x, yb)), s, rtol=1e-12, atol=0)
    P = host(gan.G)
    a = leaky(np.concatenate([nn.to_numpy(z), y], axis=1) @ P["0.W"] + P["0.b"])
    x_fake = 1 / (1 + np.exp(-(a @ P["2.W"] + P["2.b"])))
    assert np.allclose(nn.to_numpy(gan.generate(z, yb)), x_fake, rtol=1e-12, atol=0)
    vae = tiny_cvae(b64)
    P, xv, zv = host(vae), b64.uniform((4, 6)), b64.normal((4, 2))
    h = leaky(np.concatenate([nn.to_numpy(xv), y], axis=1) @ P["enc.0.W"] + P["enc.0.b"])
    assert np.allclose(nn.to_numpy(vae.encode(xv, yb)[0]), h @ P["mu.W"] + P["mu.b"],
                       rtol=1e-12, atol=0)
    s = leaky(np.concatenate([nn.to_numpy(zv), y], axis=1) @ P["dec.0.W"] + P["dec.0.b"]) \
        @ P["dec.2.W"] + P["dec.2.b"]
    assert np.allclose(nn.to_numpy(vae.decode(zv, yb)), 1 / (1 + np.exp(-s)), rtol=1e-12,
                       atol=0)


# -- class consistency ------------------------------------------------------------------------
def test_class_consistency_per_class_and_overall():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_hat = np.array([0, 0, 1, 1, 1, 0, 2, 2])
    out = class_consistency(y_hat, labels, 4)
    assert out["class_consistency"] == pytest.approx(5 / 8)
    # per class: among the samples asked to be c (not those predicted as c)
    assert out["class_consistency_per_class"][:3] == pytest.approx([2 / 4, 1 / 2, 1.0])
    assert np.isnan(out["class_consistency_per_class"][3])      # never asked for


# -- trainers, checkpoints, the loop ----------------------------------------------------------
def mini(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return nn.datasets.Dataset(x=rng.random((n, 784), dtype=np.float32),
                               labels=rng.integers(0, 10, n), name="array", split="train",
                               source="", class_names=tuple("abcdefghij"))


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_a_conditional_run_trains_saves_and_reloads(tmp_path, kind):
    b = nn.Backend("numpy", "float32", seed=0)
    if kind == "vae":
        t = VAETrainer({"preset": "classic", "latent": 3, "conditional": True}, backend=b)
    else:
        t = GANTrainer({"preset": "mlp", "latent": 5, "G_hidden": [8], "D_hidden": [8],
                        "conditional": True}, backend=b)
    before = {k: nn.to_numpy(p).copy() for k, p in t.parameters()}
    records = fit(t, mini(), 1, 32, tmp_path, test=mini(32, 1), figures=False, progress=False)
    assert records[-1]["step"] == 2
    changed = [k for k, p in t.parameters() if not np.array_equal(before[k], nn.to_numpy(p))]
    assert len(changed) == len(before)
    path = tmp_path / "again.npz"
    save_checkpoint(path, t, new_loop_state(0))
    t2, _ = load_checkpoint(path, backend=nn.Backend("numpy", "float32", seed=0))
    assert t2.conditional and json.loads(str(np.load(path)["config"]))["conditional"] is True
    labels = np.arange(10)
    assert np.array_equal(t.sample(10, seed=3, labels=labels),
                          t2.sample(10, seed=3, labels=labels))
    with pytest.raises(ValueError, match="needs a class label"):
        t2.sample(4, seed=0)
    # a different class gives different images from the same noise
    assert not np.allclose(t2.sample(4, seed=3, labels=0), t2.sample(4, seed=3, labels=1))


def test_the_loop_gives_each_batch_its_own_labels(tmp_path):
    """The labels the step sees are those of the rows of x (the loop's permutation)."""
    data = mini(48)
    data.x[:, 0] = data.labels / 10.0                  # the label written into the image

    class Spy(VAETrainer):
        seen = []

        def step(self, x, labels=None):
            self.seen.append((nn.to_numpy(x)[:, 0].copy(), np.asarray(labels).copy()))
            return super().step(x, labels)

    t = Spy({"preset": "classic", "latent": 2, "conditional": True},
            backend=nn.Backend("numpy", "float32", seed=0))
    fit(t, data, 2, 16, tmp_path, figures=False, progress=False)
    assert len(Spy.seen) == 6
    for first_pixel, labels in Spy.seen:
        assert np.allclose(first_pixel, labels / 10.0)


def test_a_conditional_model_refuses_data_without_labels(tmp_path):
    t = VAETrainer({"preset": "classic", "latent": 2, "conditional": True},
                   backend=nn.Backend("numpy", "float32", seed=0))
    with pytest.raises(ValueError, match="needs class labels"):
        fit(t, mini().x, 1, 16, tmp_path, figures=False, progress=False)
    with pytest.raises(ValueError, match="needs the class labels"):
        t.step(mini(4).x)
    with pytest.raises(ValueError, match="0..9"):
        t.step(mini(4).x, np.array([0, 1, 2, 10]))
    plain = VAETrainer({"preset": "classic", "latent": 2},
                       backend=nn.Backend("numpy", "float32", seed=0))
    with pytest.raises(ValueError, match="not conditional"):
        plain.step(mini(4).x, np.array([0, 1, 2, 3]))


def test_figures_have_one_row_per_class(tmp_path):
    pytest.importorskip("matplotlib")
    from conftest import assert_plotted
    from nnscratch.plots.gan import save_samples
    t = GANTrainer({"preset": "mlp", "latent": 5, "G_hidden": [8], "D_hidden": [8],
                    "conditional": True}, backend=nn.Backend("numpy", "float32", seed=0))
    calls = []
    sample = t.sample
    t.sample = lambda n, **kw: calls.append(kw["labels"]) or sample(n, **kw)
    path = save_samples(t, str(tmp_path / "s.png"), class_names=tuple("abcdefghij"))
    assert_plotted(path, images=True)
    assert list(calls[0]) == [c for c in range(10) for _ in range(8)]


# -- the command line -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cvae_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("cvae")
    code, _, err = run_cli(["train", "vae", "--conditional", "--latent", "2", "--epochs", "1",
                            "--limit", "256", "--test-limit", "64", "--no-figures", "--quiet",
                            "--out", str(out)])
    assert code == 0, err
    return out / "checkpoint.npz"


@pytest.mark.parametrize("label, cls", [("7", 7), ("sneaker", 7), ("Ankle boot", 9),
                                        ("t-shirt", 0)])
def test_sample_label_by_index_or_name(cvae_checkpoint, tmp_path, label, cls):
    out = tmp_path / "s.npy"
    code, _, err = run_cli(["sample", "--checkpoint", str(cvae_checkpoint), "--n", "5",
                            "--out", str(out), "--label", label, "--seed", "2"])
    assert code == 0, err
    t, _ = load_checkpoint(cvae_checkpoint)
    expected = np.clip(t.sample(5, seed=2, labels=cls), 0, 1)
    assert np.allclose(np.load(out), expected, atol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--label", "10"], "outside the classes 0..9"),
    (["--label", "boot"], "not a class of"),
    ([], "conditional model: give --label"),
])
def test_sample_errors_are_one_line_with_status_2(cvae_checkpoint, tmp_path, args, message):
    code, _, err = run_cli(["sample", "--checkpoint", str(cvae_checkpoint), "--n", "4",
                            "--out", str(tmp_path / "s.npy"), *args])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_label_on_an_unconditional_checkpoint_is_refused(tmp_path):
    code, _, err = run_cli(["train", "vae", "--latent", "2", "--epochs", "1", "--limit", "128",
                            "--test-limit", "32", "--no-figures", "--quiet",
                            "--out", str(tmp_path / "v")])
    assert code == 0, err
    code, _, err = run_cli(["sample", "--checkpoint", str(tmp_path / "v" / "checkpoint.npz"),
                            "--out", str(tmp_path / "s.npy"), "--label", "3"])
    assert code == 2 and "applies to a conditional model" in err, err


def test_resume_keeps_the_conditional_option(cvae_checkpoint):
    code, _, err = run_cli(["train", "vae", "--resume", str(cvae_checkpoint), "--epochs", "2",
                            "--conditional", "--quiet", "--no-figures"])
    assert code == 0, err
    t, state = load_checkpoint(cvae_checkpoint)
    assert t.conditional and state["epoch"] == 2


def test_eval_reports_class_consistency(cvae_checkpoint, monkeypatch):
    """eval asks for every class equally often and prints the share the classifier
    assigns to the class asked for (a stub classifier: the real one trains for minutes)."""
    import nnscratch.metrics.frechet as frechet

    def fake_image_metrics(samples, name, data_dir=None, labels=None):
        n = sum(len(block) for block in samples)           # eval streams its samples in blocks
        assert labels is not None and np.array_equal(labels, np.arange(n) % 10)
        return {"frechet": 1.0, "class_histogram": [0.1] * 10,
                **class_consistency(labels % 5, labels)}
    monkeypatch.setattr(frechet, "image_metrics", fake_image_metrics)
    code, out, err = run_cli(["eval", "--checkpoint", str(cvae_checkpoint), "--samples", "100",
                              "--limit", "50"])
    assert code == 0, err
    assert "class_consistency 0.5000" in " ".join(out.split())
    assert "class_consistency_per_class 1.000 1.000 1.000 1.000 1.000 0.000" in \
        " ".join(out.split())


def test_the_fakes_of_a_d_step_get_the_real_batchs_labels(b64):
    """D sees [x, y] for the reals and [G([z, y]), y] for the fakes: the same labels."""
    gan = tiny_cgan(b64, m=1)
    x, z, y = b64.uniform((6, 4)), b64.normal((6, 3)), one_hot(labels_of(6), C, b64)
    seen = []
    forward = gan.D.forward
    gan.D.forward = lambda a: seen.append(nn.to_numpy(a).copy()) or forward(a)
    gan.d_loss(x, z, 0.0, y)
    inputs = seen[0]
    assert gan.label_scale == 1.0                        # sqrt(4) / 2
    assert np.array_equal(inputs[:6, 4:], nn.to_numpy(y))
    assert np.array_equal(inputs[6:, 4:], nn.to_numpy(y))
    assert np.allclose(inputs[6:, :4], nn.to_numpy(gan.generate(z, y)))


def test_d_reads_the_label_scaled_by_half_the_square_root_of_d(b32):
    """lambda = sqrt(784) / 2 = 14 for images: D's input is [x, 14 y]."""
    t = GANTrainer({"preset": "mlp", "latent": 5, "G_hidden": [8], "D_hidden": [8],
                    "conditional": True}, backend=b32)
    assert t.gan.label_scale == 14.0
    seen = []
    forward = t.gan.D.forward
    t.gan.D.forward = lambda a: seen.append(nn.to_numpy(a).copy()) or forward(a)
    t.gan.discriminate(b32.uniform((2, 784)), one_hot(np.array([3, 5]), 10, b32))
    assert np.array_equal(seen[0][:, 784:], 14.0 * np.eye(10)[[3, 5]])
