"""Calibration of the per-target encoding p-values (issue 15, "Calibrated statistics").

Simulated studies with AR(1) features and AR(1) noise (brainalign.validation.calibration):
the refit circular-shift null must give the nominal false-positive rate on pure noise and
a false-discovery proportion <= .05 on planted truth, and the SAME data must show that the
old fold t-test (and a shift of the held-out predictions without refitting) does not.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from brainalign.encoding import cross_validated_scores, fdr_bh, folds_to_splits, make_folds
from brainalign.encoding.permutation import draw_shifts, null_pvalues, refit_shift_null, run_blocks
from brainalign.errors import InputError
from brainalign.pipeline.scoring import fit_scores_banded
from brainalign.validation.calibration import Setting, planted_study, simulate, study_pvalues

#: Small, fast studies: 100 shifts are enough for the t tail (mean and s.d. of the null).
BASE = Setting(n_targets=300, n_permutations=100)
NOISE_SEEDS = (0, 1)


@pytest.fixture(scope="module")
def noise_p():
    """p of every method pooled over the pure-noise studies (600 targets)."""
    runs = [study_pvalues(BASE, s)[0] for s in NOISE_SEEDS]
    return {m: np.concatenate([r[m] for r in runs]) for m in runs[0]}


def _interval(n: int, alpha: float) -> tuple[float, float]:
    lo, hi = stats.binom.interval(0.99, n, alpha)  # the fraction of n independent tests with p < alpha
    return lo / n, hi / n


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_pure_noise_false_positive_rate_is_nominal_with_the_shift_null(noise_p, alpha):
    p = noise_p["shift_t"]
    lo, hi = _interval(p.size, alpha)
    assert lo <= float(np.mean(p < alpha)) <= hi, (alpha, float(np.mean(p < alpha)), (lo, hi))


def test_pure_noise_the_old_fold_ttest_and_a_prediction_shift_are_liberal(noise_p):
    """The same data and interval reject the fold t-test: the folds share training data."""
    n = noise_p["fold_ttest"].size
    _, hi = _interval(n, 0.05)
    assert float(np.mean(noise_p["fold_ttest"] < 0.05)) > hi
    assert float(np.mean(noise_p["prediction_shift"] < 0.05)) > hi


def test_pure_noise_p_is_uniform_not_just_at_one_level(noise_p):
    assert stats.kstest(noise_p["shift_t"], "uniform").pvalue > 0.01
    assert stats.kstest(noise_p["fold_ttest"], "uniform").pvalue < 0.01


def test_planted_truth_false_discovery_proportion_at_most_q():
    setting = replace(BASE, n_targets=200, n_planted=40, snr=1.0)
    fdp, power = planted_study(setting, (100, 101, 102), q=0.05)
    assert np.mean(power["shift_t"]) > 0.5  # there are discoveries to count
    assert np.mean(fdp["shift_t"]) <= 0.05
    assert np.mean(fdp["fold_ttest"]) > 0.05


def test_leave_one_run_out_on_two_runs_finds_the_planted_targets_at_fdp_below_q():
    """Two folds leave the fold t-test one degree of freedom: it finds almost nothing; the shift null does."""
    setting = replace(BASE, n_targets=150, n_planted=30, snr=1.0, cv="leave_one_run_out")
    fdp, power = planted_study(setting, (200,), q=0.05)
    assert np.mean(power["shift_t"]) > 0.5 and np.mean(fdp["shift_t"]) <= 0.05
    assert np.mean(power["fold_ttest"]) < np.mean(power["shift_t"]) / 2


def test_observed_statistic_is_the_fits_r():
    X, Y, runs, _ = simulate(replace(BASE, n_targets=40), 3)
    folds = make_folds("contiguous", X.shape[0], n_folds=4)
    res = cross_validated_scores(X, Y, outer_cv=folds_to_splits(folds, X.shape[0]), inner_cv=3,
                                 alphas=np.array([1.0, 10.0, 100.0]), dtype="float64")
    null = refit_shift_null(X, Y, folds, res.alpha_folds, runs=runs, n_permutations=5, dtype=np.float64)
    np.testing.assert_allclose(null.observed, res.r, atol=1e-8)


def test_observed_statistic_of_a_banded_fit_is_its_r():
    X, Y, runs, _ = simulate(replace(BASE, n_targets=20, n_features=10), 4)
    B, L = X[:, :3], X[:, 3:]
    folds = make_folds("contiguous", X.shape[0], n_folds=3)
    bands: list = []
    r_f, _ = fit_scores_banded(B, L, Y, folds, 3, [1.0, 10.0, 100.0], band_alphas=bands)
    null = refit_shift_null(np.hstack([B, L]), Y, folds, np.stack(bands), runs=runs, bands=[3, 7],
                            n_permutations=5, dtype=np.float64)
    np.testing.assert_allclose(null.observed, r_f.mean(0), atol=1e-4)


def test_reruns_are_bit_identical_and_the_seed_changes_the_null():
    X, Y, runs, _ = simulate(replace(BASE, n_targets=30), 5)
    folds = make_folds("contiguous", X.shape[0], n_folds=5)
    alphas = np.full((5, 30), 10.0)
    a = refit_shift_null(X, Y, folds, alphas, runs=runs, n_permutations=20, seed=7)
    b = refit_shift_null(X, Y, folds, alphas, runs=runs, n_permutations=20, seed=7)
    c = refit_shift_null(X, Y, folds, alphas, runs=runs, n_permutations=20, seed=8)
    assert np.array_equal(a.null, b.null) and np.array_equal(a.shifts, b.shifts)
    np.testing.assert_array_equal(null_pvalues(a.observed, a.null), null_pvalues(b.observed, b.null))
    assert not np.array_equal(a.shifts, c.shifts) and not np.array_equal(a.null, c.null)
    np.testing.assert_array_equal(a.observed, c.observed)


def test_shifts_stay_within_runs_and_away_from_the_identity():
    runs = np.repeat(["a", "b", "c"], [50, 80, 31])
    blocks = run_blocks(runs, runs.size)
    shifts, order = draw_shifts(blocks, 300, seed=0)
    for j, b in enumerate(blocks):
        m = int(np.ceil(0.1 * b.size))
        assert shifts[:, j].min() >= m and shifts[:, j].max() <= b.size - m
        assert np.array_equal(np.sort(order[:, b], axis=1), np.broadcast_to(b, (300, b.size)))
        assert np.array_equal(order[:, b[0]], b[shifts[:, j]])
    assert len(np.unique(shifts[:, 0])) > 10
    with pytest.raises(InputError, match="scoring.permutations"):
        draw_shifts(run_blocks(None, 1), 10, seed=0)


def test_empirical_and_t_tails():
    rng = np.random.default_rng(0)
    null = rng.standard_normal((999, 3))
    obs = np.array([0.0, 2.0, np.nan])
    pe = null_pvalues(obs, null, "empirical")
    assert pe[0] == (1 + np.sum(null[:, 0] >= 0.0)) / 1000 and np.isnan(pe[2])
    pt = null_pvalues(obs, null, "t")
    mu, sd = null[:, 1].mean(), null[:, 1].std(ddof=1)
    assert pt[1] == pytest.approx(stats.t.sf((2.0 - mu) / (sd * np.sqrt(1 + 1 / 999)), 998))
    assert abs(pt[1] - stats.norm.sf(2.0)) < 0.01
    assert fdr_bh(pt[:2]).shape == (2,)
