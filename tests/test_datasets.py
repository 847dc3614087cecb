"""Tests of nnscratch.datasets. Nothing here touches the internet: downloads go to a local
HTTP server on 127.0.0.1, and every test runs with its own empty cache and data directories."""

import gzip
import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nnscratch import datasets
from nnscratch.datasets import (
    Dataset,
    DownloadError,
    IDXError,
    batches,
    binarize,
    download_file,
    load,
    read_idx,
    write_idx,
)
from nnscratch.datasets.registry import DEBIAN_SHA256, REGISTRY, SPLIT_FILES

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not DEBIAN_DIR.is_dir(),
    reason=f"{DEBIAN_DIR} absent (apt-get install dataset-fashion-mnist to run this test)",
)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test may read or write the real cache, or go through a proxy."""
    for var in ("NNSCRATCH_DATA_DIR", "NNSCRATCH_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("no_proxy", "*")


def tiny_split(n=20, seed=0):
    """Random (n, 28, 28) uint8 images and (n,) uint8 labels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_split(directory, split="train", n=20, seed=0, gz=True):
    """Write a tiny (images, labels) pair with the standard file names; return the arrays."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = tiny_split(n, seed)
    for fname, array in zip(SPLIT_FILES[split], (images, labels)):
        write_idx(directory / (fname if gz else fname.removesuffix(".gz")), array, gzip=gz)
    return images, labels


@pytest.fixture
def server():
    """A local HTTP server. ``routes[path] = (body, declared_length)``; a declared length larger
    than the body makes the server close the connection half way through."""
    routes, hits = {}, []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path not in routes:
                self.send_error(404, "Not Found")
                return
            body, declared = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            if type(body) is not bytes:     # a subclass: written by server.trickle
                return server_ns.trickle(self.wfile)
            self.wfile.write(body)  # HTTP/1.0: the connection closes when we return

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    server_ns = SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}", routes=routes,
                                hits=hits, trickle=None)
    yield server_ns
    httpd.shutdown()
    httpd.server_close()


def serve(server, path, body, declared=None):
    server.routes[path] = (body, len(body) if declared is None else declared)
    return server.url + path


def sha(data):
    return hashlib.sha256(data).hexdigest()


def closed_port_url():
    """A URL on a port nobody listens on: the connection is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.gz"


# -- IDX --------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("shape", [(7,), (5, 28, 28), (2, 3, 4, 5)])
def test_idx_round_trip(tmp_path, gz, shape):
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    path = write_idx(tmp_path / "a.idx", array, gzip=gz)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "looks-raw", array, gzip=True)
    write_idx(tmp_path / "looks-gzipped.gz", array, gzip=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "looks-raw"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "looks-gzipped.gz"), array)


def test_idx_error_is_a_value_error():
    assert issubclass(IDXError, ValueError)


@pytest.mark.parametrize("magic", ["12340801", "00340801", "12000801"])
def test_bad_magic_number(tmp_path, magic):
    """Either of the two zero bytes wrong is caught (a check of byte 0 alone would pass
    0x00340801)."""
    path = tmp_path / "bad.idx"
    path.write_bytes(bytes.fromhex(magic) + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(IDXError, match=rf"bad\.idx: bad magic number 0x{magic}.*two zero bytes"):
        read_idx(path)


def test_unsupported_type_code(tmp_path):
    path = tmp_path / "floats.idx"
    path.write_bytes(b"\x00\x00\x0d\x01" + (1).to_bytes(4, "big") + b"\x00" * 4)
    with pytest.raises(IDXError, match=r"floats\.idx: type code 0x0D \(float32\) is not supported"):
        read_idx(path)


def test_bad_number_of_dimensions(tmp_path):
    path = tmp_path / "zero-dims.idx"
    path.write_bytes(b"\x00\x00\x08\x00")
    with pytest.raises(IDXError, match="0 dimensions"):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_data(tmp_path, gz):
    images, _ = tiny_split(n=10)
    raw = tmp_path / "raw.idx"
    write_idx(raw, images, gzip=False)
    data = raw.read_bytes()[:16 + 1000]  # 16-byte header, 1000 of 7840 pixel bytes
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(IDXError) as err:
        read_idx(path)
    assert str(path) in str(err.value)
    assert "expected 7840 bytes of data after the 16-byte header (shape (10, 28, 28)), " \
           "found 1000: the file is truncated" in str(err.value)


def test_truncated_header(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big"))
    with pytest.raises(IDXError, match="header needs 16 bytes for 3 dimensions.*truncated"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    path = write_idx(tmp_path / "cut.gz", tiny_split()[0], gzip=True)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(IDXError, match=r"cut\.gz: not a valid gzip stream.*truncated"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "long.idx", np.zeros(4, np.uint8), gzip=False)
    path.write_bytes(path.read_bytes() + b"xx")
    with pytest.raises(IDXError, match="expected 4 bytes.*found 6: the file has trailing bytes"):
        read_idx(path)


def test_write_idx_rejects_other_dtypes(tmp_path):
    with pytest.raises(TypeError, match="unsigned bytes"):
        write_idx(tmp_path / "x", np.zeros(3, np.float32))


# -- search order -----------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_data_dir_is_used(tmp_path, gz):
    images, labels = write_split(tmp_path / "mine", gz=gz)
    ds = load("mnist", "train", data_dir=tmp_path / "mine")
    assert ds.source == str(tmp_path / "mine")
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_array_equal(ds.x, images.reshape(20, 784) / np.float32(255))


def test_data_dir_may_hold_a_subdirectory_per_dataset(tmp_path):
    write_split(tmp_path / "data" / "kmnist", split="test")
    ds = load("kmnist", "test", data_dir=tmp_path / "data")
    assert ds.source == str(tmp_path / "data" / "kmnist") and ds.class_names[0] == "o"


def test_missing_data_dir_files_raise_and_never_download(tmp_path, server, monkeypatch):
    write_split(tmp_path / "cache" / "mnist")  # a copy elsewhere must not be used either
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="data_dir=.*empty.*does not contain "
                       "train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz"):
        load("mnist", data_dir=tmp_path / "empty", mirrors=[server.url + "/"])
    assert server.hits == []


def test_env_var_beats_cache(tmp_path, monkeypatch):
    write_split(tmp_path / "env", n=5)
    write_split(tmp_path / "cache" / "mnist", n=7)
    monkeypatch.setenv("NNSCRATCH_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    assert len(load("mnist", download=False)) == 5


def test_env_var_subdirectory_beats_its_top_level(tmp_path, monkeypatch):
    write_split(tmp_path / "env", n=5)
    write_split(tmp_path / "env" / "kmnist", n=6)
    monkeypatch.setenv("NNSCRATCH_DATA_DIR", str(tmp_path / "env"))
    assert len(load("kmnist", download=False)) == 6
    assert len(load("mnist", download=False)) == 5


def test_cache_is_used_when_env_dir_lacks_the_files(tmp_path, monkeypatch):
    (tmp_path / "env").mkdir()
    write_split(tmp_path / "cache" / "mnist", n=7)
    monkeypatch.setenv("NNSCRATCH_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    ds = load("mnist", download=False)
    assert len(ds) == 7 and ds.source == str(tmp_path / "cache" / "mnist")


def test_cache_dir_resolution(tmp_path, monkeypatch):
    assert datasets.cache_dir("kmnist") == tmp_path / "home" / ".cache" / "nnscratch" / "kmnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir("kmnist") == tmp_path / "xdg" / "nnscratch" / "kmnist"
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "mine"))
    assert datasets.cache_dir("kmnist") == tmp_path / "mine" / "kmnist"


def test_xdg_cache_is_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    write_split(tmp_path / "xdg" / "nnscratch" / "mnist", split="test", n=3)
    assert len(load("mnist", "test", download=False)) == 3


def test_cache_beats_the_system_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    write_split(tmp_path / "cache" / "fashion-mnist", split="test", n=4)
    ds = load("fashion-mnist", "test", download=False)
    assert len(ds) == 4 and ds.class_names[9] == "Ankle boot"


@needs_debian
def test_debian_package_directory():
    ds = load("fashion-mnist", "test", download=False)
    assert ds.source == str(DEBIAN_DIR)
    assert ds.x.shape == (10000, 784) and ds.x.dtype == np.float32
    assert np.bincount(ds.labels).tolist() == [1000] * 10


def test_not_found_without_download_lists_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load("kmnist", "test", download=False)
    msg = str(err.value)
    assert str(tmp_path / "home" / ".cache" / "nnscratch" / "kmnist") in msg
    assert "NNSCRATCH_DATA_DIR" in msg and "t10k-images-idx3-ubyte.gz" in msg


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*fashion-mnist-mini"):
        load("cifar")
    with pytest.raises(ValueError, match="split must be one of"):
        load("mnist", "valid")


def test_images_and_labels_must_agree(tmp_path):
    write_split(tmp_path, n=5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(IDXError, match="5 images but labels of shape \\(4,\\)"):
        load("mnist", data_dir=tmp_path)


# -- the embedded dataset ---------------------------------------------------------------


@pytest.mark.parametrize("split, n", [("train", 6000), ("test", 1000)])
def test_embedded_dataset(split, n):
    ds = load("fashion-mnist-mini", split)
    assert isinstance(ds, Dataset) and len(ds) == n
    assert ds.x.shape == (n, 784) and ds.x.dtype == np.float32
    assert ds.labels.shape == (n,) and ds.labels.dtype == np.int64
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    np.testing.assert_array_equal(ds.x * 255, np.round(ds.x * 255))  # exactly uint8 / 255
    assert np.bincount(ds.labels, minlength=10).tolist() == [n // 10] * 10
    assert ds.name == "fashion-mnist-mini" and ds.split == split
    assert ds.class_names == REGISTRY["fashion-mnist"].class_names
    assert ds.source.endswith("fashion_mnist_mini.npz") and ds.images().shape == (n, 28, 28)


def test_embedded_file_is_small_and_documented():
    data = Path(datasets.__file__).parent / "data"
    assert (data / "fashion_mnist_mini.npz").stat().st_size < 3.2e6
    readme = (data / "README.md").read_text()
    for fact in ("Zalando", "MIT", "first 600", *DEBIAN_SHA256.values()):
        assert fact in readme


@needs_debian
def test_embedded_images_are_the_documented_fashion_mnist_images():
    with np.load(Path(datasets.__file__).parent / "data" / "fashion_mnist_mini.npz") as npz:
        index, images, labels = npz["test_index"], npz["x_test"], npz["y_test"]
    full = load("fashion-mnist", "test", download=False)
    np.testing.assert_array_equal(full.labels[index], labels)
    np.testing.assert_array_equal(full.images()[index], images / np.float32(255))
    # "first 100 of each class": no earlier example of a class was skipped
    for c in range(10):
        assert index[labels == c].tolist() == np.flatnonzero(full.labels == c)[:100].tolist()


# -- binarize and batches ---------------------------------------------------------------


def test_binarize_is_deterministic_for_a_seed():
    x = load("fashion-mnist-mini", "test").x
    a = binarize(x, np.random.default_rng(3))
    b = binarize(x, np.random.default_rng(3))
    c = binarize(x, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == x.shape and set(np.unique(a)) <= {0.0, 1.0}


def test_binarize_samples_bernoulli_of_x():
    x = np.array([[0.0, 1.0, 0.3]], np.float32).repeat(40000, axis=0)
    mean = binarize(x, np.random.default_rng(0)).mean(axis=0)
    assert mean[0] == 0.0 and mean[1] == 1.0
    assert abs(mean[2] - 0.3) < 0.01  # 4 standard errors (sqrt(0.21 / 40000) = 0.0023)


def test_load_binarized():
    a = load("fashion-mnist-mini", "test", binarize=True, rng=np.random.default_rng(0))
    b = load("fashion-mnist-mini", "test", binarize=True, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a.x, b.x)
    assert set(np.unique(a.x)) == {0.0, 1.0}
    with pytest.raises(ValueError, match="needs rng"):
        load("fashion-mnist-mini", binarize=True)


@pytest.mark.parametrize("n, batch_size", [(100, 10), (103, 10), (5, 8)])
def test_batches_cover_every_index_once(n, batch_size):
    idx = list(batches(n, batch_size, np.random.default_rng(0), drop_last=False))
    np.testing.assert_array_equal(np.sort(np.concatenate(idx)), np.arange(n))
    assert all(len(i) == batch_size for i in idx[:-1])


def test_batches_drop_last_gives_full_distinct_batches():
    idx = list(batches(103, 10, np.random.default_rng(0)))
    assert len(idx) == 10 and all(len(i) == 10 for i in idx)
    assert len(np.unique(np.concatenate(idx))) == 100


def test_batches_are_reproducible_and_reshuffled_each_epoch():
    rng = np.random.default_rng(7)
    epoch1 = list(batches(50, 5, rng))
    epoch2 = list(batches(50, 5, rng))
    again = list(batches(50, 5, np.random.default_rng(7)))
    assert all(np.array_equal(a, b) for a, b in zip(epoch1, again))
    assert not all(np.array_equal(a, b) for a, b in zip(epoch1, epoch2))


def test_batches_draw_the_permutation_when_called_so_rng_state_can_be_checkpointed():
    rng = np.random.default_rng(1)
    saved = rng.bit_generator.state
    it = batches(30, 4, rng)
    assert rng.bit_generator.state != saved  # drawn now, not at the first next()
    done = [next(it), next(it)]
    rng.bit_generator.state = saved  # resume: restore, call again, skip what was done
    resumed = batches(30, 4, rng)
    assert all(np.array_equal(a, next(resumed)) for a in done)
    np.testing.assert_array_equal(next(it), next(resumed))


def test_batches_without_shuffle_are_in_order():
    idx = list(batches(7, 3, shuffle=False, drop_last=False))
    assert [i.tolist() for i in idx] == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError, match="needs rng"):
        batches(7, 3)


# -- downloads (local server only) -------------------------------------------------------


def test_download_with_progress_and_checksum(tmp_path, server):
    body = os.urandom(300_000)
    url = serve(server, "/a/file.gz", body)
    out = io.StringIO()
    dest = download_file([url], tmp_path / "dl" / "file.gz", sha(body), stream=out)
    assert dest.read_bytes() == body and os.listdir(tmp_path / "dl") == ["file.gz"]
    assert "file.gz: 100% 300k/300k B" in out.getvalue()


def test_bad_checksum_deletes_the_file_and_tries_the_next_mirror(tmp_path, server):
    body = os.urandom(5000)
    bad = serve(server, "/m1/file.gz", b"not the right bytes")
    good = serve(server, "/m2/file.gz", body)
    dest = download_file([bad, good], tmp_path / "file.gz", sha(body), progress=False)
    assert dest.read_bytes() == body
    assert server.hits == ["/m1/file.gz", "/m2/file.gz"]
    assert os.listdir(tmp_path) == ["file.gz"]  # no .part left from the first attempt


def test_bad_checksum_alone_leaves_nothing(tmp_path, server):
    bad = serve(server, "/m1/file.gz", b"not the right bytes")
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download_file([bad], tmp_path / "file.gz", sha(b"other"), progress=False)
    assert os.listdir(tmp_path) == []


def test_parts_left_by_killed_downloads_are_removed_and_live_ones_kept(tmp_path, server):
    """A SIGKILL skips every cleanup; the next download of the file removes what a dead
    process left, never the part file of a download still running."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()                                     # a PID that no longer runs
    dead = tmp_path / f".file.gz.{child.pid}.k2j3h4.part"
    live = tmp_path / f".file.gz.{os.getppid()}.a1b2c3.part"
    other = tmp_path / f".other.gz.{child.pid}.a1b2c3.part"
    for part in (dead, live, other):
        part.write_bytes(b"half a file")
    body = os.urandom(1000)
    download_file([serve(server, "/file.gz", body)], tmp_path / "file.gz", sha(body),
                  progress=False)
    assert sorted(os.listdir(tmp_path)) == sorted(["file.gz", live.name, other.name])


def test_a_full_disk_is_named_as_such_and_no_other_mirror_is_tried(tmp_path, server,
                                                                   monkeypatch):
    body = os.urandom(200_000)
    first, second = serve(server, "/m1/file.gz", body), serve(server, "/m2/file.gz", body)
    real_fdopen = os.fdopen

    class FullDisk(io.BufferedWriter):
        def write(self, data):
            raise OSError(28, "No space left on device")

    def fdopen(fd, mode="r", *args, **kwargs):
        return FullDisk(real_fdopen(fd, mode, buffering=0)) if mode == "wb" else \
            real_fdopen(fd, mode, *args, **kwargs)
    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(DownloadError) as err:
        download_file([first, second], tmp_path / "file.gz", sha(body), progress=False)
    assert str(err.value).startswith(f"could not write file.gz into {tmp_path} (No space left "
                                     f"on device) while downloading it from {first}")
    assert server.hits == ["/m1/file.gz"] and os.listdir(tmp_path) == []


def test_connection_dropped_half_way_falls_back_to_the_next_mirror(tmp_path, server):
    body = os.urandom(200_000)
    cut = serve(server, "/m1/file.gz", body[:100_000], declared=len(body))
    good = serve(server, "/m2/file.gz", body)
    out = io.StringIO()
    dest = download_file([cut, good], tmp_path / "file.gz", sha(body), stream=out)
    assert dest.read_bytes() == body and os.listdir(tmp_path) == ["file.gz"]
    assert out.getvalue().count("\n") == 2  # one bar line per attempt


def test_connection_dropped_alone_leaves_nothing(tmp_path, server):
    body = os.urandom(200_000)
    cut = serve(server, "/m1/file.gz", body[:100_000], declared=len(body))
    with pytest.raises(DownloadError, match="connection closed after 100000 of 200000 bytes"):
        download_file([cut], tmp_path / "file.gz", sha(body), progress=False)
    assert os.listdir(tmp_path) == []


def test_all_mirrors_failing_gives_a_clear_error(tmp_path, server):
    missing = server.url + "/nowhere/file.gz"
    bad = serve(server, "/bad/file.gz", b"junk")
    refused = closed_port_url()
    with pytest.raises(DownloadError) as err:
        download_file([missing, bad, refused], tmp_path / "file.gz", sha(b"x"), progress=False,
                      timeout=5)
    msg = str(err.value)
    assert "tried 3 mirror(s)" in msg
    assert f"{missing}: HTTP 404" in msg
    assert f"{bad}: SHA-256 mismatch" in msg
    assert f"{refused}: cannot connect" in msg
    assert [url for url, _ in err.value.attempts] == [missing, bad, refused]
    assert os.listdir(tmp_path) == []


def test_unknown_checksum_refuses_to_download(tmp_path, server):
    url = serve(server, "/file.gz", b"data")
    with pytest.raises(DownloadError, match="no published SHA-256"):
        download_file([url], tmp_path / "file.gz", None)
    assert server.hits == []


def idx_bytes(array):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(b"\x00\x00\x08" + bytes([array.ndim])
                + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes())
    return buf.getvalue()


def test_load_downloads_into_the_cache_once(tmp_path, server, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    images, labels = tiny_split(n=12)
    files = dict(zip(SPLIT_FILES["train"], (idx_bytes(images), idx_bytes(labels))))
    for fname, data in files.items():
        serve(server, "/mirror2/" + fname, data)
    digests = {fname: sha(data) for fname, data in files.items()}
    mirrors = [server.url + "/mirror1/", server.url + "/mirror2"]  # the first answers 404
    ds = load("mnist", "train", mirrors=mirrors, sha256=digests, progress=False)
    assert ds.source == str(tmp_path / "cache" / "mnist") and len(ds) == 12
    np.testing.assert_array_equal(ds.labels, labels)
    assert sorted(os.listdir(tmp_path / "cache" / "mnist")) == sorted(files)
    hits = len(server.hits)
    load("mnist", "train", mirrors=mirrors, sha256=digests)
    assert len(server.hits) == hits  # second time from the cache


def test_load_download_failure_tells_how_to_install_by_hand(tmp_path, server, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DownloadError) as err:
        load("kmnist", "test", mirrors=[server.url + "/a/", server.url + "/b/"], progress=False)
    msg = str(err.value)
    assert f"{server.url}/a/t10k-images-idx3-ubyte.gz: HTTP 404" in msg
    assert f"{server.url}/b/t10k-images-idx3-ubyte.gz: HTTP 404" in msg
    assert str(tmp_path / "cache" / "kmnist") in msg and "NNSCRATCH_DATA_DIR" in msg
    assert os.listdir(tmp_path / "cache" / "kmnist") == []


def test_registry_has_real_looking_checksums_for_every_file():
    for info in REGISTRY.values():
        assert set(info.sha256) == {f for pair in SPLIT_FILES.values() for f in pair}
        for digest in info.sha256.values():
            assert re.fullmatch("[0-9a-f]{64}", digest), digest
        assert len(set(info.sha256.values())) == len(info.sha256)     # no copy-paste slip
        assert info.mirrors and len(info.class_names) == 10


# -- dependencies -----------------------------------------------------------------------


def test_imports_only_numpy_and_the_standard_library():
    code = (
        "import sys, numpy\n"
        "before = set(sys.modules)\n"
        "import nnscratch.datasets\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names) - {'nnscratch', 'numpy'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    assert out.stdout.strip() == "[]"


# -- deadlines, mirrors from the environment, the whole failure on the command line ---------


def test_a_trickling_server_is_given_up_at_the_deadline(tmp_path, server):
    import time

    class Trickle(bytes):
        """A body the handler writes a byte at a time, 0.1 s apart."""
    body = Trickle(b"x" * 100)
    server.routes["/slow/file.gz"] = (body, len(body))
    good = serve(server, "/good/file.gz", b"data")

    def trickle(wfile):
        try:
            for i in range(len(body)):
                wfile.write(body[i:i + 1])
                wfile.flush()
                time.sleep(0.1)
        except OSError:             # the client gave up, as it should
            pass
    server.trickle = trickle
    started = time.monotonic()
    dest = download_file([server.url + "/slow/file.gz", good], tmp_path / "file.gz",
                         sha(b"data"), progress=False, timeout=1, deadline=0.5)
    assert time.monotonic() - started < 3 and dest.read_bytes() == b"data"
    with pytest.raises(DownloadError, match=r"gave up after the deadline of 0.5 s \(\d+ bytes"):
        download_file([server.url + "/slow/file.gz"], tmp_path / "other.gz", sha(b"data"),
                      progress=False, timeout=1, deadline=0.5)
    assert sorted(os.listdir(tmp_path)) == ["file.gz"]


def test_mirrors_from_the_environment_come_first(tmp_path, server, monkeypatch):
    from nnscratch.datasets.loading import env_mirrors
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NNSCRATCH_MIRRORS", f"{server.url}/x/{{name}}/, {server.url}/y/")
    assert env_mirrors("kmnist") == (f"{server.url}/x/kmnist/", f"{server.url}/y/")
    images, labels = tiny_split(n=3)
    files = dict(zip(SPLIT_FILES["test"], (idx_bytes(images), idx_bytes(labels))))
    for fname, data in files.items():
        serve(server, "/y/" + fname, data)
    ds = load("kmnist", "test", sha256={f: sha(d) for f, d in files.items()}, progress=False)
    assert len(ds) == 3
    assert server.hits[:2] == ["/x/kmnist/t10k-images-idx3-ubyte.gz",
                               "/y/t10k-images-idx3-ubyte.gz"]


def test_the_command_line_prints_the_whole_download_failure_in_one_line(tmp_path, server,
                                                                        monkeypatch, capsys):
    import dataclasses

    from nnscratch.cli import main
    from nnscratch.datasets import loading, registry
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NNSCRATCH_DATA_DIR", raising=False)
    monkeypatch.delenv("NNSCRATCH_MIRRORS", raising=False)
    local = dataclasses.replace(registry.REGISTRY["kmnist"], system_dirs=(),
                                mirrors=(server.url + "/a/", server.url + "/b/"))
    monkeypatch.setattr(loading, "get_info", lambda name: local)
    assert main(["train", "vae", "--dataset", "kmnist", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnscratch: error: kmnist: could not download")
    for part in (f"{server.url}/a/train-images-idx3-ubyte.gz: HTTP 404",
                 f"{server.url}/b/train-images-idx3-ubyte.gz: HTTP 404",
                 "To install kmnist by hand", "NNSCRATCH_DATA_DIR"):
        assert part in err[0], part
