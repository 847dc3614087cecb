"""Never lose a file, round 2: what a hostile file system does to a run, ``sample`` and ``eval``.

Symbolic links where a run writes (the lock, the logs, the figures, the per-epoch samples),
FIFOs where it reads, files of the user's under the names a run writes, the temporary files
that ``kill -9`` leaves, a disk that fills at the second of ``sample``'s two files, and a
Ctrl-C while the command is still importing. The quick cases call ``main([...])`` in this
process (a watchdog turns a read that would block forever into a failure); the others start
real processes. Runs train a VAE (latent 2) on 64 embedded images."""
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_helpers import QUICK, ROOT, one_error_line, train
from nnscratch.cli import main
from nnscratch.training.rundir import LOCK
from test_faults import dead_pid


class Hung(BaseException):
    """Raised by the watchdog (a BaseException: ``main`` must not report it as an error)."""


@pytest.fixture
def watchdog():
    """Fail, rather than wait forever, when the test blocks for 20 s (an open of a FIFO)."""
    def expire(signum, frame):
        raise Hung("blocked for 20 s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 20)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def names_in(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


# -- symbolic links: replaced or refused, never written through ---------------------------------
def test_a_symlink_at_the_lock_is_refused_and_its_target_kept(tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("mine\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).symlink_to(target)
    assert train(out, "--epochs", "1") == 2
    line = one_error_line(capsys)
    assert f"{out / LOCK} is a symbolic link" in line, line
    assert target.read_text() == "mine\n" and names_in(out) == [LOCK]


def test_a_run_replaces_links_among_its_files_and_never_writes_their_targets(tmp_path):
    """The logs, the figures and ``samples/epoch_<n>.png`` of a resumed run, and the name
    the figures' temporary files had before (``loss.png.<pid>.tmp``, predictable)."""
    pytest.importorskip("matplotlib")
    out, outside = tmp_path / "run", tmp_path / "outside"
    argv = ["train", "vae", *QUICK[:-1], "--out", str(out)]        # with figures
    assert main([*argv, "--epochs", "1"]) == 0
    outside.mkdir()
    links = ["log.csv", "loss.png", "samples.png", "samples/epoch_002.png",
             f"loss.png.{os.getpid()}.tmp"]
    for i, name in enumerate(links):
        (outside / str(i)).write_text("mine")
        if os.path.lexists(out / name):
            os.remove(out / name)
        (out / name).symlink_to(outside / str(i))
    assert main(["train", "vae", "--resume", str(out / "checkpoint.npz"), "--epochs", "2",
                 "--quiet"]) == 0
    assert [(outside / str(i)).read_bytes() for i in range(len(links))] == [b"mine"] * len(links)
    for name in links[:-1]:
        assert (out / name).is_file() and not (out / name).is_symlink(), name


def test_sample_refuses_to_replace_its_files_and_replaces_a_link_not_its_target(
        tmp_path, checkpoint, capsys):
    target = tmp_path / "mine.png"
    target.write_bytes(b"mine")
    (tmp_path / "x.png").symlink_to(target)
    argv = ["sample", "--checkpoint", str(checkpoint), "--n", "3", "--out",
            str(tmp_path / "x.npy")]
    assert main(argv) == 2
    assert f"{tmp_path / 'x.png'} exists; pass --overwrite" in one_error_line(capsys)
    assert names_in(tmp_path) == ["mine.png", "x.png"]
    assert main([*argv, "--overwrite"]) == 0
    assert target.read_bytes() == b"mine" and not (tmp_path / "x.png").is_symlink()
    before = (tmp_path / "x.npy").read_bytes()
    capsys.readouterr()
    assert main([*argv, "--seed", "1"]) == 2 and "x.npy exists" in one_error_line(capsys)
    assert (tmp_path / "x.npy").read_bytes() == before


# -- FIFOs and other special files: refused in one line, never opened to wait -------------------
def make_fifo(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return str(path)


def fifo_case(case, tmp_path, checkpoint):
    """``(argv, what the error names)`` of a command that meets a FIFO."""
    run, fifo = tmp_path / "run", tmp_path / "fifo"
    if case == "lock":
        return ["train", "vae", *QUICK, "--out", str(run)], make_fifo(run / LOCK)
    if case == "log":       # a run of its own, its log replaced by a FIFO
        shutil.copytree(checkpoint.parent, run)
        os.remove(run / "log.jsonl")
        return (["train", "vae", "--resume", str(run / "checkpoint.npz"), "--epochs", "2",
                 "--quiet"], make_fifo(run / "log.jsonl"))
    if case == "sample-out":
        return (["sample", "--checkpoint", str(checkpoint), "--overwrite", "--out",
                 make_fifo(tmp_path / "x.npy")], str(tmp_path / "x.npy"))
    make_fifo(fifo)
    return {"resume": ["train", "vae", "--resume", str(fifo), "--quiet"],
            "sample": ["sample", "--checkpoint", str(fifo), "--out", str(tmp_path / "x.npy")],
            "eval": ["eval", "--checkpoint", str(fifo)]}[case], \
        f"checkpoint {str(fifo)!r}"


@pytest.mark.parametrize("case", ["lock", "resume", "sample", "eval", "log", "sample-out"])
def test_a_fifo_anywhere_is_one_line_not_a_hang(case, tmp_path, checkpoint, capsys, watchdog):
    argv, named = fifo_case(case, tmp_path, checkpoint)
    capsys.readouterr()
    assert main(argv) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("training ")]
    assert len(lines) == 1 and lines[0].startswith("nnscratch: error: "), lines
    assert f"{named} is a FIFO" in lines[0], lines


@pytest.mark.parametrize("kind", ["a FIFO", "a character device", "a loop of symbolic links"])
def test_the_loader_names_a_special_file_not_a_missing_one(kind, tmp_path, watchdog):
    """``read_checkpoint``, ``read_head`` and ``load_checkpoint`` themselves, as the Python
    API calls them: a FIFO or a device is named for what it is (it exists), never opened to
    wait or read without end."""
    from nnscratch.training.checkpoint import (
        CheckpointError,
        load_checkpoint,
        read_checkpoint,
        read_head,
    )
    path = make_fifo(tmp_path / "fifo") if kind == "a FIFO" else "/dev/zero"
    if kind == "a loop of symbolic links":
        path = str(tmp_path / "loop.npz")
        os.symlink(path, path)
    for load in (read_checkpoint, read_head, load_checkpoint):
        with pytest.raises(CheckpointError) as err:
            load(path)
        assert str(err.value) == f"checkpoint {path!r} is {kind}, not a file"


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_special_file_among_the_idx_files_is_named(special, tmp_path, capsys, watchdog):
    """A FIFO (or a link to a device) under an IDX file's name was reported as "does not
    contain" the files; it is there, and named for what it is."""
    from nnscratch.datasets import write_idx
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "t10k"):
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", np.zeros(40, np.uint8))
    images = data / "train-images-idx3-ubyte.gz"
    make_fifo(images) if special == "fifo" else images.symlink_to(special)
    assert train(tmp_path / "run", "--epochs", "1", "--data-dir", str(data)) == 2
    kind = "a FIFO" if special == "fifo" else "a character device"
    assert one_error_line(capsys) == f"nnscratch: error: {images} is {kind}, not an IDX file"


# -- a fresh run never destroys anything ------------------------------------------------------
@pytest.mark.parametrize("name", ["log.csv", "loss.png", "curves.png", "samples.png",
                                  "reconstructions.png", "samples/epoch_001.png", "samples"])
def test_a_fresh_run_refuses_a_directory_holding_any_name_a_run_writes(name, tmp_path, capsys):
    out = tmp_path / "run"
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(b"mine")
    assert train(out, "--epochs", "1") == 2
    line = one_error_line(capsys)
    assert f"holds an earlier run ({name})" in line and "--overwrite" in line, line
    assert (out / name).read_bytes() == b"mine"
    assert names_in(out) == sorted({name, os.path.dirname(name)} - {""})


def test_empty_logs_of_a_run_killed_before_its_first_epoch_are_no_run(tmp_path):
    """The boundary of the rule above: an older nnscratch killed before its first epoch
    ended left an empty ``log.jsonl`` and a ``log.csv`` of one newline; nothing to lose."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_text("")
    (out / "log.csv").write_text("\n")
    assert train(out, "--epochs", "1") == 0


def test_overwrite_deletes_exactly_the_names_a_run_writes(tmp_path):
    """A link among them is removed, never its target; the user's other files stay, in the
    directory and in ``samples/``, and so do look-alike temporaries that are not ours."""
    out, target = tmp_path / "run", tmp_path / "precious.png"
    assert train(out, "--epochs", "1") == 0
    target.write_bytes(b"mine")
    (out / "loss.png").symlink_to(target)
    (out / "samples").mkdir()
    dead = dead_pid()
    mine = ["notes.txt", "samples/notes.txt", f".notes.{dead}.0123abcd.tmp"]
    for name in mine + ["samples/epoch_001.png", "manifold.png"]:
        (out / name).write_bytes(b"x")
    assert train(out, "--epochs", "1", "--overwrite") == 0          # --no-figures
    assert target.read_bytes() == b"mine"
    assert names_in(out) == sorted(["checkpoint.npz", "log.csv", "log.jsonl", "samples",
                                    *mine])


# -- temporaries of dead writers: their exact names, nothing else ----------------------------
def test_stale_cleanup_removes_only_the_names_the_writers_produce(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--epochs", "1") == 0
    dead, alive = dead_pid(), os.getppid()
    ours = [f".checkpoint.npz.{dead}.0123abcd.tmp", f".log.csv.{dead}.89abcdef.tmp",
            f".loss.png.{dead}.0123abcd.tmp", f"loss.png.{dead}.tmp",
            f"samples/.epoch_001.png.{dead}.0123abcd.tmp"]
    others = [f".notes.{dead}.0123abcd.tmp", f".data.npz.{dead}.cafe.tmp",
              f".checkpoint.npz.{alive}.0123abcd.tmp", f"notes.png.{dead}.tmp",
              f"samples/.mine.png.{dead}.0123abcd.tmp", f".checkpoint.npz.{dead}.0123abcd.tmpx"]
    (out / "samples").mkdir()
    for name in ours + others:
        (out / name).write_bytes(b"x" * 100)
    assert main(["train", "vae", "--resume", str(out / "checkpoint.npz"), "--epochs", "2",
                 "--quiet", "--no-figures"]) == 0
    assert names_in(out) == sorted(["checkpoint.npz", "log.csv", "log.jsonl", "samples",
                                    *others])


def test_a_killed_sample_leaves_a_temporary_that_the_next_sample_removes(tmp_path,
                                                                         checkpoint):
    """``kill -9`` while ``sample`` writes (its ``.npy`` is reserved whole at once): the
    temporary file stays behind; the next ``sample`` to that name deletes it (its PID is
    dead), and a look-alike of a live process is kept."""
    out = tmp_path / "x.npy"
    proc = subprocess.Popen([sys.executable, "-m", "nnscratch", "sample", "--checkpoint",
                             str(checkpoint), "--n", "30000", "--out", str(out)],
                            cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and \
            not any(n.startswith(".x.npy.") for n in os.listdir(tmp_path)):
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    left = [n for n in os.listdir(tmp_path) if n.startswith(".x.")]
    assert re.fullmatch(rf"\.x\.npy\.{proc.pid}\.[0-9a-f]{{8}}\.tmp", left[0]), left
    live = f".x.png.{os.getppid()}.0123abcd.tmp"
    (tmp_path / live).write_bytes(b"x")
    assert main(["sample", "--checkpoint", str(checkpoint), "--n", "3", "--out",
                 str(out)]) == 0
    assert names_in(tmp_path) == [live, "x.npy", "x.png"]


# -- a full disk at sample's second file --------------------------------------------------------
def sample_pair(tmp_path, checkpoint):
    out = tmp_path / "x.npy"
    assert main(["sample", "--checkpoint", str(checkpoint), "--n", "1", "--out", str(out)]) == 0
    return out, {p: p.read_bytes() for p in (out, tmp_path / "x.png")}


def test_a_failure_at_the_png_keeps_both_earlier_files(tmp_path, checkpoint, monkeypatch,
                                                       capsys):
    """Both files are written to temporaries first and renamed together at the end."""
    pytest.importorskip("matplotlib")
    from nnscratch.plots import grid
    from nnscratch.training.checkpoint import atomic_file
    out, before = sample_pair(tmp_path, checkpoint)

    def full_disk(images, path, **kwargs):
        with atomic_file(path) as f:
            f.write(b"\x89PNG half")
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(grid, "save_image_grid", full_disk)
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(checkpoint), "--n", "5", "--overwrite",
                 "--out", str(out)]) == 2
    assert "could not write" in one_error_line(capsys)
    assert {p: p.read_bytes() for p in before} == before
    assert names_in(tmp_path) == ["x.npy", "x.png"]


NS_SCRIPT = """set -e
mount -t tmpfs -o size=28k tmpfs "$1"
"$2" -m nnscratch sample --checkpoint "$3" --n 1 --out "$1/x.npy" 2>/dev/null
sum1=$(cat "$1/x.npy" "$1/x.png" | md5sum)
set +e
"$2" -m nnscratch sample --checkpoint "$3" --n 5 --overwrite --out "$1/x.npy"
echo "rc=$?"
[ "$sum1" = "$(cat "$1/x.npy" "$1/x.png" | md5sum)" ] && echo same
ls -A "$1"
"""


def test_a_really_full_disk_at_the_png_keeps_both_earlier_files(tmp_path, checkpoint):
    """The same on a real file system that fills up: a 28 KiB tmpfs in a private mount
    namespace (gone with the process), where the new ``.npy`` (16 KB) fits and the PNG
    (9 KB) does not. Needs root and ``unshare``."""
    pytest.importorskip("matplotlib")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount a small tmpfs")
    (tmp_path / "mnt").mkdir()
    result = subprocess.run(["unshare", "-m", "sh", "-c", NS_SCRIPT, "sh", str(tmp_path / "mnt"),
                             sys.executable, str(checkpoint)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    if "mount" in result.stderr and "rc=" not in result.stdout:
        pytest.skip(f"tmpfs not mountable here: {result.stderr.strip()}")
    # the size both files need, and the room there is once the new .npy is removed again
    assert re.search(r"could not write \S*x\.png \(No space left on device: needs about "
                     r"2\d\.\d kB; 1\d\.\d kB free in \S*mnt\)", result.stderr), result.stderr
    assert result.stdout.split() == ["rc=2", "same", "x.npy", "x.png"], result.stdout


# -- Ctrl-C while the command starts ----------------------------------------------------------
def numpy_loading(pid):
    """Whether process ``pid`` has mapped NumPy's core library (it is importing it)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "_multiarray_umath" in f.read()
    except OSError:
        return False


@pytest.mark.parametrize("when", ["numpy", 0.05, 0.1, 0.2, 0.3])
def test_ctrl_c_while_the_command_starts_is_one_line_and_130(when, tmp_path):
    """A SIGINT at several early moments (``numpy``: as soon as NumPy's library is mapped,
    i.e. in the middle of ``import nnscratch``). What a run in progress prints on Ctrl-C is
    two lines (the checkpoint, the command that resumes it); anything else is one line.
    A SIGINT before the package's first lines take it over (the interpreter's first few
    tens of ms, which no package can change) may end it by the signal (-2) or with the
    interpreter's own traceback, which names no module of nnscratch but ``_startup``."""
    if when == "numpy" and not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc to see NumPy being loaded")
    # A shell runs a background job (`make test &`, CI under nohup) with SIGINT ignored, and
    # the child inherits that: the command then rightly leaves it ignored, and the test
    # would wait for 1000 epochs. A user's terminal delivers Ctrl-C with the default action.
    proc = subprocess.Popen([sys.executable, "-m", "nnscratch", "train", "vae", *QUICK,
                             "--epochs", "1000", "--out", str(tmp_path / "run")],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    if when == "numpy":
        deadline = time.monotonic() + 30
        while not numpy_loading(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.001)
    else:
        time.sleep(when)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    ours = set(re.findall(r"nnscratch[/\\](\w+)\.py", err))
    if ours <= {"__init__", "_startup"} and proc.returncode in (-2, 1) and when != "numpy":
        return                          # before the package's first lines took SIGINT
    said = [line for line in err.splitlines()
            if line.strip() and not line.startswith(("training vae", "epoch "))]
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert len(said) == 1 and said[0].startswith("interrupted") or \
        len(said) == 2 and said[1].startswith("resume with: nnscratch"), err
