"""The image metric: the Frechet distance against closed forms, and the classifier whose
features it uses (trained on the embedded subset, cached)."""
import numpy as np
import pytest

from nnscratch import datasets
from nnscratch.classifier import Classifier, cache_path, get_classifier
from nnscratch.frechet import feature_stats, frechet_distance, image_metrics, sqrtm_psd


def test_frechet_of_diagonal_gaussians_has_a_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, c = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(c)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(c)) == pytest.approx(expected)


def test_frechet_with_full_covariances_matches_an_independent_formula():
    rng = np.random.default_rng(0)
    A, C = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    S1, S2 = A @ A.T + 0.1 * np.eye(4), C @ C.T + 0.1 * np.eye(4)
    # Tr((S1 S2)^{1/2}) = sum of the square roots of the eigenvalues of S1 S2 (real, >= 0).
    trace_root = np.sum(np.sqrt(np.linalg.eigvals(S1 @ S2).real))
    expected = np.trace(S1) + np.trace(S2) - 2 * trace_root
    assert frechet_distance(np.zeros(4), S1, np.zeros(4), S2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(np.zeros(4), S2, np.zeros(4), S1) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(np.ones(4), S1, np.ones(4), S1) == pytest.approx(0.0, abs=1e-9)
    root = sqrtm_psd(S1)
    np.testing.assert_allclose(root @ root, S1, atol=1e-10)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    import os
    os.environ["NNSCRATCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield get_classifier("fashion-mnist-mini", epochs=3, progress=False)
    finally:
        del os.environ["NNSCRATCH_CACHE"]


def test_classifier_trains_and_is_cached(classifier, monkeypatch):
    test = datasets.load("fashion-mnist-mini", "test")
    assert classifier.accuracy(test.x, test.labels) > 0.7
    assert classifier.features(test.x[:5]).shape == (5, 128)
    assert cache_path("fashion-mnist-mini", 0).endswith("fashion-mnist-mini-784-512-128-10-seed0.npz")
    monkeypatch.setattr(Classifier, "fit", lambda *a, **k: pytest.fail("retrained"))
    again = get_classifier("fashion-mnist-mini", epochs=3, progress=False)
    np.testing.assert_array_equal(again.features(test.x[:5]), classifier.features(test.x[:5]))


def test_metric_ranks_real_images_above_noise_and_collapse(classifier):
    test = datasets.load("fashion-mnist-mini", "test")
    train = datasets.load("fashion-mnist-mini", "train")
    real = image_metrics(train.x[:1000], "fashion-mnist-mini", classifier=classifier)
    noise = image_metrics(np.random.default_rng(0).random((1000, 784)), "fashion-mnist-mini",
                          classifier=classifier)
    collapsed = image_metrics(np.repeat(test.x[:1], 1000, axis=0), "fashion-mnist-mini",
                              classifier=classifier)
    assert real["frechet"] < noise["frechet"] / 5
    assert real["frechet"] < collapsed["frechet"]
    assert real["classes_covered"] == 10 and collapsed["classes_covered"] == 1
    assert collapsed["class_kl"] == pytest.approx(np.log(10), rel=1e-6)
    assert abs(real["frechet"] - real["frechet_train"]) < real["frechet_train"] + 5


def test_feature_stats_shapes():
    mu, S = feature_stats(np.random.default_rng(0).standard_normal((100, 3)))
    assert mu.shape == (3,) and S.shape == (3, 3)
