"""Never lose a run: output directories, locks, stale files, kills, a full disk, bad inputs.

The quick cases call ``main([...])`` in this process; the ones marked ``slow`` start real
training processes and kill them (SIGKILL, SIGINT) at random moments, or limit their file
size (``RLIMIT_FSIZE``) to play a full disk. Runs train a VAE (latent 2) on 64 embedded
images: well under a second an epoch."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_helpers import QUICK, ROOT, one_error_line, train
from nnscratch.cli import main
from nnscratch.training.checkpoint import load_checkpoint, read_checkpoint
from nnscratch.training.rundir import LOCK, RunLock


def dead_pid():
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def files_of(out):
    return {name: (out / name).read_bytes() for name in ("checkpoint.npz", "log.jsonl")}


# -- 1. a fresh run never replaces an earlier one ---------------------------------------------
def test_a_fresh_run_into_an_earlier_run_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "x"
    assert train(out, "--epochs", "2") == 0
    before = files_of(out)
    capsys.readouterr()
    assert train(out, "--epochs", "1", "--limit", "96") == 2
    line = one_error_line(capsys)
    assert "earlier run" in line and f"--resume {out / 'checkpoint.npz'}" in line
    assert "--out" in line and "--overwrite" in line
    assert files_of(out) == before
    assert train(out, "--epochs", "1", "--overwrite") == 0
    assert [json.loads(r)["epoch"] for r in open(out / "log.jsonl")] == [1]


def test_the_default_directory_is_protected_too(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "vae", *QUICK, "--epochs", "1"]
    assert main(argv) == 0
    before = files_of(tmp_path / "runs" / "vae")
    capsys.readouterr()
    assert main(argv) == 2 and "earlier run" in one_error_line(capsys)
    assert files_of(tmp_path / "runs" / "vae") == before


def test_resuming_into_the_directory_of_another_run_is_refused(tmp_path, capsys):
    assert train(tmp_path / "a", "--epochs", "1") == 0
    assert train(tmp_path / "b", "--epochs", "1", "--seed", "3") == 0
    before = files_of(tmp_path / "b")
    capsys.readouterr()
    assert main(["train", "vae", "--resume", str(tmp_path / "a" / "checkpoint.npz"),
                 "--epochs", "2", "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "earlier run" in one_error_line(capsys)
    assert files_of(tmp_path / "b") == before
    # resuming a run in its own directory is what --resume is for
    assert main(["train", "vae", "--resume", str(tmp_path / "b" / "checkpoint.npz"),
                 "--epochs", "2", "--quiet"]) == 0


# -- 2. one run at a time in a directory --------------------------------------------------------
def test_a_locked_directory_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "x"
    with RunLock(out):
        assert (out / LOCK).read_text().strip() == str(os.getpid())
        assert train(out, "--epochs", "1") == 2
        line = one_error_line(capsys)
        assert f"in use by process {os.getpid()}" in line and "--out" in line
        assert sorted(os.listdir(out)) == [LOCK]
    assert not (out / LOCK).exists()
    assert train(out, "--epochs", "1") == 0 and not (out / LOCK).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / LOCK).write_text(f"{dead_pid()}\n")
    assert train(out, "--epochs", "1") == 0
    assert (out / "checkpoint.npz").is_file() and not (out / LOCK).exists()
    lock = RunLock(out)
    (out / LOCK).write_text("12345678\n")
    with lock:
        assert lock.stale == 12345678


# -- 7. temporaries of dead writers ---------------------------------------------------------------
def test_stale_temporaries_of_dead_processes_are_removed_when_a_run_starts(tmp_path):
    out = tmp_path / "x"
    assert train(out, "--epochs", "1") == 0
    dead, alive = dead_pid(), os.getppid()
    stale = [f".checkpoint.npz.{dead}.0123abcd.tmp", "log.jsonl.tmp", "log.csv.tmp"]
    kept = [f".checkpoint.npz.{alive}.0123abcd.tmp", "notes.tmp"]
    for name in stale + kept:
        (out / name).write_bytes(b"x" * 1000)
    assert main(["train", "vae", "--resume", str(out / "checkpoint.npz"), "--epochs", "2",
                 "--quiet"]) == 0
    names = set(os.listdir(out))
    assert not names & set(stale) and set(kept) <= names


def test_the_log_is_synced_before_it_replaces_the_last_one(tmp_path, monkeypatch):
    """Each log file: its data on the disk, then the rename in the directory, as for the
    checkpoint; a write that fails keeps the earlier log whole."""
    import stat

    from nnscratch.training import checkpoint
    from nnscratch.training.runlog import RunLog
    log = RunLog(str(tmp_path))
    log.append({"epoch": 1, "loss": 2.5})
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)
    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    log.append({"epoch": 2, "loss": 2.0})
    assert synced == ["file", "dir"] * 2                    # log.jsonl, then log.csv
    assert sorted(os.listdir(tmp_path)) == ["log.csv", "log.jsonl"]
    before = (tmp_path / "log.jsonl").read_text()

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        log.append({"epoch": 3, "loss": 1.5})
    assert (tmp_path / "log.jsonl").read_text() == before
    assert [r["epoch"] for r in log.read()] == [1, 2]
    assert sorted(os.listdir(tmp_path)) == ["log.csv", "log.jsonl"]


# -- 3. sample: atomic, streamed in chunks --------------------------------------------------------
def test_sample_streams_chunks_that_continue_one_draw(tmp_path, checkpoint, monkeypatch, capsys):
    from nnscratch import cli
    monkeypatch.setattr(cli, "SAMPLE_CHUNK", 7)
    assert main(["sample", "--checkpoint", str(checkpoint), "--n", "20", "--seed", "3",
                 "--out", str(tmp_path / "s.npy")]) == 0
    assert "sample: 100% 20/20 img" in capsys.readouterr().err
    trainer, _ = load_checkpoint(checkpoint)
    expected = np.clip(trainer.sample(20, seed=3), 0, 1)
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), expected)
    assert sorted(os.listdir(tmp_path)) == ["s.npy", "s.png"]


def run_limited(argv, fsize, **kwargs):
    """``nnscratch argv`` in a process that cannot write files larger than ``fsize`` bytes
    (a full disk, as far as the process can tell; Python ignores SIGXFSZ, so the write
    fails with EFBIG)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([sys.executable, "-m", "nnscratch", *argv], preexec_fn=limit,
                          capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs)


def one_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and lines[-1].startswith("nnscratch: error: "), result.stderr
    return lines[-1]


def test_a_full_disk_keeps_every_earlier_file(tmp_path, checkpoint):
    out = tmp_path / "s.npy"
    assert main(["sample", "--checkpoint", str(checkpoint), "--n", "5", "--out", str(out)]) == 0
    before = out.read_bytes()
    result = run_limited(["sample", "--checkpoint", str(checkpoint), "--n", "2000",
                          "--out", str(out), "--overwrite"], 1 << 20)
    assert re.search(r"^nnscratch: error: could not write \S+s\.npy \(File too large: needs "
                     r"about 6.27 MB; "
                     r"files are limited to 1.05 MB \(ulimit -f\)\); the file there before, "
                     "if any, is kept", one_line(result)), one_line(result)
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["s.npy", "s.png"]
    # a checkpoint (7 MB) that cannot be written leaves the earlier one and its epochs
    run = tmp_path / "run"
    assert train(run, "--epochs", "1") == 0
    saved = (run / "checkpoint.npz").read_bytes()
    result = run_limited(["train", "vae", "--resume", str(run / "checkpoint.npz"),
                          "--epochs", "2", "--quiet"], 1 << 20)
    assert re.search(r"could not write \S+checkpoint\.npz \(File too large: needs about "
                     r"[67]\.\d+ MB; files are limited to 1.05 MB", one_line(result))
    assert (run / "checkpoint.npz").read_bytes() == saved
    assert sorted(os.listdir(run)) == ["checkpoint.npz", "log.csv", "log.jsonl"]
    assert main(["train", "vae", "--resume", str(run / "checkpoint.npz"), "--epochs", "2",
                 "--quiet"]) == 0
    assert [json.loads(r)["epoch"] for r in open(run / "log.jsonl")] == [1, 2]


@pytest.mark.slow
def test_sample_memory_stays_bounded(tmp_path, checkpoint):
    """100,000 images are 314 MB: built in memory they would take twice that at least."""
    script = ("import resource, sys\nfrom nnscratch.cli import main\nrc = main(sys.argv[1:])\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(rc)\n")
    peaks = []
    for n in (10, 100000):
        result = subprocess.run([sys.executable, "-c", script, "sample", "--checkpoint",
                                 str(checkpoint), "--n", str(n), "--out",
                                 str(tmp_path / f"{n}.npy")],
                                capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        peaks.append(int(result.stdout.split()[-1]) * 1024)
    assert np.load(tmp_path / "100000.npy", mmap_mode="r").shape == (100000, 784)
    assert peaks[1] - peaks[0] < 100e6, peaks


# -- 4, 5, 9. every bad input: one line, status 2 --------------------------------------------------
def write_npz(path, state):
    with open(path, "wb") as f:
        np.savez(f, **state)
    return str(path)


@pytest.fixture(scope="module")
def bad(tmp_path_factory, checkpoint):
    """Edited copies of a good checkpoint, by what was done to them."""
    d = tmp_path_factory.mktemp("bad")
    good = read_checkpoint(checkpoint)
    loop = json.loads(str(good["loop/state"]))

    def edit(name, **arrays):
        return write_npz(d / f"{name}.npz", {**good, **arrays})

    def position(name, **changes):
        return edit(name, **{"loop/state": np.asarray(json.dumps({**loop, **changes}))})

    nan = good["net/vae/dec.2.W"].copy()
    nan[0, 0] = np.nan
    config = json.loads(str(good["config"]))
    (d / "random.npz").write_bytes(np.random.default_rng(1).bytes(5000))
    return {
        "nan": edit("nan", **{"net/vae/dec.2.W": nan}),
        "list_config": edit("list", config=np.asarray("[20, 2]")),
        "latent_0": edit("latent0", config=np.asarray(json.dumps({**config, "latent": 0}))),
        "huge": edit("huge", config=np.asarray(json.dumps({"kind": "gan", "G_hidden": [10**9]}))),
        "opt_shape": edit("opt", **{"opt/vae/m/dec.2.W": np.zeros((2, 2), np.float32)}),
        "epoch_x": position("epoch_x", epoch="x"),
        "epoch_neg": position("epoch_neg", epoch=-3),
        "random": str(d / "random.npz"),
        "dir": str(d),
    }


def empty_idx_dir(tmp_path):
    from nnscratch.datasets import write_idx
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    return str(tmp_path)


BAD_INPUTS = [
    (["sample", "--checkpoint", "{nan}", "--out", "{tmp}/s.npy"],
     r"'net/vae/dec.2.W' holds NaN or Inf \(1 of"),
    (["eval", "--checkpoint", "{nan}", "--no-image-metrics"], "'net/vae/dec.2.W' holds NaN"),
    (["train", "vae", "--resume", "{nan}", "--epochs", "3"], "'net/vae/dec.2.W' holds NaN"),
    (["eval", "--checkpoint", "{list_config}"], "'config' is JSON list, not an object"),
    (["sample", "--checkpoint", "{latent_0}", "--out", "{tmp}/s.npy"],
     "'latent' is 0, not an integer >= 1"),
    (["train", "vae", "--latent", "0"], "expected a positive integer"),
    (["train", "vae", "--latent", "1000000000"], r"training needs .* more than this machine's"),
    (["sample", "--checkpoint", "{huge}", "--out", "{tmp}/s.npy"],
     r"this GAN has .* parameters, more than the .* values the checkpoint stores"),
    (["eval", "--checkpoint", "{opt_shape}"], r"'opt/vae/m/dec.2.W' has shape \(2, 2\)"),
    (["train", "vae", "--resume", "{epoch_x}"], "'epoch' is 'x', not an integer >= 0"),
    (["train", "vae", "--resume", "{epoch_neg}"], "'epoch' is -3, not an integer >= 0"),
    (["train", "vae", "--data-dir", "{empty_idx}"], "holds 0 images"),
    (["sample", "--checkpoint", "{ckpt}", "--out", "{tmp}/.npy"], r"must name a \.npy file"),
    (["train", "vae", "--epochs", "0", "--out", "{tmp}/r"], "--epochs 0 trains nothing"),
    (["sample", "--checkpoint", "{dir}", "--out", "{tmp}/s.npy"], "is a directory; name the"),
    (["eval", "--checkpoint", "{random}"], "not an .npz file .*not a zip header"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUTS)
def test_each_bad_input_gives_one_line_and_status_2(argv, message, bad, checkpoint, tmp_path,
                                                    capsys):
    names = {**bad, "tmp": tmp_path, "ckpt": checkpoint, "empty_idx": "{empty_idx}"}
    argv = [a.format(**names) for a in argv]
    if "{empty_idx}" in argv:
        argv[argv.index("{empty_idx}")] = empty_idx_dir(tmp_path)
    if argv[:2] == ["train", "vae"] and "--resume" not in argv:
        argv[2:2] = [*QUICK, "--out", str(tmp_path / "run")] if "--out" not in argv else QUICK
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert re.search(message, line), line
    assert "pickle" not in line and len(line) < 1000


def test_out_of_memory_anywhere_is_one_line(tmp_path, monkeypatch, capsys):
    from nnscratch import cli

    def no_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(cli, "_load_data", no_memory)
    assert train(tmp_path / "x", "--epochs", "1") == 2
    assert re.search(r"out of memory; [\d.]+ [kMGT]?B available now; try a smaller "
                     "--batch-size", one_error_line(capsys))


def test_ctrl_c_while_starting_is_one_line_and_130(monkeypatch, capsys):
    import types

    class Interrupting(types.ModuleType):
        def __getattr__(self, name):
            raise KeyboardInterrupt
    monkeypatch.setitem(sys.modules, "nnscratch.training.loop", Interrupting("loop"))
    assert main(["eval", "--checkpoint", "x.npz"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted while starting (nothing was done)"


# -- 8. the trainers' entry points -----------------------------------------------------------------
@pytest.fixture(params=["vae", "gan"])
def trainer(request):
    import nnscratch as nn
    b = nn.Backend("numpy", seed=0)
    if request.param == "vae":
        return nn.VAETrainer({"latent": 2}, backend=b)
    return nn.GANTrainer({"preset": "mlp", "G_hidden": [8], "D_hidden": [8], "latent": 2},
                         backend=b)


def test_integer_images_are_refused_with_what_was_expected(trainer):
    x = np.random.default_rng(0).integers(0, 256, (8, 784), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"floating-point images in \[0, 1\], got dtype "
                                         r"uint8 \(images of 0..255\? divide by 255\)"):
        trainer.step(x)
    with pytest.raises(ValueError, match="got dtype int64"):
        trainer.evaluate(x.astype(np.int64))


def test_images_out_of_range_are_refused_by_step_and_fit(trainer, tmp_path):
    from nnscratch.training.loop import fit
    x = np.random.default_rng(0).random((64, 784), dtype=np.float32) * 255
    with pytest.raises(ValueError, match=r"step: expected values in \[0, 1\], got \[0.0"):
        trainer.step(x)
    with pytest.raises(ValueError, match=r"fit: the training data: expected values in \[0, 1\]"):
        fit(trainer, x, 1, 32, tmp_path, progress=False, figures=False)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_an_empty_batch_is_named_not_an_overflow(trainer):
    empty = np.zeros((0, 784), np.float32)
    for call in (trainer.step, trainer.evaluate):
        with pytest.raises(ValueError, match=r"the batch is empty \(shape \(0, 784\)\)"):
            call(empty)


def test_fit_and_the_vae_refuse_counts_that_are_not_integers(tmp_path):
    """``fit(epochs=1.5)`` trained two epochs, ``binarize="no"`` binarised, an
    ``iw_samples`` of 0 failed only at the first evaluation and one of 2.5 drew 2."""
    import nnscratch as nn
    from nnscratch.training.loop import fit
    trainer = nn.VAETrainer({"latent": 2})
    x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
    for kwargs, message in [({"epochs": 1.5}, "epochs must be an integer >= 0, got 1.5"),
                            ({"batch_size": True}, "batch_size must be an integer >= 1"),
                            ({"eval_every": 0.5}, "eval_every must be an integer >= 1")]:
        with pytest.raises(ValueError, match=message):
            fit(trainer, x, **{"epochs": 1, "batch_size": 32, **kwargs}, out_dir=tmp_path,
                progress=False, figures=False)
    assert not os.listdir(tmp_path)
    for config, message in [({"binarize": "no"}, "binarize must be True or False, got 'no'"),
                            ({"iw_samples": 0}, "iw_samples must be integers >= 1, got 0")]:
        with pytest.raises(ValueError, match=message):
            nn.VAETrainer({"latent": 2, **config})
    for K in (2.5, True):
        with pytest.raises(ValueError, match="iw_samples must be integers >= 1"):
            trainer.evaluate(x[:4], iw_samples=K)


def test_save_checkpoint_refuses_a_loop_state_holding_nan(tmp_path):
    """The write side of the loader's check: a NaN sum written as ``NaN`` made a file that
    every load refuses; nothing is written and the earlier checkpoint stays."""
    import nnscratch as nn
    from nnscratch.training.checkpoint import CheckpointError, save_checkpoint
    trainer = nn.VAETrainer({"latent": 2})
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, trainer, {"epoch": 0, "sums": {}})
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="its loop state holds NaN or Inf"):
        save_checkpoint(path, trainer, {"epoch": 0, "sums": {"loss": float("nan")}})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["checkpoint.npz"]


# -- 10. kills at random moments ------------------------------------------------------------------
QUIET = ["--quiet", "--no-figures"]
KILL_RUN = ["--latent", "2", "--limit", "256", "--test-limit", "50", "--batch-size", "16",
            "--epochs", "4", *QUIET]


def start(argv):
    """A training process, returned once it has said what it trains (imports done)."""
    proc = subprocess.Popen([sys.executable, "-m", "nnscratch", *argv], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    assert first.startswith("training vae"), first + proc.stderr.read()
    return proc


def net_arrays(path):
    return {k: v for k, v in read_checkpoint(path).items() if k.startswith(("net/", "opt/"))}


@pytest.mark.slow
def test_kills_at_random_moments_always_leave_a_checkpoint_that_resumes_exactly(tmp_path,
                                                                                  capsys):
    seed = int(time.time())
    rng = random.Random(seed)
    assert main(["train", "vae", *KILL_RUN, "--out", str(tmp_path / "straight")]) == 0
    out, ckpt = tmp_path / "killed", tmp_path / "killed" / "checkpoint.npz"
    kills, began = 0, time.monotonic()
    while kills < 6 and time.monotonic() - began < 40:
        if ckpt.exists() and load_checkpoint(ckpt)[1]["epoch"] == 4:
            break               # killed after its last checkpoint: the run is done
        # a kill between the first epoch's log line and its checkpoint leaves a log and
        # nothing to resume: the run starts afresh there, which needs --overwrite
        argv = ["train", "vae", "--resume", str(ckpt), *QUIET] if ckpt.exists() else \
            ["train", "vae", *KILL_RUN, "--out", str(out), *(["--overwrite"] if kills else [])]
        proc = start(argv)
        if kills == 0:      # a second run into the directory while this one owns it
            lock, wait = out / LOCK, time.monotonic() + 30
            while time.monotonic() < wait and not (lock.exists() and lock.read_text().strip()):
                time.sleep(0.01)
            assert lock.read_text().strip() == str(proc.pid)
            capsys.readouterr()
            assert main(["train", "vae", *KILL_RUN, "--out", str(out)]) == 2
            assert f"in use by process {proc.pid}" in one_error_line(capsys)
        how = rng.choice([signal.SIGKILL, signal.SIGINT])
        delay = rng.uniform(0.0, 0.5)
        time.sleep(delay)
        proc.send_signal(how)
        err = proc.communicate(timeout=60)[1]
        what = f"seed {seed}, kill {kills}: {how.name} after {delay:.2f} s, rc {proc.returncode}"
        # a SIGINT that lands while the interpreter starts or shuts down (before Python's
        # handler exists, or after the run printed "done") ends it like a kill: -2
        expected = {signal.SIGKILL: (-9, 0), signal.SIGINT: (130, 0, -2)}[how]
        assert proc.returncode in expected, what + err
        if ckpt.exists():
            load_checkpoint(ckpt)                   # loads, whatever the moment
        if how == signal.SIGINT and proc.returncode == 130:
            # before the loop's handler is in place or after it is gone, nothing is saved
            # by the Ctrl-C, and the run keeps its last checkpoint
            assert "resume with: nnscratch train vae" in err or "nothing saved" in err, \
                what + err
        if proc.returncode == 0 or "\ndone: " in "\n" + err:
            break
        kills += 1
    # a finished run's resume trains nothing and restores a last log line that a kill
    # between the checkpoint and the log left out
    assert main(["train", "vae", "--resume", str(ckpt), *QUIET]) == 0
    assert [json.loads(r)["epoch"] for r in open(out / "log.jsonl")] == [1, 2, 3, 4]
    a, b = net_arrays(tmp_path / "straight" / "checkpoint.npz"), net_arrays(ckpt)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"seed {seed}: {key}")
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "log.csv", "log.jsonl"]


def test_a_failed_figure_write_keeps_the_earlier_figure(tmp_path, monkeypatch):
    """Figures (sample grids, curves) go through a temporary file and a rename: a write that
    fails half-way (a full disk) leaves the earlier PNG as it was, and no temporary."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from nnscratch.plots.grid import save_image_grid
    path = tmp_path / "samples.png"
    save_image_grid(np.random.default_rng(0).random((4, 784)), str(path))
    before = path.read_bytes()

    def half_written(self, fname, **kwargs):
        fname.write(before[:100])       # the open temporary file of atomic_file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OSError):
        save_image_grid(np.zeros((4, 784)), str(path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.png"]


def test_fit_refuses_a_fresh_state_in_a_run_directory_and_overwrite_deletes_first(tmp_path):
    """fit checks under the lock: a run it is told is fresh (as the CLI tells it, with a
    loop state of its own) is refused where a run is; with overwrite the earlier checkpoint
    and logs are gone before the first step (a run that then fails leaves nothing of the old
    one to mistake)."""
    from nnscratch import datasets
    from nnscratch.models.vae import VAETrainer
    from nnscratch.training.loop import fit, new_loop_state
    from nnscratch.training.rundir import RunDirectoryError
    data = datasets.load("fashion-mnist-mini", "train")
    data.x, data.labels = data.x[:64], data.labels[:64]
    out = tmp_path / "run"
    fit(VAETrainer({"latent": 2}), data, 1, 32, str(out), figures=False, progress=False)
    with pytest.raises(RunDirectoryError, match="--resume"):
        fit(VAETrainer({"latent": 2}), data, 1, 32, str(out), loop_state=new_loop_state(5),
            figures=False, progress=False, fresh=True)
    broken = VAETrainer({"latent": 2})
    broken.step = lambda x: (_ for _ in ()).throw(RuntimeError("planted"))
    with pytest.raises(RuntimeError, match="planted"):
        fit(broken, data, 1, 32, str(out), loop_state=new_loop_state(5), figures=False,
            progress=False, overwrite=True, fresh=True)
    assert not (out / "checkpoint.npz").exists()
    assert not (out / "log.jsonl").exists() or (out / "log.jsonl").read_text() == ""


def test_a_stop_between_checkpoint_and_log_loses_no_log_line(tmp_path, monkeypatch):
    """The checkpoint is written before the epoch's log line and carries it: a run stopped
    between the two (here the log write fails once) gets the line back when it resumes, so
    the log has every epoch exactly once."""
    from nnscratch import datasets
    from nnscratch.models.vae import VAETrainer
    from nnscratch.training import loop
    data = datasets.load("fashion-mnist-mini", "train")
    data.x, data.labels = data.x[:64], data.labels[:64]
    out = tmp_path / "run"
    append = loop.RunLog.append

    def fail_at_epoch_2(self, record):
        if record["epoch"] == 2:
            raise OSError(28, "No space left on device")
        return append(self, record)

    monkeypatch.setattr(loop.RunLog, "append", fail_at_epoch_2)
    with pytest.raises(OSError):
        loop.fit(VAETrainer({"latent": 2}), data, 3, 32, str(out), figures=False,
                 progress=False)
    monkeypatch.undo()
    assert [json.loads(r)["epoch"] for r in open(out / "log.jsonl")] == [1]
    trainer, state = load_checkpoint(str(out / "checkpoint.npz"))
    assert state["epoch"] == 2
    loop.fit(trainer, data, 3, 32, str(out), loop_state=state, figures=False,
             progress=False, resumed_from=str(out / "checkpoint.npz"))
    assert [json.loads(r)["epoch"] for r in open(out / "log.jsonl")] == [1, 2, 3]


@pytest.mark.parametrize("case", ["held-out nan", "held-out inf", "sum overflows"])
def test_a_non_finite_epoch_mean_or_held_out_metric_stops_the_run_unlogged(case, tmp_path):
    """A NaN or Inf never reaches the log (or a checkpoint's sums) as a number: a held-out
    metric that is NaN or Inf, or an epoch's sum that overflowed (every step finite: 1e308
    + 1e308), stops the run as a NaN step does, before the epoch's checkpoint and log line;
    the last good epoch is kept and named."""
    from nnscratch import datasets
    from nnscratch.models.vae import VAETrainer
    from nnscratch.training.loop import TrainingDiverged, fit
    data = datasets.load("fashion-mnist-mini", "train")
    data.x, data.labels = data.x[:64], data.labels[:64]
    out = tmp_path / "run"
    trainer = VAETrainer({"latent": 2})
    fit(trainer, data, 1, 32, str(out), test=data, figures=False, progress=False)
    before = files_of(out)
    trainer, state = load_checkpoint(str(out / "checkpoint.npz"))
    evaluate, step = trainer.evaluate, trainer.step
    if case == "sum overflows":
        trainer.step = lambda x: {**step(x), "loss": 1e308}
    else:
        value = float(case.split()[-1])
        trainer.evaluate = lambda x, **kw: {**evaluate(x, **kw), "loss": value}
    with pytest.raises(TrainingDiverged) as err:
        fit(trainer, data, 2, 32, str(out), loop_state=state, test=data, figures=False,
            progress=False, resumed_from=str(out / "checkpoint.npz"))
    message = ("epoch 2, step 2 of 2 (global step 4): the epoch's sum of loss overflowed to "
               "inf" if case == "sum overflows" else f"epoch 2: test_loss = {case.split()[-1]}")
    assert f"training diverged in {message}" in str(err.value), str(err.value)
    assert err.value.checkpoint == str(out / "checkpoint.npz")
    assert files_of(out) == before
