"""``BandedRidgeCV``: several feature spaces, each with its own penalty."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from ..errors import InputError, ShapeMismatchError
from . import _alphas, _solver
from ._banded_kernel import fit_lowrank, lowrank_main_band
from ._backend import resolve_backend, thread_limit, threads_for
from ._checks import score_predictions, as_spaces, as_targets, check_fitted, finite_target_mask, linear_predict
from ._splits import make_splits
from .ridge import DEFAULT_ALPHAS


def space_weights(n_iter: int, n_spaces: int, concentration: Any, random_state: int | None) -> np.ndarray:
    """Candidate feature-space weights on the simplex, shape (n_iter, n_spaces).

    The first row is uniform; the others are Dirichlet draws cycling through
    ``concentration`` (1 = uniform on the simplex, small values favour a
    single space, ``inf`` gives equal weights).
    """
    rng = np.random.default_rng(random_state)
    conc = np.atleast_1d(np.asarray(concentration, dtype=float))
    rows = [np.full(n_spaces, 1.0 / n_spaces)]
    for i in range(1, n_iter):
        c = conc[(i - 1) % conc.size]
        rows.append(np.full(n_spaces, 1.0 / n_spaces) if np.isinf(c) else rng.dirichlet([c] * n_spaces))
    return np.vstack(rows)[:n_iter]


class BandedRidgeCV(RegressorMixin, BaseEstimator):
    """Banded (group) ridge: a separate penalty per feature space, per target.

    The feature spaces ``X_k`` are scaled by ``sqrt(g_k)`` with weights ``g``
    on the simplex and solved as one ridge with penalty ``alpha``, i.e. space
    ``k`` is penalised by ``alpha / g_k``. Weights are searched at random
    (Dirichlet draws, first the uniform weights, as himalaya's
    ``GroupRidgeCV``) and alphas on a grid; each candidate is cross-validated
    with the :class:`RidgeCV` kernel, and each target keeps its best
    ``(g, alpha)``.

    ``X`` is either one 2-D array whose columns are cut into feature spaces by
    ``bands`` (the scikit-learn form: pipelines, ``clone``, estimator checks)
    or a list ``[X1, X2, ...]`` of 2-D arrays, one per space.

    Parameters
    ----------
    alphas : sequence of float
    n_iter : int or array of shape (n_iter, n_spaces)
        Number of weight candidates, or the candidates themselves (rows on
        the simplex).
    concentration : float or sequence of float
        Dirichlet concentration(s), cycled through.
    cv, fit_intercept, alpha_criterion, backend, dtype, max_memory,
    nan_policy, solver :
        As :class:`RidgeCV`.
    random_state : int or None
        Seed of the weight draws.
    bands : sequence of int, optional
        Columns per feature space, in column order, for a 2-D ``X`` (summing
        to its number of columns). ``None``: one space of all columns with a
        2-D ``X``; the list's spaces with a list ``X``.

    Attributes
    ----------
    coef_ : ndarray, shape (sum of n_features_k, n_targets)
        On the unscaled features, spaces stacked in order.
    intercept_ : ndarray, shape (n_targets,)
    alpha_ : ndarray, shape (n_targets,)
        Overall penalty.
    space_weights_ : ndarray, shape (n_spaces, n_targets)
        Chosen ``g`` per target.
    space_alphas_ : ndarray, shape (n_spaces, n_targets)
        Effective penalty per space, ``alpha_ / space_weights_``.
    deltas_ : ndarray, shape (n_spaces, n_targets)
        ``log(g / alpha)``, himalaya's parametrisation.
    cv_scores_ : ndarray, shape (n_iter, n_targets)
        Best mean validation score over alphas for each weight candidate.
    weights_tried_ : ndarray, shape (n_iter, n_spaces)
    n_features_per_space_ : ndarray, shape (n_spaces,)
    """

    def __init__(
        self,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        n_iter: Any = 20,
        concentration: Any = (0.1, 1.0),
        cv: Any = 5,
        fit_intercept: bool = True,
        alpha_criterion: str = "mse",
        backend: str = "auto",
        dtype: str = "float32",
        max_memory: float | None = None,
        nan_policy: str = "raise",
        solver: str = "auto",
        random_state: int | None = 0,
        bands: Sequence[int] | None = None,
    ):
        self.alphas = alphas
        self.n_iter = n_iter
        self.concentration = concentration
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.alpha_criterion = alpha_criterion
        self.backend = backend
        self.dtype = dtype
        self.max_memory = max_memory
        self.nan_policy = nan_policy
        self.solver = solver
        self.random_state = random_state
        self.bands = bands

    def _weights(self, n_spaces: int) -> np.ndarray:
        if np.ndim(self.n_iter) == 0:
            if int(self.n_iter) < 1:
                raise InputError(f"n_iter must be >= 1; got {self.n_iter}")
            return space_weights(int(self.n_iter), n_spaces, self.concentration, self.random_state)
        g = np.asarray(self.n_iter, dtype=np.float64)
        if g.ndim != 2 or g.shape[1] != n_spaces or np.any(g < 0) or not np.all(np.isfinite(g)):
            raise InputError(f"n_iter as weights must be (n_iter, {n_spaces}) non-negative numbers; got shape {g.shape}")
        return g

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = False
        return tags

    def fit(self, X: Any, y: Any, groups: Any = None) -> "BandedRidgeCV":
        """Fit on ``X``: one 2-D array cut by ``bands``, or a list of spaces (each (n_samples, n_features_k)).

        ``y`` is (n_samples, n_targets) or (n_samples,); ``groups`` as :meth:`RidgeCV.fit`.
        """
        Xs, sizes = as_spaces(self, X, self.bands, reset=True)
        n = Xs[0].shape[0]
        Y, flat = as_targets(y, n)
        keep = finite_target_mask(Y, self.nan_policy)
        B = resolve_backend(self.backend, self.dtype)
        alphas = np.asarray(self.alphas, dtype=np.float64).ravel()
        splits = make_splits(self.cv, n, groups)
        _solver.check_rank_inputs(n, splits)
        gammas = self._weights(len(Xs))
        p_all = int(sizes.sum())
        flops = gammas.shape[0] * _solver.work_flops(n, p_all, Y.shape[1], len(alphas), len(splits))
        with thread_limit(B, threads_for(flops)):
            self._fit(Xs, sizes, Y, flat, keep, B, alphas, splits, gammas)
        return self

    def _fit(self, Xs, sizes, Y, flat, keep, B, alphas, splits, gammas) -> None:
        Yfit = Y if keep is None else Y[:, keep]
        eps = float(np.finfo(B.np_dtype).eps)
        main = None
        if self.solver == "auto" and (B.name == "numpy" or B.device == "cpu"):
            main = lowrank_main_band(sizes, splits, Xs[0].shape[0])
        if main is not None:  # one eigendecomposition per fold for all weightings
            _alphas.sorted_alphas(alphas)
            if self.alpha_criterion not in _solver.CRITERIA:
                raise InputError(f"alpha_criterion {self.alpha_criterion!r} is not one of {_solver.CRITERIA}")
            res = fit_lowrank(
                Xs, main, Yfit, splits, alphas, gammas, criterion=self.alpha_criterion,
                fit_intercept=self.fit_intercept, tie_rtol=8 * eps, eps=eps,
            )
            best, best_g, best_a, cv_scores = res.best, res.best_g, res.best_a, res.cv_scores
            coef, intercept = res.coef.astype(B.np_dtype), res.intercept.astype(B.np_dtype)
        else:
            best, best_g, best_a, cv_scores, coef, intercept = self._fit_generic(Xs, sizes, Yfit, B, alphas, splits, gammas)
        p = int(sizes.sum())
        self._store(Y, flat, keep, B, alphas, gammas, sizes, best, best_g, best_a, cv_scores, coef, intercept, p)

    def _fit_generic(self, Xs, sizes, Yfit, B, alphas, splits, gammas) -> tuple:
        """Every weighting solved as its own ridge (:func:`_solver.ridge_cv`), then the refit."""
        X_all = np.hstack([X.astype(B.np_dtype, copy=False) for X in Xs])
        block = np.repeat(np.arange(len(Xs)), sizes)
        T = Yfit.shape[1]
        eps = float(np.finfo(B.np_dtype).eps)
        best = np.full(T, -np.inf)
        best_g = np.zeros(T, dtype=np.intp)
        best_a = np.zeros(T, dtype=np.intp)
        cv_scores = np.full((gammas.shape[0], T), np.nan)
        for i, g in enumerate(gammas):
            Xg = X_all * np.sqrt(g)[block].astype(B.np_dtype)
            path = _solver.ridge_cv(
                B, Xg, Yfit, splits, alphas,
                criterion=self.alpha_criterion, fit_intercept=self.fit_intercept,
                solver=self.solver, max_memory=self.max_memory, refit=False,
            )
            sc = path.cv_scores[path.alpha_index, np.arange(T)]
            cv_scores[i] = sc
            better = np.nan_to_num(sc, nan=-np.inf) > best + eps
            best[better] = sc[better]
            best_g[better] = i
            best_a[better] = path.alpha_index[better]
        p = X_all.shape[1]
        coef = np.zeros((p, T), dtype=B.np_dtype)
        intercept = np.zeros(T, dtype=B.np_dtype)
        for i in np.unique(best_g):
            cols = np.flatnonzero(best_g == i)
            scale = np.sqrt(gammas[i])[block].astype(B.np_dtype)
            Xg = B.asarray(X_all * scale)
            full = _solver.decompose(B, Xg, fit_intercept=self.fit_intercept, solver=self.solver, for_refit=True)
            c, b = _solver.refit_coefficients(
                B, full, Yfit[:, cols], alphas[best_a[cols]],
                fit_intercept=self.fit_intercept, max_memory=self.max_memory,
            )
            coef[:, cols] = c * scale[:, None]
            intercept[cols] = b
        return best, best_g, best_a, cv_scores, coef, intercept

    def _store(self, Y, flat, keep, B, alphas, gammas, sizes, best, best_g, best_a, cv_scores, coef, intercept, p):
        n_sp = len(sizes)
        g_sel = gammas[best_g].T  # (n_spaces, T)
        a_sel = alphas[best_a]
        Tall = Y.shape[1]
        idx = np.flatnonzero(keep) if keep is not None else np.arange(Tall)

        def _put(shape: tuple, values: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
            out = np.full(shape, np.nan, dtype=dtype)
            out[..., idx] = values
            return out

        self.coef_ = _put((p, Tall), coef, B.np_dtype)
        self.intercept_ = _put((Tall,), intercept, B.np_dtype)
        self.alpha_ = _put((Tall,), a_sel)
        self.space_weights_ = _put((n_sp, Tall), g_sel)
        with np.errstate(divide="ignore"):
            self.space_alphas_ = self.alpha_[None, :] / self.space_weights_
            self.deltas_ = np.log(self.space_weights_) - np.log(self.alpha_)[None, :]
        self.cv_scores_ = _put((gammas.shape[0], Tall), cv_scores)
        self.best_score_ = _put((Tall,), best)
        self.weights_tried_ = gammas
        self.n_features_per_space_ = sizes
        self.n_features_in_ = int(p)
        self._flat = flat

    def _design(self, X: Any) -> np.ndarray:
        check_fitted(self)
        Xs, sizes = as_spaces(self, X, self.bands, reset=False)
        if sizes.tolist() != self.n_features_per_space_.tolist():
            raise ShapeMismatchError(
                f"feature spaces have {sizes.tolist()} features but the model was fitted on "
                f"{self.n_features_per_space_.tolist()}"
            )
        return np.hstack([X.astype(self.coef_.dtype, copy=False) for X in Xs])

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, shape (n_samples, n_targets) (or (n_samples,) after a 1-D fit); ``X`` as in :meth:`fit`."""
        pred = linear_predict(self._design(X), self.coef_, self.intercept_)
        return pred[:, 0] if self._flat else pred

    def predict_split(self, X: Any) -> np.ndarray:
        """Each space's contribution ``X_k @ coef_k``, shape (n_spaces, n_samples, n_targets).

        The sum over spaces plus ``intercept_`` is :meth:`predict`.
        """
        X = self._design(X)
        edges = np.concatenate([[0], np.cumsum(self.n_features_per_space_)])
        return np.stack([X[:, a:b] @ self.coef_[a:b] for a, b in zip(edges[:-1], edges[1:])])

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> np.ndarray:
        """Per-target Pearson r, shape (n_targets,) (a float after a 1-D fit)."""
        return score_predictions(self.predict(X), y, flat=self._flat, sample_weight=sample_weight, owner="BandedRidgeCV")
