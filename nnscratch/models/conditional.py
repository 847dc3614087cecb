r"""Class conditioning shared by the conditional VAE and GAN: a one-hot label concatenated
to a network's input (Mirza & Osindero, 2014; Sohn et al., 2015).

With :math:`C` classes, a label :math:`c \in \{0, \dots, C - 1\}` becomes the one-hot
vector, eq. (cond-1),

.. math:: y = \mathbf 1_c \in \{0, 1\}^C \quad \text{(a 1 at entry } c \text{, 0 elsewhere)},

and a network :math:`f` that saw :math:`a` ``(batch, d_a)`` now sees the concatenation
:math:`[a, y]` ``(batch, d_a + C)``, eq. (cond-2). Its first dense layer,
:math:`[a, y] W + b = a W_a + (y W_y + b)`, is the old layer with a bias that depends on the
class (row :math:`c` of :math:`W_y` added to :math:`b`): nothing else in the network
changes. In the backward pass the gradient with respect to :math:`[a, y]` is cut back to
its first ``d_a`` columns, eq. (cond-3): the label is data, not a variable.
"""
from __future__ import annotations

import numpy as np

from ..backend import namespace

#: classes of a conditional model: every dataset of :mod:`nnscratch.datasets` has ten
N_CLASSES = 10


def one_hot(labels, n_classes, backend):
    """Eq. (cond-1): integer ``labels`` ``(batch,)`` (host or backend) -> ``y``
    ``(batch, n_classes)`` of the backend's float dtype."""
    xp = backend.xp
    if not backend.is_array(labels):
        labels = np.asarray(labels)
        labels = backend.asarray(labels, dtype=xp.int64)
    classes = xp.arange(n_classes, dtype=labels.dtype)
    return xp.astype(xp.expand_dims(labels, axis=1) == xp.expand_dims(classes, axis=0),
                     backend.dtype)


def concat(a, y):
    """Eq. (cond-2): ``[a, y]`` ``(batch, n + C)``; ``a`` itself when ``y`` is None."""
    return a if y is None else namespace(a, y).concat([a, y], axis=1)


def cut(da, n, y):
    """Eq. (cond-3): the first ``n`` columns of a gradient with respect to ``[a, y]``."""
    return da if y is None or da is None else da[:, :n]


def require_labels(y, n_classes, model):
    """``y`` checked against a model of ``n_classes`` classes (``model`` names it): the
    one-hot labels are required by a conditional model (``n_classes > 0``), refused
    otherwise."""
    if (y is None) != (n_classes == 0):
        raise ValueError(f"a conditional {model} needs the one-hot labels y" if y is None
                         else f"this {model} is not conditional: it takes no labels")
    return y


def check_labels(labels, n_classes, where):
    """Raise ValueError unless host ``labels`` are integers in ``0..n_classes - 1``."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: expected integer class labels of shape (N,), got "
                         f"{labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{where}: labels must lie in 0..{n_classes - 1}, got "
                         f"{labels.min()}..{labels.max()}")
    return labels


def class_rows(n_classes, per_class):
    """Labels ``0 0 .. 0 1 1 .. 1 ...``: ``per_class`` of each class, for a figure with one
    row per class."""
    return np.repeat(np.arange(n_classes), per_class)


class Conditioned:
    """What the VAE's and the GAN's trainers share for their ``conditional`` option: a
    batch's class labels as one-hot rows. The trainer sets ``conditional``, ``n_classes``
    and ``backend``; ``kind`` names it in the messages."""

    def labels_onehot(self, labels, where):
        """The one-hot ``y`` (eq. cond-1) of ``labels`` ``(B,)`` for a conditional model
        (None for an unconditional one, which refuses labels)."""
        model = self.kind.upper()
        if not self.conditional:
            if labels is not None:
                raise ValueError(f"{where}: this {model} is not conditional: it takes no labels")
            return None
        if labels is None:
            raise ValueError(f"{where}: a conditional {model} needs the class labels")
        if self.backend.name == "numpy" or not self.backend.is_array(labels):
            # host labels are checked (on a device that would wait for it)
            labels = check_labels(labels, self.n_classes, where)
        return one_hot(labels, self.n_classes, self.backend)

    def host_labels(self, labels, n, where):
        """Host labels ``(n,)`` for ``n`` rows, given one each or one integer for all,
        checked; None for an unconditional model (which refuses labels)."""
        if not self.conditional:
            return self.labels_onehot(labels, where)       # None, or the refusal
        if labels is None:
            raise ValueError(f"{where}: a conditional {self.kind.upper()} needs a class label "
                             f"for each of the {n} rows (sample --label N)")
        labels = np.asarray(labels)
        labels = np.full(n, labels, np.int64) if labels.ndim == 0 else labels
        if len(labels) != n:
            raise ValueError(f"{where}: {len(labels)} labels for {n} rows")
        return check_labels(labels, self.n_classes, where)

    def class_grid_labels(self, per_class=8):
        """Labels of a figure with one row of ``per_class`` images per class."""
        return class_rows(self.n_classes, per_class)
