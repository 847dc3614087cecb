"""What the shared training loop needs from a model: the :class:`Trainer` contract.

A trainer bundles the networks of one model (the VAE's encoder and decoder, the GAN's
generator and discriminator), their optimizers and the backend, and knows how to take one
optimisation step on a batch. Everything else (epochs, batches, progress bar, logs,
figures, checkpoints, Ctrl-C, NaN detection) is the loop's job, the same for every model.

Subclasses set ``kind``, build ``self.networks`` and ``self.optimizers`` (dicts from a
short name to a Module / an Optimizer) in ``__init__`` and implement ``step``, ``sample``
and ``evaluate``. ``config`` must be JSON-serialisable and enough to rebuild the trainer
(``Trainer.from_config``), which is how a checkpoint is loaded without pickle.

Optional: ``figures(out_dir, data, records)`` writes the PNGs of an epoch. The default
looks for ``epoch_figures`` in ``nnscratch/plots/<kind>.py`` and otherwise draws the loss
curves and a grid of samples from a fixed noise batch (``sample(n, seed=figure_seed)``),
so that the grids of successive epochs show the same draws of ``z``.
"""
from __future__ import annotations

import importlib
import json
import os

import numpy as np

from ..backend import get_backend


class Trainer:
    kind = "base"
    #: seed of the fixed noise batch behind the sample grids of every epoch
    figure_seed = 1234
    #: kind -> subclass, filled by ``register`` so that a checkpoint can name its class.
    registry = {}

    def __init__(self, config, backend=None):
        self.config = dict(config)
        self.backend = get_backend() if backend is None else backend
        self.networks = {}
        self.optimizers = {}

    @classmethod
    def register(cls, subclass):
        cls.registry[subclass.kind] = subclass
        return subclass

    @classmethod
    def from_config(cls, config, backend=None):
        kind = config["kind"]
        if kind not in cls.registry:
            raise ValueError(f"unknown model kind {kind!r} (known: {sorted(cls.registry)})")
        return cls.registry[kind](config, backend=backend)

    # -- what each model implements -------------------------------------------------
    def step(self, x):
        """One optimisation step on a batch ``x`` of shape ``(batch, d)`` (a backend array;
        ``d`` is 784 for images, 2 for the toy GAN's points).

        Returns a dict of losses and diagnostics for the progress bar and log: host floats,
        or on a GPU 0-d device arrays (see :meth:`metrics`), which the loop reads in one
        transfer per progress update.
        """
        raise NotImplementedError

    def metrics(self, **values):
        """What ``step`` returns: ``values`` (0-d arrays) as host floats on the CPU; on CuPy
        as they are, on the device, because ``float`` would make every step wait for the GPU
        (the training loop reads them, a few hundred steps at a time)."""
        if self.backend.name == "cupy":
            return values
        return {key: float(value) for key, value in values.items()}

    def sample(self, n, seed=None):
        """``n`` generated samples as a host array of shape ``(n, d)`` (images in [0, 1]).

        ``seed`` None draws the noise from the training generator; an integer draws it from
        a fresh generator with that seed (the same images on every call: fixed noise).
        """
        raise NotImplementedError

    def evaluate(self, x):
        """Metrics on held-out data ``x`` (host array ``(N, d)``), as a dict of floats."""
        raise NotImplementedError

    # -- optional hooks, with defaults -------------------------------------------------
    def figures(self, out_dir, data, records):
        """Write this epoch's PNG figures into ``out_dir``; return their paths.

        ``data``: a Dataset (``.x``, ``.labels``) of held-out images; ``records``: the log
        so far (a list of per-epoch dicts, the last one this epoch's). The default uses
        ``nnscratch.plots.<kind>.epoch_figures`` when that module exists, else writes
        ``loss.png`` (every ``train_*``/``test_*`` metric) and ``samples.png`` (64 samples
        from the fixed noise of :attr:`figure_seed`). Raises ImportError without matplotlib.
        """
        try:
            module = importlib.import_module(f"nnscratch.plots.{self.kind}")
        except ModuleNotFoundError as err:
            if err.name != f"nnscratch.plots.{self.kind}":
                raise
            module = None
        if module is not None and hasattr(module, "epoch_figures"):
            return module.epoch_figures(self, out_dir, data, records)
        from ..plots.grid import metric_keys, save_curves, save_image_grid
        return [save_curves(records, metric_keys(records), os.path.join(out_dir, "loss.png"),
                            title=self.kind),
                save_image_grid(self.sample(64, seed=self.figure_seed),
                                os.path.join(out_dir, "samples.png"), nrow=8,
                                title=f"samples, fixed noise, epoch {records[-1]['epoch']}")]

    def set_lr(self, lr):
        """Give every optimizer the learning rate ``lr`` (and record it in ``config``), e.g.
        to resume a diverged run from its last checkpoint with a smaller step."""
        for opt in self.optimizers.values():
            opt.lr = float(lr)
        self.config["lr"] = float(lr)

    def parameters(self):
        """``(name, live array)`` for every parameter of every network, ``"<net>/<param>"``."""
        for key, net in self.networks.items():
            for name, p in net.params.items():
                yield f"{key}/{name}", p

    # -- moving and saving, the same for every model --------------------------------
    def to(self, backend):
        """Move every network together with its optimizer state."""
        moved = set()
        for opt in self.optimizers.values():
            opt.to(backend)
            moved.add(id(opt.module))
        for net in self.networks.values():
            if id(net) not in moved:
                net.to(backend)
        self.backend = backend
        return self

    def state_dict(self):
        """Flat dict of host arrays: ``net/<net>/<param>``, ``opt/<opt>/<slot>``, config, RNG."""
        state = {"config": np.asarray(json.dumps({**self.config, "kind": self.kind}))}
        for key, net in self.networks.items():
            for name, p in net.state_dict().items():
                state[f"net/{key}/{name}"] = p
        for key, opt in self.optimizers.items():
            for name, a in opt.state_dict().items():
                state[f"opt/{key}/{name}"] = a
        state["rng/backend"] = np.asarray(self.backend.rng_state())
        return state

    def load_state_dict(self, state):
        for key, net in self.networks.items():
            prefix = f"net/{key}/"
            net.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                                 if k.startswith(prefix)})
        for key, opt in self.optimizers.items():
            prefix = f"opt/{key}/"
            opt.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                                 if k.startswith(prefix)})
        if "rng/backend" in state:
            self.backend.set_rng_state(str(state["rng/backend"]))
