"""The GAN: float64 gradient checks of both losses through both networks (packing and label
smoothing included), the loss formulas, the generator step leaving D untouched, the trainer
contract.

Gradient checks use tiny float64 networks with the noise z held fixed and the threshold
1e-7 of nnscratch.gradcheck; everything else runs in float32 as training does.
"""
import json
import math

import numpy as np
import pytest

import nnscratch as nn
from conftest import TOLERANCE, assert_plotted
from nnscratch.models.gan import (
    GAN,
    PRESETS,
    GANTrainer,
    discriminator_loss,
    generator_loss,
    pack,
    unpack,
)
from nnscratch.training.trainer import Trainer


def tiny_gan(b, m=1, output="linear", G_alpha=0.2, D_alpha=0.2):
    return GAN(latent=3, data_dim=4, G_hidden=(5, 6), D_hidden=(7, 5), G_alpha=G_alpha,
               D_alpha=D_alpha, output=output, init="he", pack=m, backend=b)


def tiny_trainer(b, **config):
    """A small bare GAN (recipe "none"): the mechanics of the losses and the steps."""
    return GANTrainer({"preset": "mlp", "recipe": "none", "latent": 4, "data_dim": 6,
                       "G_hidden": [5, 7], "D_hidden": [8, 5], **config}, backend=b)


def host_batch(n, d=6, seed=0):
    return np.random.default_rng(seed).random((n, d), dtype=np.float32)


# -- gradients --------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["non-saturating", "minimax"])
@pytest.mark.parametrize("m, output", [(1, "linear"), (2, "sigmoid"), (3, "linear")],
                         ids=["pack1-linear", "pack2-sigmoid", "pack3-linear"])
def test_generator_gradcheck_through_the_discriminator(b64, loss, m, output):
    """dL_G/d(every parameter of G), through D (eq. gan-7), with z fixed."""
    gan = tiny_gan(b64, m, output)
    z = b64.normal((6, 3))

    def f():
        return gan.g_loss(z, loss)[0]

    _, ds, _ = gan.g_loss(z, loss)
    gan.g_backward(ds)
    analytic = {k: nn.to_numpy(g).copy() for k, g in gan.G.grads.items()}
    report = nn.check_gradients(f, dict(gan.G.params), analytic)
    assert set(report) == set(gan.G.params) and len(report) == 6
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


@pytest.mark.parametrize("m", [1, 2])
def test_discriminator_gradcheck_with_label_smoothing(b64, m):
    gan = tiny_gan(b64, m, "sigmoid")
    x, z = b64.uniform((6, 4)), b64.normal((6, 3))

    def f():
        return gan.d_loss(x, z, label_smoothing=0.1)[0]

    _, ds, _, _ = gan.d_loss(x, z, label_smoothing=0.1)
    gan.d_backward(ds)
    analytic = {k: nn.to_numpy(g).copy() for k, g in gan.D.grads.items()}
    report = nn.check_gradients(f, dict(gan.D.params), analytic)
    assert set(report) == set(gan.D.params) and len(report) == 6
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


def test_generator_gradient_with_relu_networks(b64):
    """The toy preset's ReLU networks (alpha = 0), non-saturating loss, pack 2."""
    gan = tiny_gan(b64, 2, "linear", G_alpha=0.0, D_alpha=0.0)
    z = b64.normal((8, 3))
    _, ds, _ = gan.g_loss(z)
    gan.g_backward(ds)
    analytic = {k: nn.to_numpy(g).copy() for k, g in gan.G.grads.items()}
    report = nn.check_gradients(lambda: gan.g_loss(z)[0], dict(gan.G.params), analytic)
    assert max(report.values()) < TOLERANCE, nn.format_report(report)


# -- the loss formulas ------------------------------------------------------------------------
def test_losses_match_their_definitions(b64):
    s_real, s_fake = b64.normal((5, 1)), b64.normal((5, 1))
    sr, sf = nn.to_numpy(s_real)[:, 0], nn.to_numpy(s_fake)[:, 0]
    p, q = 1 / (1 + np.exp(-sr)), 1 / (1 + np.exp(-sf))
    eps = 0.1
    L_D, ds_real, ds_fake = discriminator_loss(s_real, s_fake, eps)
    ref = -np.mean((1 - eps) * np.log(p) + eps * np.log(1 - p)) - np.mean(np.log(1 - q))
    assert float(L_D) == pytest.approx(ref, rel=1e-12)                       # eq. (gan-1)
    assert np.allclose(nn.to_numpy(ds_real)[:, 0], (p - (1 - eps)) / 5)        # eq. (gan-2)
    assert np.allclose(nn.to_numpy(ds_fake)[:, 0], q / 5)
    L, ds = generator_loss(s_fake, "non-saturating")
    assert float(L) == pytest.approx(-np.mean(np.log(q)), rel=1e-12)          # eq. (gan-3)
    assert np.allclose(nn.to_numpy(ds)[:, 0], -(1 - q) / 5)                    # eq. (gan-4)
    L, ds = generator_loss(s_fake, "minimax")
    assert float(L) == pytest.approx(np.mean(np.log(1 - q)), rel=1e-12)       # eq. (gan-5)
    assert np.allclose(nn.to_numpy(ds)[:, 0], -q / 5)                          # eq. (gan-6)


def test_minimax_gradient_vanishes_when_d_rejects_the_fakes(b64):
    """Logit -30 (D sure the sample is fake): minimax dL/ds ~ -e^-30/n, non-saturating ~ -1/n.
    Logits of +-100 stay finite in both losses (stable BCE)."""
    s = b64.asarray(np.array([[-30.0], [-100.0], [100.0], [0.0]]))
    _, ds_min = generator_loss(s, "minimax")
    _, ds_ns = generator_loss(s, "non-saturating")
    ds_min, ds_ns = nn.to_numpy(ds_min)[:, 0], nn.to_numpy(ds_ns)[:, 0]
    assert abs(ds_min[0]) < 1e-13 and ds_ns[0] == pytest.approx(-0.25, rel=1e-12)
    assert np.all(np.isfinite(ds_min)) and np.all(np.isfinite(ds_ns))
    for loss in ("minimax", "non-saturating"):
        assert math.isfinite(float(generator_loss(s, loss)[0]))


def test_unknown_generator_loss(b64):
    with pytest.raises(ValueError, match="minimax"):
        generator_loss(b64.normal((2, 1)), "wasserstein")


def test_pack_layout_and_inverse(b64):
    x = b64.asarray(np.arange(12.0).reshape(6, 2))
    p = nn.to_numpy(pack(x, 3))
    assert p.shape == (2, 6)
    assert np.array_equal(p[1], [6, 7, 8, 9, 10, 11])      # row j: samples jm .. jm + m - 1
    assert np.array_equal(nn.to_numpy(unpack(pack(x, 3), 3, 2)), nn.to_numpy(x))
    with pytest.raises(nn.ShapeError, match="multiple of the pack size"):
        pack(x, 4)


# -- the generator step and the trainer ---------------------------------------------------------
def test_generator_step_leaves_the_discriminator_bit_identical(b32):
    trainer = tiny_trainer(b32, pack=2)
    trainer.step(host_batch(8))                           # Adam has state for both networks
    D, G = trainer.networks["D"], trainer.networks["G"]
    x = b32.asarray(host_batch(8, seed=1))
    trainer.gan.d_backward(trainer.gan.d_loss(x, trainer.gan.noise(8))[1])   # D has gradients
    D_params = {k: nn.to_numpy(v).copy() for k, v in D.params.items()}
    D_grads = {k: nn.to_numpy(v).copy() for k, v in D.grads.items()}
    G_before = {k: nn.to_numpy(v).copy() for k, v in G.params.items()}
    D_state = {k: v.copy() for k, v in trainer.optimizers["D"].state_dict().items()}
    trainer.g_step(8)
    for k in D_params:
        assert np.array_equal(nn.to_numpy(D.params[k]), D_params[k]), k
        assert np.array_equal(nn.to_numpy(D.grads[k]), D_grads[k]), k
    for k, v in trainer.optimizers["D"].state_dict().items():
        assert np.array_equal(v, D_state[k]), k
    assert all(not np.array_equal(nn.to_numpy(G.params[k]), G_before[k]) for k in G_before)


@pytest.mark.parametrize("loss", ["non-saturating", "minimax"])
def test_one_step_changes_every_parameter_of_both_networks(b32, loss):
    trainer = tiny_trainer(b32, pack=2, loss=loss, label_smoothing=0.1)
    before = {f"{n}/{k}": v.copy() for n, net in trainer.networks.items()
              for k, v in net.state_dict().items()}
    out = trainer.step(host_batch(8))
    assert list(out) == ["loss_D", "loss_G", "D_real", "D_fake"]
    assert all(math.isfinite(v) for v in out.values())
    after = {f"{n}/{k}": v for n, net in trainer.networks.items()
             for k, v in net.state_dict().items()}
    unchanged = [k for k in before if np.array_equal(before[k], after[k])]
    assert not unchanged
    assert len(before) == 12


def test_k_discriminator_steps_per_generator_step(b32):
    trainer = tiny_trainer(b32, k=3)
    G = trainer.networks["G"]
    changes = []
    for i in range(6):
        before = G.state_dict()["0.W"].copy()
        out = trainer.step(host_batch(8, seed=i))
        assert math.isfinite(out["loss_G"])               # reported on every call
        changes.append(not np.array_equal(before, G.state_dict()["0.W"]))
    assert changes == [False, False, True, False, False, True]
    assert trainer.optimizers["G"].t == 2 and trainer.optimizers["D"].t == 6


def test_a_step_that_fails_does_not_advance_the_count_of_d_steps(b32, monkeypatch):
    """A caller who catches the error and goes on keeps the G steps where they fall."""
    from nnscratch.losses import NonFiniteError
    trainer = tiny_trainer(b32, k=2)
    trainer.step(host_batch(8))
    assert trainer.d_steps == 1

    def diverged(*args, **kwargs):
        raise NonFiniteError("the loss is nan")
    with monkeypatch.context() as m:
        m.setattr(trainer.gan, "d_loss", diverged)
        with pytest.raises(NonFiniteError):
            trainer.step(host_batch(8, seed=1))
    assert trainer.d_steps == 1
    assert list(trainer.d_step(b32.asarray(host_batch(8)))) == list(trainer.STEP_METRICS)
    G_steps = trainer.optimizers["G"].t
    trainer.step(host_batch(8, seed=2))               # the second D step: a G step follows
    assert trainer.optimizers["G"].t == G_steps + 1


def test_a_step_frees_each_networks_gradients_after_its_update(b32):
    trainer = tiny_trainer(b32, k=2)
    trainer.step(host_batch(8))                           # a D step only
    assert trainer.networks["D"].grads == {} and trainer.networks["G"].grads == {}
    trainer.step(host_batch(8, seed=1))                   # D step, then G step
    assert trainer.networks["D"].grads == {} and trainer.networks["G"].grads == {}
    assert trainer.optimizers["G"].t == 1 and trainer.optimizers["D"].t == 2


def test_float32_everywhere(b32):
    trainer = tiny_trainer(b32, pack=2, label_smoothing=0.1)
    trainer.step(host_batch(8))
    gan = trainer.gan                   # the step freed its gradients: compute them again
    gan.d_backward(gan.d_loss(b32.asarray(host_batch(8)), gan.noise(8), 0.1)[1])
    gan.g_backward(gan.g_loss(gan.noise(8))[1])
    for net in trainer.networks.values():
        for a in list(net.params.values()) + list(net.grads.values()):
            assert "float32" in str(a.dtype)
    for opt in trainer.optimizers.values():
        for key, a in opt.state_dict().items():
            if key != "t":
                assert a.dtype == np.float32, key
    x = trainer.sample(5)
    assert x.shape == (5, 6) and x.dtype == np.float32


def test_sample_shapes_range_and_seed(b32):
    trainer = GANTrainer({"preset": "mlp", "G_hidden": [16], "D_hidden": [16]}, backend=b32)
    x = trainer.sample(7)
    assert x.shape == (7, 784) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0               # sigmoid output, like the images
    assert np.array_equal(trainer.sample(7, seed=3), trainer.sample(7, seed=3))
    assert trainer.sample(0).shape == (0, 784)


def test_evaluate_on_held_out_data(b32):
    trainer = tiny_trainer(b32, pack=3)
    metrics = trainer.evaluate(host_batch(20))            # 20 is cut to 18 for pack 3
    assert set(metrics) == {"D_real", "D_fake"}
    assert all(0.0 < v < 1.0 for v in metrics.values())
    assert metrics == trainer.evaluate(host_batch(20))    # fixed noise seed
    trainer.eval_batch = 6                                # batching does not change the result
    assert trainer.evaluate(host_batch(20)) == pytest.approx(metrics, rel=1e-5)
    with pytest.raises(nn.ShapeError):
        trainer.evaluate(host_batch(4, d=5))


def test_state_dict_round_trip_through_the_trainer(backend_name):
    b = nn.Backend(backend_name, "float32", seed=0)
    trainer = tiny_trainer(b, pack=2, k=2)
    for i in range(3):
        trainer.step(host_batch(8, seed=i))
    state = trainer.state_dict()
    config = json.loads(str(state["config"]))
    assert config["kind"] == "gan" and config["pack"] == 2 and config["k"] == 2
    assert int(state["gan/d_steps"]) == 3
    clone = Trainer.from_config(config, backend=nn.Backend(backend_name, "float32", seed=5))
    clone.load_state_dict(state)
    assert clone.d_steps == 3
    assert np.array_equal(clone.sample(4, seed=1), trainer.sample(4, seed=1))
    a, c = trainer.step(host_batch(8, seed=9)), clone.step(host_batch(8, seed=9))
    assert a == c                                         # same RNG, same G-step schedule


def test_config_defaults_and_errors():
    b = nn.Backend("numpy", "float32", seed=0)
    trainer = GANTrainer({"preset": "mlp", "lr": None, "pack": None}, backend=b)
    assert trainer.config["lr"] == 2e-4 and trainer.config["betas"] == [0.5, 0.999]
    assert trainer.config["pack"] == 1 and trainer.config["loss"] == "non-saturating"
    assert trainer.optimizers["D"].beta1 == 0.5
    assert Trainer.registry["gan"] is GANTrainer
    def sizes(net):
        return [(layer.n_in, layer.n_out) for layer in net.layers if isinstance(layer, nn.Dense)]
    assert sizes(trainer.networks["D"]) == [(784, 1024), (1024, 512), (512, 256), (256, 1)]
    assert sizes(trainer.networks["G"]) == [(100, 256), (256, 512), (512, 1024), (1024, 784)]
    packed = GANTrainer({"preset": "mlp", "pack": 4, "G_hidden": [8], "D_hidden": [8]}, backend=b)
    assert packed.networks["D"].layers[0].n_in == 4 * 784
    with pytest.raises(ValueError, match="preset"):
        GANTrainer({"preset": "dcgan"}, backend=b)
    with pytest.raises(ValueError, match="loss"):
        GANTrainer({"loss": "hinge"}, backend=b)
    with pytest.raises(ValueError, match="k"):
        GANTrainer({"k": 0}, backend=b)
    with pytest.raises(ValueError, match="label_smoothing"):
        GANTrainer({"label_smoothing": 1.0}, backend=b)
    with pytest.raises(nn.ShapeError, match="pack"):
        tiny_trainer(b, pack=3).step(host_batch(8))


def test_seed_preset_builds_with_the_articles_layer_sizes():
    """The article's listing: G z-4096-2048-1024-784 (sigmoid), D 784-1024-2048-4096-1."""
    b = nn.Backend("numpy", "float32", seed=0)
    trainer = GANTrainer({"preset": "seed"}, backend=b)
    G, D = trainer.networks["G"], trainer.networks["D"]
    def dense(net):
        return [(layer.n_in, layer.n_out) for layer in net.layers if isinstance(layer, nn.Dense)]
    assert dense(G) == [(100, 4096), (4096, 2048), (2048, 1024), (1024, 784)]
    assert dense(D) == [(784, 1024), (1024, 2048), (2048, 4096), (4096, 1)]
    assert isinstance(G.layers[-1], nn.Sigmoid) and isinstance(D.layers[-1], nn.Identity)
    assert all(layer.alpha == 0.2 for layer in G.layers + D.layers
               if isinstance(layer, nn.LeakyReLU))
    assert PRESETS["seed"]["latent"] == 100


def test_figures(tmp_path):
    pytest.importorskip("matplotlib")
    from nnscratch.plots.gan import epoch_figures, running_mean, save_step_curves
    b = nn.Backend("numpy", "float32", seed=0)
    trainer = GANTrainer({"preset": "mlp", "G_hidden": [8], "D_hidden": [8]}, backend=b)
    history = [trainer.step(host_batch(8, d=784, seed=i)) for i in range(3)]
    records = [{"epoch": e, "train_loss_D": 1.3, "train_loss_G": 0.7, "train_D_real": 0.55,
                "train_D_fake": 0.45, "test_D_real": 0.5, "test_D_fake": 0.4} for e in (1, 2)]
    paths = epoch_figures(trainer, str(tmp_path), None, records)
    assert sorted(p.rsplit("/", 1)[-1] for p in paths) == ["curves.png", "samples.png"]
    save_step_curves(history, str(tmp_path / "steps.png"), window=2)
    for name, kind in (("curves.png", "lines"), ("samples.png", "images"), ("steps.png", "lines")):
        assert_plotted(tmp_path / name, **{kind: True})
    assert np.allclose(running_mean([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
