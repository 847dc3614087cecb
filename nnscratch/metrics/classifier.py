r"""A dense image classifier whose penultimate layer is the feature space of the Frechet
distance (:mod:`nnscratch.metrics.frechet`): this project's stand-in for the Inception network of
the FID (Heusel et al., 2017), built and trained with nnscratch itself.

Model, eq. (clf-1), for images ``x`` ``(batch, 784)`` in [0, 1]:

.. math:: h = \mathrm{relu}(\mathrm{relu}(x W_1 + b_1) W_2 + b_2), \qquad
          s = h W_3 + b_3, \qquad \hat y = \arg\max_k s_k

``h`` ``(batch, 128)`` are the *features*, ``s`` ``(batch, 10)`` the class logits and
:math:`\hat y` the predicted class. Training minimises the softmax
cross-entropy of eq. (softmax-2) with Adam (eq. adam-5).

Why 784-256-128-10 with ReLU, batch 256, Adam at 2e-3 annealed to 0 (cosine) over 8
epochs: on the full Fashion-MNIST it reaches about 89 % test accuracy for 12 s of one CPU
core. The 784-512-256-10 network gains a few tenths of a percent for 2.3 times the
arithmetic per image (535,040 multiply-adds against 234,752), and 128 features keep the
covariance of eq. (frechet-2) well estimated from a few thousand samples (the upward bias
of the Frechet distance grows with the square of the feature dimension divided by the
number of samples: :mod:`nnscratch.metrics.frechet`).

Trained once and cached: :func:`get_classifier` looks for the weights in
``<cache>/classifiers/<dataset>_<arch>_e<epochs>_seed<seed>_<digest>.npz``, where
``<cache>`` is ``$NNSCRATCH_CACHE``, else ``$XDG_CACHE_HOME/nnscratch``, else
``~/.cache/nnscratch``, ``<dataset>`` is the dataset's name (followed by the directory's
name for files of a ``data_dir``) and ``<digest>`` the start of the SHA-256 of the training
images and labels (:func:`data_digest`): two directories of the same dataset never share a
classifier. It trains and saves them (atomically) when they are not there, and again when
the file is unreadable or holds NaN or Inf; a cache that cannot be written costs a warning
(the classifier is used all the same). Frechet distances are comparable only between runs
that use the same classifier file.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from ..activations import ReLU
from ..backend import Backend, get_backend, to_numpy
from ..dense import Dense
from ..losses import softmax_cross_entropy
from ..module import Module, Sequential, ShapeError
from ..optim import Adam

FORMAT_VERSION = 1
#: hex digits of the data's digest in a cache file's name (the file holds all 64)
DIGEST_CHARS = 16
N_IN = 784
N_CLASSES = 10
DEFAULTS = {"hidden": (256, 128), "epochs": 8, "batch_size": 256, "lr": 2e-3}
#: rows per forward pass when extracting features (bounds memory, keeps BLAS efficient)
EVAL_ROWS = 4096


class Classifier(Module):
    """Dense ReLU network ``784 -> hidden... -> 10``: a feature ``body`` and a linear ``head``.

    Parameters
    ----------
    hidden : tuple of int
        Widths of the hidden layers; the last one is the feature dimension.
    backend : Backend, optional
    """

    def __init__(self, hidden=DEFAULTS["hidden"], n_in=N_IN, n_classes=N_CLASSES, backend=None):
        super().__init__(backend)
        self.hidden = tuple(int(h) for h in hidden)
        if not self.hidden:
            raise ValueError("Classifier needs at least one hidden layer (its features)")
        self.n_in, self.n_classes = int(n_in), int(n_classes)
        widths = (self.n_in, *self.hidden)
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [Dense(a, b, init="he", backend=self.backend), ReLU(backend=self.backend)]
        self.body = Sequential(*layers, backend=self.backend)
        # Glorot: the logits are not followed by a ReLU, so He's gain would be too large.
        self.head = Dense(widths[-1], self.n_classes, init="glorot", backend=self.backend)
        self.info = {}

    @property
    def arch(self):
        """``"784-256-128-10-relu"``: the architecture, as used in cache file names."""
        return "-".join(str(w) for w in (self.n_in, *self.hidden, self.n_classes)) + "-relu"

    @property
    def n_features(self):
        return self.hidden[-1]

    def describe(self):
        return f"Classifier({self.arch})"

    @property
    def params(self):
        return {**{f"body.{k}": p for k, p in self.body.params.items()},
                **{f"head.{k}": p for k, p in self.head.params.items()}}

    @property
    def grads(self):
        return {**{f"body.{k}": g for k, g in self.body.grads.items()},
                **{f"head.{k}": g for k, g in self.head.grads.items()}}

    def forward(self, x):
        """Logits ``s`` ``(batch, 10)`` of a backend batch ``x`` ``(batch, 784)``, eq. (clf-1)."""
        return self.head.forward(self.body.forward(x))

    def backward(self, ds, param_grads=True, input_grad=True):
        """Chain rule through the head, then the body (eqs. dense-2 to dense-4, relu-2)."""
        dh = self.head.backward(ds, param_grads=param_grads)
        return self.body.backward(dh, param_grads=param_grads, input_grad=input_grad)

    def to(self, backend):
        self.body.to(backend)
        self.head.to(backend)
        self.backend = backend
        return self

    # -- host-array API used by the metrics ------------------------------------------
    def _rows(self, f, x, batch_size=EVAL_ROWS, n_in=None):
        x = np.asarray(x, dtype=np.float32)
        n_in = self.n_in if n_in is None else n_in
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ShapeError(f"{self.describe()}: expected an input of shape (N, {n_in}), "
                             f"got {x.shape}")
        out = [to_numpy(f(self.backend.asarray(x[i:i + batch_size])))
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0,), np.float32)

    def features(self, x, batch_size=EVAL_ROWS):
        """Penultimate activations ``h`` (eq. clf-1) of host images ``x`` ``(N, 784)``:
        host float32 ``(N, n_features)``, computed ``batch_size`` rows at a time."""
        h = self._rows(self.body.forward, x, batch_size)
        return h.reshape(len(h), self.n_features) if h.size == 0 else h

    def logits(self, x, batch_size=EVAL_ROWS):
        """Class logits ``s`` ``(N, 10)`` of host images ``x``, as a host array."""
        return self._rows(self.forward, x, batch_size)

    def predict(self, x, batch_size=EVAL_ROWS):
        """Predicted classes :math:`\\hat y = \\arg\\max_k s_k` (eq. clf-1): int64 ``(N,)``."""
        return np.argmax(self.logits(x, batch_size), axis=1).astype(np.int64)

    def features_and_classes(self, x, batch_size=EVAL_ROWS):
        """``(features(x), predict(x))`` from one forward pass over host images ``x``."""
        x = np.asarray(x, dtype=np.float32)
        h = self.features(x, batch_size)
        s = self._rows(self.head.forward, h, batch_size, n_in=self.n_features)
        return h, np.argmax(s, axis=1).astype(np.int64)

    def accuracy(self, x, labels):
        """Fraction of ``x`` whose predicted class equals ``labels``."""
        return float(np.mean(self.predict(x) == np.asarray(labels)))

    # -- training --------------------------------------------------------------------
    def fit(self, x, labels, epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"],
            lr=DEFAULTS["lr"], seed=0, progress=True, desc="classifier"):
        r"""Minimise the softmax cross-entropy (eq. softmax-2) with Adam on host data.

        ``x`` ``(N, 784)`` float in [0, 1], ``labels`` ``(N,)`` int. Mini-batches are drawn
        by a generator seeded with ``seed``. The learning rate follows a cosine from ``lr``
        to 0 over the ``T`` steps of training, :math:`\eta_t = \eta\,(1 + \cos(\pi t / T))/2`:
        with a constant rate the test accuracy jumps by half a percent from one epoch to
        the next; annealed, the last epoch is also the best. Returns the mean loss of each
        epoch.
        """
        from ..datasets import batches
        from ..training.progress import ProgressBar
        x = np.asarray(x, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        xp = self.backend.xp
        opt = Adam(self, lr=lr)
        rng = np.random.default_rng(seed)
        history = []
        batch_size = min(batch_size, len(x))
        n_batches = len(x) // batch_size
        t, T = 0, epochs * n_batches
        for epoch in range(epochs):
            total = 0.0
            with ProgressBar(n_batches * batch_size, desc=f"{desc} epoch {epoch + 1}/{epochs}",
                             unit="img", disable=not progress) as bar:
                for idx in batches(len(x), batch_size, rng):
                    opt.lr = lr * 0.5 * (1.0 + math.cos(math.pi * t / T))
                    t += 1
                    s = self.forward(self.backend.asarray(x[idx]))
                    L, ds = softmax_cross_entropy(s, self.backend.asarray(labels[idx],
                                                                          dtype=xp.int64))
                    self.backward(ds, input_grad=False)
                    opt.step()
                    total += float(L)
                    bar.update(len(idx), loss=total / (bar.n // batch_size + 1))
            history.append(total / max(n_batches, 1))
        return history

    # -- saving ----------------------------------------------------------------------
    def save(self, path):
        """Write the weights (host arrays) and ``info`` to ``path`` atomically: a temporary
        file in the same directory, fsync'ed, then renamed over ``path``, so a crash or a
        concurrent writer never leaves a half-written file behind."""
        state = {f"param/{k}": v for k, v in self.state_dict().items()}
        meta = {"format": FORMAT_VERSION, "hidden": list(self.hidden), "n_in": self.n_in,
                "n_classes": self.n_classes, "arch": self.arch, **self.info}
        state["meta"] = np.asarray(json.dumps(meta))
        from ..training.checkpoint import save_npz_atomic
        return save_npz_atomic(path, state)

    @staticmethod
    def shapes(hidden, n_in=N_IN, n_classes=N_CLASSES):
        """``name -> shape`` of the parameters of ``Classifier(hidden, n_in, n_classes)``
        (the keys of its ``state_dict``), without building it."""
        widths = (n_in, *hidden)
        out = {}
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            out[f"body.{2 * i}.W"], out[f"body.{2 * i}.b"] = (a, b), (b,)
        out["head.W"], out["head.b"] = (widths[-1], n_classes), (n_classes,)
        return out

    @classmethod
    def load(cls, path, backend=None):
        """Rebuild a classifier saved by :meth:`save`, read as checkpoints are
        (:func:`~nnscratch.training.checkpoint.read_archive`): ``meta`` first, its widths
        type-checked, then every parameter's declared shape against them, before anything
        is decompressed or built (a width of 10^9 costs nothing). Raises ``ValueError``
        (:class:`~nnscratch.training.checkpoint.CheckpointError`) naming the file."""
        from ..training.checkpoint import TEXT, CheckpointError, read_archive
        path = os.fspath(path)
        found = {}

        def params(head):
            found.update(_meta(path, head["meta"]))
            return {f"param/{k}": shape for k, shape in
                    cls.shapes(found["hidden"], found["n_in"], found["n_classes"]).items()}
        state = read_archive(path, {"meta": TEXT}, params, "classifier file")
        try:
            model = cls(found["hidden"], found["n_in"], found["n_classes"], backend=backend)
        except MemoryError as err:
            raise CheckpointError(f"classifier file {path!r}: no memory to build it "
                                  f"({err})") from err
        model.load_state_dict({k[len("param/"):]: v for k, v in state.items()
                               if k.startswith("param/")})
        model.info = {k: v for k, v in found.items()
                      if k not in ("format", "hidden", "n_in", "n_classes", "arch")}
        return model


def _meta(path, text):
    """The ``meta`` of a classifier file as a dict, its format and sizes checked."""
    from ..training.checkpoint import CheckpointError
    from ..training.checks import check_sizes
    try:
        meta = json.loads(str(text))
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"classifier file {path!r}: unreadable meta ({err})") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"classifier file {path!r}: its meta is not a JSON object")
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"classifier file {path!r} has format {meta.get('format')!r}, "
                              f"this nnscratch reads format {FORMAT_VERSION}")
    hidden = meta.get("hidden")
    try:
        if not isinstance(hidden, list) or not hidden:
            raise ValueError(f"hidden must be a non-empty list, got {hidden!r}")
        check_sizes("its meta", hidden=hidden, n_in=meta.get("n_in"),
                    n_classes=meta.get("n_classes"))
    except ValueError as err:
        raise CheckpointError(f"classifier file {path!r}: {err}") from err
    return meta


def cache_root():
    """``$NNSCRATCH_CACHE``, else ``$XDG_CACHE_HOME/nnscratch``, else ``~/.cache/nnscratch``
    (the same root as the dataset downloads)."""
    root = os.environ.get("NNSCRATCH_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "nnscratch"


def cache_path(dataset_name, hidden=DEFAULTS["hidden"], epochs=DEFAULTS["epochs"], seed=0,
               digest=None, data_dir=None):
    """Where :func:`get_classifier` keeps the weights of one configuration: named by the
    dataset (and the directory ``data_dir`` its files came from) and by ``digest``, the
    :func:`data_digest` of its training split."""
    arch = "-".join(str(w) for w in (N_IN, *hidden, N_CLASSES)) + "-relu"
    label = dataset_name
    if data_dir is not None:
        folder = os.path.basename(os.path.abspath(os.fspath(data_dir))) or "root"
        label += "-" + re.sub(r"[^A-Za-z0-9._-]", "_", folder)
    tail = "" if digest is None else f"_{digest[:DIGEST_CHARS]}"
    return cache_root() / "classifiers" / f"{label}_{arch}_e{epochs}_seed{seed}{tail}.npz"


def data_digest(data):
    """Hex SHA-256 of a dataset's images (float32) and labels (int64): what a classifier
    trained on ``data`` depends on, whatever the files were called."""
    h = hashlib.sha256()
    for a, dtype in ((data.x, np.float32), (data.labels, np.int64)):
        a = np.ascontiguousarray(a, dtype=dtype)
        h.update(str(a.shape).encode())
        h.update(a.data)
    return h.hexdigest()


def train_classifier(dataset_name, data_dir=None, seed=0, hidden=DEFAULTS["hidden"],
                     epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"],
                     lr=DEFAULTS["lr"], backend=None, progress=True, stream=None):
    """Train a :class:`Classifier` on the train split of ``dataset_name`` and measure its
    accuracy on the test split. ``info`` records the dataset, seed, epochs, test accuracy
    and training time. Initialisation and batch order depend only on ``seed``."""
    from ..datasets import load
    backend = Backend(_default_backend_name(), "float32", seed) if backend is None else backend
    train = load(dataset_name, "train", data_dir=data_dir)
    test = load(dataset_name, "test", data_dir=data_dir)
    model = Classifier(hidden, backend=backend)
    start = time.perf_counter()
    history = model.fit(train.x, train.labels, epochs, batch_size, lr, seed, progress,
                        desc=f"classifier {dataset_name}")
    seconds = time.perf_counter() - start
    acc = model.accuracy(test.x, test.labels)
    model.info = {"dataset": dataset_name, "seed": seed, "epochs": epochs,
                  "batch_size": batch_size, "lr": lr, "n_train": len(train),
                  "train_loss": history[-1] if history else None,
                  "test_accuracy": acc, "train_seconds": round(seconds, 2)}
    if progress:
        print(f"classifier {model.arch} on {dataset_name}: test accuracy {100 * acc:.2f}% "
              f"after {epochs} epochs ({seconds:.1f} s)", file=stream or sys.stderr, flush=True)
    return model


_memory = {}


def get_classifier(dataset_name, data_dir=None, seed=0, hidden=DEFAULTS["hidden"],
                   epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"],
                   lr=DEFAULTS["lr"], backend=None, progress=True, retrain=False):
    """The classifier of ``dataset_name``: from memory, else from the cache file
    (:func:`cache_path`), else trained by :func:`train_classifier` and saved there.

    ``backend``: where it runs (default: a float32 backend of the kind in use, with its own
    random generator, so that training it never draws from the caller's generator).
    ``retrain=True`` ignores and overwrites the cached file.
    """
    from ..datasets import load
    digest = data_digest(load(dataset_name, "train", data_dir=data_dir))
    path = cache_path(dataset_name, hidden, epochs, seed, digest, data_dir)
    backend = Backend(_default_backend_name(), "float32", seed) if backend is None else backend
    key = (str(path), backend.name, backend.dtype_name)
    if not retrain and key in _memory:
        return _memory[key]
    model = None
    if path.is_file() and not retrain:
        try:
            model = Classifier.load(path, backend=backend)
            if model.info.get("digest") != digest:
                raise ValueError("it was trained on other data (its digest differs)")
        except (ValueError, KeyError, TypeError, ShapeError) as err:
            print(f"ignoring the cached classifier {path}: {err}; training a new one",
                  file=sys.stderr)
            model = None
    if model is None:
        model = train_classifier(dataset_name, data_dir, seed, hidden, epochs, batch_size, lr,
                                 backend=backend, progress=progress)
        model.info["digest"] = digest
        try:
            model.save(path)
        except OSError as err:
            print(f"nnscratch: warning: the classifier could not be cached ({err}); it is "
                  "used all the same, and trained again next time", file=sys.stderr)
    _memory[key] = model
    return model


def clear_memory():
    """Forget the classifiers kept in memory (the files in the cache stay)."""
    _memory.clear()


def _default_backend_name():
    return get_backend().name
