"""The shared training loop (nnscratch.training.loop.fit), driven by a tiny autoencoder trainer that
draws noise from the backend's generator, so that an exact resume must restore it too.

Everything runs on a few hundred random 784-pixel rows: the file takes seconds."""
import json
import os
import signal

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import datasets
from nnscratch.training.checkpoint import load_checkpoint, read_checkpoint
from nnscratch.training.loop import TrainingDiverged, TrainingInterrupted, fit
from nnscratch.training.trainer import Trainer


@Trainer.register
class ToyAE(Trainer):
    """A denoising autoencoder 784 -> hidden -> 784, Adam on the MSE: the smallest trainer
    that has every part of the contract (networks, optimizers, backend noise, sample,
    evaluate)."""

    kind = "toy_ae"

    def __init__(self, config=None, backend=None):
        super().__init__(config or {}, backend)
        self.config = {"hidden": 8, "lr": 1e-2, "noise": 0.1, **self.config}
        self.config.pop("kind", None)
        b = self.backend
        self.net = nn.Sequential(nn.Dense(784, self.config["hidden"], backend=b),
                                 nn.Tanh(backend=b),
                                 nn.Dense(self.config["hidden"], 784, backend=b),
                                 nn.Sigmoid(backend=b))
        self.networks = {"ae": self.net}
        self.optimizers = {"ae": nn.Adam(self.net, lr=self.config["lr"])}

    def step(self, x):
        y = self.net.forward(x + self.backend.normal(tuple(x.shape), self.config["noise"]))
        L, dy = nn.mse(y, x)
        self.net.backward(dy, input_grad=False)
        self.optimizers["ae"].step()
        return {"loss": float(L), "y_mean": float(self.backend.xp.mean(y))}

    def sample(self, n, seed=None):
        b = self.backend if seed is None else nn.Backend(self.backend.name,
                                                         self.backend.dtype_name, seed)
        return nn.to_numpy(self.net.forward(self.backend.asarray(nn.to_numpy(b.uniform((n, 784))))))

    def evaluate(self, x):
        x = self.backend.asarray(np.asarray(x))
        return {"mse": float(nn.mse(self.net.forward(x), x)[0])}


N, B = 96, 16                       # 6 batches an epoch


def toy(seed=0, **config):
    return ToyAE(config, backend=nn.Backend("numpy", seed=seed))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return datasets.Dataset(rng.random((N, 784), dtype=np.float32),
                            rng.integers(0, 10, N), name="random", split="train", source="test",
                            class_names=tuple("abcdefghij"))


@pytest.fixture(scope="module")
def test_data():
    return np.random.default_rng(1).random((40, 784), dtype=np.float32)


def quiet(**kw):
    return {"figures": False, "progress": False, **kw}


def params_of(trainer):
    return {name: nn.to_numpy(p).copy() for name, p in trainer.parameters()}


def assert_same_params(a, b):
    pa, pb = params_of(a), params_of(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


def read_log(out):
    return [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]


# -- what one run writes -----------------------------------------------------------------
def test_fit_writes_log_checkpoint_and_figures(tmp_path, data, test_data, monkeypatch):
    trainer = toy()
    losses = []
    step = trainer.step
    monkeypatch.setattr(trainer, "step", lambda x: losses.append(step(x)["loss"]) or
                        {"loss": losses[-1]})
    records = fit(trainer, data, 2, B, tmp_path, test=test_data, progress=False)
    assert [r["epoch"] for r in records] == [1, 2] and records == read_log(tmp_path)
    assert [r["step"] for r in records] == [6, 12]
    assert records[0]["train_loss"] == pytest.approx(np.mean(losses[:6]))
    assert records[1]["train_loss"] == pytest.approx(np.mean(losses[6:]))
    for key in ("test_mse", "time_s", "img_per_s", "eval_s", "wall_s"):
        assert key in records[1], key
    assert records[1]["wall_s"] > records[0]["wall_s"] > 0
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["epoch", "step", "train_loss", "test_mse"]
    for name in ("checkpoint.npz", "loss.png", "samples.png", "samples/epoch_001.png",
                 "samples/epoch_002.png"):
        assert (tmp_path / name).is_file(), name
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert json.loads(str(read_checkpoint(tmp_path / "checkpoint.npz")["loop/state"]))["epoch"] == 2


def test_batches_follow_the_seeded_order_and_reach_the_backend(tmp_path, data):
    trainer, seen = toy(), []
    step = trainer.step

    def recording_step(x):
        assert trainer.backend.is_array(x) and x.dtype == trainer.backend.dtype
        seen.append(nn.to_numpy(x).copy())
        return step(x)

    trainer.step = recording_step
    fit(trainer, data, 2, B, tmp_path, seed=7, **quiet())
    rng = np.random.default_rng(7)
    expected = [data.x[i] for _ in range(2) for i in datasets.batches(N, B, rng)]
    assert len(seen) == len(expected) == 12
    for got, want in zip(seen, expected):
        np.testing.assert_array_equal(got, want)


def test_plain_arrays_work_and_eval_every(tmp_path, data, test_data):
    records = fit(toy(), data.x, 3, B, tmp_path, test=test_data, eval_every=2, **quiet())
    assert ["test_mse" in r for r in records] == [False, True, True]
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].split(",")[3] == "train_y_mean" and len(rows) == 4
    assert rows[1].split(",")[rows[0].split(",").index("test_mse")] == ""


@pytest.mark.parametrize("epochs, batch, message", [(-1, B, "epochs"), (1, N + 1, "exceeds")])
def test_bad_sizes_are_rejected(tmp_path, data, epochs, batch, message):
    with pytest.raises(ValueError, match=message):
        fit(toy(), data, epochs, batch, tmp_path, **quiet())


def test_progress_bar_shows_loss_and_rate(tmp_path, data):
    import io
    stream = io.StringIO()
    fit(toy(), data, 1, B, tmp_path, figures=False, stream=stream)
    text = stream.getvalue()
    assert "epoch 1/1" in text and "img/s" in text and "loss=" in text and "train_loss=" in text


# -- resume ------------------------------------------------------------------------------
def test_resume_after_k_epochs_is_bit_exact(tmp_path, data, test_data):
    straight = toy()
    fit(straight, data, 3, B, tmp_path / "a", seed=3, test=test_data, **quiet())

    fit(toy(), data, 1, B, tmp_path / "b", seed=3, test=test_data, **quiet())
    resumed, state = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert (state["epoch"], state["batch"], state["step"]) == (1, 0, 6)
    fit(resumed, data, 3, B, tmp_path / "b", loop_state=state, test=test_data, **quiet())
    assert_same_params(straight, resumed)
    assert straight.optimizers["ae"].t == resumed.optimizers["ae"].t == 18
    np.testing.assert_array_equal(straight.backend.normal((3,)), resumed.backend.normal((3,)))
    log_a, log_b = read_log(tmp_path / "a"), read_log(tmp_path / "b")
    assert [r["epoch"] for r in log_b] == [1, 2, 3]
    for ra, rb in zip(log_a, log_b):
        assert {k: v for k, v in ra.items() if not k.endswith("_s")} == \
               {k: v for k, v in rb.items() if not k.endswith("_s")}


def test_resume_from_an_older_checkpoint_rewrites_the_later_log(tmp_path, data):
    fit(toy(), data, 1, B, tmp_path, **quiet())
    older = tmp_path / "epoch1.npz"
    os.replace(tmp_path / "checkpoint.npz", older)
    trainer, state = load_checkpoint(older)
    fit(trainer, data, 2, B, tmp_path, loop_state=state, **quiet())
    trainer, state = load_checkpoint(older)
    fit(trainer, data, 3, B, tmp_path, loop_state=state, **quiet())
    assert [r["epoch"] for r in read_log(tmp_path)] == [1, 2, 3]


# -- Ctrl-C -------------------------------------------------------------------------------
def ctrl_c_after(trainer, calls, times=1):
    """Make the ``calls``-th step of ``trainer`` send itself SIGINT ``times`` times."""
    step, count = trainer.step, {"n": 0}

    def step_then_ctrl_c(x):
        out = step(x)
        count["n"] += 1
        if count["n"] == calls:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return out

    trainer.step = step_then_ctrl_c


def test_ctrl_c_mid_epoch_saves_the_position_and_resumes_exactly(tmp_path, data, test_data):
    straight = toy()
    fit(straight, data, 2, B, tmp_path / "a", test=test_data, **quiet())

    stopped = toy()
    ctrl_c_after(stopped, 9)                       # epoch 2, third batch
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as stop:
        fit(stopped, data, 2, B, tmp_path / "b", test=test_data, **quiet())
    assert signal.getsignal(signal.SIGINT) is handler
    assert (stop.value.epoch, stop.value.batch) == (1, 3)
    trainer, state = load_checkpoint(stop.value.path)
    assert (state["epoch"], state["batch"], state["step"]) == (1, 3, 9)
    with pytest.raises(ValueError, match="batch_size 16 -> 32"):
        fit(trainer, data, 2, 2 * B, tmp_path / "b", loop_state=state, **quiet())
    records = fit(trainer, data, 2, B, tmp_path / "b", loop_state=state, test=test_data,
                  **quiet())
    assert_same_params(straight, trainer)
    assert records[-1]["train_loss"] == read_log(tmp_path / "a")[-1]["train_loss"]


def test_ctrl_c_before_the_first_step_saves_the_start_and_resumes_exactly(
        tmp_path, data, monkeypatch):
    from nnscratch.training import loop

    class CtrlCWhileOpeningTheLog(loop.RunLog):
        def truncate(self, epochs_done):
            os.kill(os.getpid(), signal.SIGINT)
            return super().truncate(epochs_done)

    straight = toy()
    fit(straight, data, 1, B, tmp_path / "a", **quiet())
    monkeypatch.setattr(loop, "RunLog", CtrlCWhileOpeningTheLog)
    with pytest.raises(TrainingInterrupted) as stop:
        fit(toy(), data, 1, B, tmp_path / "b", **quiet())
    monkeypatch.undo()
    assert (stop.value.epoch, stop.value.batch) == (0, 0)
    trainer, state = load_checkpoint(stop.value.path)
    assert (state["epoch"], state["batch"], state["step"]) == (0, 0, 0)
    fit(trainer, data, 1, B, tmp_path / "b", loop_state=state, **quiet())
    assert_same_params(straight, trainer)


def test_ctrl_c_during_evaluation_stops_at_the_epoch_boundary(tmp_path, data, test_data):
    trainer = toy()
    evaluate = trainer.evaluate

    def evaluate_then_ctrl_c(x):
        os.kill(os.getpid(), signal.SIGINT)
        return evaluate(x)

    trainer.evaluate = evaluate_then_ctrl_c
    with pytest.raises(TrainingInterrupted) as stop:
        fit(trainer, data, 3, B, tmp_path, test=test_data, **quiet())
    assert (stop.value.epoch, stop.value.batch) == (1, 0)
    _, state = load_checkpoint(stop.value.path)
    assert (state["epoch"], state["batch"], state["step"]) == (1, 0, 6)
    assert [r["epoch"] for r in read_log(tmp_path)] == [1]


def test_a_second_ctrl_c_stops_at_once(tmp_path, data):
    trainer = toy()
    ctrl_c_after(trainer, 2, times=2)
    with pytest.raises(KeyboardInterrupt) as stop:
        fit(trainer, data, 1, B, tmp_path, **quiet())
    assert type(stop.value) is KeyboardInterrupt
    assert not (tmp_path / "checkpoint.npz").exists()


# -- NaN and Inf ---------------------------------------------------------------------------
def poison(trainer, at_step, how):
    step, count = trainer.step, {"n": 0}

    def poisoned(x):
        count["n"] += 1
        if count["n"] == at_step:
            if how == "raise":
                raise nn.NonFiniteError("bce_with_logits: the loss is nan: s holds NaN at (0, 3)")
            return {"loss": 0.5, "y_mean": float("inf")}
        return step(x)

    trainer.step = poisoned


@pytest.mark.parametrize("how, metric", [("raise", "bce_with_logits"), ("metric", "y_mean = inf")])
def test_nan_stops_with_where_what_and_advice_and_keeps_the_checkpoint(tmp_path, data, how,
                                                                       metric):
    trainer = toy()
    fit(trainer, data, 1, B, tmp_path, **quiet())
    ckpt = tmp_path / "checkpoint.npz"
    before = ckpt.read_bytes()
    trainer, state = load_checkpoint(ckpt)
    poison(trainer, 4, how)
    with pytest.raises(TrainingDiverged) as err:
        fit(trainer, data, 3, B, tmp_path, loop_state=state, **quiet())
    message = str(err.value)
    assert "epoch 2, step 4 of 6 (global step 10)" in message and metric in message
    assert "--lr" in message and str(ckpt) in message and "not overwritten" in message
    assert (err.value.epoch, err.value.step, err.value.checkpoint) == (2, 10, str(ckpt))
    assert ckpt.read_bytes() == before
    assert [r["epoch"] for r in read_log(tmp_path)] == [1]


def test_nan_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path, data):
    trainer = toy()
    poison(trainer, 2, "metric")
    with pytest.raises(TrainingDiverged, match="No checkpoint was saved") as err:
        fit(trainer, data, 1, B, tmp_path, **quiet())
    assert err.value.checkpoint is None and not (tmp_path / "checkpoint.npz").exists()


def test_non_finite_parameters_are_never_saved(tmp_path, data):
    trainer, calls = toy(), []
    step = trainer.step

    def step_that_breaks_a_weight(x):
        out = step(x)
        calls.append(1)
        if len(calls) == N // B:                   # after the last step of the epoch
            trainer.net.params["2.b"][5] = np.nan
        return out

    trainer.step = step_that_breaks_a_weight
    with pytest.raises(TrainingDiverged, match=r"ae/2\.b"):
        fit(trainer, data, 1, B, tmp_path, **quiet())
    assert not (tmp_path / "checkpoint.npz").exists()


# -- figures -----------------------------------------------------------------------------
def test_without_matplotlib_one_warning_and_training_goes_on(tmp_path, data, monkeypatch):
    import io

    from nnscratch.plots import grid

    def no_matplotlib():
        raise ImportError("figures need matplotlib: pip install 'nnscratch[plot]'")

    monkeypatch.setattr(grid, "pyplot", no_matplotlib)
    stream = io.StringIO()
    records = fit(toy(), data, 3, B, tmp_path, progress=False, stream=stream)
    assert len(records) == 3 and (tmp_path / "checkpoint.npz").exists()
    assert stream.getvalue().count("warning: no figures") == 1
    assert "nnscratch[plot]" in stream.getvalue()


def test_a_failing_figure_is_reported_and_training_goes_on(tmp_path, data):
    import io
    trainer, stream = toy(), io.StringIO()

    def broken(out_dir, data, records):
        raise ValueError("bad plot")

    trainer.figures = broken
    assert len(fit(trainer, data, 2, B, tmp_path, progress=False, stream=stream)) == 2
    assert stream.getvalue().count("ValueError: bad plot") == 2


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_sample_grids_use_fixed_noise(kind):
    """The real models' grids: the same draws of z every epoch, whatever the training
    generator did in between, and not the training generator's draws."""
    from nnscratch.models.gan import GANTrainer
    from nnscratch.models.vae import VAETrainer
    b = nn.Backend("numpy", seed=0)
    trainer = VAETrainer({"latent": 2}, backend=b) if kind == "vae" else \
        GANTrainer({"preset": "mlp", "G_hidden": [8], "D_hidden": [8], "latent": 2}, backend=b)
    first = trainer.sample(4, seed=trainer.figure_seed)
    trainer.step(b.uniform((8, 784)))                    # moves the training generator
    trainer.backend.normal((3, 5))
    fresh = VAETrainer if kind == "vae" else GANTrainer
    twin = fresh(trainer.config, backend=nn.Backend("numpy", seed=99))
    twin.load_state_dict({k: v for k, v in trainer.state_dict().items() if k != "rng/backend"})
    np.testing.assert_array_equal(trainer.sample(4, seed=trainer.figure_seed),
                                  twin.sample(4, seed=twin.figure_seed))
    assert not np.array_equal(trainer.sample(4, seed=trainer.figure_seed), first)  # it trained
    assert not np.array_equal(trainer.sample(4), trainer.sample(4))              # seed None


def test_set_lr_reaches_every_optimizer():
    trainer = toy()
    trainer.set_lr(1e-4)
    assert trainer.optimizers["ae"].lr == 1e-4 and trainer.config["lr"] == 1e-4


# -- the GPU path (data and metrics kept on the device), run on the CPU ----------------------
class DeviceScalarsAE(ToyAE):
    """ToyAE returning its metrics as 0-d arrays of the backend, as a trainer on a GPU does
    (:meth:`Trainer.metrics`)."""

    def step(self, x):
        y = self.net.forward(x + self.backend.normal(tuple(x.shape), self.config["noise"]))
        L, dy = nn.mse(y, x)
        self.net.backward(dy, input_grad=False)
        self.optimizers["ae"].step()
        return {"loss": L, "y_mean": self.backend.xp.mean(y)}


def strict_toy(seed=0):
    return DeviceScalarsAE({}, backend=nn.Backend("array_api_strict", seed=seed))


@pytest.mark.parametrize("read_every", [4, 100])
def test_the_device_path_trains_exactly_as_the_host_path(tmp_path, data, monkeypatch,
                                                         read_every):
    """The training set moved once and batches gathered on the device, the metrics read a
    few steps at a time: the same parameters and logged means as batch by batch from the
    host (array-api-strict stands in for CuPy)."""
    from nnscratch.training import loop
    pytest.importorskip("array_api_strict")
    host = strict_toy()
    host_records = fit(host, data, 2, B, tmp_path / "host", **quiet())
    monkeypatch.setattr(loop, "_on_device", lambda backend: True)
    monkeypatch.setattr(loop, "READ_EVERY", read_every)
    device = strict_toy()
    device_records = fit(device, data, 2, B, tmp_path / "device", **quiet())
    assert_same_params(host, device)
    for a, b in zip(host_records, device_records):
        assert a["train_loss"] == b["train_loss"] and a["train_y_mean"] == b["train_y_mean"]


def test_a_nan_read_late_from_the_device_names_its_own_step(tmp_path, data, monkeypatch):
    from nnscratch.training import loop
    pytest.importorskip("array_api_strict")
    monkeypatch.setattr(loop, "_on_device", lambda backend: True)
    trainer = strict_toy()
    step, count = trainer.step, {"n": 0}

    def inf_at_step_3(x):
        count["n"] += 1
        out = step(x)
        return {**out, "y_mean": out["y_mean"] * float("inf")} if count["n"] == 3 else out

    trainer.step = inf_at_step_3
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 3 of 6 \(global step 3\)"):
        fit(trainer, data, 1, B, tmp_path, **quiet())
    assert count["n"] == N // B                  # read after the epoch's last step
    assert not (tmp_path / "checkpoint.npz").exists()


def test_host_floats_fetches_device_scalars_and_keeps_host_values():
    from nnscratch.training.loop import host_floats
    xps = pytest.importorskip("array_api_strict")
    values = [1.5, np.float32(2.5), xps.asarray(3.25), np.asarray(4.0),
              xps.asarray(5.5, dtype=xps.float32)]
    assert host_floats(values) == [1.5, 2.5, 3.25, 4.0, 5.5]
