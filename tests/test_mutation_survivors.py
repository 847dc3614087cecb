"""Behaviours that a mutation audit found untested (issue 18, item 8): each test here failed on
one planted bug that the rest of the suite let through (the bug is named in the docstring).
The CUDA-text survivors are caught by tests/test_fused.py's inputs (y = 0 with dy != 0;
a moving average with take != 1 - keep)."""
import re

import numpy as np
import pytest

import nnscratch as nn
from cli_helpers import train
from nnscratch.cli import main
from nnscratch.counter_rng import CounterRNG
from nnscratch.training.rundir import RunLock
from test_gan_stabilisers import host_batch, small


def host(params):
    return {k: nn.to_numpy(p).copy() for k, p in params.items()}


# -- the moving average of G --------------------------------------------------------------------
def test_the_average_takes_g_after_its_optimizer_step(b64):
    """Planted bug: ``ema.update()`` before ``optimizers["G"].step()``. The first update
    (beta_0 = 1/10) must mix in the weights G has *after* its step."""
    trainer = small(b64, k=1)
    trainer.step(host_batch(8))
    G_before = host(trainer.gan.G.params)
    avg_before = host(trainer.networks["G_ema"].params)
    beta = trainer.ema.beta()
    trainer.step(host_batch(8, seed=1))
    G_after = host(trainer.gan.G.params)
    for name, a in host(trainer.networks["G_ema"].params).items():
        assert not np.array_equal(G_after[name], G_before[name]), name
        np.testing.assert_allclose(a, beta * avg_before[name] + (1 - beta) * G_after[name],
                                   rtol=1e-12, atol=1e-14, err_msg=name)


def test_the_average_receives_batch_norms_running_statistics(b32):
    """Planted bug: EMA.update without copy_buffers. The averaged generator would sample
    with mean 0 / variance 1 instead of the statistics G has gathered."""
    trainer = small(b32, k=1)
    start = host(trainer.gan.G.buffers)
    for i in range(3):
        trainer.step(host_batch(8, seed=i))
    G_buffers, avg_buffers = host(trainer.gan.G.buffers), host(trainer.networks["G_ema"].buffers)
    assert G_buffers and set(G_buffers) == set(avg_buffers)
    for name, value in G_buffers.items():
        assert not np.array_equal(value, start[name]), name
        np.testing.assert_array_equal(avg_buffers[name], value, err_msg=name)


# -- evaluation does not change training ----------------------------------------------------------
def test_evaluate_does_not_change_the_training_that_follows(b32):
    """Planted bug: GANTrainer.evaluate runs D in training mode: its forward then advances
    spectral norm's u and draws dropout masks from the training generator, so a run with an
    evaluation in the middle would train differently from one without."""
    config = {"k": 1, "D_spectral": True, "D_dropout": 0.3}
    with_eval, without = (small(nn.Backend("numpy", seed=5), **config) for _ in range(2))
    for trainer in (with_eval, without):
        trainer.step(host_batch(8))
    u_before = host(with_eval.gan.D.buffers)
    with_eval.evaluate(host_batch(16, seed=9))
    for name, u in host(with_eval.gan.D.buffers).items():
        np.testing.assert_array_equal(u, u_before[name], err_msg=name)
    for trainer in (with_eval, without):
        trainer.step(host_batch(8, seed=1))
    for net in ("G", "D"):
        a, b = host(with_eval.networks[net].params), host(without.networks[net].params)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{net}.{name}")


# -- --overwrite never deletes a live run's files ------------------------------------------------
def test_overwrite_checks_the_lock_before_deleting_anything(tmp_path, capsys):
    """Planted bug: --overwrite deletes the earlier run before checking the lock, so a run
    started on a directory a live run owns destroys that run's checkpoint and log."""
    out = tmp_path / "x"
    assert train(out, "--epochs", "1") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert "checkpoint.npz" in before and "log.jsonl" in before
    capsys.readouterr()
    with RunLock(out):                      # a live run owns the directory
        assert train(out, "--epochs", "1", "--overwrite") == 2
        assert "in use by" in capsys.readouterr().err
        after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    after.pop(".lock", None)
    assert after == before


# -- the counter-based generator ----------------------------------------------------------------
@pytest.mark.parametrize("draw", ["standard_normal", "random"])
def test_successive_draws_share_no_number(draw):
    """Planted bugs: the per-draw start ``mix(k + c gamma)`` not mixed (draw c + 1 would be
    draw c shifted by one entry), or ``random()`` not advancing the counter (two draws
    equal). Independent streams of 53-bit numbers share no value."""
    rng = CounterRNG(3)
    first = getattr(rng, draw)(4000)
    counter = rng.counter
    second = getattr(rng, draw)(4000)
    assert rng.counter == counter + 1
    assert np.intersect1d(first, second).size == 0
    assert np.intersect1d(first[1:], second[:-1]).size == 0


# -- the command line samples and evaluates the averaged generator ---------------------------------
@pytest.fixture(scope="module")
def gan_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "run"
    argv = ["train", "gan", "--preset", "mlp", "--limit", "64", "--test-limit", "64",
            "--batch-size", "32", "--epochs", "1", "--quiet", "--no-figures", "--out", str(out)]
    assert main(argv) == 0
    return out / "checkpoint.npz"


def test_sample_uses_the_average_unless_raw(gan_checkpoint, tmp_path):
    """Planted bug: the CLI's sample with --raw always on."""
    from nnscratch.training.checkpoint import load_checkpoint
    files = {}
    for raw in (False, True):
        path = tmp_path / f"{'raw' if raw else 'avg'}.npy"
        assert main(["sample", "--checkpoint", str(gan_checkpoint), "--n", "8", "--seed", "3",
                     "--out", str(path), *(["--raw"] if raw else [])]) == 0
        files[raw] = np.load(path)
    trainer, _ = load_checkpoint(str(gan_checkpoint), backend=nn.Backend("numpy", seed=3))
    trainer.backend.rng = trainer.backend.seeded(3).rng
    expected = np.clip(trainer.sample(8), 0.0, 1.0)     # the average: the default
    np.testing.assert_allclose(files[False], expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(files[False], files[True])


def test_eval_uses_the_average_unless_raw(gan_checkpoint, capsys):
    """Planted bug: the CLI's eval with --raw always on."""
    d_fake = {}
    for raw in (False, True):
        capsys.readouterr()
        assert main(["eval", "--checkpoint", str(gan_checkpoint), "--no-image-metrics",
                     "--limit", "64", *(["--raw"] if raw else [])]) == 0
        d_fake[raw] = float(re.search(r"D_fake\s+(\S+)", capsys.readouterr().out).group(1))
    assert d_fake[False] != d_fake[True]
