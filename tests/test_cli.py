"""The ``nnscratch`` command, through ``main([...])`` and one real process that gets Ctrl-C.

Runs train a VAE (latent 2) on 64 embedded images and evaluate on 50: about a second each."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_helpers import QUICK, ROOT, one_error_line, train
from nnscratch.cli import main
from nnscratch.training.checkpoint import read_checkpoint


def net_arrays(path):
    return {k: v for k, v in read_checkpoint(path).items() if k.startswith(("net/", "opt/"))}


def epochs_in_log(out):
    return [json.loads(line)["epoch"] for line in open(out / "log.jsonl")]


def test_train_writes_figures_then_sample_and_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "vae", "--latent", "2", "--epochs", "1", "--limit", "64",
                 "--test-limit", "50", "--batch-size", "32", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "epoch 1/1" in captured.err and "img/s" in captured.err
    for name in ("checkpoint.npz", "log.jsonl", "log.csv", "loss.png", "samples.png",
                 "samples/epoch_001.png", "reconstructions.png", "latent.png", "manifold.png"):
        assert (out / name).is_file(), name
    ckpt = str(out / "checkpoint.npz")
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main(["sample", "--checkpoint", ckpt, "--n", "10", "--seed", seed,
                     "--out", str(tmp_path / f"{name}.npy")]) == 0
    a, b, c = (np.load(tmp_path / f"{name}.npy") for name in "abc")
    assert a.shape == (10, 784) and a.dtype == np.float32 and 0 <= a.min() <= a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and (tmp_path / "a.png").is_file()
    capsys.readouterr()
    assert main(["eval", "--checkpoint", ckpt, "--limit", "50", "--no-image-metrics"]) == 0
    printed = capsys.readouterr().out
    assert "epoch 1, 50 test images of fashion-mnist-mini" in printed
    assert re.search(r"neg_elbo\s+\d", printed) and re.search(r"iwae\s+\d", printed)


def test_resume_takes_the_run_from_the_checkpoint_and_is_bit_exact(tmp_path):
    assert train(tmp_path / "a", "--epochs", "2", "--seed", "4") == 0
    assert train(tmp_path / "b", "--epochs", "1", "--seed", "4") == 0
    # only --resume and the new total: data, limit, batch size, out come from the checkpoint
    assert main(["train", "vae", "--resume", str(tmp_path / "b" / "checkpoint.npz"),
                 "--epochs", "2", "--quiet"]) == 0
    a = net_arrays(tmp_path / "a" / "checkpoint.npz")
    b = net_arrays(tmp_path / "b" / "checkpoint.npz")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert epochs_in_log(tmp_path / "b") == [1, 2]
    assert not (tmp_path / "runs").exists()


def test_resume_with_a_lower_learning_rate(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--epochs", "1") == 0
    ckpt = str(out / "checkpoint.npz")
    assert main(["train", "vae", "--resume", ckpt, "--epochs", "2", "--lr", "1e-4"]) == 0
    assert json.loads(str(read_checkpoint(ckpt)["config"]))["lr"] == 1e-4
    capsys.readouterr()
    assert main(["train", "vae", "--resume", ckpt]) == 0          # 2 of 2 epochs done
    assert "2 epochs done already" in capsys.readouterr().err


def test_resume_refuses_options_that_contradict_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--epochs", "1") == 0
    ckpt = str(out / "checkpoint.npz")
    capsys.readouterr()
    for extra, message in ((["--latent", "3"], "--latent 3 contradicts the checkpoint"),
                           (["--batch-size", "16"], "differs from the checkpoint's 32"),
                           (["--preset", "seed"], "--preset seed contradicts")):
        assert main(["train", "vae", "--resume", ckpt, *extra]) == 2
        assert message in one_error_line(capsys)
    assert main(["train", "gan", "--resume", ckpt]) == 2
    assert "holds a 'vae' model, not a 'gan' one" in one_error_line(capsys)


@pytest.mark.parametrize("argv, message", [
    (["train", "vae", "--preset", "huge"], "invalid choice: 'huge'"),
    (["train", "gan", "--preset", "classic"], "invalid choice: 'classic'"),
    (["train", "vae", "--epochs", "-3"], "integer >= 0"),
    (["train", "vae", "--batch-size", "0"], "positive integer"),
    (["train", "vae", "--lr", "nan"], "positive finite number"),
    (["train", "vae", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["train", "vae", "--data-dir", "/nonexistent"], "is not a directory"),
    (["train", "vae", "--backend", "cupy"], "(?i)cupy"),
    (["train", "vae", "--resume", "nope.npz"], "does not exist"),
    (["train", "gan", "--pack", "3"], "not a multiple of the pack size 3"),
    (["train"], "required: model"),
    (["sample", "--checkpoint", "nope.npz", "--out", "x.npy"], "does not exist"),
    (["sample", "--checkpoint", "nope.npz", "--out", "x.png"], "must name a .npy file"),
    (["eval", "--checkpoint", "nope.npz"], "does not exist"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_give_one_line_and_status_2(argv, message, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)   # CuPy missing, even where a GPU is
    assert main(argv) == 2
    assert re.search(message, one_error_line(capsys))


def test_a_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "c.npz").write_bytes(b"garbage")
    assert main(["eval", "--checkpoint", str(tmp_path / "c.npz")]) == 2
    assert "corrupt" in one_error_line(capsys)


@pytest.mark.parametrize("argv", [[], ["train"], ["train", "vae"], ["train", "gan"],
                                  ["sample"], ["eval"]])
def test_help_for_every_command(argv, capsys):
    assert main([*argv, "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: nnscratch")


def test_divergence_exits_1_with_the_command_to_resume(tmp_path, capsys, monkeypatch):
    from nnscratch.models.vae import VAETrainer
    out = tmp_path / "run"
    assert train(out, "--epochs", "1") == 0
    before = (out / "checkpoint.npz").read_bytes()
    monkeypatch.setattr(VAETrainer, "step", lambda self, x: {"loss": float("nan")})
    capsys.readouterr()
    assert main(["train", "vae", "--resume", str(out / "checkpoint.npz"), "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert "training diverged in epoch 2, step 1 of 2" in err and "loss = nan" in err
    assert f"--resume {out / 'checkpoint.npz'} --lr 0.0001" in err
    assert (out / "checkpoint.npz").read_bytes() == before


def test_ctrl_c_outside_the_loop_exits_130(monkeypatch, capsys):
    from nnscratch import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_train", interrupted)
    assert main(["train", "vae"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_ctrl_c_in_a_real_process_saves_prints_the_resume_command_and_exits_130(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nnscratch", "train", "vae", *QUICK, "--limit", "256",
         "--epochs", "1000", "--out", str(out)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    # Wait for the first checkpoint: the loop is running then, whatever the machine's speed
    deadline = time.time() + 60
    while (not (out / "checkpoint.npz").exists() and time.time() < deadline
           and proc.poll() is None):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "checkpoint saved to" in err
    command = re.search(r"resume with: (nnscratch .*)", err).group(1)
    argv = shlex.split(command)
    assert argv[:3] == ["nnscratch", "train", "vae"] and "--resume" in argv
    done = json.loads(str(read_checkpoint(out / "checkpoint.npz")["loop/state"]))["epoch"]
    assert main(argv[1:] + ["--epochs", str(done + 1)]) == 0
    assert epochs_in_log(out) == list(range(1, done + 2))
