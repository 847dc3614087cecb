"""The contract every layer keeps: ``forward``, ``backward``, ``params`` and ``grads``.

* ``y = module.forward(x)`` computes the output and caches exactly what ``backward`` needs.
* ``dx = module.backward(dy)`` takes the upstream gradient dL/dy and returns dL/dx; a module
  with parameters also stores dL/dW, dL/db... in ``module.grads``. It never changes a
  parameter: that is the optimizer's job.
* ``module.params`` maps a name (``"W"``, or ``"0.W"`` inside a :class:`Sequential`) to the
  live parameter array; ``module.grads`` maps the same names to the last gradients.

``backward`` takes two switches that training loops use to skip work nobody needs:
``param_grads=False`` computes dL/dx only and leaves ``grads`` untouched (the GAN's generator
step back-propagates through the discriminator without disturbing it), and
``input_grad=False`` skips dL/dx (the first layer of a network, whose input is data).
``module.clear_grads()`` frees the gradients once the optimizer has used them.

**Buffers** are state that a layer updates itself and that is saved but never optimised: the
running statistics of :class:`~nnscratch.batchnorm.BatchNorm1d`, the power-iteration vector
``u`` of :class:`~nnscratch.spectral.SpectralNormDense`. ``module.buffers`` maps names to
them as ``params`` does to parameters; ``state_dict``, ``load_state_dict`` and ``to`` handle
both, optimizers see only ``params``.

**Training and evaluation mode.** ``module.train()`` and ``module.eval()`` set
``module.training`` on the module and on every sub-module (``named_children``) and return
the module. Layers whose forward differs (dropout, batch normalisation, the power iteration
of spectral normalisation) read the flag; a new module starts in training mode.
"""
from __future__ import annotations

import math
import numbers

from .backend import get_backend, to_numpy


class ShapeError(ValueError):
    """An array of the wrong shape reached a layer or a loss."""


def positive_int(owner, name, value):
    """``value`` as an ``int`` if it is a positive integer; else a ``ValueError`` that names
    ``owner`` and ``name``. A size of 2.5 or True is refused, not truncated to 2 or 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def finite_float(owner, name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a ``float`` if it is a finite real number in the interval given by
    ``low`` and ``high`` (closed unless ``low_open`` / ``high_open``); else a ``ValueError``
    that names ``owner``, ``name`` and the interval."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if ok else math.nan
    ok = math.isfinite(x)
    if ok and low is not None:
        ok = x > low if low_open else x >= low
    if ok and high is not None:
        ok = x < high if high_open else x <= high
    if not ok:
        interval = (("(" if low_open else "[") + ("-inf" if low is None else f"{low:g}") + ", "
                    + ("inf" if high is None else f"{high:g}") + (")" if high_open else "]"))
        raise ValueError(f"{owner}: {name} must be a finite number in {interval}, got {value!r}")
    return x


class Module:
    """Base class of layers and networks."""

    def __init__(self, backend=None):
        self.backend = get_backend() if backend is None else backend
        self.training = True
        self._params = {}
        self._buffers = {}
        self._grads = {}
        self._cache = None

    @property
    def params(self):
        """Name -> live parameter array."""
        return self._params

    @property
    def grads(self):
        """Name -> gradient of the last backward (empty before the first one)."""
        return self._grads

    @property
    def buffers(self):
        """Name -> live buffer (saved, not optimised), sub-modules' names prefixed like params."""
        found = dict(self._buffers)
        for prefix, m in self.named_children().items():
            found.update({f"{prefix}.{k}": a for k, a in m.buffers.items()})
        return found

    def named_children(self):
        """Name -> direct sub-module: every attribute that is a Module, in the order they were
        set (``VAE.enc``, ``VAE.mu``...), which is also how containers prefix the names of
        their parameters. :class:`Sequential` names its layers ``"0"``, ``"1"``..."""
        return {k: m for k, m in vars(self).items() if isinstance(m, Module)}

    def train(self, mode=True):
        """Set training mode (``mode=False``: evaluation mode) here and in every sub-module;
        return self."""
        self.training = bool(mode)
        for m in self.named_children().values():
            m.train(mode)
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``; return self."""
        return self.train(False)

    def clear_grads(self):
        """Free the gradients (``grads`` becomes empty) once the optimizer has used them.

        A training loop that updates several networks in turn calls this after each update,
        so that one network's gradients are not held in memory through the others' steps.
        """
        self._grads.clear()

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, param_grads=True, input_grad=True):
        raise NotImplementedError

    def describe(self):
        return type(self).__name__

    def __repr__(self):
        return self.describe()

    # -- checks shared by all layers ------------------------------------------------
    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{self.describe()}.backward was called before forward: "
                               "run forward on a batch first (backward reads what it cached)")
        return self._cache

    def _check_dy(self, dy, shape):
        if tuple(dy.shape) != tuple(shape):
            raise ShapeError(f"{self.describe()}.backward: the upstream gradient has shape "
                             f"{tuple(dy.shape)}, but the forward output had shape {tuple(shape)}")

    # -- moving and saving ----------------------------------------------------------
    def to(self, backend):
        """Move parameters, buffers and gradients to ``backend`` (e.g. to the GPU) in place;
        return self."""
        for arrays in (self._params, self._buffers, self._grads):
            for name, a in arrays.items():
                arrays[name] = backend.asarray(to_numpy(a), dtype=backend.dtype)
        self.backend = backend
        self._cache = None
        return self

    def state_dict(self):
        """Host (NumPy) copies of the parameters and buffers; the module itself is not moved."""
        return {name: to_numpy(a).copy() for name, a in {**self.params, **self.buffers}.items()}

    def load_state_dict(self, state):
        """Copy values into the existing arrays, so optimizer state keyed on them stays valid.

        ``state`` holds every parameter and buffer, no more (a module without buffers loads
        the states saved before buffers existed)."""
        arrays = {**self.params, **self.buffers}
        missing = set(arrays) - set(state)
        unexpected = set(state) - set(arrays)
        if missing or unexpected:
            raise KeyError(f"{self.describe()}: state does not match the parameters and buffers "
                           f"(missing {sorted(missing)}, unexpected {sorted(unexpected)})")
        for name, a in arrays.items():
            value = state[name]
            if tuple(value.shape) != tuple(a.shape):
                raise ShapeError(f"{self.describe()}: {name!r} has shape "
                                 f"{tuple(a.shape)}, the state holds {tuple(value.shape)}")
            a[...] = self.backend.asarray(value, dtype=a.dtype)

    def n_params(self):
        """The number of scalar parameters."""
        return sum(math.prod(p.shape) for p in self.params.values())


class Sequential(Module):
    """Modules applied one after the other: y = f_L(... f_2(f_1(x))).

    Backward applies the chain rule in reverse order, dL/dh_{l-1} = f_l'(dL/dh_l).
    Parameter names get the index of their layer as a prefix: ``"0.W"``, ``"2.b"``.
    """

    def __init__(self, *layers, backend=None):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        super().__init__(backend if backend is not None else
                         (layers[0].backend if layers else None))
        self.layers = list(layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def named_children(self):
        return {str(i): m for i, m in enumerate(self.layers)}

    def describe(self):
        inner = ", ".join(m.describe() for m in self.layers)
        return f"Sequential({inner})"

    @property
    def params(self):
        return {f"{i}.{k}": p for i, m in enumerate(self.layers) for k, p in m.params.items()}

    @property
    def grads(self):
        return {f"{i}.{k}": g for i, m in enumerate(self.layers) for k, g in m.grads.items()}

    def forward(self, x):
        for m in self.layers:
            x = m.forward(x)
        return x

    def backward(self, dy, param_grads=True, input_grad=True):
        for i in reversed(range(len(self.layers))):
            dy = self.layers[i].backward(dy, param_grads=param_grads,
                                         input_grad=input_grad or i > 0)
        return dy

    def clear_grads(self):
        for m in self.layers:
            m.clear_grads()

    def to(self, backend):
        for m in self.layers:
            m.to(backend)
        self.backend = backend
        return self
