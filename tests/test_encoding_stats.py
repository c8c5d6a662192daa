"""pearson_r, r2_score, fdr_bh and the autocorrelation-preserving permutation test."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from brainalign.encoding import ConstantTargetWarning, fdr_bh, pearson_r, permutation_test, r2_score
from brainalign.errors import InputError, ShapeMismatchError


def test_pearson_r_matches_scipy_and_flags_constants():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 6))
    b = a * 0.5 + rng.standard_normal((50, 6))
    b[:, 4] = 3.0
    with pytest.warns(ConstantTargetWarning, match="1 of 6 targets"):
        r = pearson_r(a, b)
    for j in [0, 1, 2, 3, 5]:
        assert r[j] == pytest.approx(stats.pearsonr(a[:, j], b[:, j])[0], rel=1e-12)
    assert np.isnan(r[4])
    assert pearson_r(a[:, 0], b[:, 0]) == pytest.approx(r[0])
    with pytest.raises(ShapeMismatchError):
        pearson_r(a, b[:, :3])


def test_r2_score_matches_sklearn():
    from sklearn.metrics import r2_score as sk_r2

    rng = np.random.default_rng(1)
    y, p = rng.standard_normal((40, 3)), rng.standard_normal((40, 3))
    np.testing.assert_allclose(r2_score(y, p), sk_r2(y, p, multioutput="raw_values"))


def _bh_reference(p):
    n = p.size
    order = np.argsort(p)
    q = np.empty(n)
    running = 1.0
    for rank in range(n, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * n / rank)
        q[i] = running
    return q


def test_fdr_bh_matches_definition_and_keeps_nans():
    rng = np.random.default_rng(2)
    p = rng.uniform(size=40) ** 3
    np.testing.assert_allclose(fdr_bh(p), _bh_reference(p), rtol=1e-12)
    with_nan = np.concatenate([p[:5], [np.nan], p[5:10]])
    q = fdr_bh(with_nan)
    assert np.isnan(q[5])
    np.testing.assert_allclose(np.delete(q, 5), _bh_reference(np.concatenate([p[:5], p[5:10]])))
    q2 = fdr_bh(np.vstack([p[:10], p[10:20]]), axis=1)
    np.testing.assert_allclose(q2[1], _bh_reference(p[10:20]))
    with pytest.raises(InputError):
        fdr_bh([0.2, 1.5])


def ar1(n, T, phi, rng):
    e = rng.standard_normal((n, T))
    out = np.empty_like(e)
    out[0] = e[0]
    for t in range(1, n):
        out[t] = phi * out[t - 1] + e[t]
    return out


def test_circular_null_keeps_false_positives_at_level_under_autocorrelation():
    rng = np.random.default_rng(3)
    groups = np.repeat([0, 1, 2], 150)
    y = ar1(450, 400, 0.8, rng)
    pred = ar1(450, 400, 0.8, rng)  # independent of y, equally smooth
    res = permutation_test(y, pred, groups, n_permutations=300, random_state=0)
    assert abs((res.p_value < 0.05).mean() - 0.05) < 0.03
    # a naive i.i.d. shuffle would reject far too often on the same data
    naive = np.mean([(np.corrcoef(y[:, j], pred[:, j])[0, 1]) > 1.645 / np.sqrt(450) for j in range(400)])
    assert naive > 0.15


def test_signal_is_detected_and_results_are_seeded():
    rng = np.random.default_rng(4)
    groups = np.repeat([0, 1], 120)
    y = ar1(240, 5, 0.5, rng)
    pred = y + 2.0 * rng.standard_normal((240, 5))
    for method in ("circular", "block"):
        a = permutation_test(y, pred, groups, n_permutations=200, method=method, random_state=1)
        b = permutation_test(y, pred, groups, n_permutations=200, method=method, random_state=1)
        np.testing.assert_array_equal(a.p_value, b.p_value)
        assert (a.p_value <= 1 / 201 + 1e-12).all()
        r_expected = np.mean([pearson_r(y[groups == g], pred[groups == g]) for g in (0, 1)], axis=0)
        np.testing.assert_allclose(a.observed, r_expected, rtol=1e-10)


def test_circular_null_equals_explicit_shifts():
    rng = np.random.default_rng(5)
    y, pred = rng.standard_normal((30, 2)), rng.standard_normal((30, 2))
    res = permutation_test(y, pred, n_permutations=50, random_state=7, min_shift=3)
    shifts = np.random.default_rng(7).integers(3, 30 - 3 + 1, size=50)
    null = np.array([pearson_r(np.roll(y, -k, axis=0), pred, warn=False) for k in shifts])
    np.testing.assert_allclose(res.null_mean, null.mean(0), rtol=1e-10)
    np.testing.assert_allclose(res.p_value, (1 + (null >= res.observed - 1e-12).sum(0)) / 51)


def test_permutation_input_errors():
    with pytest.raises(InputError, match="method"):
        permutation_test(np.ones((10, 1)), np.ones((10, 1)), method="shuffle")
    with pytest.raises(InputError, match="at least 4"):
        permutation_test(np.zeros((6, 1)), np.zeros((6, 1)), groups=[0, 0, 0, 1, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = permutation_test(np.ones((10, 1)), np.arange(10.0)[:, None], n_permutations=5)
    assert np.isnan(res.p_value[0])


def test_one_permutation_result_type_for_encoding_and_rsa():
    """Regression (issue 16): encoding and rsa each defined a PermutationResult, with different fields."""
    from brainalign import rsa
    from brainalign.data import PermutationResult

    rng = np.random.default_rng(8)
    y = rng.standard_normal((40, 3))
    enc = permutation_test(y, y + rng.standard_normal((40, 3)), n_permutations=20, random_state=0)
    pts = rng.standard_normal((8, 5))
    brain = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    noise = rng.random((8, 8))
    model = brain + 0.1 * (noise + noise.T) * (1 - np.eye(8))
    res = rsa.permutation_test(brain, model, n_permutations=20, seed=0)
    for r in (enc, res):
        assert type(r) is PermutationResult
        assert r.n_permutations == 20 and 0 < np.min(r.p_value) <= 1
    assert enc.method == "circular" and enc.null is None
    assert res.method == "stimulus_labels" and res.null.shape == (20,) and res.null_mean == res.null.mean()
    flat = permutation_test(y[:, 0], y[:, 0] + rng.standard_normal(40), n_permutations=20)
    assert isinstance(flat.observed, float) and isinstance(flat.p_value, float)
