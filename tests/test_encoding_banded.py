"""BandedRidgeCV against himalaya's GroupRidgeCV; variance partitioning."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.encoding import BandedRidgeCV, RidgeCV, variance_partitioning
from brainalign.errors import InputError, ShapeMismatchError

ALPHAS = np.logspace(-2, 5, 8)


def two_spaces(n=200, p1=12, p2=20, T=60, seed=0, centre=True):
    rng = np.random.default_rng(seed)
    X1 = rng.standard_normal((n, p1))
    X2 = rng.standard_normal((n, p2))
    w1 = rng.standard_normal((p1, T)) * rng.uniform(0, 1, T)
    w2 = rng.standard_normal((p2, T)) * rng.uniform(0, 0.3, T)
    Y = X1 @ w1 + X2 @ w2 + 2.0 * rng.standard_normal((n, T))
    if centre:
        X1, X2, Y = X1 - X1.mean(0), X2 - X2.mean(0), Y - Y.mean(0)
    return X1, X2, Y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_agrees_with_himalaya_group_ridge(dtype):
    hb = pytest.importorskip("himalaya.backend")
    from himalaya.ridge import GroupRidgeCV
    from threadpoolctl import threadpool_limits

    X1, X2, Y = (a.astype(dtype) for a in two_spaces())
    weights = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8], [0.99, 0.01]])
    ours = BandedRidgeCV(alphas=ALPHAS, n_iter=weights, fit_intercept=False, dtype=dtype).fit([X1, X2], Y)
    previous = hb.get_backend().name
    hb.set_backend("numpy", on_error="raise")
    try:
        with threadpool_limits(limits=1):
            theirs = GroupRidgeCV(
                groups="input", fit_intercept=False, cv=5,
                solver_params=dict(n_iter=weights, alphas=ALPHAS, progress_bar=False, warn=False),
            ).fit([X1, X2], Y)
    finally:
        hb.set_backend(previous, on_error="warn")
    same = np.all(np.isclose(ours.deltas_, np.asarray(theirs.deltas_), rtol=1e-4, atol=1e-6), axis=0)
    assert same.mean() >= 0.99
    coef_t = np.asarray(theirs.coef_)
    rel = np.linalg.norm(ours.coef_ - coef_t, axis=0)[same] / np.linalg.norm(coef_t, axis=0)[same]
    assert rel.max() < (1e-3 if dtype == "float32" else 1e-9)
    np.testing.assert_allclose(ours.cv_scores_, np.asarray(theirs.cv_scores_), rtol=1e-3 if dtype == "float32" else 1e-9)


def test_equal_weights_reduce_to_ridge_and_split_predictions_add_up():
    X1, X2, Y = two_spaces(centre=False)
    banded = BandedRidgeCV(alphas=ALPHAS, n_iter=np.array([[0.5, 0.5]]), dtype="float64").fit([X1, X2], Y)
    # scaling every feature by sqrt(1/2) with penalty a equals penalty 2a on the raw features
    plain = RidgeCV(alphas=2 * ALPHAS, dtype="float64").fit(np.hstack([X1, X2]), Y)
    np.testing.assert_allclose(banded.alpha_ * 2, plain.alpha_)
    np.testing.assert_allclose(banded.coef_, plain.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(banded.space_alphas_, np.vstack([plain.alpha_, plain.alpha_]))
    split = banded.predict_split([X1, X2])
    np.testing.assert_allclose(split.sum(0) + banded.intercept_, banded.predict([X1, X2]), rtol=1e-10)


def test_random_search_prefers_the_informative_space():
    X1, X2, Y = two_spaces(T=30, seed=1)
    rng = np.random.default_rng(5)
    X3 = rng.standard_normal((X1.shape[0], 40))  # pure noise space
    m = BandedRidgeCV(alphas=ALPHAS, n_iter=15, random_state=0).fit([X1, X3], Y)
    assert m.weights_tried_.shape == (15, 2) and np.allclose(m.weights_tried_[0], 0.5)
    assert np.median(m.space_alphas_[1] / m.space_alphas_[0]) > 10
    again = BandedRidgeCV(alphas=ALPHAS, n_iter=15, random_state=0).fit([X1, X3], Y)
    np.testing.assert_array_equal(m.coef_, again.coef_)
    with pytest.raises(ShapeMismatchError):
        m.predict([X1, X3[:, :5]])
    # one 2-D X cut by ``bands`` is the same model as the list of spaces (the scikit-learn form)
    flat = BandedRidgeCV(alphas=ALPHAS, n_iter=15, random_state=0, bands=[X1.shape[1], X3.shape[1]])
    flat.fit(np.hstack([X1, X3]), Y)
    np.testing.assert_allclose(flat.coef_, m.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(flat.predict(np.hstack([X1, X3])), m.predict([X1, X3]), rtol=1e-6, atol=1e-8)
    with pytest.raises(InputError, match="bands"):
        BandedRidgeCV(bands=[3, 4]).fit(np.hstack([X1, X3]), Y)


def test_variance_partitioning_finds_the_generating_space():
    rng = np.random.default_rng(2)
    n, T = 240, 12
    groups = np.repeat(np.arange(4), n // 4)
    A = rng.standard_normal((n, 10))
    Bsp = rng.standard_normal((n, 10))
    shared = rng.standard_normal((n, 3))
    A[:, :3] += 2 * shared
    Bsp[:, :3] += 2 * shared
    Y = A @ rng.standard_normal((10, T)) + 3.0 * rng.standard_normal((n, T))
    vp = variance_partitioning([A, Bsp], Y, groups=groups, names=["layer", "baseline"], alphas=ALPHAS)
    assert vp.names == ["layer", "baseline"]
    assert (vp.best_space() == 0).all()
    assert (vp.unique[0] > 0.1).all() and (np.abs(vp.unique[1]) < 0.05).all()
    np.testing.assert_allclose(vp.unique, vp.r2_full[None] - vp.r2_without)
    # two spaces: shared of each equals R²(A) + R²(B) - R²(A, B)
    expected = vp.r2_alone.sum(0) - vp.r2_full
    np.testing.assert_allclose(vp.shared[0], expected)
    np.testing.assert_allclose(vp.shared_all, expected)
    assert (vp.shared_all > 0.02).mean() > 0.8  # the correlated part is shared
    np.testing.assert_allclose(vp.unique_folds.mean(1), vp.unique, rtol=1e-10)
    with pytest.raises(InputError, match="at least 2"):
        variance_partitioning([A], Y)


def test_wide_models_are_fitted_on_an_equivalent_design():
    from brainalign.encoding import cross_validated_scores
    from brainalign.encoding.partition import _same_gram

    rng = np.random.default_rng(3)
    n, T = 60, 4
    X = rng.standard_normal((n, 150)) + 0.5
    Y = X[:, :5] @ rng.standard_normal((5, T)) + rng.standard_normal((n, T))
    Z = _same_gram(X)
    assert Z.shape == (n, n)
    np.testing.assert_allclose(Z @ Z.T, X @ X.T, rtol=1e-9, atol=1e-8)
    a = cross_validated_scores(X, Y, alphas=ALPHAS, dtype="float64")
    b = cross_validated_scores(Z, Y, alphas=ALPHAS, dtype="float64")
    np.testing.assert_allclose(a.predictions, b.predictions, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(a.alpha_folds, b.alpha_folds)


def _baseline_and_layer(n=120, q=(4, 3), p=300, T=9, seed=4):
    """Small bands (a baseline) next to one wide band (a layer), as in the pipeline's two-band fits."""
    rng = np.random.default_rng(seed)
    small = [rng.standard_normal((n, k)) for k in q]
    X = rng.standard_normal((n, p)) + 0.5
    mix = np.linspace(0, 1, T)  # from baseline-driven to layer-driven targets
    Y = sum(S @ rng.standard_normal((S.shape[1], T)) for S in small) * (1 - mix)
    Y = Y + 0.5 * X[:, :15] @ rng.standard_normal((15, T)) * mix + 2.0 * rng.standard_normal((n, T)) + 2.0
    return small, X, Y


def test_the_low_rank_path_is_taken_only_where_it_applies():
    from brainalign.encoding._banded_kernel import lowrank_main_band
    from brainalign.encoding._splits import make_splits

    splits = make_splits(5, 120)
    assert lowrank_main_band([4, 3, 300], splits, 120) == 2
    assert lowrank_main_band([300, 8], splits, 120) == 0
    assert lowrank_main_band([12, 20], splits, 120) is None  # narrow: the generic path is primal
    assert lowrank_main_band([60, 300], splits, 120) is None  # the small band is not small
    assert lowrank_main_band([300], splits, 120) is None


@pytest.mark.parametrize("criterion", ["mse", "r"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_low_rank_path_equals_the_generic_dual_path(criterion, fit_intercept):
    small, X, Y = _baseline_and_layer()
    # a zero weight and a weighting that all but switches the layer off are included
    weights = np.array([[0.4, 0.3, 0.3], [0.9, 0.0, 0.1], [0.01, 0.01, 0.98], [0.4995, 0.4995, 0.001]])
    kw = dict(alphas=np.logspace(-2, 6, 9), n_iter=weights, dtype="float64", alpha_criterion=criterion,
              fit_intercept=fit_intercept)
    generic = BandedRidgeCV(solver="dual", **kw).fit([*small, X], Y)  # "dual" forces one ridge per weighting
    fast = BandedRidgeCV(**kw).fit([*small, X], Y)
    np.testing.assert_array_equal(fast.alpha_, generic.alpha_)
    np.testing.assert_array_equal(fast.space_weights_, generic.space_weights_)
    np.testing.assert_allclose(fast.cv_scores_, generic.cv_scores_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fast.best_score_, generic.best_score_, rtol=1e-8, atol=1e-10)
    scale = np.abs(generic.coef_).max()
    np.testing.assert_allclose(fast.coef_, generic.coef_, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(fast.intercept_, generic.intercept_, rtol=0, atol=1e-8 * np.abs(Y).max())
    assert np.unique(fast.space_weights_, axis=1).shape[1] > 1  # the search is not degenerate


def test_low_rank_path_in_float32_matches_float64():
    small, X, Y = _baseline_and_layer(seed=5)
    weights = np.array([[0.25, 0.25, 0.5], [0.45, 0.45, 0.1], [0.495, 0.495, 0.01]])
    ref = BandedRidgeCV(n_iter=weights, solver="dual", dtype="float64").fit([*small, X], Y)
    f32 = BandedRidgeCV(n_iter=weights, dtype="float32").fit([*small, X], Y)
    assert f32.coef_.dtype == np.float32
    same = (f32.alpha_ == ref.alpha_) & np.all(f32.space_weights_ == ref.space_weights_, axis=0)
    assert same.mean() >= 0.85
    np.testing.assert_allclose(f32.predict([*small, X])[:, same], ref.predict([*small, X])[:, same], rtol=1e-4, atol=1e-4)


def test_low_rank_refit_by_cholesky_equals_refit_by_eigendecomposition(monkeypatch):
    from brainalign.encoding import _banded_kernel

    small, X, Y = _baseline_and_layer(seed=6)
    kw = dict(alphas=np.logspace(-2, 6, 9), n_iter=np.array([[0.3, 0.3, 0.4], [0.45, 0.45, 0.1]]), dtype="float64")
    by_cholesky = BandedRidgeCV(**kw).fit([*small, X], Y)
    monkeypatch.setattr(_banded_kernel, "REFIT_CHOLESKY_MAX", 0)
    by_eigh = BandedRidgeCV(**kw).fit([*small, X], Y)
    np.testing.assert_array_equal(by_eigh.alpha_, by_cholesky.alpha_)
    np.testing.assert_allclose(by_eigh.coef_, by_cholesky.coef_, rtol=0, atol=1e-9 * np.abs(by_eigh.coef_).max())
    np.testing.assert_allclose(by_eigh.intercept_, by_cholesky.intercept_, rtol=0, atol=1e-9 * np.abs(Y).max())
