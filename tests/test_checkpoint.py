"""Checkpoints: what the .npz holds, exact round trips, atomic writes, clear errors."""
import json
import os
import stat

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.training import checkpoint
from nnscratch.training.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from nnscratch.training.loop import new_loop_state
from test_loop import ToyAE, toy


def trained(steps=3, seed=0):
    """A toy trainer after a few steps, so the optimizer state is not empty."""
    trainer = toy(seed)
    x = trainer.backend.uniform((8, 784))
    for _ in range(steps):
        trainer.step(x)
    return trainer


def loop_state():
    state = new_loop_state(11)
    state.update(epoch=2, batch=3, step=27, sums={"loss": 1.5}, run={"dataset": "x"})
    return state


def test_the_file_holds_everything_as_plain_arrays(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.npz", trained(), loop_state())
    with np.load(path, allow_pickle=False) as f:
        files = set(f.files)
        assert {"net/ae/0.W", "net/ae/0.b", "net/ae/2.W", "net/ae/2.b", "opt/ae/t",
                "opt/ae/m/0.W", "opt/ae/v/2.b", "rng/backend", "config", "loop/state",
                "loop/format"} <= files
        for key in ("config", "loop/state", "rng/backend"):
            assert f[key].shape == () and f[key].dtype.kind == "U", key
        assert int(f["loop/format"]) == FORMAT_VERSION and int(f["opt/ae/t"]) == 3
        config = json.loads(str(f["config"]))
        assert config == {"hidden": 8, "lr": 1e-2, "noise": 0.1, "kind": "toy_ae"}
        state = json.loads(str(f["loop/state"]))
        assert state["data_rng"]["bit_generator"] == "PCG64" and state["step"] == 27


def test_round_trip_restores_parameters_optimizer_and_generators(tmp_path):
    original = trained()
    path = save_checkpoint(tmp_path / "c.npz", original, loop_state())
    restored, state = load_checkpoint(path)
    assert isinstance(restored, ToyAE) and restored is not original
    assert state == json.loads(json.dumps(loop_state()))
    a, b = original.state_dict(), restored.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # the same next step: same noise from the backend generator, same Adam moments
    x = np.random.default_rng(5).random((8, 784), dtype=np.float32)
    assert original.step(original.backend.asarray(x)) == restored.step(restored.backend.asarray(x))
    np.testing.assert_array_equal(nn.to_numpy(original.net.params["0.W"]),
                                  nn.to_numpy(restored.net.params["0.W"]))


def test_load_onto_a_given_backend(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", trained(), loop_state())
    b64 = nn.Backend("numpy", "float64")
    restored, _ = load_checkpoint(path, backend=b64)
    assert restored.backend is b64 and restored.net.params["0.W"].dtype == np.float64


def test_the_real_models_round_trip(tmp_path):
    from nnscratch.models.gan import GANTrainer
    from nnscratch.models.vae import VAETrainer
    b = nn.Backend("numpy", seed=0)
    for trainer in (VAETrainer({"preset": "classic", "latent": 2}, backend=b),
                    GANTrainer({"preset": "toy", "k": 2}, backend=b)):
        x = b.uniform((8, trainer.config.get("data_dim", 784)))
        trainer.step(x)
        path = save_checkpoint(tmp_path / f"{trainer.kind}.npz", trainer, new_loop_state(0))
        restored, _ = load_checkpoint(path, kind=trainer.kind)
        assert restored.config == trainer.config
        np.testing.assert_array_equal(restored.sample(5, seed=1), trainer.sample(5, seed=1))
        assert restored.step(x) == trainer.step(x)


def test_the_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, trained(1), loop_state())
    before = path.read_bytes()
    synced = []
    real_fsync = os.fsync

    def fsync(fd):              # what was synced: the data, then the rename in the directory
        mode = os.fstat(fd).st_mode
        synced.append("dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "?")
        real_fsync(fd)
    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    save_checkpoint(path, trained(2), loop_state())
    assert synced == ["file", "dir"] and os.listdir(tmp_path) == ["checkpoint.npz"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask     # like any new file

    def savez_that_dies(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt                     # Ctrl-C in the middle of the write

    after_two = path.read_bytes()
    monkeypatch.setattr(checkpoint.np, "savez", savez_that_dies)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, trained(3), loop_state())
    assert path.read_bytes() == after_two != before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


@pytest.fixture
def good(tmp_path):
    return save_checkpoint(tmp_path / "good.npz", trained(1), loop_state())


def test_missing_and_corrupt_files_are_named(tmp_path, good):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a zip file")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "text.npz")
    raw = open(good, "rb").read()
    (tmp_path / "cut.npz").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "cut.npz")
    with pytest.raises(CheckpointError, match="not written by nnscratch"):
        load_checkpoint(write_npz(tmp_path / "other.npz", W=np.zeros(3)))


def test_a_different_model_or_format_is_refused(tmp_path, good):
    with pytest.raises(CheckpointError, match="holds a 'toy_ae' model, not a 'vae' one"):
        load_checkpoint(good, kind="vae")
    state = dict(read_checkpoint(good))
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(write_npz(tmp_path / "future.npz", **{**state,
                                                              "loop/format": np.asarray(99)}))
    config = np.asarray(json.dumps({"kind": "diffusion"}))
    with pytest.raises(CheckpointError, match="kind 'diffusion'"):
        load_checkpoint(write_npz(tmp_path / "kind.npz", **{**state, "config": config}))
    config = np.asarray(json.dumps({"kind": "toy_ae", "hidden": 5}))
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_checkpoint(write_npz(tmp_path / "shape.npz", **{**state, "config": config}))
    with pytest.raises(CheckpointError, match="unreadable config"):
        load_checkpoint(write_npz(tmp_path / "json.npz", **{**state, "config": np.asarray("{")}))


def test_a_non_finite_checkpoint_is_never_written(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.npz", trained(1), loop_state())
    before = path.read_bytes()
    trainer = trained(2)
    trainer.net.params["2.b"][3] = np.inf
    with pytest.raises(CheckpointError, match=r"'net/ae/2.b' holds NaN or Inf \(1 of 784"):
        save_checkpoint(path, trainer, loop_state())
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["checkpoint.npz"]


@pytest.mark.parametrize("key", ["net/ae/0.W", "opt/ae/v/2.b"])
def test_a_non_finite_checkpoint_is_refused_on_load_naming_the_array(tmp_path, good, key):
    state = dict(read_checkpoint(good))
    state[key] = state[key].copy()
    state[key].flat[0] = np.nan
    with pytest.raises(CheckpointError, match=f"{key!r} holds NaN or Inf"):
        load_checkpoint(write_npz(tmp_path / "nan.npz", **state))


def edited(tmp_path, good, name, **changes):
    state = dict(read_checkpoint(good))
    loop = json.loads(str(state["loop/state"]))
    for key, value in changes.items():
        if key == "loop":
            loop.update(value)
        else:
            state[key] = value
    state["loop/state"] = np.asarray(json.dumps(loop))
    return write_npz(tmp_path / name, **state)


@pytest.mark.parametrize("changes, message", [
    ({"config": np.asarray("[1, 2]")}, "'config' is JSON list, not an object"),
    ({"config": np.asarray('{"kind": "toy_ae", "hidden": 0}')}, "config that builds no model"),
    ({"loop": {"epoch": "x"}}, "'epoch' is 'x', not an integer >= 0"),
    ({"loop": {"epoch": -3}}, "'epoch' is -3, not an integer >= 0"),
    ({"loop": {"batch": 1.5}}, "'batch' is 1.5"),
    ({"loop": {"sums": [1]}}, "'sums' is not a JSON object"),
    ({"opt/ae/m/0.W": np.zeros((3, 3), np.float32)}, r"'opt/ae/m/0.W' has shape \(3, 3\)"),
])
def test_an_edited_checkpoint_is_refused_in_one_message(tmp_path, good, changes, message):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(edited(tmp_path, good, "edited.npz", **changes))


def test_a_directory_or_random_bytes_are_named_for_what_they_are(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory; name the file in it"):
        load_checkpoint(tmp_path)
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="not a zip header") as err:
        load_checkpoint(tmp_path / "random.npz")
    assert "pickle" not in str(err.value)
