"""Losses: values against independent formulas, float64 gradient checks (threshold 1e-7),
stability at extreme logits, clear errors."""
import math

import numpy as np
import pytest

import nnscratch as nn
from conftest import TOLERANCE


def check_loss(loss, b, **inputs):
    """Gradient-check a loss of the form loss(*inputs) -> (L, grad or tuple of grads)."""
    names = list(inputs)
    differentiable = [n for n in names if n not in ("x", "t", "labels")]

    def f():
        return loss(*inputs.values())[0]

    _, grads = loss(*inputs.values())
    grads = grads if isinstance(grads, tuple) else (grads,)
    analytic = {n: nn.to_numpy(g) for n, g in zip(differentiable, grads)}
    return nn.check_gradients(f, {n: inputs[n] for n in differentiable}, analytic)


def test_bce_with_logits_gradcheck(b64):
    report = check_loss(nn.bce_with_logits, b64, s=b64.normal((4, 5)) * 3, x=b64.uniform((4, 5)))
    assert report["s"] < TOLERANCE


def test_bce_gradcheck(b64):
    p = b64.uniform((4, 5), 0.05, 0.95)
    report = check_loss(nn.bce, b64, p=p, x=b64.uniform((4, 5)))
    assert report["p"] < TOLERANCE


def test_mse_gradcheck(b64):
    assert check_loss(nn.mse, b64, y=b64.normal((3, 4)), t=b64.normal((3, 4)))["y"] < TOLERANCE


def test_kl_gradcheck(b64):
    report = check_loss(nn.kl_normal, b64, mu=b64.normal((3, 4)), logvar=b64.normal((3, 4)))
    assert report["mu"] < TOLERANCE and report["logvar"] < TOLERANCE


def test_softmax_cross_entropy_gradcheck(b64):
    labels = b64.asarray(np.array([0, 2, 1, 2]), dtype=b64.xp.int64)
    report = check_loss(nn.softmax_cross_entropy, b64, s=b64.normal((4, 3)) * 2, labels=labels)
    assert report["s"] < TOLERANCE


def reference_bce(s, x):
    """Per-entry BCE through log-probabilities computed by math.log1p (exact in float64)."""
    def log_sigmoid(v):
        return -math.log1p(math.exp(-v)) if v >= 0 else v - math.log1p(math.exp(v))
    return -(x * log_sigmoid(s) + (1 - x) * log_sigmoid(-s))


@pytest.mark.parametrize("s", [-1000.0, -100.0, -30.0, -1.5, 0.0, 2.0, 30.0, 100.0, 1000.0])
@pytest.mark.parametrize("x", [0.0, 0.3, 1.0])
def test_bce_with_logits_is_exact_at_extreme_logits(b64, s, x):
    L, ds = nn.bce_with_logits(b64.asarray([[s]]), b64.asarray([[x]]))
    assert float(L) == pytest.approx(reference_bce(s, x), rel=1e-12, abs=1e-300)
    p = 1 / (1 + math.exp(-s)) if s > -700 else 0.0
    assert float(nn.to_numpy(ds)[0, 0]) == pytest.approx(p - x, rel=1e-12, abs=1e-300)


def test_bce_with_logits_float32_at_plus_minus_100(b32):
    L, ds = nn.bce_with_logits(b32.asarray([[100.0, -100.0]]), b32.asarray([[0.0, 1.0]]))
    assert float(L) == pytest.approx(200.0, rel=1e-6)
    np.testing.assert_allclose(nn.to_numpy(ds), [[1.0, -1.0]])


def test_bce_on_probabilities_matches_logits_and_documents_clipping(b64):
    s = b64.asarray([[-3.0, 0.5, 4.0]])
    x = b64.asarray([[0.0, 1.0, 0.2]])
    L_logits, _ = nn.bce_with_logits(s, x)
    L_probs, _ = nn.bce(nn.sigmoid(s), x)
    assert float(L_probs) == pytest.approx(float(L_logits), rel=1e-12)
    # A saturated sigmoid output is clipped: the loss is capped at -log(eps), gradient zero.
    L, dp = nn.bce(b64.asarray([[0.0, 1.0]]), b64.asarray([[1.0, 0.0]]))
    assert float(L) == pytest.approx(-2 * math.log(1e-7), rel=1e-6)
    np.testing.assert_array_equal(nn.to_numpy(dp), [[0.0, 0.0]])


def test_kl_matches_closed_form_of_two_gaussians(b64):
    mu = np.array([[0.5, -1.0]])
    logvar = np.array([[np.log(0.25), np.log(2.0)]])
    sigma2 = np.exp(logvar)
    expected = np.sum(-np.log(np.sqrt(sigma2)) + (sigma2 + mu ** 2) / 2 - 0.5)
    L, _ = nn.kl_normal(b64.asarray(mu), b64.asarray(logvar))
    assert float(L) == pytest.approx(expected, rel=1e-12)


def test_kl_is_zero_at_the_prior(b32):
    L, (dmu, dlogvar) = nn.kl_normal(b32.zeros((3, 2)), b32.zeros((3, 2)))
    assert float(L) == 0.0
    assert not nn.to_numpy(dmu).any() and not nn.to_numpy(dlogvar).any()


def test_mse_and_softmax_values(b64):
    L, _ = nn.mse(b64.asarray([[1.0, 2.0], [0.0, 0.0]]), b64.asarray([[0.0, 0.0], [0.0, 2.0]]))
    assert float(L) == pytest.approx((1 + 4 + 4) / 2)
    labels = b64.asarray(np.array([1]), dtype=b64.xp.int64)
    L, _ = nn.softmax_cross_entropy(b64.asarray([[1.0, 2.0, 3.0]]), labels)
    assert float(L) == pytest.approx(-2.0 + math.log(math.exp(1) + math.exp(2) + math.exp(3)))


def test_reduction_is_sum_over_features_mean_over_batch(b64):
    s, x = b64.normal((4, 6)), b64.uniform((4, 6))
    L, _ = nn.bce_with_logits(s, x)
    per_example = [float(nn.bce_with_logits(s[i:i + 1, :], x[i:i + 1, :])[0]) for i in range(4)]
    assert float(L) == pytest.approx(sum(per_example) / 4, rel=1e-12)


def test_non_finite_loss_names_the_input(b32):
    s = np.zeros((3, 4), dtype=np.float32)
    s[1, 2] = np.nan
    with pytest.raises(nn.NonFiniteError, match=r"input 's' holds 1 non-finite.*\(1, 2\)"):
        nn.bce_with_logits(b32.asarray(s), b32.zeros((3, 4)))
    with pytest.raises(nn.NonFiniteError, match="overflowed inside"), \
            np.errstate(over="ignore"):
        nn.kl_normal(b32.zeros((1, 1)), b32.asarray([[100.0]]))


def test_deferred_finite_checks_leave_the_nan_to_the_caller(b32):
    """The training loop defers the check on a GPU (it waits for the device) and checks the
    metrics it reads instead; outside, the check is back."""
    from nnscratch.losses import deferred_finite_checks
    s = np.zeros((3, 4), dtype=np.float32)
    s[1, 2] = np.nan
    with deferred_finite_checks():
        L, _ = nn.bce_with_logits(b32.asarray(s), b32.zeros((3, 4)))
    assert np.isnan(float(L))
    with pytest.raises(nn.NonFiniteError):
        nn.bce_with_logits(b32.asarray(s), b32.zeros((3, 4)))


def test_shape_mismatch_is_clear(b32):
    with pytest.raises(nn.ShapeError, match=r"s \(2, 3\), x \(2, 4\)"):
        nn.bce_with_logits(b32.zeros((2, 3)), b32.zeros((2, 4)))
