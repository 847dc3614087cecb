r"""Image quality without Inception: a Frechet distance in the features of a classifier
trained with nnscratch itself, and the class histogram of generated images.

Fit a Gaussian to the features of each set of images; the Frechet (2-Wasserstein) distance
between :math:`\mathcal N(\mu_1, S_1)` and :math:`\mathcal N(\mu_2, S_2)` is, eq. (frechet-1):

.. math:: d^2 = \lVert \mu_1 - \mu_2 \rVert^2
          + \mathrm{Tr}\Big(S_1 + S_2 - 2\big(S_1^{1/2} S_2 S_1^{1/2}\big)^{1/2}\Big)

:math:`S_1^{1/2} S_2 S_1^{1/2}` is symmetric positive semi-definite, so both square roots are
taken by symmetric eigendecomposition (NumPy only). Rounding can leave eigenvalues of
:math:`-10^{-12}` where the truth is 0; they are clipped to 0 before the square root.
"""
from __future__ import annotations

import numpy as np


def sqrtm_psd(S):
    """Square root of a symmetric positive semi-definite matrix by ``eigh``."""
    w, V = np.linalg.eigh((S + S.T) / 2)
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


def feature_stats(features):
    """Mean ``(d,)`` and covariance ``(d, d)`` of features ``(N, d)``, in float64."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, S1, mu2, S2):
    """Eq. (frechet-1): the squared Frechet distance of two Gaussians."""
    root1 = sqrtm_psd(S1)
    cross = sqrtm_psd(root1 @ S2 @ root1)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(S1) + np.trace(S2) - 2.0 * np.trace(cross))


def image_metrics(samples, dataset="fashion-mnist", n_test=10000, classifier=None, seed=0):
    """Frechet distance of ``samples`` ``(N, 784)`` in [0, 1] to the test split, in the
    features of :func:`nnscratch.classifier.get_classifier`, plus a mode-coverage check.

    Returns ``frechet``, ``frechet_train`` (the same distance for ``N`` real training images:
    the floor a perfect generator would reach with this many samples), ``class_histogram``
    (fraction of samples predicted per class), ``classes_covered`` (classes receiving at
    least 1% of the samples, i.e. a tenth of their fair share) and ``class_kl`` (KL of the
    histogram from uniform, in nats: 0 for balanced classes, log 10 = 2.30 for one class).
    """
    from . import datasets
    from .classifier import get_classifier
    clf = classifier or get_classifier(dataset, seed=seed)
    test = datasets.load(dataset, "test")
    train = datasets.load(dataset, "train")
    rng = np.random.default_rng(seed)
    samples = np.asarray(samples, dtype=np.float32)
    ref = feature_stats(clf.features(test.x[:n_test]))
    real = train.x[rng.choice(len(train.x), size=min(len(samples), len(train.x)), replace=False)]
    hist = np.bincount(clf.predict(samples), minlength=10) / len(samples)
    nonzero = hist[hist > 0]
    return {
        "frechet": frechet_distance(*feature_stats(clf.features(samples)), *ref),
        "frechet_train": frechet_distance(*feature_stats(clf.features(real)), *ref),
        "classes_covered": int(np.sum(hist >= 0.01)),
        "class_kl": float(np.sum(nonzero * np.log(nonzero * 10))),
        "class_histogram": [round(float(h), 4) for h in hist],
    }
