r"""Image quality without Inception: the Frechet distance in the features of a classifier
trained with nnscratch itself (:mod:`nnscratch.metrics.classifier`), and the class histogram of
generated images (mode coverage).

The FID of Heusel et al. (2017) with this project's classifier in place of Inception: fit a
Gaussian to the features ``h`` (eq. clf-1) of each set of images, eq. (frechet-2),

.. math:: \mu = \frac1N \sum_n h_n, \qquad
          S = \frac1{N-1} \sum_n (h_n - \mu)(h_n - \mu)^\top,

and measure the Frechet (2-Wasserstein) distance between the two Gaussians, eq. (frechet-1):

.. math:: d^2 = \lVert \mu_1 - \mu_2 \rVert^2
          + \mathrm{Tr}\Big(S_1 + S_2 - 2\big(S_1^{1/2} S_2 S_1^{1/2}\big)^{1/2}\Big)

Lower is better; 0 means identical statistics. The value depends on the classifier, so
distances are comparable only when computed with the same cached classifier file, and on
``N``: the estimate is biased upwards, by about :math:`(n_h^2 + 5 n_h) / (2N)` for
:math:`n_h` unit-variance features (0.85 for 128 features and ``N`` = 10,000; the
covariance term grows with the square of the dimension), which is why
:func:`image_metrics` reports, next to the distance of the generated images, that of the
same number of real training images (``frechet_train``, the floor a perfect generator
would reach).

NumPy only (no SciPy): both matrix square roots are of symmetric positive semi-definite
matrices, so they are taken by symmetric eigendecomposition, eq. (frechet-3).
"""
from __future__ import annotations

import weakref
from collections.abc import Iterator

import numpy as np

#: classes that receive less than this fraction of the samples count as missing: half of a
#: class's fair share 1/10 (see :func:`class_metrics`)
MIN_FRACTION = 0.05


def sqrtm_psd(S):
    r"""Symmetric square root of a symmetric positive semi-definite matrix, eq. (frechet-3).

    .. math:: S = V \mathrm{diag}(w) V^\top \;\Rightarrow\;
              S^{1/2} = V \mathrm{diag}\big(\sqrt{\lfloor w \rfloor}\big) V^\top

    ``S`` ``(d, d)``; :math:`\lfloor w \rfloor` is ``w`` with its rounding noise set to 0
    (:func:`clip_eigenvalues`). ``S`` is symmetrised first, because products like
    :math:`S_1^{1/2} S_2 S_1^{1/2}` are symmetric only up to rounding and ``eigh`` reads
    one triangle.
    """
    S = np.asarray(S, dtype=np.float64)
    w, V = np.linalg.eigh((S + S.T) / 2.0)
    return (V * np.sqrt(clip_eigenvalues(w))) @ V.T                        # eq. (frechet-3)


def clip_eigenvalues(w):
    r"""Eigenvalues ``w`` ``(d,)`` of a PSD matrix with those below
    :math:`d \, \epsilon_{mach} \max_i w_i` set to 0.

    Why: a covariance is positive semi-definite, but ``eigh`` returns its eigenvalues only
    up to about :math:`\epsilon_{mach} \lVert S \rVert`, so where the truth is 0 (always
    for a rank-deficient ``S``: fewer samples than features, or dead ReLU features that are
    constantly 0) it returns tiny values of either sign. The square root of a negative one
    is NaN, and that of a positive one, :math:`\sqrt{10^{-16}} = 10^{-8}` of the scale,
    is pure noise that would even make eq. (frechet-1) depend on the order of its
    arguments. Both are the rounding of a 0, so they become 0.
    """
    w = np.asarray(w, dtype=np.float64)
    tol = w.size * np.finfo(np.float64).eps * max(float(np.max(w, initial=0.0)), 0.0)
    return np.where(w > tol, w, 0.0)


def trace_sqrt_product(S1, S2):
    r""":math:`\mathrm{Tr}\big((S_1^{1/2} S_2 S_1^{1/2})^{1/2}\big)`: the sum of the square
    roots of the eigenvalues of the symmetric PSD matrix :math:`S_1^{1/2} S_2 S_1^{1/2}`
    (the same eigenvalues as :math:`S_1 S_2`), cleaned as in eq. (frechet-3)."""
    root1 = sqrtm_psd(S1)
    M = root1 @ np.asarray(S2, dtype=np.float64) @ root1
    w = np.linalg.eigvalsh((M + M.T) / 2.0)
    return float(np.sum(np.sqrt(clip_eigenvalues(w))))


def frechet_distance(mu1, S1, mu2, S2):
    r"""The squared Frechet distance between :math:`\mathcal N(\mu_1, S_1)` and
    :math:`\mathcal N(\mu_2, S_2)`, eq. (frechet-1).

    ``mu1``, ``mu2`` ``(d,)``; ``S1``, ``S2`` ``(d, d)`` symmetric PSD. Computed in float64.
    Symmetric in its two Gaussians up to rounding. The exact value is >= 0 (a squared
    distance); rounding can make the computed one about :math:`-10^{-12}\,\mathrm{Tr}\,S`
    for identical statistics, so it is clipped at 0. Returns a float.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    S1, S2 = np.asarray(S1, np.float64), np.asarray(S2, np.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or S1.shape != (d, d) or S2.shape != (d, d):
        raise ValueError(f"frechet_distance: expected mu (d,) and S (d, d) twice, got "
                         f"{mu1.shape}, {S1.shape}, {mu2.shape}, {S2.shape}")
    diff = mu1 - mu2
    d2 = (diff @ diff + np.trace(S1) + np.trace(S2)
          - 2.0 * trace_sqrt_product(S1, S2))                             # eq. (frechet-1)
    return max(float(d2), 0.0)


def feature_stats(features):
    r"""Mean ``(d,)`` and unbiased covariance ``(d, d)`` of ``features`` ``(N, d)``, N >= 2,
    in float64, eq. (frechet-2). The same estimator as the reference FID code
    (``np.cov(..., rowvar=False)``)."""
    h = np.asarray(features, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] < 2:
        raise ValueError(f"feature_stats: expected features of shape (N, d) with N >= 2, "
                         f"got {h.shape}")
    mu = h.mean(axis=0)
    r = h - mu
    S = (r.T @ r) / (h.shape[0] - 1)                                      # eq. (frechet-2)
    return mu, S


def frechet_distance_of(h1, h2):
    """Eq. (frechet-1) between the Gaussians fitted to two feature sets ``(N1, d)``, ``(N2, d)``."""
    return frechet_distance(*feature_stats(h1), *feature_stats(h2))


def class_metrics(y_hat, n_classes=10, min_fraction=MIN_FRACTION):
    r"""Mode coverage from the predicted classes ``y_hat`` ``(N,)`` of generated images.

    With :math:`p_k` the fraction of samples predicted as class :math:`k` (K classes):

    * ``class_histogram``: :math:`(p_1, \dots, p_K)` as a list of floats;
    * ``classes_covered``: the number of classes with :math:`p_k \ge` ``min_fraction``,
      by default 5 %, half of a class's fair share :math:`1/K` (real test images give
      every class 9.7 % to 10.4 % on Fashion-MNIST). It is an upper bound on the classes
      a generator draws: a missing class still receives the misclassified samples of
      similar ones. Test images of classes 0-4 only (T-shirt, trouser, pullover, dress,
      coat, each 20 % of the set) are predicted as "shirt" 5.4 % of the time, so they count
      6 classes, not 5; the other four missing classes get 0.3 % or less. ``class_kl``
      measures the imbalance without a threshold.
    * ``class_entropy``: :math:`H(p) = -\sum_k p_k \log p_k` in nats,
      :math:`\log K` for balanced classes, 0 for a single class;
    * ``class_kl``: :math:`\mathrm{KL}(p \,\|\, U_K) = \log K - H(p)`, 0 when balanced.
    """
    y_hat = np.asarray(y_hat)
    return class_metrics_of_counts(np.bincount(y_hat, minlength=n_classes)[:n_classes],
                                   min_fraction)


def class_metrics_of_counts(counts, min_fraction=MIN_FRACTION):
    """:func:`class_metrics` from the number of samples predicted as each class ``(K,)``."""
    counts = np.asarray(counts)
    n_classes = len(counts)
    p = counts / max(int(counts.sum()), 1)
    nz = p[p > 0]                          # 0 log 0 = 0
    entropy = float(-np.sum(nz * np.log(nz)))
    return {"class_histogram": [float(v) for v in p],
            "classes_covered": int(np.sum(p >= min_fraction)),
            "class_entropy": entropy,
            "class_kl": float(np.log(n_classes) - entropy)}


def class_consistency(y_hat, labels, n_classes=10):
    r"""How often a conditional generator makes the class it was asked for: the share of
    samples drawn with class :math:`c` that the classifier assigns to :math:`c`, eq. (cond-4),
    with :math:`c_i` (``labels``) the class sample :math:`i` was drawn with and
    :math:`\hat c_i` (``y_hat``) the classifier's:

    .. math:: \mathrm{cc}_c = \frac{|\{i : c_i = c,\ \hat c_i = c\}|}{|\{i : c_i = c\}|},
              \qquad \mathrm{cc} = \frac{|\{i : \hat c_i = c_i\}|}{N}

    per class and overall. Real test images score the classifier's accuracy (about 89 % on
    Fashion-MNIST, shirts lowest): a generator that matches each class's distribution
    exactly scores about that, not 100 %. Returns ``{"class_consistency": cc,
    "class_consistency_per_class": [cc_0, ..., cc_{C-1}]}`` (NaN for a class never asked
    for)."""
    y_hat, labels = np.asarray(y_hat), np.asarray(labels)
    if y_hat.shape != labels.shape:
        raise ValueError(f"class_consistency: {len(y_hat)} predictions for {len(labels)} "
                         "labels")
    hits = y_hat == labels
    per_class = [float(np.mean(hits[labels == c])) if np.any(labels == c) else float("nan")
                 for c in range(n_classes)]
    return {"class_consistency": float(np.mean(hits)) if len(hits) else float("nan"),
            "class_consistency_per_class": per_class}


# classifier -> {(dataset, split, n, seed): (mu, S)}; forgotten with the classifier
_reference = weakref.WeakKeyDictionary()


def reference_stats(classifier, dataset_name, split="test", n=10000, data_dir=None, seed=None):
    """Eq. (frechet-2) of the features of ``n`` real images of a split: the first ``n``
    (``seed=None``) or a random subset drawn with ``seed``. Kept in memory per classifier,
    so a trainer's per-epoch evaluation computes them once."""
    memo = _reference.setdefault(classifier, {})
    key = (dataset_name, split, n, seed, None if data_dir is None else str(data_dir))
    if key not in memo:
        from ..datasets import load
        x = load(dataset_name, split, data_dir=data_dir).x
        if seed is None:
            x = x[:n]
        elif n < len(x):
            x = x[np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))]
        memo[key] = feature_stats(classifier.features(x))
    return memo[key]


def image_metrics(samples, dataset_name="fashion-mnist", n_test=10000, data_dir=None, seed=0,
                  classifier=None, min_fraction=MIN_FRACTION, reference=True, progress=True,
                  labels=None):
    """Quality and coverage of generated images ``samples`` ``(N, 784)`` in [0, 1], N >= 2.

    The classifier is :func:`nnscratch.metrics.classifier.get_classifier` ``(dataset_name,
    data_dir)`` (trained on the first call, cached on disk) unless one is given. Returns a
    dict:

    * ``frechet``: eq. (frechet-1) between the features of ``samples`` and of the first
      ``n_test`` images of the test split;
    * ``frechet_train``: the same for ``N`` random training images (drawn with ``seed``;
      all of them if there are fewer than ``N``): the floor at this ``N``. Only with
      ``reference=True``;
    * ``class_histogram``, ``classes_covered``, ``class_entropy``, ``class_kl``: see
      :func:`class_metrics` (the classifier's predictions on ``samples``);
    * ``n_samples``: ``N``;
    * with the ``labels`` ``(N,)`` a conditional generator was asked for:
      ``class_consistency`` and ``class_consistency_per_class``, eq. (cond-4).

    ``samples`` may also be an iterator of such blocks (e.g. a generator that draws them):
    each block is dropped once its features are added (:class:`FeatureMoments`), so memory
    stays that of one block whatever ``N``. Features are computed in batches; the
    statistics of the real images are computed once per classifier and kept in memory, so
    repeated calls cost one pass over ``samples``.
    """
    streamed = isinstance(samples, Iterator)
    if not streamed:             # an array: checked whole, before any training, and one block
        samples = [_checked_images(samples)]
    if classifier is None:
        from .classifier import get_classifier
        classifier = get_classifier(dataset_name, data_dir=data_dir, progress=progress)
    moments, counts = FeatureMoments(), np.zeros(classifier.n_classes, np.int64)
    predicted = []                    # the classes, kept (N integers) only to compare with labels
    for block in samples:
        if streamed:
            block = _checked_images(block, at_least=1)
        h, y_hat = classifier.features_and_classes(block)
        moments.add(h)
        counts += np.bincount(y_hat, minlength=classifier.n_classes)[:classifier.n_classes]
        if labels is not None:
            predicted.append(y_hat)
    if moments.n < 2:
        raise ValueError(f"image_metrics: expected samples of shape (N, 784) with N >= 2, "
                         f"got {moments.n} rows")
    ref = reference_stats(classifier, dataset_name, "test", n_test, data_dir)
    out = {"frechet": frechet_distance(*moments.stats(), *ref)}
    if reference:
        real = reference_stats(classifier, dataset_name, "train", moments.n, data_dir, seed=seed)
        out["frechet_train"] = frechet_distance(*real, *ref)
    out.update(class_metrics_of_counts(counts, min_fraction))
    if labels is not None:
        out.update(class_consistency(np.concatenate(predicted), labels, classifier.n_classes))
    out["n_samples"] = moments.n
    return out


class FeatureMoments:
    r"""Eq. (frechet-2) of features that arrive in blocks, in memory of one ``(d, d)``
    matrix: the mean and the sum of squared deviations ``M`` of each block, merged with the
    running ones (Chan, Golub & LeVeque, 1979),

    .. math:: \delta = \mu_b - \mu, \quad \mu \leftarrow \mu + \delta \frac{n_b}{n + n_b},
              \quad M \leftarrow M + M_b + \delta \delta^\top \frac{n\, n_b}{n + n_b},

    so that ``S = M / (N - 1)``. Why not the sums of ``h`` and ``h h^T``: their difference
    loses the covariance's digits to cancellation when the mean is large. One block gives
    exactly :func:`feature_stats`.
    """

    def __init__(self):
        self.n, self.mu, self.M = 0, None, None

    def add(self, h):
        h = np.asarray(h, dtype=np.float64)
        if len(h) == 0:
            return
        mu_b = h.mean(axis=0)
        r = h - mu_b
        M_b = r.T @ r
        if self.n == 0:
            self.n, self.mu, self.M = len(h), mu_b, M_b
            return
        n, n_b = self.n, len(h)
        delta = mu_b - self.mu
        self.mu = self.mu + delta * (n_b / (n + n_b))
        self.M = self.M + M_b + np.outer(delta, delta) * (n * n_b / (n + n_b))
        self.n = n + n_b

    def stats(self):
        """``(mu, S)`` of everything added, eq. (frechet-2)."""
        return self.mu, self.M / (self.n - 1)


def _checked_images(samples, at_least=2):
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < at_least:
        raise ValueError(f"image_metrics: expected samples of shape (N, 784) with N >= 2, "
                         f"got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("image_metrics: samples contain NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:    # a little slack for float32 rounding of a sigmoid
        raise ValueError(f"image_metrics: samples must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]"
                         " (a tanh generator's output x in [-1, 1] maps to (x + 1) / 2)")
    return x
