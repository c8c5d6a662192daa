"""Baseline + layer as a two-band ridge: the baseline is not shrunk with the layer."""
import numpy as np

from brainalign.encoding import make_folds
from brainalign.pipeline.scoring import fit_scores, fit_scores_banded


def test_banded_baseline_keeps_baseline_performance_where_shared_penalty_loses_it():
    rng = np.random.default_rng(0)
    n, q, p, t = 300, 2, 400, 6
    B = rng.normal(size=(n, q))
    X = rng.normal(size=(n, p))  # a wide feature space carrying a little signal
    Y = B @ rng.normal(size=(q, t)) + 0.05 * X[:, :20] @ rng.normal(size=(20, t)) + rng.normal(size=(n, t))
    folds = make_folds("contiguous", n, n_folds=5)
    alphas = np.logspace(-2, 6, 9)
    base, _ = fit_scores(B, Y, folds, 4, alphas)
    shared, _ = fit_scores(np.hstack([B, X]), Y, folds, 4, alphas)
    banded, a_band = fit_scores_banded(B, X, Y, folds, 4, alphas)
    base, shared, banded = base.mean(0), shared.mean(0), banded.mean(0)
    assert banded.shape == (t,) and a_band.shape == (5, t)
    # one penalty for 402 columns shrinks the 2 baseline columns: worse than the baseline alone
    assert np.mean(shared) < np.mean(base) - 0.02
    # two bands recover (at least nearly) the baseline's performance
    assert np.mean(banded) > np.mean(shared) + 0.02
    assert np.mean(banded) > np.mean(base) - 0.02
