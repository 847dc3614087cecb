"""Array operations and host round trips of one training step, counted on the CPU.

On a GPU a small step is bound by what the host does, not by the arithmetic: CuPy spends
some 10 to 20 microseconds of Python and driver time on every kernel it launches, and
every ``float`` or ``bool`` of a device value stops the host until the GPU has caught up.
Both can be counted without a GPU. This script runs a trainer's step on NumPy with every
array wrapped in :class:`Counted`, an ``ndarray`` subclass that counts

- **launches**: each ufunc call (operators included), each array function (``concat``,
  ``sum``, ``astype``...), each array created from nothing (``zeros``, a random draw), each
  gather (``a[idx]``) and each assignment into an array: what CuPy would turn into one
  kernel each. Views (``reshape``, ``.T``, slices) launch nothing and are not counted;
- **syncs**: each ``float``, ``bool``, ``int``, ``.item()`` or ``.tolist()`` of an array,
  and each copy to the host through ``nnscratch.backend.to_numpy``.

It mimics what the CuPy backend does differently from NumPy: the optimizers' update counts
one launch per parameter (the fused kernel of ``nnscratch.optim.ADAM_CUDA``; on NumPy it is
several lines per block), each formula of ``nnscratch.fused`` counts one launch (its CUDA
form), ``Trainer.metrics`` leaves the values as arrays, and the losses' finite checks are
deferred as the training loop defers them on a device. Each launch is
charged to the first frame of the ``nnscratch`` package on the stack, so the table says
which function issues them::

    python benchmarks/launch_count.py                   # the three models of bench_steps.py
    python benchmarks/launch_count.py --models seed --recipe stable --by-function
    BENCH_NNSCRATCH_TREE=/tmp/old python benchmarks/launch_count.py    # another checkout

The count is a model of the GPU, not a measurement on it: a cuBLAS product may launch more
than one kernel, and CuPy caches nothing across calls that this would miss. It tells which
change removes launches; ``bench_steps.py --devices gpu`` tells what that is worth.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import sys
import threading
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# the checkout to count; BENCH_NNSCRATCH_TREE=DIR counts another (an older commit's tree)
TREE = Path(os.environ.get("BENCH_NNSCRATCH_TREE", str(HERE.parent))).resolve()
sys.path.insert(0, str(TREE))

import nnscratch as nn  # noqa: E402
from nnscratch import optim  # noqa: E402
from nnscratch.losses import deferred_finite_checks  # noqa: E402

try:
    from nnscratch import fused  # noqa: E402
except ImportError:            # a tree from before the fused kernels
    fused = None

PACKAGE = str(TREE / "nnscratch")
#: Functions of the array module that return views or metadata on CuPy: no kernel.
NO_KERNEL = {"reshape", "permute_dims", "matrix_transpose", "expand_dims", "squeeze",
             "broadcast_to", "shape", "ndim", "result_type", "can_cast", "isdtype", "finfo",
             "iinfo", "asarray", "ascontiguousarray", "may_share_memory", "shares_memory"}


class Tally(threading.local):
    """Counts of one measurement: launches and syncs by function, and a nesting depth (an
    array function that calls ufuncs inside counts once)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.launches = collections.Counter()
        self.syncs = collections.Counter()
        self.depth = 0
        self.in_optimizer = False

    def where(self):
        """``module:function`` of the innermost nnscratch frame calling in."""
        frame = sys._getframe(2)
        while frame is not None:
            path = frame.f_code.co_filename
            if path.startswith(PACKAGE):
                module = path[len(PACKAGE) + 1:-3].replace("/", ".")
                return f"{module}:{frame.f_code.co_name}"
            frame = frame.f_back
        return "(outside nnscratch)"

    def launch(self):
        if self.depth == 0 and not self.in_optimizer:
            self.launches[self.where()] += 1

    def sync(self):
        self.syncs[self.where()] += 1


TALLY = Tally()


def _plain(a):
    return a.view(np.ndarray) if isinstance(a, Counted) else a


def _counted(a):
    if isinstance(a, np.generic):          # NumPy's reductions return scalars; CuPy's, arrays
        a = np.asarray(a)
    if isinstance(a, np.ndarray) and not isinstance(a, Counted):
        return a.view(Counted)
    if isinstance(a, tuple):
        return tuple(_counted(x) for x in a)
    return a


class Counted(np.ndarray):
    """A NumPy array that counts the operations made on it (see the module docstring)."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        TALLY.launch()
        inputs = tuple(_plain(a) for a in inputs)
        if out is not None:
            kwargs["out"] = tuple(_plain(a) for a in out)
        TALLY.depth += 1
        try:
            result = getattr(ufunc, method)(*inputs, **kwargs)
        finally:
            TALLY.depth -= 1
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _counted(result)

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ not in NO_KERNEL:
            TALLY.launch()
        TALLY.depth += 1
        try:
            result = super().__array_function__(func, types, args, kwargs)
        finally:
            TALLY.depth -= 1
        return _counted(result)

    def __getitem__(self, index):
        gather = isinstance(index, np.ndarray) or (
            isinstance(index, tuple) and any(isinstance(i, np.ndarray) for i in index))
        if gather:
            TALLY.launch()
        return _counted(super().__getitem__(index))

    def __setitem__(self, index, value):
        TALLY.launch()
        super().__setitem__(index, _plain(value))

    def astype(self, *args, **kwargs):
        TALLY.launch()
        return _counted(_plain(self).astype(*args, **kwargs))

    def copy(self, *args, **kwargs):
        TALLY.launch()
        return _counted(_plain(self).copy(*args, **kwargs))

    def __float__(self):
        TALLY.sync()
        return float(_plain(self))

    def __bool__(self):
        TALLY.sync()
        return bool(_plain(self))

    def __int__(self):
        TALLY.sync()
        return int(_plain(self))

    def item(self, *args):
        TALLY.sync()
        return _plain(self).item(*args)

    def tolist(self):
        TALLY.sync()
        return _plain(self).tolist()


class CountedNumpy:
    """NumPy as an array module whose results are :class:`Counted`; a function that makes
    an array from no array (``zeros``, ``full``) counts one launch."""

    def __getattr__(self, name):
        attr = getattr(np, name)
        if not callable(attr) or isinstance(attr, type):
            return attr

        def call(*args, **kwargs):
            before = sum(TALLY.launches.values())
            result = attr(*args, **kwargs)
            created = isinstance(result, np.ndarray) and not isinstance(result, Counted)
            if created and sum(TALLY.launches.values()) == before and name not in NO_KERNEL:
                TALLY.launch()
            return _counted(result)
        return call


def counting_backend(seed=0):
    """A NumPy float32 backend whose arrays are :class:`Counted` (draws count one launch)."""
    backend = nn.Backend("numpy", "float32", seed=seed)
    backend.xp = CountedNumpy()
    plain_from_rng = backend._from_rng

    def from_rng(a):
        TALLY.launch()
        return _counted(plain_from_rng(a))
    backend._from_rng = from_rng
    return backend


@contextlib.contextmanager
def as_on_a_device(trainer, fuse=True, defer=True):
    """The CuPy backend's behaviour around ``trainer``: one launch per parameter in each
    optimizer step and (if ``fuse``) per formula of :mod:`nnscratch.fused`, metrics left
    as arrays, finite checks deferred (unless not ``defer``: then each loss checks its value
    on the host, as outside the training loop). ``fuse=False``: as ``NNSCRATCH_FUSED=0``."""
    original_step = optim.Optimizer.step

    def fused_step(self):
        TALLY.in_optimizer = True
        try:
            original_step(self)
        finally:
            TALLY.in_optimizer = False
        for _ in self.module.params:
            TALLY.launches["optim:Optimizer.step (fused, 1 per parameter)"] += 1

    original_run = fused.run if fused else None

    def one_kernel(kernel, args):
        if TALLY.depth == 0 and not TALLY.in_optimizer:     # Adam's is counted per parameter
            TALLY.launches[f"fused:{kernel.name} (1 kernel)"] += 1
        TALLY.depth += 1
        try:
            return _counted(kernel.function(*args))
        finally:
            TALLY.depth -= 1

    plain_to_numpy = nn.backend.to_numpy

    def to_host(a):                      # on CuPy a copy from the device: the host waits
        if isinstance(a, Counted):
            TALLY.sync()
        return plain_to_numpy(a)
    importers = [m for name, m in list(sys.modules.items()) if name.startswith("nnscratch")
                 and getattr(m, "to_numpy", None) is plain_to_numpy]

    optim.Optimizer.step = fused_step
    for module in importers:
        module.to_numpy = to_host
    if fuse and fused:
        fused.run = one_kernel
    trainer.metrics = lambda **values: values
    try:
        with deferred_finite_checks(defer):
            yield
    finally:
        optim.Optimizer.step = original_step
        for module in importers:
            module.to_numpy = plain_to_numpy
        if fused:
            fused.run = original_run
        del trainer.metrics


def build(model, recipe):
    """The trainer of ``bench_steps.py`` for ``model`` on a counting backend, and a batch."""
    backend = counting_backend()
    if model == "vae":
        trainer = nn.VAETrainer({"preset": "classic"}, backend=backend)
        batch = 128
    else:
        trainer = nn.GANTrainer({"preset": model, "recipe": recipe, "lr": 2e-4,
                                 "betas": [0.5, 0.999]}, backend=backend)
        batch = 64
    x = np.random.default_rng(0).random((batch, 784), dtype=np.float32)
    return trainer, backend.asarray(x)


def count_step(trainer, x, warmup=2, fuse=True, defer=True):
    """Launches and syncs of one ``trainer.step(x)`` after ``warmup`` untimed steps (the
    optimizers create their state in the first): two Counters keyed by function."""
    with as_on_a_device(trainer, fuse, defer):
        for _ in range(warmup):
            trainer.step(x)
        TALLY.reset()
        trainer.step(x)
        launches, syncs = TALLY.launches, TALLY.syncs
        TALLY.reset()
    return launches, syncs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="vae,mlp,seed")
    ap.add_argument("--recipe", default="none", help="GAN recipe (bench_steps.py times 'none')")
    ap.add_argument("--by-function", action="store_true", help="the launches of each function")
    ap.add_argument("--no-fused", action="store_true",
                    help="count the Python bodies of nnscratch.fused (NNSCRATCH_FUSED=0)")
    ap.add_argument("--checks", action="store_true",
                    help="the losses check their values on the host (trainer.step called "
                         "outside the training loop), instead of deferring as the loop does")
    ap.add_argument("--json", help="add the counts to this file, under --label")
    ap.add_argument("--label", default="now", help="the key of these counts in --json")
    args = ap.parse_args(argv)
    out = {}
    print("| model | launches per step | host syncs per step |\n| --- | ---: | ---: |")
    for model in args.models.split(","):
        launches, syncs = count_step(*build(model, args.recipe), fuse=not args.no_fused,
                                     defer=not args.checks)
        out[model] = {"launches": sum(launches.values()), "syncs": sum(syncs.values()),
                      "by_function": dict(launches.most_common()), "syncs_by": dict(syncs)}
        print(f"| {model} | {out[model]['launches']} | {out[model]['syncs']} |")
    if args.by_function:
        for model, counts in out.items():
            print(f"\n{model}:")
            for where, n in counts["by_function"].items():
                print(f"  {n:4d}  {where}")
            for where, n in counts["syncs_by"].items():
                print(f"  sync {n:4d}  {where}")
    if args.json:
        path = Path(args.json)
        saved = json.loads(path.read_text()) if path.exists() else {}
        saved[args.label] = {"recipe": args.recipe, "fused": not args.no_fused,
                             "finite_checks_deferred": not args.checks,
                             "tree": str(TREE), "models": out}
        path.write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main()
