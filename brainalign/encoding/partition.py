"""Variance partitioning: unique and shared held-out variance per feature space."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ._checks import as_design, as_targets
from ._splits import make_splits
from .nested import cross_validated_scores
from .ridge import DEFAULT_ALPHAS


@dataclass
class VariancePartition:
    """Held-out R² of nested models and the parts attributed to each space.

    All R² values are computed within each outer test fold and averaged over
    folds.

    Attributes
    ----------
    names : list of str
        One per feature space.
    r2_full : ndarray, shape (n_targets,)
        All spaces together.
    r2_without : ndarray, shape (n_spaces, n_targets)
        All spaces but ``k``.
    r2_alone : ndarray, shape (n_spaces, n_targets) or None
        Space ``k`` alone (None when ``alone=False``).
    unique : ndarray, shape (n_spaces, n_targets)
        ``r2_full - r2_without``: variance only space ``k`` explains.
    shared : ndarray, shape (n_spaces, n_targets) or None
        ``r2_alone - unique``: the part of space ``k``'s variance that the
        other spaces explain as well.
    shared_all : ndarray, shape (n_targets,)
        ``r2_full - unique.sum(0)``: explained variance not unique to any
        space (for two spaces, ``R²(A) + R²(B) - R²(A, B)``).
    unique_folds : ndarray, shape (n_spaces, n_folds, n_targets)
    """

    names: list
    r2_full: np.ndarray
    r2_without: np.ndarray
    r2_alone: np.ndarray | None
    unique: np.ndarray
    shared: np.ndarray | None
    shared_all: np.ndarray
    unique_folds: np.ndarray

    def best_space(self) -> np.ndarray:
        """Index of the space with the largest unique variance, per target (-1 if all NaN)."""
        u = np.where(np.isnan(self.unique), -np.inf, self.unique)
        out = np.argmax(u, axis=0)
        out[np.all(np.isnan(self.unique), axis=0)] = -1
        return out


def _same_gram(X: np.ndarray) -> np.ndarray:
    """An (n, rank) design with the same Gram matrix ``X X.T`` as the wide ``X``.

    Ridge predictions depend on the design only through ``X X.T`` (also after
    centring: centred rows stay in the row space of ``X``), so a model with
    p > n features can be fitted on ``U sqrt(lambda)`` from the eigh of
    ``X X.T`` instead, with identical results and much smaller GEMMs.
    """
    import scipy.linalg
    from threadpoolctl import threadpool_limits

    X64 = np.asarray(X, dtype=np.float64)
    K = X64 @ X64.T
    # one thread: see Backend.eigh (barrier stalls on a loaded machine)
    with threadpool_limits(limits=1 if K.shape[0] <= 2048 else None):
        lam, U = scipy.linalg.eigh(K, check_finite=False, overwrite_a=True, driver="evd")
    keep = lam > max(lam[-1], 0.0) * X.shape[0] * np.finfo(np.float64).eps
    Z = U[:, keep] * np.sqrt(lam[keep])
    return Z.astype(X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64, copy=False)


def variance_partitioning(
    Xs: Sequence[Any],
    Y: Any,
    groups: Any = None,
    *,
    names: Sequence[str] | None = None,
    outer_cv: Any = None,
    inner_cv: Any = 5,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    alone: bool = True,
    **ridge_kw: Any,
) -> VariancePartition:
    """Unique and shared variance of each feature space, on held-out folds.

    Fits, by nested cross-validation (:func:`cross_validated_scores`, a
    ridge with one alpha per target over the concatenated spaces), the full
    model, every model leaving one space out and (``alone=True``) every space
    alone: ``1 + 2 * n_spaces`` models sharing the same outer folds. The
    unique variance of space ``k`` is ``R²(full) - R²(all but k)``. A model
    with more features than samples is fitted on an equivalent n-column
    design with the same Gram matrix (identical predictions, far less work),
    so 7 layers x a few hundred targets take tens of seconds on 2 cores.

    Parameters
    ----------
    Xs : list of array-like, each (n_samples, n_features_k)
        Feature spaces (e.g. one language-model layer and low-level baselines).
        Scale them comparably (e.g. z-score): one penalty is shared.
    Y : array-like, shape (n_samples, n_targets)
    groups : array-like, shape (n_samples,), optional
        Run labels: outer and inner folds leave one run out.
    names : sequence of str, optional
    outer_cv, inner_cv, alphas, **ridge_kw :
        As :func:`cross_validated_scores`.
    alone : bool
        Also fit each space alone (needed for ``shared`` per space).

    Returns
    -------
    VariancePartition
    """
    Xs = [as_design(X, f"Xs[{k}]") for k, X in enumerate(Xs)]
    k = len(Xs)
    if k < 2:
        raise InputError(f"variance partitioning needs at least 2 feature spaces; got {k}")
    n = Xs[0].shape[0]
    Y, _ = as_targets(Y, n)
    names = [f"space{i}" for i in range(k)] if names is None else [str(s) for s in names]
    if len(names) != k:
        raise InputError(f"{len(names)} names given for {k} feature spaces")
    # fix the outer folds once so every model is scored on the same test sets
    outer = make_splits(5 if outer_cv is None else outer_cv, n, groups)

    def fit(subset: Sequence[int]):
        X = Xs[subset[0]] if len(subset) == 1 else np.hstack([Xs[i] for i in subset])
        if X.shape[1] > n:
            X = _same_gram(X)
        res = cross_validated_scores(
            X, Y, groups, outer_cv=outer, inner_cv=inner_cv, alphas=alphas, return_predictions=False, **ridge_kw
        )
        return res.r2, res.r2_folds

    r2_full, f_full = fit(list(range(k)))
    r2_without = np.empty((k, Y.shape[1]))
    f_without = np.empty((k,) + f_full.shape)
    r2_alone = np.empty((k, Y.shape[1])) if alone else None
    for i in range(k):
        rest = [j for j in range(k) if j != i]
        r2_without[i], f_without[i] = fit(rest)
    if alone:
        for i in range(k):
            if k == 2:  # "alone" is "without the other one"
                r2_alone[i] = r2_without[1 - i]
            else:
                r2_alone[i] = fit([i])[0]
    unique = r2_full[None, :] - r2_without
    shared = (r2_alone - unique) if alone else None
    return VariancePartition(
        names=names,
        r2_full=r2_full,
        r2_without=r2_without,
        r2_alone=r2_alone,
        unique=unique,
        shared=shared,
        shared_all=r2_full - unique.sum(0),
        unique_folds=f_full[None] - f_without,
    )
