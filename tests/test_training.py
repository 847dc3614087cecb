"""The shared training loop, checkpoints and the command line, driven by the VAE on a few
hundred embedded images (seconds)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import datasets
from nnscratch.cli import main
from nnscratch.models.vae import VAETrainer
from nnscratch.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from nnscratch.training.loop import TrainingDiverged, TrainingInterrupted, fit, new_loop_state


@pytest.fixture(scope="module")
def small_data():
    data = datasets.load("fashion-mnist-mini", "train")
    data.x, data.labels = data.x[:256], data.labels[:256]
    return data


def make_trainer(seed=0):
    return VAETrainer({"preset": "classic", "latent": 4}, backend=nn.Backend("numpy", seed=seed))


def params_of(trainer):
    return {k: nn.to_numpy(v).copy() for k, v in trainer.vae.params.items()}


def test_fit_writes_log_checkpoint_and_metrics(tmp_path, small_data):
    records = fit(make_trainer(), small_data, 2, 64, tmp_path, figures=False, progress=False)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["train_loss"] < records[0]["train_loss"]
    assert (tmp_path / "log.csv").read_text().splitlines()[0].startswith("epoch,step")
    state = read_checkpoint(tmp_path / "checkpoint.npz")
    assert json.loads(str(state["loop/state"]))["epoch"] == 2
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_resume_is_bit_exact(tmp_path, small_data):
    straight = make_trainer()
    fit(straight, small_data, 3, 64, tmp_path / "a", seed=5, figures=False, progress=False)

    first = make_trainer()
    fit(first, small_data, 1, 64, tmp_path / "b", seed=5, figures=False, progress=False)
    resumed, state = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    fit(resumed, small_data, 3, 64, tmp_path / "b", loop_state=state, figures=False,
        progress=False)
    a, b = params_of(straight), params_of(resumed)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert [r["epoch"] for r in json_lines(tmp_path / "b" / "log.jsonl")] == [1, 2, 3]


def test_interrupt_mid_epoch_saves_and_resumes_exactly(tmp_path, small_data, monkeypatch):
    straight = make_trainer()
    fit(straight, small_data, 2, 64, tmp_path / "a", figures=False, progress=False)

    interrupted = make_trainer()
    original_step = interrupted.step
    calls = {"n": 0}

    def step_then_ctrl_c(x):
        out = original_step(x)
        calls["n"] += 1
        if calls["n"] == 6:                       # epoch 2, second batch
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(interrupted, "step", step_then_ctrl_c)
    with pytest.raises(TrainingInterrupted) as stop:
        fit(interrupted, small_data, 2, 64, tmp_path / "b", figures=False, progress=False)
    trainer, state = load_checkpoint(stop.value.path)
    assert (state["epoch"], state["batch"], state["step"]) == (1, 2, 6)
    fit(trainer, small_data, 2, 64, tmp_path / "b", loop_state=state, figures=False,
        progress=False)
    a, b = params_of(straight), params_of(trainer)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_nan_stops_with_a_helpful_message_and_keeps_the_last_checkpoint(tmp_path, small_data):
    trainer = make_trainer()
    fit(trainer, small_data, 1, 64, tmp_path, figures=False, progress=False)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    trainer.vae.params["dec.2.b"][0] = np.nan
    with pytest.raises(TrainingDiverged, match=r"(?s)epoch 2, step 1 of \d+ .*\nTry a lower "
                                               r"--lr.*resume from the last good checkpoint"):
        fit(trainer, small_data, 2, 64, tmp_path, loop_state=load_checkpoint(
            tmp_path / "checkpoint.npz")[1], figures=False, progress=False)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_checkpoint_is_atomic_and_rejects_garbage(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, make_trainer(), new_loop_state(0))
    assert os.listdir(tmp_path) == ["checkpoint.npz"]
    with np.load(path, allow_pickle=False) as f:
        assert "net/vae/enc.0.W" in f.files and "opt/vae/t" in f.files
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.npz")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")
    with pytest.raises(CheckpointError, match="not a 'gan'"):
        load_checkpoint(path, kind="gan")


def json_lines(path):
    return [json.loads(line) for line in open(path)]


# -- command line ---------------------------------------------------------------------------
def test_cli_train_sample_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "vae", "--latent", "2", "--epochs", "1", "--limit", "256",
                 "--batch-size", "64", "--out", str(out), "--quiet"]) == 0
    for name in ("checkpoint.npz", "log.jsonl", "loss.png", "samples.png",
                 "reconstructions.png", "latent.png", "manifold.png"):
        assert (out / name).exists(), name
    assert main(["sample", "--checkpoint", str(out / "checkpoint.npz"), "--n", "10",
                 "--out", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (10, 784) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    assert (tmp_path / "s.png").exists()
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "checkpoint.npz"), "--limit", "200",
                 "--no-image-metrics"]) == 0
    printed = capsys.readouterr().out
    assert "neg_elbo" in printed and "iwae" in printed


@pytest.mark.parametrize("argv, message", [
    (["train", "vae", "--preset", "huge"], "invalid choice"),
    (["train", "vae", "--epochs", "-3"], "integer >= 0"),
    (["train", "vae", "--dataset", "cifar"], "unknown dataset"),
    (["sample", "--checkpoint", "nope.npz", "--out", "x.npy"], "does not exist"),
    (["train", "vae", "--backend", "cupy", "--epochs", "1"], "cupy|CuPy"),
    (["frobnicate"], "invalid choice"),
])
def test_cli_bad_arguments_give_one_line(argv, message, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)   # CuPy missing, even where a GPU is
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnscratch: error:")
    assert __import__("re").search(message, err[0])


def test_cli_help_exits_cleanly(capsys):
    assert main(["train", "vae", "--help"]) == 0
    assert "--latent" in capsys.readouterr().out


def test_ctrl_c_in_a_real_process_saves_and_exits_130(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "nnscratch", "train", "vae", "--epochs", "50",
                             "--limit", "1024", "--out", str(out), "--no-figures"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60          # the first checkpoint: the loop is running then
    while (not (out / "checkpoint.npz").exists() and time.time() < deadline
           and proc.poll() is None):
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and (out / "checkpoint.npz").exists()


def test_cli_eval_reports_image_metrics(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "gan"
    assert main(["train", "gan", "--epochs", "1", "--limit", "128", "--out", str(out),
                 "--quiet", "--no-figures"]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "checkpoint.npz"), "--samples", "200",
                 "--limit", "500"]) == 0
    printed = capsys.readouterr().out
    for key in ("frechet", "frechet_train", "classes_covered", "class_histogram"):
        assert key in printed, printed
