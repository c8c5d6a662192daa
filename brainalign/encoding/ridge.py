"""``RidgeCV``: ridge regression with one cross-validated alpha per target."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from . import _solver
from ._backend import resolve_backend
from ._checks import score_predictions, as_targets, check_fitted, finite_target_mask, linear_predict, validate_design
from ._splits import make_splits

#: The one default alpha grid of brainalign: 13 penalties, 1e-2 to 1e10, one per decade.
#:
#: Scale: alpha is the ridge penalty on the un-normalised design,
#: ``||X b - y||^2 + alpha ||b||^2``, i.e. ``X^T X + alpha I`` (primal) or
#: ``X X^T + alpha I`` (dual), with ``X`` as given (after centring when
#: ``fit_intercept``). The same alpha is the same penalty in :class:`RidgeCV`,
#: :func:`~brainalign.encoding.cross_validated_scores`,
#: :class:`~brainalign.encoding.BandedRidgeCV` (the overall ``alpha``, before the
#: space weights), :func:`~brainalign.encoding.variance_partitioning` and the
#: kernel ridge of :mod:`brainalign.encoding.layer_id` (kernels ``X X^T``). With
#: z-scored columns the useful range grows with the number of features.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(10.0**k for k in range(-2, 11))


class RidgeCV(RegressorMixin, BaseEstimator):
    """Ridge regression choosing one penalty per target by cross-validation.

    Solves ``min_b ||X b - y||^2 + alpha ||b||^2`` for every target (column of
    ``Y``) with the alpha whose mean validation criterion over the folds is
    best, then refits on all samples.

    Parameters
    ----------
    alphas : sequence of float, shape (n_alphas,)
        Candidate penalties (positive).
    cv : int, scikit-learn splitter or iterable of (train, test)
        An int gives contiguous K-fold without shuffling (as himalaya). When
        ``groups`` is passed to :meth:`fit`, an int means leave-one-group-out.
    fit_intercept : bool
        Centre ``X`` and ``Y`` with the training means of each fold (and of
        all samples for the refit) and learn an intercept per target.
    alpha_criterion : {"mse", "r"}
        Validation criterion: mean squared error (default, as himalaya) or
        Pearson r, each computed within a fold and averaged over folds.
        Exact ties (up to rounding) go to the larger alpha.
    backend : {"auto", "numpy", "torch"}
        ``"auto"``: torch (CUDA when present, else CPU), numpy without torch.
    dtype : {"float32", "float64"}
        Working precision. ``"float64"`` with float64 inputs gives results
        accurate to float64.
    max_memory : float, optional
        Bytes the working set may use, beyond ``X``, ``Y`` and the
        coefficients. Default: half of the memory available at fit time.
        Targets are batched to fit; there is no batch size to tune.
    nan_policy : {"raise", "drop_targets"}
        What non-finite values in ``Y`` do: raise an error naming how many
        and where, or drop those targets (their outputs are NaN).
        Non-finite values in ``X`` always raise.
    solver : {"auto", "primal", "dual"}
        ``"auto"`` decomposes ``X.T X`` when ``n_features <= n_samples`` and
        the kernel ``X X.T`` otherwise; both give the same answer.

    Attributes
    ----------
    alpha_ : ndarray, shape (n_targets,)
        Chosen penalty per target (NaN for dropped targets).
    coef_ : ndarray, shape (n_features, n_targets)
    intercept_ : ndarray, shape (n_targets,)
        Zeros when ``fit_intercept=False``.
    cv_scores_ : ndarray, shape (n_alphas, n_targets)
        Mean validation score over folds for each alpha, in the order of
        ``alphas``; higher is better (negative MSE, or r).
    best_score_ : ndarray, shape (n_targets,)
        ``cv_scores_`` at the chosen alpha.
    n_features_in_ : int
    n_splits_ : int
    """

    def __init__(
        self,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        cv: Any = 5,
        fit_intercept: bool = True,
        alpha_criterion: str = "mse",
        backend: str = "auto",
        dtype: str = "float32",
        max_memory: float | None = None,
        nan_policy: str = "raise",
        solver: str = "auto",
    ):
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.alpha_criterion = alpha_criterion
        self.backend = backend
        self.dtype = dtype
        self.max_memory = max_memory
        self.nan_policy = nan_policy
        self.solver = solver

    def fit(self, X: Any, y: Any, groups: Any = None) -> "RidgeCV":
        """Choose alphas by cross-validation and refit.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            2-D, real, dense (1-D, complex or sparse ``X`` is refused).
        y : array-like, shape (n_samples, n_targets) or (n_samples,)
        groups : array-like, shape (n_samples,), optional
            Run / story label per sample; with an int ``cv`` the folds are
            leave-one-group-out.

        Returns
        -------
        self
        """
        X = validate_design(self, X, reset=True)
        Y, flat = as_targets(y, X.shape[0])
        keep = finite_target_mask(Y, self.nan_policy)
        Yfit = Y if keep is None else Y[:, keep]
        B = resolve_backend(self.backend, self.dtype)
        alphas = np.asarray(self.alphas, dtype=np.float64).ravel()
        splits = make_splits(self.cv, X.shape[0], groups)
        _solver.check_rank_inputs(X.shape[0], splits)
        path = _solver.ridge_cv(
            B,
            X,
            Yfit,
            splits,
            alphas,
            criterion=self.alpha_criterion,
            fit_intercept=self.fit_intercept,
            solver=self.solver,
            max_memory=self.max_memory,
        )
        T = Y.shape[1]
        p = X.shape[1]
        if keep is None:
            self.alpha_ = alphas[path.alpha_index]
            self.coef_ = path.coef
            self.intercept_ = path.intercept
            self.cv_scores_ = path.cv_scores
        else:
            self.alpha_ = np.full(T, np.nan)
            self.alpha_[keep] = alphas[path.alpha_index]
            self.coef_ = np.full((p, T), np.nan, dtype=path.coef.dtype)
            self.coef_[:, keep] = path.coef
            self.intercept_ = np.full(T, np.nan, dtype=path.intercept.dtype)
            self.intercept_[keep] = path.intercept
            self.cv_scores_ = np.full((alphas.size, T), np.nan)
            self.cv_scores_[:, keep] = path.cv_scores
        best = np.full(T, np.nan)
        idx = np.flatnonzero(keep) if keep is not None else np.arange(T)
        best[idx] = path.cv_scores[path.alpha_index, np.arange(idx.size)]
        self.best_score_ = best
        self.n_features_in_ = p
        self.n_splits_ = len(splits)
        self._flat = flat
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = False
        return tags

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, shape (n_samples, n_targets) (or (n_samples,) after a 1-D fit)."""
        check_fitted(self)
        X = validate_design(self, X, reset=False)
        pred = linear_predict(X, self.coef_, self.intercept_)
        return pred[:, 0] if self._flat else pred

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> np.ndarray:
        """Per-target Pearson r between ``y`` and the predictions, shape (n_targets,).

        Constant targets score NaN (with one warning giving their count).
        """
        return score_predictions(self.predict(X), y, flat=self._flat, sample_weight=sample_weight, owner="RidgeCV")
