"""The training loop shared by every model: epochs, batches, progress, log, figures,
checkpoints, Ctrl-C and NaN handling.

The loop owns the order of the data (a NumPy generator seeded from ``seed``); the trainer
owns the model, its optimizers and the backend's generator. Both generators, the position
in the data and every parameter go into ``checkpoint.npz`` after each epoch (and on
Ctrl-C), so resuming gives the same parameters, bit for bit on the CPU, as a run that was
never stopped.

What one epoch does, in order:

1. draw the epoch's permutation with the loop's generator and take one optimisation step
   per batch (a batch is gathered into a reused host buffer and moved to the backend once);
   the progress bar shows the first metrics, images per second and the time left. On a GPU
   the training set is moved to the device once and each batch gathered there, and the
   step metrics stay there until they are read, every few hundred milliseconds: a step never
   waits for the host (the order of the data, and so the result, is the same);
2. average the step metrics over the epoch and, every ``eval_every`` epochs and after the
   last, add ``trainer.evaluate`` on the held-out images;
3. append the record to ``log.jsonl`` / ``log.csv`` and save ``checkpoint.npz``;
4. write the figures (``trainer.figures``; the grid of samples is also kept per epoch in
   ``samples/epoch_<n>.png``).

Ctrl-C (SIGINT) never cuts a step in half: the step that is running finishes, then the loop
saves a checkpoint that records the position *inside* the epoch (the batch index, the
epoch's permutation seed and the running sums of its metrics), so a resumed run continues
with the next batch and ends bit for bit where an uninterrupted run would; a Ctrl-C before
the first step saves the starting position. A second Ctrl-C stops at once without saving.
A NaN or infinite loss stops the run before anything is saved, so the last checkpoint on
disk is the last good state.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import time
import types

import numpy as np

from ..backend import namespace, to_numpy
from ..datasets import batches
from ..losses import NonFiniteError, deferred_finite_checks
from .checkpoint import copy_file_atomic, save_checkpoint
from .progress import ProgressBar
from .rundir import SAMPLES, RunLock, check_fresh, file_kind, remove_stale_temporaries
from .runlog import RunLog

CHECKPOINT = "checkpoint.npz"
#: metrics of a step shown on the progress bar (the first ones the trainer returns)
BAR_METRICS = 3
#: on a GPU, the step metrics are read (one transfer) after this many steps or seconds
READ_EVERY, READ_SECONDS = 100, 0.5


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C arrived; a checkpoint was saved at ``path`` (``epoch`` epochs and ``batch``
    batches of the next one done)."""

    def __init__(self, path, epoch=None, batch=None):
        super().__init__(path)
        self.path, self.epoch, self.batch = path, epoch, batch


class TrainingDiverged(FloatingPointError):
    """A loss or a parameter became NaN or infinite. Nothing was saved; ``checkpoint`` is
    the path of the last good checkpoint (None if there is none yet)."""

    def __init__(self, message, epoch=None, step=None, metric=None, checkpoint=None):
        super().__init__(message)
        self.epoch, self.step, self.metric, self.checkpoint = epoch, step, metric, checkpoint


class _SigintFlag:
    """Turns the first Ctrl-C into a flag the loop checks between steps (a step is never
    cut in half); a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:          # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handler(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def new_loop_state(seed):
    """Where a fresh run starts: epoch 0, batch 0, the data generator seeded with ``seed``.

    Keys: ``seed``; ``epoch`` (epochs done); ``batch`` (batches of the current epoch done,
    non-zero only in a checkpoint saved on Ctrl-C); ``step`` (optimisation steps in all);
    ``data_rng`` (the state of the loop's generator at the start of the current epoch);
    ``sums`` (the current epoch's metric sums so far); ``elapsed`` (its training seconds so
    far); ``wall`` (seconds of the whole run so far, across resumes). :func:`fit` adds
    ``n_train`` and ``batch_size``: a state saved mid-epoch resumes only with the same.
    """
    rng = np.random.default_rng(seed)
    return {"seed": seed, "epoch": 0, "batch": 0, "step": 0,
            "data_rng": rng.bit_generator.state, "sums": {}, "elapsed": 0.0, "wall": 0.0}


def fit(trainer, data, epochs, batch_size, out_dir, seed=0, loop_state=None, test=None,
        eval_every=1, figures=True, progress=True, stream=None, eval_kwargs=None,
        resumed_from=None, overwrite=False, fresh=None):
    """Train ``trainer`` on ``data`` until ``epochs`` epochs are done (counting resumed ones).

    Parameters
    ----------
    trainer : Trainer
    data : Dataset or array
        Training images, ``.x`` (or the array itself) ``(N, 784)`` float32 in [0, 1].
        Batches are ``batch_size`` rows of a fresh permutation each epoch; the last
        ``N mod batch_size`` rows of the permutation are left out (every batch is full).
    epochs : int
        The total to reach; a resumed run at epoch ``e`` trains ``epochs - e`` more.
    out_dir : str or path
        Gets ``checkpoint.npz``, ``log.jsonl``, ``log.csv`` and the figures.
    seed : int
        Seed of the loop's data-order generator (ignored when resuming: it is in the state).
    loop_state : dict, optional
        From :func:`nnscratch.training.checkpoint.load_checkpoint`, to resume; None starts afresh.
    test : Dataset or array, optional
        Held-out images for ``trainer.evaluate`` and for the figures (default: ``data``).
    eval_every : int
        Evaluate on ``test`` after every ``eval_every``-th epoch, and after the last one.
    figures : bool
        Write ``trainer.figures`` after every epoch (needs matplotlib; without it one
        warning is printed and training goes on).
    progress : bool
        Show a progress bar per epoch on ``stream`` (default ``sys.stderr``).
    eval_kwargs : dict, optional
        Extra keyword arguments of ``trainer.evaluate``.
    resumed_from : str, optional
        The checkpoint ``loop_state`` came from, named in the message of a divergence that
        happens before this run saves its own.
    overwrite : bool
        Let a fresh run replace the checkpoint and logs of an earlier run in ``out_dir``
        (otherwise refused: see :mod:`nnscratch.training.rundir`, which also locks
        ``out_dir`` for the run).
    fresh : bool, optional
        Whether this is a new run (checked against ``out_dir`` under its lock); default: a
        new run exactly when no ``loop_state`` is given. The command line passes it, since
        it gives a new run a ``loop_state`` of its own.

    Returns
    -------
    list of dict
        The per-epoch records (also in ``out_dir/log.jsonl`` and ``log.csv``): ``epoch``,
        ``step``, ``train_<metric>`` (the mean over the epoch's steps), ``test_<metric>``,
        ``time_s`` (training seconds of the epoch), ``img_per_s``, ``eval_s``, ``wall_s``
        (seconds since the run began, evaluation and figures included).

    Raises
    ------
    TrainingInterrupted
        On Ctrl-C, after saving a checkpoint.
    TrainingDiverged
        On a NaN/Inf loss or parameter, without overwriting the checkpoint.
    RunDirectoryError
        ``out_dir`` is locked by another run, or holds an earlier run (and not ``overwrite``).
    """
    _check_labelled(trainer, data, test)
    data, test = _as_dataset(data), None if test is None else _as_dataset(test)
    if hasattr(trainer, "check_data"):         # dtype, shape and range, once, on the host
        for name, d in (("the training data", data), ("the test data", test)):
            if d is not None:
                trainer.check_data(d.x, f"fit: {name}")
    # integers: an epochs of 1.5 trained two epochs, a batch_size of True one image
    for name, value, low in (("epochs", epochs, 0), ("batch_size", batch_size, 1),
                             ("eval_every", eval_every, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"fit: {name} must be an integer >= {low}, got {value!r}")
    if len(data.x) < batch_size:
        raise ValueError(f"batch size {batch_size} exceeds the {len(data.x)} training images")
    state = _start_state(seed, loop_state, len(data.x), batch_size)
    os.makedirs(out_dir, exist_ok=True)
    with RunLock(out_dir), _SigintFlag() as sigint:
        fresh = loop_state is None if fresh is None else fresh
        check_fresh(out_dir, resumed_from, overwrite, resuming=not fresh)
        remove_stale_temporaries(out_dir)
        log = RunLog(out_dir)
        records = _sync_log(log, state)
        stream = sys.stderr if stream is None else stream
        run = _Run(trainer, data, batch_size, epochs, out_dir, state, stream, progress,
                   last_good=_last_good(out_dir, loop_state, resumed_from))
        run.sigint = sigint
        while state["epoch"] < epochs:
            run.train_epoch()
            due = test is not None and (state["epoch"] + 1 == epochs
                                        or (state["epoch"] + 1) % eval_every == 0)
            record = run.end_epoch(test if due else None, eval_kwargs or {})
            started = time.perf_counter()
            # the epoch's log line travels in its checkpoint, written first: a run stopped
            # between the two writes gets the line back on resume, never a line too many
            state["record"] = record
            save_checkpoint(run.ckpt, trainer, state)
            run.last_good = run.ckpt
            records = log.append(record)
            if figures:
                run.figures(test if test is not None else data, records)
            state["wall"] += time.perf_counter() - started
            print(_summary(record, epochs), file=stream)
            if sigint.raised:           # Ctrl-C during evaluation or figures: stop here
                save_checkpoint(run.ckpt, trainer, state)
                raise TrainingInterrupted(run.ckpt, state["epoch"], 0)
    return records


def sync_log(out_dir, loop_state):
    """Bring ``out_dir``'s log in line with a checkpoint's ``loop_state`` (under the
    directory's lock) without training: for a finished run whose last log line was not
    written. Returns the records."""
    with RunLock(out_dir):
        return _sync_log(RunLog(out_dir), loop_state)


def _sync_log(log, state):
    """The log cut to the epochs the checkpoint has done, plus the last epoch's line from
    the checkpoint if a stop between the two writes left it out."""
    records = log.truncate(state["epoch"])
    last = state.get("record")
    if last and last["epoch"] == state["epoch"] and \
            (not records or records[-1]["epoch"] < last["epoch"]):
        records = log.append(last)
    return records


#: what a resumed run reads from the loop state (``wall`` came later: 0 when absent)
RESUME_KEYS = ("epoch", "batch", "step", "data_rng", "sums", "elapsed")


def check_resumable(loop_state):
    """Raise ``ValueError`` naming what a resumed run would miss in ``loop_state``."""
    missing = [key for key in RESUME_KEYS if key not in loop_state]
    if missing:
        raise ValueError(f"the loop state to resume lacks {', '.join(map(repr, missing))}: "
                         "not the state of a run (a checkpoint saved by fit has them)")


def _start_state(seed, loop_state, n_train, batch_size):
    state = new_loop_state(seed) if loop_state is None else dict(loop_state)
    check_resumable(state)
    state.setdefault("wall", 0.0)
    shape = {"n_train": n_train, "batch_size": batch_size}
    changed = {k: (state[k], v) for k, v in shape.items() if state.get(k, v) != v}
    if changed and state["batch"]:
        raise ValueError("a checkpoint saved in the middle of an epoch resumes only on the "
                         "same data and batch size; changed: "
                         + ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items()))
    state.update(shape)
    return state


class _Run:
    """The pieces of :func:`fit` that share its state (kept apart for short functions)."""

    def __init__(self, trainer, data, batch_size, epochs, out_dir, state, stream, progress,
                 last_good):
        self.trainer, self.data, self.batch_size, self.epochs = trainer, data, batch_size, epochs
        self.out_dir, self.state, self.stream, self.progress = out_dir, state, stream, progress
        self.ckpt = os.path.join(out_dir, CHECKPOINT)
        self.last_good = last_good
        self.n_batches = len(data.x) // batch_size
        # One host buffer for every batch: a gather into it, then one transfer to the backend.
        self.buffer = np.empty((batch_size,) + tuple(data.x.shape[1:]), dtype=data.x.dtype)
        # On a GPU: the training set moved to the device once, the batches gathered there,
        # and the step metrics read every READ_EVERY steps (see _read_metrics).
        self.on_device = _on_device(trainer.backend)
        self.x_device = trainer.backend.asarray(data.x) if self.on_device else None
        # a conditional model's step also takes the batch's class labels
        self.labels = np.asarray(data.labels) if _conditional(trainer) else None
        self.labels_device = None if self.labels is None or not self.on_device else \
            trainer.backend.asarray(self.labels, dtype=trainer.backend.xp.int64)
        self.pending, self.last_read = [], time.perf_counter()
        self.figures_warned = False
        self.sigint = None

    def train_epoch(self):
        state, b = self.state, self.batch_size
        rng = np.random.default_rng()
        rng.bit_generator.state = state["data_rng"]       # this epoch's permutation
        order = list(batches(len(self.data.x), b, rng))
        first = state["batch"]
        desc = f"epoch {state['epoch'] + 1}/{self.epochs}" + (f" (from batch {first + 1})"
                                                              if first else "")
        bar = ProgressBar(total=(self.n_batches - first) * b, desc=desc, unit="img",
                          stream=self.stream, disable=not self.progress)
        batch = self._batches(order)
        start = time.perf_counter()
        try:
            with deferred_finite_checks(self.on_device):
                for i in range(first, self.n_batches):
                    # Ctrl-C since the last step, or before the first one: save this position
                    if self.sigint is not None and self.sigint.raised:
                        self._read_metrics(bar)
                        self._add_time(time.perf_counter() - start)
                        save_checkpoint(self.ckpt, self.trainer, state)
                        raise TrainingInterrupted(self.ckpt, state["epoch"], state["batch"])
                    self.pending.append((i, self._step(batch(i), i)))
                    state["batch"], state["step"] = i + 1, state["step"] + 1
                    if not self.on_device or self._read_due():
                        self._read_metrics(bar)
                self._read_metrics(bar)
        finally:
            bar.close()
        self._add_time(time.perf_counter() - start)
        state["data_rng"] = rng.bit_generator.state       # the next epoch's order follows

    def _add_time(self, seconds):
        self.state["elapsed"] += seconds
        self.state["wall"] += seconds

    def _batches(self, order):
        """``i -> batch i`` of this epoch as the arguments of ``trainer.step``: ``(x,)`` a
        backend array, gathered into the host buffer and moved (NumPy), or gathered on the
        device from the training set already there; ``(x, labels)`` for a conditional
        model."""
        backend = self.trainer.backend
        if self.x_device is None:
            def batch(i):
                np.take(self.data.x, order[i], axis=0, out=self.buffer)
                x = backend.asarray(self.buffer)
                return (x,) if self.labels is None else (x, self.labels[order[i]])
            return batch
        index = backend.asarray(np.stack(order), dtype=backend.xp.int64)   # once an epoch

        def device_batch(i):
            x = backend.xp.take(self.x_device, index[i, ...], axis=0)
            if self.labels_device is None:
                return (x,)
            return x, backend.xp.take(self.labels_device, index[i, ...], axis=0)
        return device_batch

    def _step(self, args, i):
        try:
            return self.trainer.step(*args)
        except NonFiniteError as err:
            raise self._diverged(i, str(err).split(". Try")[0], "loss") from err

    def _read_due(self):
        return (len(self.pending) >= READ_EVERY
                or time.perf_counter() - self.last_read >= READ_SECONDS)

    def _read_metrics(self, bar):
        """Add the metrics of the steps since the last read to the epoch's sums, each step's
        checked for NaN and Inf, and show the last on the progress bar. On the CPU this runs
        after every step; on a GPU, device scalars are fetched in one transfer every
        ``READ_EVERY`` steps (or ``READ_SECONDS``), so that no step waits for the host."""
        if not self.pending:
            return
        steps, self.pending, self.last_read = self.pending, [], time.perf_counter()
        values = iter(host_floats([v for _, metrics in steps for v in metrics.values()]))
        sums = self.state["sums"]
        for i, metrics in steps:
            metrics = {key: next(values) for key in metrics}
            bad = [k for k, v in metrics.items() if not math.isfinite(v)]
            if bad:
                raise self._diverged(i, ", ".join(f"{k} = {metrics[k]}" for k in bad), bad[0])
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
                if not math.isfinite(sums[key]):        # finite steps whose sum overflowed
                    raise self._diverged(i, f"the epoch's sum of {key} overflowed to "
                                            f"{sums[key]}", key)
        bar.update(self.batch_size * len(steps), **dict(list(metrics.items())[:BAR_METRICS]))

    def _diverged(self, i, what, metric):
        state = self.state
        step = state["step"] - state["batch"] + i + 1      # the global number of step i
        where = (f"epoch {state['epoch'] + 1}, step {i + 1} of {self.n_batches} "
                 f"(global step {step})")
        return TrainingDiverged(f"training diverged in {where}: {what}.\n{self._advice()}",
                                epoch=state["epoch"] + 1, step=step,
                                metric=metric, checkpoint=self.last_good)

    def _advice(self):
        if self.last_good is None:
            return ("No checkpoint was saved before this happened. Try a lower --lr, "
                    "check the data for NaN or Inf, and start again.")
        return (f"Try a lower --lr, check the data for NaN or Inf, or resume from the last "
                f"good checkpoint {self.last_good} (not overwritten by the bad state).")

    def _diverged_epoch(self, record, what, metric):
        return TrainingDiverged(f"training diverged in epoch {record['epoch']}: {what}.\n"
                                f"{self._advice()}", epoch=record["epoch"],
                                step=self.state["step"], metric=metric,
                                checkpoint=self.last_good)

    def end_epoch(self, test, eval_kwargs):
        state = self.state
        record = {"epoch": state["epoch"] + 1, "step": state["step"]}
        record.update({f"train_{k}": v / self.n_batches for k, v in state["sums"].items()})
        bad = [name for name, p in self.trainer.parameters()
               if not bool(self.trainer.backend.xp.all(self.trainer.backend.xp.isfinite(p)))]
        if bad:
            raise self._diverged_epoch(record, f"the parameters {', '.join(bad[:3])} hold "
                                       "NaN or Inf", bad[0])
        t0 = time.perf_counter()
        if test is not None:
            if self.labels is not None:     # a conditional model
                eval_kwargs = {**eval_kwargs, "labels": test.labels}
            record.update({f"test_{k}": v for k, v in
                           self.trainer.evaluate(test.x, **eval_kwargs).items()
                           if isinstance(v, (int, float))})
        # a held-out metric that is NaN or Inf stops the run as a NaN step does (the training
        # sums are checked at each read): nothing of this epoch is saved, no log line reads
        # as fine
        bad = [k for k, v in record.items() if not math.isfinite(v)]
        if bad:
            raise self._diverged_epoch(record, ", ".join(f"{k} = {record[k]}" for k in bad),
                                       bad[0])
        eval_s = time.perf_counter() - t0
        record["time_s"] = round(state["elapsed"], 3)
        record["img_per_s"] = round(self.n_batches * self.batch_size
                                    / max(state["elapsed"], 1e-9), 1)
        record["eval_s"] = round(eval_s, 3)
        state["wall"] += eval_s
        record["wall_s"] = round(state["wall"], 3)
        state.update(epoch=state["epoch"] + 1, batch=0, sums={}, elapsed=0.0)
        return record

    def figures(self, data, records):
        """``trainer.figures``; a failure is reported and training goes on (the checkpoint
        of the epoch is already saved)."""
        try:
            paths = self.trainer.figures(self.out_dir, data, records) or []
            self._keep_samples(paths, records[-1]["epoch"])
        except ImportError as err:
            if not self.figures_warned:
                print(f"nnscratch: warning: no figures ({err}); training goes on",
                      file=self.stream)
                self.figures_warned = True
            return []
        except Exception as err:       # noqa: BLE001 - a plot must not end a long run
            print(f"nnscratch: warning: the figures of epoch {records[-1]['epoch']} failed "
                  f"({type(err).__name__}: {err}); training goes on", file=self.stream)
            return []
        return paths

    def _keep_samples(self, paths, epoch):
        """The epoch's ``samples.png`` also goes to ``samples/epoch_<n>.png`` (written as
        every file of a run is: :func:`copy_file_atomic`; a ``samples`` that is a symbolic
        link or a file is refused, not written through)."""
        for path in paths:
            if os.path.basename(str(path)) == "samples.png":
                history = os.path.join(self.out_dir, SAMPLES)
                kind = file_kind(history)
                if kind not in (None, "a directory"):
                    raise OSError(f"{history} is {kind}, not the folder of the per-epoch "
                                  "samples")
                copy_file_atomic(path, os.path.join(history, f"epoch_{epoch:03d}.png"))


def _on_device(backend):
    """Whether the loop keeps the data and the step metrics on the device (CuPy)."""
    return backend.name == "cupy"


def host_floats(values):
    """``float(v)`` of each value; device scalars are stacked and fetched in one transfer."""
    device = [j for j, v in enumerate(values)
              if not isinstance(v, (int, float, np.generic, np.ndarray))]
    out = list(values)
    if device:
        xp = namespace(values[device[0]])
        fetched = to_numpy(xp.stack([values[j] for j in device]))
        for j, value in zip(device, fetched):
            out[j] = value
    return [float(v) for v in out]


def _conditional(trainer):
    return bool(getattr(trainer, "conditional", False))


def _check_labelled(trainer, data, test):
    """A conditional model trains only on data with class labels (a Dataset, not a bare
    array)."""
    if not _conditional(trainer):
        return
    for name, d in (("the training data", data), ("the test data", test)):
        if d is not None and getattr(d, "labels", None) is None:
            raise ValueError(f"fit: a conditional model needs class labels, and {name} has "
                             "none (give a Dataset with .x and .labels)")


def _as_dataset(data):
    if hasattr(data, "x"):
        return data
    x = np.asarray(data)
    return types.SimpleNamespace(x=x, labels=np.zeros(len(x), np.int64), class_names=None,
                                 name="array")


def _last_good(out_dir, loop_state, resumed_from):
    if resumed_from is not None:
        return str(resumed_from)
    ckpt = os.path.join(out_dir, CHECKPOINT)
    return ckpt if loop_state is not None and os.path.exists(ckpt) else None


def _summary(record, epochs):
    values = "  ".join(f"{k}={v:.4g}" for k, v in record.items()
                       if k.startswith(("train_", "test_")) and isinstance(v, float))
    return (f"epoch {record['epoch']}/{epochs}  {values}  ({record['time_s']:.1f} s, "
            f"{record['img_per_s']:.0f} img/s)")
