"""Never lose a run, round 2: what a run *reads* is checked before it costs memory or a
traceback (issue 18, items 3 to 5).

Checkpoints: the zip's directory and each member's ``.npy`` header are read first, so a
member that declares a huge shape, or a hidden extra one, is refused without being
decompressed (``tracemalloc`` sees NumPy's allocations: the peaks below are what the load
allocated); every field of the config, the run and the loop state has its type; a config
that implies more memory than is available is refused from the config alone. The
evaluation classifier's cache is keyed by the content of its data, and a NaN in it or an
unwritable cache costs a retraining or a warning, never the result. ``eval`` draws its
samples in chunks; IDX files are read only as far as ``--limit`` needs.
"""
import gzip
import json
import math
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

from cli_helpers import QUICK, one_error_line
from nnscratch.cli import main
from nnscratch.training.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from test_faults import write_npz

MB = 1 << 20


@pytest.fixture(scope="module")
def good(checkpoint):
    return read_checkpoint(checkpoint)


def peak_of(f, *args, **kwargs):
    """``(result or the exception raised, peak bytes allocated while f ran)``."""
    tracemalloc.start()
    try:
        result = f(*args, **kwargs)
    except Exception as err:          # noqa: BLE001 - returned for the test to check
        result = err
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak


def npy_header(shape, dtype=np.float32):
    """The bytes of an ``.npy`` header declaring ``shape`` (no data follows it)."""
    import io
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(
        np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)})
    return f.getvalue()


def write_zip(path, state, extra=(), drop=(), compress=zipfile.ZIP_STORED):
    """An ``.npz`` of ``state`` (less ``drop``) plus ``extra``: ``(name, header, n zero
    bytes)`` members written in 1 MB pieces (deflated, a large member costs the disk little
    and the test no memory)."""
    with zipfile.ZipFile(path, "w", compression=compress, allowZip64=True) as zf:
        for key, a in state.items():
            if key not in drop:
                with zf.open(key + ".npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(a), allow_pickle=False)
        for name, header, zeros in extra:
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                f.write(header)
                for start in range(0, zeros, MB):
                    f.write(bytes(min(MB, zeros - start)))
    return str(path)


# -- the archive: members checked before they are decompressed -----------------------------------
def test_a_member_declaring_a_huge_shape_is_refused_without_allocating_it(tmp_path, good):
    """10^12 floats (4 TB) declared in a 100-byte header: read whole, NumPy would try to
    allocate them; the directory says the entry holds 0 bytes."""
    path = write_zip(tmp_path / "huge.npz", good, drop=["net/vae/dec.2.W"],
                     extra=[("net/vae/dec.2.W", npy_header((10**6, 10**6)), 0)])
    for load in (load_checkpoint, read_checkpoint):
        err, peak = peak_of(load, path)
        assert isinstance(err, CheckpointError), err
        assert "'net/vae/dec.2.W' declares shape (1000000, 1000000)" in str(err)
        assert peak < 20 * MB, peak


def test_a_hidden_extra_member_is_refused_before_it_is_decompressed(tmp_path, good):
    """32 MB of zeros, deflated to 32 kB: refused by its name, never read."""
    path = write_zip(tmp_path / "extra.npz", good, compress=zipfile.ZIP_DEFLATED,
                     extra=[("net/vae/hidden", npy_header((8 * MB,)), 32 * MB)])
    assert os.path.getsize(path) < 8 * MB
    err, peak = peak_of(load_checkpoint, path)
    assert isinstance(err, CheckpointError) and "unknown member 'net/vae/hidden'" in str(err)
    assert peak < 20 * MB, peak


def test_a_known_member_of_another_shape_is_refused_before_it_is_decompressed(tmp_path, good):
    """A consistent member (its data all there) whose shape is not the model's: 32 MB."""
    path = write_zip(tmp_path / "big.npz", good, compress=zipfile.ZIP_DEFLATED,
                     drop=["net/vae/dec.2.W"],
                     extra=[("net/vae/dec.2.W", npy_header((4096, 2048)), 32 * MB)])
    err, peak = peak_of(load_checkpoint, path)
    assert isinstance(err, CheckpointError), err
    assert "'net/vae/dec.2.W' has shape (4096, 2048) (float32), not a floating-point array " \
           "of shape (400, 784)" in str(err)
    assert peak < 20 * MB, peak


@pytest.mark.parametrize("flag, method, message", [
    (1, zipfile.ZIP_STORED, "'config' is encrypted, which nnscratch never writes"),
    (0, 99, "'config' is compressed by method 99, which nnscratch never writes")])
def test_an_encrypted_or_unknown_compression_member_is_one_checkpoint_error(
        flag, method, message, tmp_path, checkpoint):
    """zipfile itself raises RuntimeError (a password is needed) or NotImplementedError:
    both were a traceback. The directory's entry says so before anything is read."""
    raw = bytearray(checkpoint.read_bytes())
    for magic, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = raw.find(magic)         # the first entry, local and central: config.npy
        raw[i + flag_at] |= flag
        raw[i + method_at:i + method_at + 2] = method.to_bytes(2, "little")
    path = tmp_path / "odd.npz"
    path.write_bytes(bytes(raw))
    assert zipfile.ZipFile(path).infolist()[0].filename == "config.npy"
    for load in (load_checkpoint, read_checkpoint):
        with pytest.raises(CheckpointError, match=message):
            load(path)


# -- wrong types in each section: one line, status 2, the field named -----------------------------
def edit(good, config=None, loop=None, run=None, **arrays):
    state = dict(good)
    if isinstance(config, np.ndarray):
        state["config"] = config
    elif config is not None:
        state["config"] = np.asarray(json.dumps({**json.loads(str(good["config"])), **config}))
    state_loop = json.loads(str(good["loop/state"]))
    state_loop.update(loop or {})
    state_loop["run"] = {**state_loop.get("run", {}), **(run or {})}
    state["loop/state"] = np.asarray(json.dumps(state_loop))
    for key, value in arrays.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    return state


W = "net/vae/dec.2.W"
EDITS = {
    # the config
    "binarize no": ({"config": {"binarize": "no"}},
                    "config's 'binarize' is 'no', not true or false"),
    "lr nan": ({"config": {"lr": float("nan")}}, "config's 'lr' is nan, not a finite number > 0"),
    "lr inf": ({"config": {"lr": float("inf")}}, "config's 'lr' is inf"),
    "latent true": ({"config": {"latent": True}}, "config's 'latent' is True, not an integer"),
    "latent 2.0": ({"config": {"latent": 2.0}}, "config's 'latent' is 2.0, not an integer"),
    "preset 5": ({"config": {"preset": 5}}, "config's 'preset' is 5, not a string"),
    # the run's options
    "limit -1": ({"run": {"limit": -1}}, "run's 'limit' is -1, not an integer >= 1"),
    "dataset 5": ({"run": {"dataset": 5}}, "run's 'dataset' is 5, not a string"),
    "backend x": ({"run": {"backend": "x"}}, "run's 'backend' is 'x', not 'numpy' or 'cupy'"),
    # the loop's state
    "sums nan": ({"loop": {"sums": {"loss": float("nan")}}},
                 "the loop's sum 'loss' is nan, not a finite number"),
    "elapsed x": ({"loop": {"elapsed": "x"}}, "loop state's 'elapsed' is 'x'"),
    "data_rng": ({"loop": {"data_rng": {"state": 3}}}, "'data_rng' is not a generator's state"),
    "record {}": ({"loop": {"record": {"loss": 1.0}}}, "'record' has no 'epoch' >= 1"),
    "record inf": ({"loop": {"record": {"epoch": 1, "test_loss": float("inf")}}},
                   "the loop's record 'test_loss' is inf, not a finite number"),
    "step true": ({"loop": {"step": True}}, "'step' is True, not an integer >= 0"),
    # the arrays
    "int W": ({W: np.zeros((400, 784), np.int64)}, f"'{W}' has shape (400, 784) (int64), not a "
                                                    "floating-point array"),
    "bool W": ({W: np.zeros((400, 784), bool)}, f"'{W}' has shape (400, 784) (bool)"),
    "str W": ({W: np.full((400, 784), "a")}, f"'{W}' has shape (400, 784) (<U1)"),
    "complex W": ({W: np.zeros((400, 784), np.complex64)}, f"'{W}' has shape (400, 784) "
                                                           "(complex64)"),
    "t pair": ({"opt/vae/t": np.asarray([1, 2])}, "'opt/vae/t' has shape (2,) (int64), not a "
                                                  "0-d integer"),
    "t -1": ({"opt/vae/t": np.asarray(-1)}, "'opt/vae/t' is -1, not an integer >= 0"),
    "t float": ({"opt/vae/t": np.asarray(1.5)}, "'opt/vae/t' has shape () (float64)"),
    "no m": ({"opt/vae/m/dec.2.W": None}, "optimizer 'vae' lacks 'opt/vae/m/dec.2.W'"),
    "no t": ({"opt/vae/t": None}, "lacks the step count 'opt/vae/t'"),
    "t 0 with moments": ({"opt/vae/t": np.asarray(0)}, "'opt/vae/t' is 0 but the optimizer has "
                                                        "its m and v"),
    "config nested": ({"config": np.asarray("[" * 100_000 + "]" * 100_000)},
                      "unreadable config (RecursionError"),
    "loop nested": ({"loop/state": np.asarray("[" * 100_000 + "]" * 100_000)},
                    "unreadable loop state (RecursionError"),
    "no rng": ({"rng/backend": None}, "it lacks 'rng/backend'"),
    "rng junk": ({"rng/backend": np.asarray('{"x": 1}')},
                 "'rng/backend' is not a generator's state"),
    "rng counter x": ({"rng/backend": np.asarray(json.dumps(
        {"bit_generator": "nnscratch.CounterRNG", "key": "x", "counter": 0}))},
        "'rng/backend' is not a generator's state"),
    "negative v": ({"opt/vae/v/dec.2.W": np.full((400, 784), -1.0, np.float32)},
                   "'opt/vae/v/dec.2.W' holds -1, and a variance is never negative"),
    "config 2-d": ({"config": np.asarray(["{}", "{}"])}, "'config' has shape (2,)"),
}


@pytest.mark.parametrize("name", EDITS)
def test_each_wrong_field_is_refused_at_load_naming_it(name, good, tmp_path):
    changes, message = EDITS[name]
    path = write_npz(tmp_path / "edited.npz", edit(good, **changes))
    with pytest.raises(CheckpointError, match="^checkpoint .*") as err:
        load_checkpoint(path)
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("argv", [["eval", "--no-image-metrics", "--checkpoint"],
                                  ["sample", "--out", "{tmp}/s.npy", "--checkpoint"],
                                  ["train", "vae", "--quiet", "--resume"]])
def test_sample_eval_and_resume_give_one_line_and_status_2(argv, good, tmp_path, capsys):
    path = write_npz(tmp_path / "bad.npz", edit(good, **{"opt/vae/m/dec.2.W": None}))
    capsys.readouterr()
    assert main([a.format(tmp=tmp_path) for a in argv] + [path]) == 2
    assert "lacks 'opt/vae/m/dec.2.W'" in one_error_line(capsys)
    assert not (tmp_path / "s.npy").exists()


def test_a_loop_state_without_what_a_resumed_run_reads_is_refused_in_one_line(good, tmp_path,
                                                                               capsys):
    """``load_checkpoint`` gives the model of any loop state; resuming needs the position
    and the data order (a KeyError 'data_rng' at the first epoch otherwise)."""
    loop = json.loads(str(good["loop/state"]))
    del loop["data_rng"], loop["sums"]
    path = write_npz(tmp_path / "checkpoint.npz",
                     {**good, "loop/state": np.asarray(json.dumps(loop))})
    load_checkpoint(path)
    assert main(["train", "vae", "--resume", path, "--epochs", "2", "--quiet"]) == 2
    assert "lacks 'data_rng', 'sums': not the state of a run" in one_error_line(capsys)


def test_a_resumed_run_with_limit_minus_one_is_refused(good, tmp_path, capsys):
    """The case of the issue: ``run.limit -1`` trained on 5,999 images."""
    path = write_npz(tmp_path / "checkpoint.npz", edit(good, run={"limit": -1}))
    assert main(["train", "vae", "--resume", path, "--epochs", "2", "--quiet"]) == 2
    assert "'limit' is -1, not an integer >= 1" in one_error_line(capsys)


def test_a_malformed_log_line_is_refused_in_one_line(checkpoint, tmp_path, capsys):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(checkpoint.parent, run)
    for line in ("{}\n", "[1]\n", "not json\n", "[" * 100_000 + "\n",
                 '{"epoch": 0, "train_loss": 1.0}\n'):
        (run / "log.jsonl").write_text(line)
        capsys.readouterr()
        assert main(["train", "vae", "--resume", str(run / "checkpoint.npz"), "--epochs", "2",
                     "--quiet"]) == 2
        message = one_error_line(capsys)
        assert "log.jsonl line 1 is not a log record" in message, message
    assert (run / "log.jsonl").read_text() == '{"epoch": 0, "train_loss": 1.0}\n'


# -- the memory a config implies ------------------------------------------------------------------
@pytest.mark.parametrize("config, what", [
    ({"kind": "vae", "latent": 300_000}, "this VAE has 3.61e+08 parameters"),
    ({"kind": "gan", "G_hidden": [10**6], "D_hidden": [8]}, "this GAN has 8.85e+08 parameters"),
])
def test_a_config_implying_more_than_the_file_stores_is_refused_from_the_config(
        config, what, good, tmp_path):
    """Latent 300,000 is 361 million parameters (1.4 GB, 5.8 GB to train), which a file
    of 630,000 values cannot hold: refused from the config, before any array of the model
    exists, whatever the machine's memory."""
    state = {**good, "config": np.asarray(json.dumps(config))}
    path = write_npz(tmp_path / "big.npz", state)
    err, peak = peak_of(load_checkpoint, path)
    assert isinstance(err, CheckpointError), err
    assert what in str(err) and "values the checkpoint stores" in str(err), str(err)
    assert peak < 20 * MB, peak


def test_a_model_larger_than_the_available_memory_is_refused_before_it_exists(
        checkpoint, monkeypatch):
    """Against the memory *available* (here 1 MB, as if other programs held the rest),
    not the machine's total; the message says both figures."""
    from nnscratch.training import checks
    monkeypatch.setattr(checks, "available_memory", lambda: 1 << 20)
    err, peak = peak_of(load_checkpoint, checkpoint)
    assert isinstance(err, CheckpointError), err
    assert "training needs 10.1 MB (parameters, gradients and Adam's two moments), more " \
           "than this machine's 1.05 MB of memory available now" in str(err), str(err)
    assert peak < 5 * MB, peak


def test_available_memory_is_memavailable():
    from nnscratch.training.checks import available_memory, physical_memory
    if not os.path.exists("/proc/meminfo"):
        pytest.skip("no /proc/meminfo")
    line = next(x for x in open("/proc/meminfo") if x.startswith("MemAvailable:"))
    assert abs(available_memory() - int(line.split()[1]) * 1024) < 256 * MB
    assert available_memory() <= physical_memory()


# -- the classifier cache -------------------------------------------------------------------------
def idx_dir(path, seed, n=300):
    """A dataset directory of ``n`` random train and test images with 10 classes."""
    from nnscratch.datasets import write_idx
    rng = np.random.default_rng(seed)
    path.mkdir()
    for split in ("train", "t10k"):
        write_idx(path / f"{split}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(path / f"{split}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    from nnscratch.metrics import classifier
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    classifier.clear_memory()
    yield tmp_path / "cache"
    classifier.clear_memory()


QUICK_CLF = {"hidden": (8,), "epochs": 1, "progress": False}


def test_the_cache_is_keyed_by_the_content_of_the_data(cache, tmp_path):
    """Two directories of "mnist": each its own classifier; the same one again reuses it."""
    from nnscratch.metrics.classifier import clear_memory, get_classifier
    a, b = idx_dir(tmp_path / "A", 1), idx_dir(tmp_path / "B", 2)
    clf_a = get_classifier("mnist", data_dir=a, **QUICK_CLF)
    clf_b = get_classifier("mnist", data_dir=b, **QUICK_CLF)
    assert clf_a is not clf_b and clf_a.info["digest"] != clf_b.info["digest"]
    files = sorted(p.name for p in (cache / "classifiers").iterdir())
    assert len(files) == 2 and files[0].startswith("mnist-A_") and files[1].startswith("mnist-B_")
    clear_memory()
    again = get_classifier("mnist", data_dir=b, **QUICK_CLF)
    np.testing.assert_array_equal(again.params["head.W"], clf_b.params["head.W"])
    # a directory whose files changed under the same name gets a classifier of its own
    idx_dir(tmp_path / "C", 3)
    for name in os.listdir(tmp_path / "C"):
        os.replace(tmp_path / "C" / name, b / name)
    clear_memory()
    assert get_classifier("mnist", data_dir=b, **QUICK_CLF).info["digest"] != \
        clf_b.info["digest"]


def test_a_non_finite_cached_classifier_is_refused_and_retrained(cache, capsys):
    from nnscratch.metrics.classifier import Classifier, clear_memory, get_classifier
    model = get_classifier("fashion-mnist-mini", **QUICK_CLF)
    path = next((cache / "classifiers").iterdir())
    model.params["head.W"][0, 0] = np.nan
    model.save(path)
    clear_memory()
    capsys.readouterr()
    again = get_classifier("fashion-mnist-mini", **QUICK_CLF)
    err = capsys.readouterr().err
    assert f"ignoring the cached classifier {path}" in err and "holds NaN or Inf" in err
    assert np.isfinite(again.params["head.W"]).all()
    assert np.isfinite(Classifier.load(path).params["head.W"]).all()


def classifier_file(tmp_path, meta=None, drop=(), extra=()):
    """A classifier file (hidden (8,)) with its meta changed by ``meta``, members left out
    or declared anew (:func:`write_zip`)."""
    from nnscratch.metrics.classifier import Classifier
    good = tmp_path / "good.npz"
    Classifier((8,)).save(good)
    with np.load(good) as data:
        state = {k: data[k] for k in data.files}
    state["meta"] = np.asarray(json.dumps({**json.loads(str(state["meta"])), **(meta or {})}))
    return write_zip(tmp_path / "clf.npz", state, drop=drop, extra=extra)


@pytest.mark.parametrize("case, message", [
    ("width 10^9", "'param/body.0.W' has shape (784, 8) (float32), not a floating-point "
                   "array of shape (784, 1000000000)"),
    ("member 10^6", "'param/body.0.W' declares shape (784, 1000000) of float32 "
                    "(3136000000 bytes), its entry holds 0"),
    ("width x", "hidden must be integers >= 1, got ['x']"),
    ("hidden member", "unknown member 'param/body.9.W'"),
])
def test_a_classifier_file_is_checked_before_it_allocates(case, message, tmp_path):
    """The cache file is read as checkpoints are: a meta declaring a width of 10^9 (3 TB of
    weights to build) or a member declaring 3 GB in a 100-byte entry is refused from the
    headers, without allocating."""
    from nnscratch.metrics.classifier import Classifier
    path = classifier_file(tmp_path, **{
        "width 10^9": {"meta": {"hidden": [10**9]}},
        "member 10^6": {"drop": ["param/body.0.W"], "extra": [
            ("param/body.0.W", npy_header((784, 10**6)), 0)]},
        "width x": {"meta": {"hidden": ["x"]}},
        "hidden member": {"extra": [("param/body.9.W", npy_header((4,)), 16)]},
    }[case])
    err, peak = peak_of(Classifier.load, path)
    assert isinstance(err, ValueError), err
    assert str(err).startswith(f"classifier file {path!r}") and message in str(err), str(err)
    assert peak < 20 * MB, peak


def test_an_unwritable_cache_is_a_warning_and_eval_prints_its_metrics(checkpoint, tmp_path,
                                                                      monkeypatch, capsys):
    """The cache under a regular file cannot be created (root or not); eval still prints
    the Frechet distance."""
    from nnscratch.metrics import classifier
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "file" / "cache"))
    classifier.clear_memory()
    real = classifier.train_classifier
    monkeypatch.setattr(classifier, "train_classifier",
                        lambda name, data_dir, seed, *a, **k: real(name, data_dir, seed,
                                                                   (8,), 1, progress=False))
    try:
        assert main(["eval", "--checkpoint", str(checkpoint), "--samples", "50"]) == 0
    finally:
        classifier.clear_memory()
    out, err = capsys.readouterr()
    assert "frechet" in out and "warning: the classifier could not be cached" in err


# -- eval: samples in chunks ----------------------------------------------------------------------
def test_eval_draws_its_samples_in_chunks_that_continue_one_stream(checkpoint, monkeypatch,
                                                                   capsys):
    from nnscratch import cli
    from nnscratch.metrics import classifier
    clf = classifier.train_classifier("fashion-mnist-mini", hidden=(8,), epochs=1,
                                      progress=False)
    monkeypatch.setattr(classifier, "get_classifier", lambda *a, **k: clf)
    argv = ["eval", "--checkpoint", str(checkpoint), "--samples", "30"]
    assert main(argv) == 0
    whole = capsys.readouterr().out
    sizes = []
    trainer_sample = None

    def spy(self, n, *a, **k):
        sizes.append(n)
        return trainer_sample(self, n, *a, **k)
    from nnscratch.models.vae import VAETrainer
    trainer_sample = VAETrainer.sample
    monkeypatch.setattr(VAETrainer, "sample", spy)
    monkeypatch.setattr(cli, "SAMPLE_CHUNK", 7)
    assert main(argv) == 0
    assert sizes == [7, 7, 7, 7, 2]
    chunked = capsys.readouterr().out
    lines = dict(zip(whole.split(), chunked.split()))
    # the same images, so the same class counts; the statistics merged blockwise agree
    assert [line for line in whole.splitlines() if "class" in line] == \
        [line for line in chunked.splitlines() if "class" in line]
    assert lines and whole.split()[:4] == chunked.split()[:4]
    frechet = [float(s.split()[1]) for s in (whole, chunked)
               for s in [next(x for x in s.splitlines() if x.strip().startswith("frechet "))]]
    assert math.isclose(frechet[0], frechet[1], rel_tol=1e-9), frechet


def test_feature_moments_of_blocks_equal_those_of_the_whole():
    from nnscratch.metrics.frechet import FeatureMoments, feature_stats
    h = np.random.default_rng(0).normal(3.0, 2.0, (1000, 16))
    moments = FeatureMoments()
    for start in range(0, 1000, 77):
        moments.add(h[start:start + 77])
    mu, S = feature_stats(h)
    np.testing.assert_allclose(moments.stats()[0], mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(moments.stats()[1], S, rtol=1e-10, atol=1e-12)


# -- IDX: only what --limit needs -----------------------------------------------------------------
def test_an_idx_file_is_read_only_as_far_as_the_limit(tmp_path):
    """20,000 images (15.7 MB) in a 20 kB .gz: the first 10 cost 8 kB, not 15.7 MB."""
    from nnscratch.datasets import read_idx
    n = 20_000
    header = bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(header)
        f.write(bytes([7]) * (n * 784))
    assert path.stat().st_size < 100_000
    x, peak = peak_of(read_idx, path, limit=10)
    assert x.shape == (10, 28, 28) and (x == 7).all()
    assert peak < 1 * MB, peak
    whole, peak = peak_of(read_idx, path)
    # one copy of the data and the stream's buffers (a few MB), not three copies
    assert whole.shape == (n, 28, 28) and peak < n * 784 + 4 * MB, peak


def test_train_with_limit_reads_only_its_images(tmp_path, monkeypatch):
    from nnscratch.datasets import idx
    d = idx_dir(tmp_path / "data", 0, n=500)
    rows = []
    real = idx._read_stream
    monkeypatch.setattr(idx, "_read_stream",
                        lambda f, name, limit: rows.append(limit) or real(f, name, limit))
    assert main(["train", "vae", *QUICK, "--data-dir", str(d), "--out", str(tmp_path / "r"),
                 "--epochs", "1"]) == 0
    assert rows == [64, 64, 50, 50]


@pytest.mark.parametrize("gzipped", [False, True])
def test_an_idx_header_declaring_a_billion_images_is_refused_before_allocating(
        gzipped, tmp_path, monkeypatch):
    """16 bytes declaring 10^9 images (784 GB): a plain file is truncated by its size, a
    gzip stream (whose size is known only once read) is held against the memory available
    now; neither allocates (NumPy would raise MemoryError or, with overcommit, map it)."""
    from nnscratch.datasets import IDXError, read_idx
    from nnscratch.training import checks
    monkeypatch.setattr(checks, "available_memory", lambda: 1 << 30)
    header = bytes([0, 0, 8, 3]) + (10**9).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path = tmp_path / ("x.gz" if gzipped else "x")
    path.write_bytes(gzip.compress(header + bytes(784)) if gzipped else header + bytes(784))
    err, peak = peak_of(read_idx, path)
    assert isinstance(err, IDXError), err
    expected = ("declares shape (1000000000, 28, 28): reading it needs 784 GB, more than this "
                "machine's 1.07 GB of memory available now" if gzipped else
                "expected 784000000000 bytes of data after the 16-byte header (shape "
                "(1000000000, 28, 28)), found 784: the file is truncated")
    assert expected in str(err), str(err)
    assert peak < 1 * MB, peak
    assert read_idx(path, limit=1).shape == (1, 28, 28)


def test_iw_samples_beyond_eval_rows_are_drawn_in_blocks(checkpoint):
    """An ``iw_samples`` of 10^7 in a checkpoint's config made ``eval`` decode 10^7 rows
    at once (31 GB: killed by the kernel). Drawn ``eval_rows`` at a time, the decoder never
    sees more, and the bounds are those of one draw of all ``K`` draws of each image
    (NumPy's stream is the same, split in blocks)."""
    trainer, _ = load_checkpoint(checkpoint)
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    trainer.eval_rows = 50              # one image at a time, its 50 draws at once
    whole = trainer.evaluate(x, iw_samples=50)
    rows, log_weights = [], trainer.vae.log_weights

    def spy(xb, eps, y=None):
        rows.append(eps.shape[0] * eps.shape[1])
        return log_weights(xb, eps, y)
    trainer.vae.log_weights, trainer.eval_rows = spy, 8
    blocks = trainer.evaluate(x, iw_samples=50)
    assert max(rows) <= 8 and sum(rows) == 3 * 50
    for key in whole:
        assert math.isclose(whole[key], blocks[key], rel_tol=1e-5), (key, whole, blocks)


def test_a_negative_running_variance_is_refused(tmp_path):
    """Batch norm's running variance of -1 in a GAN's generator: ``sample`` wrote NaN
    images and exit status 0."""
    import nnscratch as nn
    from nnscratch.training.checkpoint import save_checkpoint
    from nnscratch.training.loop import new_loop_state
    trainer = nn.GANTrainer({"preset": "mlp", "G_hidden": [8], "D_hidden": [8], "latent": 2})
    path = save_checkpoint(tmp_path / "gan.npz", trainer, new_loop_state(0))
    state = read_checkpoint(path)
    key = next(k for k in state if k.endswith(".running_var"))
    state[key] = np.full_like(state[key], -1.0)
    write_npz(path, state)
    with pytest.raises(CheckpointError, match=f"{key!r} holds -1, and a variance is never"):
        load_checkpoint(path)
