"""Nested cross-validation: outer folds score, inner ``RidgeCV`` picks alphas."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import FitError
from . import _solver
from ._backend import thread_limit, threads_for
from ._checks import as_design, as_targets, check_finite_design, finite_target_mask
from ._splits import make_splits
from .ridge import DEFAULT_ALPHAS, RidgeCV
from .stats import ConstantTargetWarning, _constant_columns, pearson_r, r2_score, warn_constant


@dataclass
class NestedCVResult:
    """Held-out encoding scores from :func:`cross_validated_scores`.

    Attributes
    ----------
    r : ndarray, shape (n_targets,)
        Pearson r computed within each outer test fold, then averaged over
        folds (folds where r is undefined, e.g. a target constant in that
        fold, are left out; NaN if undefined in all).
    r_folds : ndarray, shape (n_folds, n_targets)
    r2 : ndarray, shape (n_targets,)
        R² within each outer test fold (around the fold's own mean), averaged.
    r2_folds : ndarray, shape (n_folds, n_targets)
    alpha_folds : ndarray, shape (n_folds, n_targets)
        Alpha chosen by the inner cross-validation of each outer fold.
    predictions : ndarray, shape (n_samples, n_targets), or None
        Out-of-fold predictions, for plots only: never correlate them across
        folds (slow drifts between runs make that r spuriously negative).
    folds : list of ndarray
        Test indices of each outer fold.
    """

    r: np.ndarray
    r_folds: np.ndarray
    r2: np.ndarray
    r2_folds: np.ndarray
    alpha_folds: np.ndarray
    predictions: np.ndarray | None
    folds: list = field(default_factory=list)

    @property
    def n_folds(self) -> int:
        return int(self.r_folds.shape[0])


def _fold_mean(values: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values)
    n = ok.sum(0)
    total = np.where(ok, values, 0.0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _outer_loop(X, Y, outer, grp, inner_cv, alphas, ridge_kw, r_f, r2_f, a_f, preds, constant) -> None:
    """Fit and score every outer fold, filling the result arrays in place."""
    for k, (train, test) in enumerate(outer):
        g_tr = None if grp is None else grp[train]
        inner = inner_cv
        if g_tr is not None and isinstance(inner_cv, (int, np.integer)) and np.unique(g_tr).size < 2:
            g_tr = None  # one run left for training: contiguous folds instead
        if train.size < 3:
            raise FitError(f"outer fold {k} has {train.size} training samples; nested CV needs more")
        model = RidgeCV(alphas=alphas, cv=inner, **ridge_kw)
        model.fit(X[train], Y[train], groups=g_tr)
        pred = model.predict(X[test])
        if pred.ndim == 1:
            pred = pred[:, None]
        yt = Y[test]
        constant |= _constant_columns(yt)
        r_f[k] = pearson_r(yt, pred, warn=False)
        r2_f[k] = r2_score(yt, pred)
        a_f[k] = model.alpha_
        if preds is not None:
            preds[test] = pred


def cross_validated_scores(
    X: Any,
    Y: Any,
    groups: Any = None,
    outer_cv: Any = None,
    inner_cv: Any = 5,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    *,
    return_predictions: bool = True,
    **ridge_kw: Any,
) -> NestedCVResult:
    """Held-out encoding performance by nested cross-validation.

    For each outer fold a :class:`RidgeCV` is fitted on the training part
    (its alphas chosen by the inner cross-validation) and scored on the test
    part. Per-target r and R² are computed **within each outer test fold and
    then averaged** over folds.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
    Y : array-like, shape (n_samples, n_targets)
    groups : array-like, shape (n_samples,), optional
        Run / story label per sample.
    outer_cv : int, splitter or iterable, optional
        Default: leave-one-group-out when ``groups`` is given, else 5
        contiguous folds.
    inner_cv : int, splitter or iterable
        Passed to :class:`RidgeCV` as ``cv`` with the training part's groups
        (an int means leave-one-group-out when there are groups; with fewer
        than two groups left in the training part it falls back to
        ``inner_cv`` contiguous folds).
    alphas : sequence of float
    return_predictions : bool
        Keep the out-of-fold predictions (n_samples, n_targets).
    **ridge_kw
        Other :class:`RidgeCV` parameters (``alpha_criterion``, ``backend``,
        ``dtype``, ``max_memory``, ``nan_policy``, ``fit_intercept``, ``solver``).

    Returns
    -------
    NestedCVResult
    """
    X = as_design(X)
    Y, _flat = as_targets(Y, X.shape[0])
    check_finite_design(X)
    keep = finite_target_mask(Y, ridge_kw.pop("nan_policy", "raise"))
    T_all = Y.shape[1]
    if keep is not None:
        Y = Y[:, keep]
    if outer_cv is None:
        outer_cv = 5
    outer = make_splits(outer_cv, X.shape[0], groups)
    grp = None if groups is None else np.asarray(groups)
    n_folds, T = len(outer), Y.shape[1]
    r_f = np.full((n_folds, T), np.nan)
    r2_f = np.full((n_folds, T), np.nan)
    a_f = np.full((n_folds, T), np.nan)
    preds = np.full(Y.shape, np.nan, dtype=np.result_type(Y.dtype, np.float32)) if return_predictions else None
    constant = np.zeros(T, dtype=bool)
    n_alphas = len(np.ravel(alphas))
    flops = len(outer) * 6 * _solver.work_flops(X.shape[0], X.shape[1], T, n_alphas, 5)
    with thread_limit(None, threads_for(flops)):
        _outer_loop(X, Y, outer, grp, inner_cv, alphas, ridge_kw, r_f, r2_f, a_f, preds, constant)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantTargetWarning)
        r = _fold_mean(r_f)
        r2 = _fold_mean(r2_f)
    warn_constant(int(constant.sum()), T, "targets (in at least one test fold)")
    if keep is not None:
        def _expand(a: np.ndarray) -> np.ndarray:
            out = np.full(a.shape[:-1] + (T_all,), np.nan, dtype=np.result_type(a.dtype, np.float32))
            out[..., keep] = a
            return out

        r, r_f, r2, r2_f, a_f = map(_expand, (r, r_f, r2, r2_f, a_f))
        preds = _expand(preds) if preds is not None else None
    return NestedCVResult(
        r=r, r_folds=r_f, r2=r2, r2_folds=r2_f, alpha_folds=a_f, predictions=preds, folds=[t for _, t in outer]
    )
