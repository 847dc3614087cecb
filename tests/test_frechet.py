"""The Frechet distance against closed forms and independent computations, the class
coverage statistics, and the image metric on real images, noise and a collapsed generator."""
import numpy as np
import pytest

from nnscratch import datasets
from nnscratch.metrics.classifier import clear_memory, get_classifier
from nnscratch.metrics.frechet import (
    class_metrics,
    feature_stats,
    frechet_distance,
    frechet_distance_of,
    image_metrics,
    reference_stats,
    sqrtm_psd,
    trace_sqrt_product,
)

MINI = "fashion-mnist-mini"


def random_spd(rng, d, rank=None):
    A = rng.standard_normal((d, rank or d))
    return A @ A.T + (0.0 if rank else 0.1) * np.eye(d)


# -- eq. (frechet-1) against closed forms ---------------------------------------------

def test_one_dimensional_gaussians():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    d2 = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[0.25]]))
    assert d2 == pytest.approx(9.0 + 1.5 ** 2, rel=1e-12)


def test_diagonal_covariances():
    mu1, mu2 = np.array([0.0, 1.0, 2.0, -1.0]), np.array([1.0, 1.0, 0.0, 3.0])
    a, c = np.array([1.0, 4.0, 0.25, 1e-6]), np.array([9.0, 1.0, 0.25, 2.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(c)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(c)) == pytest.approx(expected, rel=1e-12)


def test_commuting_covariances_reduce_to_the_diagonal_case():
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))       # shared eigenvectors: S1 S2 = S2 S1
    a, c = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    S1, S2 = Q @ np.diag(a) @ Q.T, Q @ np.diag(c) @ Q.T
    expected = np.sum((np.sqrt(a) - np.sqrt(c)) ** 2)
    assert frechet_distance(np.zeros(6), S1, np.zeros(6), S2) == pytest.approx(expected, rel=1e-10)


def test_non_commuting_2x2_closed_form():
    # For a 2x2 PSD matrix M, Tr(M^{1/2}) = sqrt(Tr M + 2 sqrt(det M)); with
    # M = S1^{1/2} S2 S1^{1/2}: Tr M = Tr(S1 S2) and det M = det S1 det S2.
    S1 = np.array([[2.0, 0.9], [0.9, 1.0]])
    S2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    assert not np.allclose(S1 @ S2, S2 @ S1)
    tr_root = np.sqrt(np.trace(S1 @ S2) + 2 * np.sqrt(np.linalg.det(S1) * np.linalg.det(S2)))
    mu1, mu2 = np.array([0.5, -1.0]), np.array([0.0, 1.0])
    expected = 0.25 + 4.0 + np.trace(S1) + np.trace(S2) - 2 * tr_root
    assert trace_sqrt_product(S1, S2) == pytest.approx(tr_root, rel=1e-12)
    assert frechet_distance(mu1, S1, mu2, S2) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("d", [3, 10, 64])
def test_full_covariances_match_two_independent_computations(d):
    rng = np.random.default_rng(d)
    S1, S2 = random_spd(rng, d), random_spd(rng, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    # (a) eigenvalues of the non-symmetric S1 S2 (similar to S1^{1/2} S2 S1^{1/2}: real, >= 0)
    tr_a = np.sum(np.sqrt(np.linalg.eigvals(S1 @ S2).real))
    # (b) Cholesky S1 = L L^T: L^T S2 L is symmetric with the same eigenvalues as S2 S1
    L = np.linalg.cholesky(S1)
    tr_b = np.sum(np.sqrt(np.linalg.eigvalsh(L.T @ S2 @ L)))
    assert tr_a == pytest.approx(tr_b, rel=1e-10)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * tr_b
    assert frechet_distance(mu1, S1, mu2, S2) == pytest.approx(expected, rel=1e-9)


def test_zero_for_identical_statistics_and_symmetric():
    rng = np.random.default_rng(0)
    for S in (random_spd(rng, 20), random_spd(rng, 20, rank=5), np.zeros((20, 20))):
        mu = rng.standard_normal(20)
        assert frechet_distance(mu, S, mu, S) == pytest.approx(0.0, abs=1e-9 * (1 + np.trace(S)))
    S1, S2 = random_spd(rng, 20), random_spd(rng, 20, rank=3)
    mu1, mu2 = rng.standard_normal(20), rng.standard_normal(20)
    assert frechet_distance(mu1, S1, mu2, S2) == pytest.approx(
        frechet_distance(mu2, S2, mu1, S1), rel=1e-12)


def test_rank_deficient_features_stay_finite():
    # Fewer samples than features and dead (constant-zero) features: singular covariances
    # whose computed eigenvalues dip slightly below 0. No NaN, no RuntimeWarning.
    rng = np.random.default_rng(0)
    h1, h2 = rng.random((10, 50)), rng.random((12, 50))
    h1[:, :5] = h2[:, :5] = 0.0
    d2 = frechet_distance_of(h1, h2)
    assert np.isfinite(d2) and d2 > 0
    assert frechet_distance_of(h1, h1) == pytest.approx(0.0, abs=1e-9)


def test_invariant_to_rotation_and_translation_scales_quadratically():
    rng = np.random.default_rng(2)
    h1, h2 = rng.standard_normal((500, 8)), 1.5 * rng.standard_normal((400, 8)) + 0.3
    Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    d2 = frechet_distance_of(h1, h2)
    assert frechet_distance_of(h1 @ Q + 5.0, h2 @ Q + 5.0) == pytest.approx(d2, rel=1e-9)
    assert frechet_distance_of(3.0 * h1, 3.0 * h2) == pytest.approx(9.0 * d2, rel=1e-9)


def test_sqrtm_psd_squares_back_even_when_singular():
    rng = np.random.default_rng(3)
    for S in (random_spd(rng, 6), random_spd(rng, 6, rank=1)):
        root = sqrtm_psd(S)
        assert np.all(np.isfinite(root))
        np.testing.assert_allclose(root, root.T, atol=1e-12)
        np.testing.assert_allclose(root @ root, S, atol=1e-7 * np.abs(S).max())


def test_feature_stats_is_the_sample_mean_and_unbiased_covariance():
    h = np.random.default_rng(0).standard_normal((100, 3)).astype(np.float32)
    mu, S = feature_stats(h)
    assert mu.dtype == S.dtype == np.float64 and mu.shape == (3,) and S.shape == (3, 3)
    np.testing.assert_allclose(mu, h.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(S, np.cov(h.astype(np.float64), rowvar=False), rtol=1e-10)
    with pytest.raises(ValueError):
        feature_stats(h[:1])


def test_samples_of_two_gaussians_approach_the_analytic_distance():
    rng = np.random.default_rng(4)
    S1, S2 = random_spd(rng, 4), random_spd(rng, 4)
    mu1, mu2 = np.zeros(4), np.ones(4)
    n = 200_000
    h1 = rng.multivariate_normal(mu1, S1, size=n)
    h2 = rng.multivariate_normal(mu2, S2, size=n)
    assert frechet_distance_of(h1, h2) == pytest.approx(frechet_distance(mu1, S1, mu2, S2),
                                                        rel=0.02)


# -- class coverage -------------------------------------------------------------------

def test_class_metrics_balanced_collapsed_and_threshold():
    balanced = class_metrics(np.repeat(np.arange(10), 7))
    assert balanced["classes_covered"] == 10
    assert balanced["class_entropy"] == pytest.approx(np.log(10))
    assert balanced["class_kl"] == pytest.approx(0.0, abs=1e-12)
    assert balanced["class_histogram"] == pytest.approx([0.1] * 10)
    collapsed = class_metrics(np.full(50, 3))
    assert collapsed["classes_covered"] == 1 and collapsed["class_entropy"] == 0.0
    assert collapsed["class_kl"] == pytest.approx(np.log(10))
    y = np.array([0] * 90 + [1] * 5 + [2] * 4 + [3])       # 90 %, 5 %, 4 %, 1 %
    assert class_metrics(y)["classes_covered"] == 2
    assert class_metrics(y, min_fraction=0.01)["classes_covered"] == 4


# -- the image metric on the embedded subset ------------------------------------------

@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNSCRATCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        clear_memory()
        yield get_classifier(MINI, epochs=3, progress=False)
        clear_memory()


def test_metric_ranks_real_images_far_above_noise_and_collapse(classifier):
    test = datasets.load(MINI, "test")
    train = datasets.load(MINI, "train")
    n = 1000
    rng = np.random.default_rng(1)
    real = image_metrics(train.x[rng.choice(len(train), n, replace=False)], MINI,
                         classifier=classifier)
    noise = image_metrics(rng.random((n, 784)), MINI, classifier=classifier)
    collapsed = image_metrics(np.repeat(test.x[:1], n, axis=0), MINI, classifier=classifier)
    # Real images sit at the floor; noise and a single repeated image are far above it.
    assert real["frechet"] < 2 * real["frechet_train"]
    assert noise["frechet"] > 10 * real["frechet"]
    assert collapsed["frechet"] > 5 * real["frechet"]
    assert real["classes_covered"] == 10 and real["class_kl"] < 0.05
    assert collapsed["classes_covered"] == 1
    assert collapsed["class_kl"] == pytest.approx(np.log(10))
    assert collapsed["class_histogram"][int(classifier.predict(test.x[:1])[0])] == 1.0
    assert real["n_samples"] == n and len(real["class_histogram"]) == 10


def test_metric_sees_missing_classes(classifier):
    test = datasets.load(MINI, "test")
    half = test.x[test.labels < 5]
    m = image_metrics(half, MINI, classifier=classifier)
    full = image_metrics(test.x[:len(half)], MINI, classifier=classifier)
    assert m["classes_covered"] <= 7 and m["frechet"] > 3 * full["frechet"]


def test_reference_statistics_are_computed_once(classifier, monkeypatch):
    x = datasets.load(MINI, "test").x[:200]
    image_metrics(x, MINI, classifier=classifier)
    mu, S = reference_stats(classifier, MINI, "test", 10000)
    calls = []
    monkeypatch.setattr(classifier, "features", lambda x, *a: calls.append(len(x)) or
                        type(classifier).features(classifier, x))
    again = image_metrics(x, MINI, classifier=classifier)
    assert calls == [200]                  # only the samples' features were computed
    assert reference_stats(classifier, MINI, "test", 10000)[0] is mu
    assert again["frechet_train"] > 0


def test_metric_rejects_bad_samples(classifier):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        image_metrics(np.full((10, 784), -1.0), MINI, classifier=classifier)
    with pytest.raises(ValueError, match="NaN"):
        image_metrics(np.full((10, 784), np.nan), MINI, classifier=classifier)
    with pytest.raises(ValueError, match="N >= 2"):
        image_metrics(np.zeros((1, 784)), MINI, classifier=classifier)
