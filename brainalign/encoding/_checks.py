"""Input checks shared by the ridge estimators."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import InputError, NonFiniteError, ShapeMismatchError

NAN_POLICIES = ("raise", "drop_targets")
_CHUNK = 4096  # columns checked at a time, so that checking never copies Y whole


def as_design(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as a 2-D floating array (no copy when it already is one)."""
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ShapeMismatchError(f"{name} must be 2-D (samples, features); got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        if not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
            raise InputError(f"{name} must be numeric; got dtype {X.dtype}")
        X = X.astype(np.float64)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ShapeMismatchError(f"{name} is empty (shape {X.shape})")
    return X


def as_targets(Y: Any, n_samples: int) -> tuple[np.ndarray, bool]:
    """``Y`` as a 2-D array (samples, targets) and whether it was 1-D."""
    Y = np.asarray(Y)
    flat = Y.ndim == 1
    if flat:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise ShapeMismatchError(f"Y must be 1-D or 2-D (samples, targets); got shape {Y.shape}")
    if not np.issubdtype(Y.dtype, np.floating):
        if not np.issubdtype(Y.dtype, np.number):
            raise InputError(f"Y must be numeric; got dtype {Y.dtype}")
        Y = Y.astype(np.float64)
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
            f"{name} has {rows.size} non-finite values in {np.unique(rows).size} samples and "
            f"{np.unique(cols).size} features (first at sample {rows[0]}, feature {cols[0]}); "
            "impute or remove them before fitting"
        )


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
