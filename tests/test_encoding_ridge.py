"""RidgeCV against its anchors: himalaya's RidgeCV and scikit-learn's Ridge."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, LeaveOneGroupOut

from brainalign.encoding import ConstantTargetWarning, RidgeCV
from brainalign.encoding._solver import select_alphas
from brainalign.errors import InputError, NonFiniteError, NotFittedError, ShapeMismatchError

ALPHAS = np.logspace(-2, 6, 13)


def make_data(n, p, T, seed=0, centre=True, offset=0.0):
    """Every target carries some signal (SNR varies), so its best alpha is well defined."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    W = rng.standard_normal((p, T)) / np.sqrt(p) * rng.uniform(0.05, 1.0, T)
    Y = X @ W + rng.standard_normal((n, T)) + offset
    if centre:
        X -= X.mean(0)
        Y -= Y.mean(0)
    return X, Y


@pytest.fixture(scope="module")
def himalaya_numpy():
    himalaya_backend = pytest.importorskip("himalaya.backend")
    previous = himalaya_backend.get_backend().name
    himalaya_backend.set_backend("numpy", on_error="raise")
    yield
    himalaya_backend.set_backend(previous, on_error="warn")


def _himalaya_fit(X, Y, cv):
    from himalaya.ridge import RidgeCV as HRidgeCV
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # small problem: threads only add contention
        return HRidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=False, solver_params=dict(warn=False)).fit(X, Y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(240, 60), (160, 300)], ids=["primal", "dual"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("with_groups", [False, True], ids=["kfold", "groups"])
def test_agrees_with_himalaya(himalaya_numpy, dtype, shape, backend, with_groups):
    n, p = shape
    X, Y = make_data(n, p, 300, seed=1)
    X, Y = X.astype(dtype), Y.astype(dtype)
    groups = np.repeat(np.arange(4), n // 4) if with_groups else None
    ours = RidgeCV(alphas=ALPHAS, cv=5, fit_intercept=False, backend=backend, dtype=dtype).fit(X, Y, groups=groups)
    cv = list(LeaveOneGroupOut().split(X, groups=groups)) if with_groups else 5
    theirs = _himalaya_fit(X, Y, cv)
    same = np.isclose(ours.alpha_, np.asarray(theirs.best_alphas_), rtol=1e-4)
    assert same.mean() >= 0.99, f"same alpha for only {same.mean():.3f} of targets"
    Xt = np.random.default_rng(9).standard_normal((50, p)).astype(dtype)
    p_ours = ours.predict(Xt)[:, same]
    p_theirs = np.asarray(theirs.predict(Xt))[:, same]
    rel = np.linalg.norm(p_ours - p_theirs, axis=0) / np.linalg.norm(p_theirs, axis=0)
    tol = 1e-3 if dtype == "float32" else 1e-9
    assert rel.max() < tol
    assert ours.coef_.dtype == np.dtype(dtype)


@pytest.mark.parametrize("solver", ["auto", "primal", "dual"])
@pytest.mark.parametrize("shape", [(120, 20), (60, 150)], ids=["tall", "wide"])
def test_fixed_alpha_matches_sklearn_ridge_float64(solver, shape):
    n, p = shape
    X, Y = make_data(n, p, 7, seed=2, centre=False, offset=3.0)
    for alpha in (0.1, 10.0, 1e4):
        ours = RidgeCV(alphas=[alpha], dtype="float64", solver=solver).fit(X, Y)
        ref = Ridge(alpha=alpha).fit(X, Y)
        np.testing.assert_allclose(ours.coef_, ref.coef_.T, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fixed_alpha_matches_sklearn_ridge_float32(backend):
    X, Y = make_data(150, 40, 6, seed=3, centre=False, offset=2.0)
    ours = RidgeCV(alphas=[5.0], backend=backend).fit(X.astype(np.float32), Y.astype(np.float32))
    ref = Ridge(alpha=5.0).fit(X, Y)
    assert ours.coef_.dtype == np.float32
    np.testing.assert_allclose(ours.coef_, ref.coef_.T, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-3, atol=1e-4)


def _bruteforce_cv(X, Y, alphas, splits, criterion):
    """Mean over folds of the validation criterion, from scikit-learn Ridge fits."""
    scores = np.zeros((len(alphas), Y.shape[1]))
    for train, test in splits:
        for i, a in enumerate(alphas):
            pred = Ridge(alpha=a).fit(X[train], Y[train]).predict(X[test])
            if criterion == "mse":
                scores[i] -= ((Y[test] - pred) ** 2).mean(0)
            else:
                yc, pc = Y[test] - Y[test].mean(0), pred - pred.mean(0)
                scores[i] += (yc * pc).sum(0) / np.sqrt((yc**2).sum(0) * (pc**2).sum(0))
    return scores / len(splits)


@pytest.mark.parametrize("criterion", ["mse", "r"])
@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_cv_scores_match_bruteforce_with_intercept(criterion, solver):
    X, Y = make_data(100, 25, 12, seed=4, centre=False, offset=-4.0)
    alphas = np.logspace(-1, 4, 6)[::-1]  # unsorted order must be kept in cv_scores_
    groups = np.repeat([1, 2, 3, 4], 25)
    m = RidgeCV(alphas=alphas, alpha_criterion=criterion, dtype="float64", solver=solver).fit(X, Y, groups=groups)
    ref = _bruteforce_cv(X, Y, alphas, list(LeaveOneGroupOut().split(X, groups=groups)), criterion)
    np.testing.assert_allclose(m.cv_scores_, ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(m.alpha_, alphas[np.argmax(ref, axis=0)])
    np.testing.assert_allclose(m.best_score_, ref.max(0), rtol=1e-10)
    assert m.n_splits_ == 4


def test_int_cv_is_contiguous_kfold_and_splitters_are_honoured():
    X, Y = make_data(90, 10, 5, seed=5, centre=False)
    a = RidgeCV(alphas=ALPHAS, cv=3, dtype="float64").fit(X, Y)
    b = RidgeCV(alphas=ALPHAS, cv=KFold(3), dtype="float64").fit(X, Y)
    np.testing.assert_array_equal(a.cv_scores_, b.cv_scores_)
    c = RidgeCV(alphas=ALPHAS, cv=KFold(3, shuffle=True, random_state=0), dtype="float64").fit(X, Y)
    assert not np.allclose(a.cv_scores_, c.cv_scores_)


def test_primal_and_dual_paths_agree():
    X, Y = make_data(80, 70, 20, seed=6, centre=False)
    kw = dict(alphas=ALPHAS, dtype="float64")
    a = RidgeCV(solver="primal", **kw).fit(X, Y)
    b = RidgeCV(solver="dual", **kw).fit(X, Y)
    np.testing.assert_array_equal(a.alpha_, b.alpha_)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_, rtol=1e-9)


@pytest.mark.parametrize("criterion", ["mse", "r"])
def test_folded_validation_maps_give_the_same_scores(criterion):
    from brainalign.encoding._backend import resolve_backend
    from brainalign.encoding._solver import ridge_cv
    from brainalign.encoding._splits import make_splits

    X, Y = make_data(90, 120, 15, seed=12, centre=False)
    B = resolve_backend("numpy", "float64")
    kw = dict(criterion=criterion, fit_intercept=True)
    a = ridge_cv(B, X, Y, make_splits(5, 90), ALPHAS, fold_maps=False, **kw)
    b = ridge_cv(B, X, Y, make_splits(5, 90), ALPHAS, fold_maps=True, **kw)
    np.testing.assert_allclose(a.cv_scores, b.cv_scores, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(a.alpha_index, b.alpha_index)


def test_alpha_basis_rebuilds_every_alphas_weights_within_its_bound():
    from brainalign.encoding._alphas import alpha_basis, basis_tolerance

    s2 = np.linalg.svd(np.random.default_rng(3).standard_normal((320, 400)), compute_uv=False) ** 2
    alphas = np.logspace(-2, 10, 13)
    tol = basis_tolerance(np.dtype("float32"), s2.size)
    E, C = alpha_basis(s2, alphas, tol)
    assert E.shape[0] < alphas.size  # the basis is smaller than the grid here
    np.testing.assert_allclose(E @ E.T, np.eye(E.shape[0]), atol=1e-12)
    w = 1.0 / (s2[None, :] + alphas[:, None])
    rel = np.linalg.norm(C @ E - w, axis=1) / np.linalg.norm(w, axis=1)
    assert rel.max() <= tol * np.sqrt(alphas.size)
    assert alpha_basis(s2, alphas[:2], tol) is None  # nothing to drop from two distinct rows


def _basis_data(shape):
    """(X, Y, splits): a small primal problem, or the geometry of benchmarks/ridge.py."""
    from brainalign.encoding._splits import make_splits

    if shape == "small":
        X, Y = make_data(400, 300, 200, seed=13, centre=False)
        return X, Y, make_splits(5, 400)
    # n = 1600, p = 1536, 5 folds (dual, rank 1280): here the tolerance
    # eps * sqrt(r) drops a component that a fixed 8 eps would keep
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1600, 1536))
    X -= X.mean(0)
    W = rng.standard_normal((1536, 150)) * rng.uniform(0.1, 1.0, 150) / np.sqrt(1536)
    Y = X @ W + rng.standard_normal((1600, 150))
    return X, Y - Y.mean(0), make_splits(5, 1600)


def _basis_errors(shape, criterion, loosen=1.0):
    """Max errors of float32 exact and basis scores against float64, scaled per target."""
    import brainalign.encoding._alphas as alphas_mod
    from brainalign.encoding._backend import resolve_backend
    from brainalign.encoding._solver import ridge_cv

    X, Y, splits = _basis_data(shape)
    alphas = np.logspace(-2, 10, 13)
    ref = ridge_cv(resolve_backend("numpy", "float64"), X, Y, splits, alphas, criterion=criterion,
                   use_alpha_basis=False, refit=False)
    B = resolve_backend("torch", "float32")
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    exact = ridge_cv(B, X32, Y32, splits, alphas, criterion=criterion, use_alpha_basis=False)
    saved = alphas_mod.ALPHA_BASIS_TOL
    alphas_mod.ALPHA_BASIS_TOL = saved * loosen
    try:
        basis = ridge_cv(B, X32, Y32, splits, alphas, criterion=criterion, use_alpha_basis=True)
    finally:
        alphas_mod.ALPHA_BASIS_TOL = saved
    scale = np.abs(ref.cv_scores).max(axis=0)
    err_exact = np.max(np.abs(exact.cv_scores - ref.cv_scores) / scale)
    err_basis = np.max(np.abs(basis.cv_scores - ref.cv_scores) / scale)
    return err_exact, err_basis, ref, exact, basis


@pytest.mark.parametrize("shape", ["small", "benchmark"])
@pytest.mark.parametrize("criterion", ["mse", "r"])
def test_alpha_basis_costs_no_more_accuracy_than_float32_itself(criterion, shape):
    """Against float64 exact scores, the float32 basis path errs no more than float32 exact."""
    err_exact, err_basis, ref, exact, basis = _basis_errors(shape, criterion)
    assert err_basis <= 1.5 * err_exact
    assert np.mean(basis.alpha_index == ref.alpha_index) >= 0.99
    same = basis.alpha_index == exact.alpha_index
    np.testing.assert_array_equal(basis.coef[:, same], exact.coef[:, same])  # the refit does not use the basis


def test_alpha_basis_tolerance_is_where_the_error_starts():
    """On the benchmark geometry the tolerance keeps 8 rows: fewer (7) cost accuracy, so the test above can fail."""
    from brainalign.encoding._alphas import alpha_basis, basis_tolerance

    X, _Y, splits = _basis_data("benchmark")
    train = splits[0][0]
    s2 = np.linalg.svd(X[train], compute_uv=False) ** 2
    s2 = s2[s2 > s2[0] * 1e-6]
    alphas = np.logspace(-2, 10, 13)
    tol = basis_tolerance(np.dtype("float32"), s2.size)
    assert alpha_basis(s2, alphas, tol)[0].shape[0] == 8
    assert alpha_basis(s2, alphas, 8 * np.finfo(np.float32).eps)[0].shape[0] == 9  # the former fixed 8 eps
    assert alpha_basis(s2, alphas, 100 * tol)[0].shape[0] == 7
    err_exact, err_loose, *_ = _basis_errors("benchmark", "mse", loosen=100.0)
    assert err_loose > 1.5 * err_exact


def test_tiny_memory_budget_batches_targets_with_same_result():
    X, Y = make_data(100, 30, 40, seed=7, centre=False)
    big = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X, Y)
    small = RidgeCV(alphas=ALPHAS, dtype="float64", max_memory=20_000).fit(X, Y)  # a few targets per batch
    np.testing.assert_array_equal(big.alpha_, small.alpha_)
    np.testing.assert_allclose(big.coef_, small.coef_, rtol=1e-10, atol=1e-13)


def test_reruns_are_bit_identical():
    X, Y = make_data(120, 50, 30, seed=8)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    a = RidgeCV(alphas=ALPHAS).fit(X, Y)
    b = RidgeCV(alphas=ALPHAS).fit(X, Y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.cv_scores_, b.cv_scores_)


def test_ties_go_to_the_larger_alpha():
    scores = np.array([[1.0, 0.0, 2.0], [1.0, 3.0, 2.0], [0.5, 3.0, 2.0]])
    np.testing.assert_array_equal(select_alphas(scores), [1, 2, 2])
    scores_nan = np.array([[np.nan], [0.1], [np.nan]])
    assert select_alphas(scores_nan)[0] == 1


def test_constant_target_scores_nan_with_one_warning():
    X, Y = make_data(100, 10, 6, seed=9, centre=False)
    Y[:, 2] = 4.0
    Y[:, 5] = -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = RidgeCV(alphas=ALPHAS).fit(X, Y)  # fitting a constant target is fine
    assert m.alpha_[2] == ALPHAS.max()
    np.testing.assert_allclose(m.predict(X)[:, 2], 4.0, rtol=1e-5)
    with pytest.warns(ConstantTargetWarning, match="2 of 6 targets are constant") as rec:
        r = m.score(X, Y)
    assert len([w for w in rec if issubclass(w.category, ConstantTargetWarning)]) == 1
    assert np.isnan(r[[2, 5]]).all() and np.isfinite(r[[0, 1, 3, 4]]).all()


def test_nonfinite_values_raise_with_count_and_position():
    X, Y = make_data(60, 5, 4, seed=10)
    Y[7, 1] = np.nan
    Y[9, 1] = np.inf
    Y[3, 3] = np.nan
    with pytest.raises(NonFiniteError, match=r"3 non-finite values in 2 of 4 targets.*sample 7, target 1"):
        RidgeCV().fit(X, Y)
    Xb = X.copy()
    Xb[11, 2] = np.nan
    with pytest.raises(NonFiniteError, match=r"X has 1 non-finite values.*sample 11, feature 2"):
        RidgeCV().fit(Xb, np.nan_to_num(Y))


def test_nan_policy_drop_targets():
    X, Y = make_data(80, 6, 5, seed=11, centre=False)
    Yn = Y.copy()
    Yn[4, 2] = np.nan
    with pytest.warns(UserWarning, match="dropped 1 of 5 targets"):
        m = RidgeCV(alphas=ALPHAS, nan_policy="drop_targets", dtype="float64").fit(X, Yn)
    ref = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X, np.delete(Y, 2, axis=1))
    assert np.isnan(m.alpha_[2]) and np.isnan(m.coef_[:, 2]).all()
    np.testing.assert_allclose(np.delete(m.coef_, 2, axis=1), ref.coef_, rtol=1e-12)


def test_sklearn_conventions_and_bad_input():
    m = RidgeCV(alphas=(1.0, 10.0), cv=4, dtype="float64")
    c = clone(m)
    assert c.get_params()["cv"] == 4 and c.get_params()["alphas"] == (1.0, 10.0)
    with pytest.raises(NotFittedError):
        m.predict(np.zeros((3, 2)))
    X, Y = make_data(40, 3, 2)
    with pytest.raises(ShapeMismatchError, match="40 samples but Y has 39"):
        m.fit(X, Y[:39])
    with pytest.raises(InputError, match="alphas must be positive"):
        RidgeCV(alphas=[0.0, 1.0]).fit(X, Y)
    with pytest.raises(InputError, match="backend"):
        RidgeCV(backend="cupy").fit(X, Y)
    m.fit(X, Y[:, 0])
    assert m.predict(X).shape == (40,) and m.coef_.shape == (3, 1)
    with pytest.raises(ShapeMismatchError, match="4 features, but RidgeCV is expecting 3"):
        m.predict(np.zeros((5, 4)))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_dual_folds_from_one_kernel_match_their_own_kernels(monkeypatch, fit_intercept):
    """Dual folds re-centred from one kernel of all samples give each fold's own decomposition."""
    import brainalign.encoding._decompose as dec
    from brainalign.encoding._backend import resolve_backend
    from brainalign.encoding._solver import ridge_cv
    from brainalign.encoding._splits import make_splits

    rng = np.random.default_rng(21)
    X = rng.standard_normal((250, 400)) + 40.0 * rng.standard_normal(400)  # large feature means
    X += np.linspace(0, 3, 250)[:, None]  # and a drift, so fold means differ from the global one
    Y = X[:, :60] @ rng.standard_normal((60, 30)) / 8 + rng.standard_normal((250, 30)) + 5.0
    splits, alphas = make_splits(5, 250), np.logspace(-2, 8, 11)
    assert dec.kernel_is_cheaper(250, 400, splits, "auto")

    def run(dtype, shared):
        if not shared:
            monkeypatch.setattr(dec, "kernel_is_cheaper", lambda *a: False)
        try:
            B = resolve_backend("torch", dtype)
            return ridge_cv(B, X.astype(dtype), Y.astype(dtype), splits, alphas, fit_intercept=fit_intercept)
        finally:
            monkeypatch.undo()

    a, b = run("float64", True), run("float64", False)
    np.testing.assert_allclose(a.cv_scores, b.cv_scores, rtol=1e-9)
    np.testing.assert_array_equal(a.alpha_index, b.alpha_index)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-9, atol=1e-12)
    if not fit_intercept:  # float32 without centring is dominated by the feature means here
        return
    # float32: re-centring the shared kernel costs no more accuracy than each fold's own
    err = {}
    for shared in (True, False):
        r = run("float32", shared)
        err[shared] = np.max(np.abs(r.cv_scores - a.cv_scores) / np.abs(a.cv_scores).max(0))
    assert err[True] <= 1.5 * err[False] + 1e-7


def test_device_side_path_gives_the_host_path_results():
    """The GPU code path (Y uploaded once, coefficients through a (T, p) host buffer), run on CPU."""
    from dataclasses import dataclass

    from brainalign.encoding._backend import Backend, resolve_backend
    from brainalign.encoding._solver import ridge_cv
    from brainalign.encoding._splits import make_splits

    @dataclass(frozen=True)
    class DeviceLike(Backend):
        @property
        def writes_through(self) -> bool:  # what a CUDA backend reports
            return False

    X, Y = make_data(150, 200, 90, seed=5, centre=False, offset=1.0)
    splits, alphas = make_splits(5, 150), np.logspace(-2, 6, 9)
    host = ridge_cv(resolve_backend("torch", "float64"), X, Y, splits, alphas)
    for max_memory in (None, 300_000):  # Y resident; Y (108 kB) over a quarter of the budget: sent by batch
        dev = ridge_cv(DeviceLike("torch", "cpu", "float64"), X, Y, splits, alphas, max_memory=max_memory)
        np.testing.assert_array_equal(dev.alpha_index, host.alpha_index)
        np.testing.assert_allclose(dev.cv_scores, host.cv_scores, rtol=1e-12)
        np.testing.assert_allclose(dev.coef, host.coef, rtol=1e-10, atol=1e-13)
        assert dev.coef.flags.f_contiguous  # the transposed view of the (T, p) buffer
        np.testing.assert_allclose(dev.intercept, host.intercept, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 2e-4)])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_batches_on_numpy_blas_give_the_torch_results(monkeypatch, dtype, rtol, fit_intercept):
    """Many-target torch-on-CPU fits run their batch products through numpy's BLAS: same results."""
    import brainalign.encoding._backend as backend_mod
    import brainalign.encoding._solver as solver_mod
    from brainalign.encoding._backend import resolve_backend
    from brainalign.encoding._splits import make_splits

    X, Y = make_data(160, 220, 60, seed=8, centre=False, offset=1.5)
    splits, alphas = make_splits(5, 160), np.logspace(-2, 6, 9)
    B = resolve_backend("torch", dtype)
    kw = dict(fit_intercept=fit_intercept, max_memory=160 * 25 * 8 * 14)  # several batches
    torch_only = solver_mod.ridge_cv(B, X, Y, splits, alphas, **kw)
    assert not solver_mod._batches_on_host_blas(B, 60, 1e3)
    monkeypatch.setattr(solver_mod, "HOST_BLAS_MIN_TARGETS", 1)
    monkeypatch.setattr(backend_mod, "SMALL_WORK_FLOPS", 0.0)
    assert solver_mod._batches_on_host_blas(B, 60, 1e3)
    hybrid = solver_mod.ridge_cv(B, X, Y, splits, alphas, **kw)
    np.testing.assert_array_equal(hybrid.alpha_index, torch_only.alpha_index)
    np.testing.assert_allclose(hybrid.cv_scores, torch_only.cv_scores, rtol=rtol)
    scale = np.abs(torch_only.coef).max()
    np.testing.assert_allclose(hybrid.coef, torch_only.coef, rtol=rtol, atol=rtol * scale)
    if fit_intercept:
        np.testing.assert_allclose(hybrid.intercept, torch_only.intercept, rtol=rtol, atol=rtol * scale)
