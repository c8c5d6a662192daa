"""Nested cross-validation: r within each outer fold, then averaged."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.encoding import ConstantTargetWarning, RidgeCV, cross_validated_scores, pearson_r, r2_score
from brainalign.errors import NonFiniteError

ALPHAS = np.logspace(-1, 5, 7)


def drifting_runs(n_runs=4, n_per_run=60, p=8, T=5, seed=0):
    """Features predict Y within runs, but each run has its own offset in Y.
    A held-out run's predicted mean is the mean of the *other* runs, which
    moves opposite to its own offset: r on out-of-fold predictions
    concatenated across folds comes out negative."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_runs), n_per_run)
    X = rng.standard_normal((groups.size, p))
    W = rng.standard_normal((p, T))
    Y = X @ W + rng.standard_normal((groups.size, T))
    shift = np.linspace(-1, 1, n_runs)
    Y += 20.0 * shift[groups, None]
    return X, Y, groups


def test_r_is_the_mean_of_within_fold_r():
    X, Y, groups = drifting_runs()
    res = cross_validated_scores(X, Y, groups=groups, alphas=ALPHAS, dtype="float64")
    assert res.n_folds == 4 and res.r_folds.shape == (4, 5) and res.alpha_folds.shape == (4, 5)
    for k, test in enumerate(res.folds):
        train = np.setdiff1d(np.arange(len(groups)), test)
        m = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X[train], Y[train], groups=groups[train])
        np.testing.assert_allclose(res.r_folds[k], pearson_r(Y[test], m.predict(X[test])), rtol=1e-10)
        np.testing.assert_allclose(res.r2_folds[k], r2_score(Y[test], m.predict(X[test])), rtol=1e-8)
        np.testing.assert_array_equal(res.alpha_folds[k], m.alpha_)
        np.testing.assert_allclose(res.predictions[test], m.predict(X[test]), rtol=1e-10)
    np.testing.assert_allclose(res.r, res.r_folds.mean(0))
    # within folds the model works; concatenating folds would have said the opposite
    assert (res.r > 0.3).all()
    assert (pearson_r(Y, res.predictions) < 0).all()


def test_default_outer_folds_leave_one_group_out_and_kfold_without_groups():
    X, Y, groups = drifting_runs(n_runs=3)
    res = cross_validated_scores(X, Y, groups=groups, alphas=ALPHAS)
    assert [np.unique(groups[t]).tolist() for t in res.folds] == [[0], [1], [2]]
    res5 = cross_validated_scores(X, Y, alphas=ALPHAS, return_predictions=False)
    assert res5.n_folds == 5 and res5.predictions is None
    assert all(np.all(np.diff(t) == 1) for t in res5.folds)  # contiguous blocks


def test_two_runs_fall_back_to_contiguous_inner_folds():
    X, Y, groups = drifting_runs(n_runs=2)
    res = cross_validated_scores(X, Y, groups=groups, alphas=ALPHAS, inner_cv=3)
    assert res.r_folds.shape == (2, 5) and np.isfinite(res.r).all()


def test_constant_fold_is_left_out_with_one_warning_and_nans_are_checked():
    X, Y, groups = drifting_runs()
    Y[groups == 1, 0] = 2.0  # target 0 flat in run 1 only
    with pytest.warns(ConstantTargetWarning, match="1 of 5 targets") as rec:
        res = cross_validated_scores(X, Y, groups=groups, alphas=ALPHAS)
    assert sum(issubclass(w.category, ConstantTargetWarning) for w in rec) == 1
    assert np.isnan(res.r_folds[1, 0]) and np.isfinite(res.r[0])
    np.testing.assert_allclose(res.r[0], np.delete(res.r_folds[:, 0], 1).mean())
    Y[3, 2] = np.nan
    with pytest.raises(NonFiniteError, match="1 non-finite values"):
        cross_validated_scores(X, Y, groups=groups, alphas=ALPHAS)
    with pytest.warns(UserWarning, match="dropped 1 of 5"), pytest.warns(ConstantTargetWarning):
        res = cross_validated_scores(X, Y, groups=groups, alphas=ALPHAS, nan_policy="drop_targets")
    assert np.isnan(res.r[2]) and np.isfinite(res.r[[1, 3, 4]]).all()
