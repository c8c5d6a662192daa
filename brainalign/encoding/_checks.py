"""Input checks shared by the ridge estimators."""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import InputError, NonFiniteError, NonNumericError, NotFittedError, ShapeMismatchError
from .stats import pearson_r

NAN_POLICIES = ("raise", "drop_targets")
_CHUNK = 4096  # columns checked at a time, so that checking never copies Y whole


def _as_numeric(A: Any, name: str) -> np.ndarray:
    """``A`` as a real floating array; refuses sparse, complex and non-numeric values."""
    if sp.issparse(A):
        raise InputError(
            f"{name} is a sparse matrix ({type(A).__name__}); sparse input is not supported: "
            f"convert it with {name}.toarray() or select fewer features"
        )
    try:
        A = np.asarray(A)
    except (TypeError, ValueError) as exc:
        raise NonNumericError(f"{name} is not an array of numbers ({exc}); give a numeric array") from None
    if np.iscomplexobj(A):
        raise InputError(
            f"Complex data not supported: {name} has dtype {A.dtype}; "
            f"pass its real part ({name}.real) or magnitude (np.abs({name}))"
        )
    if A.dtype == object:
        try:
            A = A.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise NonNumericError(f"{name} must hold numbers only: {exc}") from None
    elif not np.issubdtype(A.dtype, np.floating):
        if not np.issubdtype(A.dtype, np.number) and A.dtype != bool:
            raise NonNumericError(f"{name} must be numeric; got dtype {A.dtype}")
        A = A.astype(np.float64)
    return A


def as_design(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as a 2-D real floating array (no copy when it already is one).

    Refuses, with a one-line message: sparse matrices, complex values,
    non-numeric values, 1-D arrays (ambiguous: one feature or one sample?),
    other shapes than 2-D, and no samples or no features.
    """
    X = _as_numeric(X, name)
    if X.ndim == 1:
        raise ShapeMismatchError(
            f"{name} is 1-D (shape {X.shape}) but must be 2-D (samples, features); Reshape your data: "
            f"{name}.reshape(-1, 1) for one feature, {name}.reshape(1, -1) for one sample"
        )
    if X.ndim != 2:
        raise ShapeMismatchError(f"{name} must be 2-D (samples, features); got shape {X.shape}")
    if X.shape[1] == 0:
        raise ShapeMismatchError(
            f"{name} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required; give at least one feature"
        )
    if X.shape[0] == 0:
        raise ShapeMismatchError(
            f"{name} has 0 sample(s) (shape={X.shape}) while a minimum of 1 is required; give at least one sample"
        )
    return X


def as_targets(Y: Any, n_samples: int) -> tuple[np.ndarray, bool]:
    """``Y`` as a 2-D array (samples, targets) and whether it was 1-D."""
    if Y is None:
        raise InputError("fitting requires y to be passed, but the target y is None; give Y (samples, targets)")
    Y = _as_numeric(Y, "Y")
    flat = Y.ndim == 1
    if flat:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise ShapeMismatchError(f"Y must be 1-D or 2-D (samples, targets); got shape {Y.shape}")
    if Y.shape[0] != n_samples:
        raise ShapeMismatchError(f"X has {n_samples} samples but Y has {Y.shape[0]}; they must match")
    if Y.shape[1] == 0:
        raise ShapeMismatchError("Y has no targets (0 columns)")
    return Y, flat


def check_finite_design(X: np.ndarray, name: str = "X") -> None:
    """Raise :class:`NonFiniteError` naming how many and where."""
    bad = ~np.isfinite(X)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise NonFiniteError(
            f"{name} has {rows.size} non-finite values (NaN or inf) in {np.unique(rows).size} samples and "
            f"{np.unique(cols).size} features (first at sample {rows[0]}, feature {cols[0]}); "
            "impute or remove them before fitting"
        )


def validate_design(estimator: Any, X: Any, *, reset: bool, name: str = "X") -> np.ndarray:
    """Check ``X`` at the edge of ``fit`` (``reset=True``) or ``predict``/``score``.

    Our checks (:func:`as_design`, :func:`check_finite_design`, the feature
    count against ``n_features_in_``) give one-line brainalign errors; then
    :func:`sklearn.utils.validation.validate_data` records or checks
    ``n_features_in_`` and the column names of a DataFrame.

    Returns
    -------
    ndarray, shape (n_samples, n_features)
    """
    A = as_design(X, name)
    check_finite_design(A, name)
    expected = getattr(estimator, "n_features_in_", None)
    if not reset and expected is not None and A.shape[1] != expected:
        raise ShapeMismatchError(
            f"{name} has {A.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{expected} features as input; give the same features as in fit"
        )
    validate_data(estimator, X=X if hasattr(X, "columns") else A, reset=reset, skip_check_array=True)
    return A


def linear_predict(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """``X @ coef + intercept`` accumulated in float64, returned in ``coef``'s dtype.

    A float32 product's last bit can depend on where a row sits in BLAS's blocks, so
    the same sample could get a different prediction in another sample order; summing in
    float64 and rounding once makes each row's prediction depend on that row alone.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
    coef : ndarray, shape (n_features, n_targets)
    intercept : ndarray, shape (n_targets,)
    """
    pred = np.asarray(X, dtype=np.float64) @ np.asarray(coef, dtype=np.float64)
    pred += np.asarray(intercept, dtype=np.float64)
    return pred.astype(coef.dtype, copy=False)


def check_fitted(estimator: Any, attribute: str = "coef_") -> None:
    """Raise our :class:`~brainalign.errors.NotFittedError` (also scikit-learn's) before ``fit``."""
    try:
        check_is_fitted(estimator, attribute)
    except SklearnNotFittedError:
        raise NotFittedError(
            f"this {type(estimator).__name__} is not fitted yet; call fit(X, Y) first"
        ) from None


def nonfinite_targets(Y: np.ndarray) -> np.ndarray:
    """Boolean (n_targets,): columns of ``Y`` holding NaN or inf (checked in chunks)."""
    out = np.zeros(Y.shape[1], dtype=bool)
    for start in range(0, Y.shape[1], _CHUNK):
        sl = slice(start, start + _CHUNK)
        out[sl] = ~np.isfinite(Y[:, sl]).all(0)
    return out


def finite_target_mask(Y: np.ndarray, nan_policy: str, name: str = "Y") -> np.ndarray | None:
    """Targets to fit: ``None`` when all are finite, else a boolean mask.

    With ``nan_policy="raise"`` non-finite values raise :class:`NonFiniteError`;
    with ``"drop_targets"`` the affected targets are dropped with one warning.
    """
    if nan_policy not in NAN_POLICIES:
        raise InputError(f"nan_policy {nan_policy!r} is not one of {NAN_POLICIES}")
    bad = nonfinite_targets(Y)
    if not bad.any():
        return None
    cols = np.flatnonzero(bad)
    if nan_policy == "raise":
        n_values = int(sum((~np.isfinite(Y[:, c])).sum() for c in cols[:1000]))
        first_row = int(np.flatnonzero(~np.isfinite(Y[:, cols[0]]))[0])
        more = "+" if cols.size > 1000 else ""
        raise NonFiniteError(
            f"{name} has {n_values}{more} non-finite values in {cols.size} of {Y.shape[1]} targets "
            f"(first at sample {first_row}, target {cols[0]}; targets {cols[:5].tolist()}...); "
            "clean them or pass nan_policy='drop_targets'"
        )
    if cols.size == Y.shape[1]:
        raise NonFiniteError(f"every one of the {Y.shape[1]} targets in {name} has non-finite values; nothing to fit")
    warnings.warn(
        f"dropped {cols.size} of {Y.shape[1]} targets with non-finite values (their outputs are NaN)",
        UserWarning,
        stacklevel=3,
    )
    return ~bad


def stack_spaces(Xs: Sequence[Any]) -> tuple[list[np.ndarray], np.ndarray]:
    """Check a list of feature spaces: each 2-D, finite, with the same number of samples.

    Returns
    -------
    Xs : list of ndarray, each (n_samples, n_features_k)
    sizes : ndarray of int, shape (n_spaces,)
    """
    Xs = [as_design(X, f"X[{k}]") for k, X in enumerate(Xs)]
    if len(Xs) < 1:
        raise InputError("BandedRidgeCV needs at least one feature space; got an empty list")
    n = Xs[0].shape[0]
    for k, X in enumerate(Xs):
        if X.shape[0] != n:
            raise ShapeMismatchError(f"feature space {k} has {X.shape[0]} samples but space 0 has {n}")
        check_finite_design(X, f"X[{k}]")
    return Xs, np.array([X.shape[1] for X in Xs], dtype=np.intp)


def check_bands(bands: Sequence[int] | None, n_features: int) -> np.ndarray:
    """Band sizes (columns per feature space, in column order); ``None`` is one band of all columns."""
    if bands is None:
        return np.array([n_features], dtype=np.intp)
    try:
        sizes = np.asarray(bands, dtype=float).ravel()
    except (TypeError, ValueError):
        sizes = np.array([np.nan])
    if sizes.size == 0 or not np.all(np.isfinite(sizes)) or np.any(sizes < 1) or np.any(sizes % 1) or (
        int(sizes.sum()) != n_features
    ):
        raise InputError(
            f"bands={bands!r} must be positive whole numbers of columns, one per feature space, "
            f"summing to the {n_features} columns of X"
        )
    return sizes.astype(np.intp)


def is_space_list(X: Any) -> bool:
    """True for a list/tuple of 2-D feature spaces (or an empty list); False for one 2-D array or rows."""
    if not isinstance(X, (list, tuple)):
        return False
    return all(getattr(x, "ndim", None) == 2 or sp.issparse(x) for x in X)


def as_spaces(estimator: Any, X: Any, bands: Sequence[int] | None, *, reset: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Feature spaces from a list ``[X1, X2, ...]`` or from a 2-D ``X`` cut into column ``bands``.

    Parameters
    ----------
    estimator : estimator
        Receives ``n_features_in_`` (and DataFrame column names) when ``reset``.
    X : list of array-like (each (n_samples, n_features_k)) or array-like (n_samples, n_features)
    bands : sequence of int or None
        Columns per space for a 2-D ``X`` (see :func:`check_bands`); must agree
        with a list's spaces when given. After fit, a 2-D ``X`` is cut as in fit.
    reset : bool
        True in ``fit``; False in ``predict``/``score`` (feature counts are checked).

    Returns
    -------
    Xs : list of ndarray
        The spaces (views into ``X`` for a 2-D ``X``).
    sizes : ndarray of int, shape (n_spaces,)
    """
    if is_space_list(X):
        Xs, sizes = stack_spaces(X)
        total = int(sizes.sum())
        if reset and bands is not None and check_bands(bands, total).tolist() != sizes.tolist():
            raise InputError(f"bands={bands!r} disagree with the feature spaces given ({sizes.tolist()} columns)")
        if reset:
            estimator.n_features_in_ = total
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
        elif total != estimator.n_features_in_:
            raise ShapeMismatchError(
                f"X has {total} features, but {type(estimator).__name__} is expecting "
                f"{estimator.n_features_in_} features as input; give the same features as in fit"
            )
        return Xs, sizes
    A = validate_design(estimator, X, reset=reset)
    sizes = check_bands(bands, A.shape[1]) if reset else np.asarray(estimator.n_features_per_space_)
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return [A[:, a:b] for a, b in zip(edges[:-1], edges[1:])], sizes


def score_predictions(pred: np.ndarray, y: Any, *, flat: bool, sample_weight: Any, owner: str) -> np.ndarray | float:
    """Per-target Pearson r of predictions against ``y``: the ``score`` of our estimators.

    Parameters
    ----------
    pred : ndarray, shape (n_samples, n_targets) or (n_samples,)
        The estimator's predictions.
    y : array-like, shape (n_samples, n_targets) or (n_samples,)
        Held-out targets.
    flat : bool
        The estimator was fitted on 1-D ``y``: return a float.
    sample_weight : None
        Not supported; anything else is refused.
    owner : str
        The estimator's name, for messages.
    """
    if sample_weight is not None:
        raise InputError(f"sample_weight is not supported by {owner}.score; leave it None")
    Y, _ = as_targets(y, pred.shape[0])
    P = pred.reshape(pred.shape[0], -1)
    if Y.shape != P.shape:
        raise ShapeMismatchError(f"y has shape {Y.shape} but predictions have shape {P.shape}")
    r = pearson_r(Y, P)
    return float(r[0]) if flat else r
