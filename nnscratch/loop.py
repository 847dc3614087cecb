"""The training loop shared by every model: epochs, batches, progress, log, figures,
checkpoints, Ctrl-C and NaN handling.

The loop owns the order of the data (a NumPy generator seeded from ``seed``); the trainer
owns the model, its optimizers and the backend's generator. Both generators, the position
in the data and every parameter go into ``checkpoint.npz`` after each epoch (and on
Ctrl-C), so resuming gives the same parameters, bit for bit on the CPU, as a run that was
never stopped.
"""
from __future__ import annotations

import importlib
import math
import os
import signal
import sys
import time
import warnings

import numpy as np

from .checkpoint import save_checkpoint
from .datasets import batches
from .losses import NonFiniteError
from .progress import ProgressBar
from .runlog import RunLog

CHECKPOINT = "checkpoint.npz"
#: kind -> module with ``epoch_figures(trainer, out_dir, data, records)``
FIGURE_HOOKS = {"vae": "nnscratch.plots.vae", "gan": "nnscratch.plots.gan"}


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C arrived; a checkpoint was saved at ``path``."""

    def __init__(self, path):
        super().__init__(path)
        self.path = path


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint was left in place."""


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
    """Where a fresh run starts: epoch 0, batch 0, the data generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    return {"seed": seed, "epoch": 0, "batch": 0, "step": 0,
            "data_rng": rng.bit_generator.state, "sums": {}, "elapsed": 0.0}


def fit(trainer, data, epochs, batch_size, out_dir, seed=0, loop_state=None, test=None,
        figures=True, progress=True, stream=None, eval_kwargs=None):
    """Train ``trainer`` on ``data.x`` for ``epochs`` epochs (in total, counting resumed ones).

    Parameters
    ----------
    trainer : Trainer
    data : Dataset
        Training images (``.x`` ``(N, 784)`` float32 in [0, 1]).
    loop_state : dict, optional
        From :func:`nnscratch.checkpoint.load_checkpoint`, to resume; None starts afresh.
    test : Dataset, optional
        Held-out images for ``trainer.evaluate`` after each epoch and for figures.

    Returns
    -------
    list of dict
        The per-epoch records (also in ``out_dir/log.jsonl`` and ``log.csv``).

    Raises
    ------
    TrainingInterrupted
        On Ctrl-C, after saving a checkpoint.
    TrainingDiverged
        On a NaN/Inf loss, without overwriting the checkpoint.
    """
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1 (got {epochs}, {batch_size})")
    if len(data.x) < batch_size:
        raise ValueError(f"batch size {batch_size} exceeds the {len(data.x)} training images")
    os.makedirs(out_dir, exist_ok=True)
    state = new_loop_state(seed) if loop_state is None else dict(loop_state)
    log = RunLog(out_dir)
    log.truncate(state["epoch"])
    stream = sys.stderr if stream is None else stream
    ckpt = os.path.join(out_dir, CHECKPOINT)
    n_batches = len(data.x) // batch_size
    with _SigintFlag() as sigint:
        while state["epoch"] < epochs:
            _run_epoch(trainer, data, batch_size, n_batches, state, epochs, sigint, ckpt,
                       progress, stream)
            record = _end_epoch(trainer, state, n_batches, test, eval_kwargs or {})
            log.append(record)
            save_checkpoint(ckpt, trainer, state)
            if figures:
                _figures(trainer, out_dir, test if test is not None else data, log.read(), stream)
            print(_summary(record, epochs), file=stream)
    return log.read()


def _run_epoch(trainer, data, batch_size, n_batches, state, epochs, sigint, ckpt, progress,
               stream):
    rng = np.random.default_rng()
    rng.bit_generator.state = state["data_rng"]          # the order of this epoch
    order = list(batches(len(data.x), batch_size, rng))
    start = time.perf_counter()
    bar = ProgressBar(total=n_batches * batch_size, desc=f"epoch {state['epoch'] + 1}/{epochs}",
                      unit="img", stream=stream, disable=not progress)
    bar.update(state["batch"] * batch_size)
    try:
        for i in range(state["batch"], n_batches):
            metrics = _checked_step(trainer, data.x[order[i]], state, i)
            for key, value in metrics.items():
                state["sums"][key] = state["sums"].get(key, 0.0) + value
            state["batch"], state["step"] = i + 1, state["step"] + 1
            bar.update(batch_size, **{k: v for k, v in list(metrics.items())[:3]})
            if sigint.raised:
                state["elapsed"] += time.perf_counter() - start
                save_checkpoint(ckpt, trainer, state)
                raise TrainingInterrupted(ckpt)
    finally:
        bar.close()
    state["elapsed"] += time.perf_counter() - start
    state["data_rng"] = rng.bit_generator.state           # the next epoch's order follows


def _checked_step(trainer, x, state, i):
    where = f"epoch {state['epoch'] + 1}, step {i + 1} of the epoch (global step {state['step'] + 1})"
    advice = ("Try a lower --lr, check the data for NaN, or resume from the last good "
              "checkpoint (it was not overwritten).")
    try:
        metrics = trainer.step(x)
    except NonFiniteError as err:
        raise TrainingDiverged(f"training diverged at {where}: {err}") from err
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise TrainingDiverged(f"training diverged at {where}: {', '.join(bad)} = "
                               f"{metrics[bad[0]]}. {advice}")
    return metrics


def _end_epoch(trainer, state, n_batches, test, eval_kwargs):
    record = {"epoch": state["epoch"] + 1, "step": state["step"]}
    record.update({f"train_{k}": v / n_batches for k, v in state["sums"].items()})
    if test is not None:
        record.update({f"test_{k}": v for k, v in trainer.evaluate(test.x, **eval_kwargs).items()
                       if isinstance(v, (int, float))})
    record["time_s"] = round(state["elapsed"], 3)
    state.update(epoch=state["epoch"] + 1, batch=0, sums={}, elapsed=0.0)
    return record


def _figures(trainer, out_dir, data, records, stream):
    try:
        hook = importlib.import_module(FIGURE_HOOKS[trainer.kind]).epoch_figures
        hook(trainer, out_dir, data, records)
    except ImportError as err:
        if not getattr(_figures, "warned", False):
            warnings.warn(f"no figures written: {err}", stacklevel=2)
            _figures.warned = True


def _summary(record, epochs):
    values = "  ".join(f"{k}={v:.4g}" for k, v in record.items()
                       if k not in ("epoch", "step") and isinstance(v, float))
    return f"epoch {record['epoch']}/{epochs}  {values}"

