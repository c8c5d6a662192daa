"""Penalty weights of the alpha grid, their low-rank basis, and the choice of alpha."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ._backend import Backend

#: Threshold on the singular values of the normalised penalty weights
#: (:func:`alpha_basis`), in units of ``eps * sqrt(r)`` (the working dtype's
#: machine epsilon, ``r`` the fold's rank): the exact path sums ``r`` rounded
#: products for every validation prediction, so its own relative rounding
#: error is of that order, and a basis that rebuilds every alpha's weights
#: to within it changes no score beyond float32's own error (measured in
#: ``tests/test_encoding_ridge.py``). float64 keeps nearly every component.
ALPHA_BASIS_TOL = 1.0


def basis_tolerance(dtype: np.dtype, rank: int) -> float:
    """The :func:`alpha_basis` threshold for a fold of this rank in this dtype."""
    return ALPHA_BASIS_TOL * float(np.finfo(dtype).eps) * float(np.sqrt(max(rank, 1)))


def penalty_weights(B: Backend, s2: Any, alphas: np.ndarray) -> Any:
    """``1 / (s2 + alpha)`` for every alpha: shape (n_alphas, r)."""
    a = B.asarray(np.asarray(alphas, dtype=np.float64)[:, None])
    return 1.0 / (s2[None, :] + a)


def alpha_basis(s2: np.ndarray, alphas: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A low-rank basis for the penalty weights of all alphas on one fold.

    The rows ``w_a = 1 / (s2 + alpha_a)`` (n_alphas, r) are nearly collinear:
    alphas far above the spectrum all give ``w ~ 1 / alpha`` and alphas far
    below it all give ``w ~ 1 / s2``. Each row is normalised to unit length
    and the set is decomposed by SVD (float64); components whose singular
    value is at most ``tol`` are dropped, so that every ``w_a`` is rebuilt
    with a relative error (2-norm over the spectral components) of at most
    ``tol * sqrt(n_alphas)``.

    Parameters
    ----------
    s2 : ndarray, shape (r,)
        Squared singular values of the fold's training design.
    alphas : ndarray, shape (n_alphas,)
    tol : float
        Absolute threshold on the singular values of the normalised rows.

    Returns
    -------
    (E, C) or None
        ``E`` (k, r) orthonormal basis rows and ``C`` (n_alphas, k) with
        ``w ~ C @ E``; None when no component can be dropped (``k == n_alphas``).
    """
    s2 = np.asarray(s2, dtype=np.float64)
    w = 1.0 / (s2[None, :] + np.asarray(alphas, dtype=np.float64)[:, None])
    norms = np.linalg.norm(w, axis=1)
    U, S, Vt = _svd(w / norms[:, None])
    k = int((S > tol).sum())
    if k >= w.shape[0] or k == 0:
        return None
    C = norms[:, None] * (U[:, :k] * S[:k][None, :])
    return Vt[:k], C


def _svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD of a small float64 matrix, through torch's LAPACK when torch is there.

    numpy's OpenBLAS runs its own OpenMP threads; called between torch's
    GEMMs, their spinning down made the next torch GEMM about twice as slow
    (measured: 99 against 45 ms for a fold's validation map).
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return np.linalg.svd(a, full_matrices=False)
    U, S, Vt = torch.linalg.svd(torch.from_numpy(np.ascontiguousarray(a)), full_matrices=False)
    return U.numpy(), S.numpy(), Vt.numpy()


def sorted_alphas(alphas: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The alphas in ascending order and the order that sorts them; checks they are positive."""
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise InputError(f"alphas must be positive finite numbers; got {alphas.tolist()[:6]}")
    order = np.argsort(alphas, kind="stable")
    return alphas[order], order


def select_alphas(scores: np.ndarray, rtol: float = 0.0) -> np.ndarray:
    """Index of the best row of ``scores`` (n_alphas ascending, T) per column.

    Higher is better and NaN counts as worst. Ties go to the larger alpha (the
    later row): a row ties with the best when it is within ``rtol * |best|``
    of it, so that scores equal up to rounding (targets without signal, where
    every large alpha predicts ~0) consistently pick the largest alpha.
    """
    s = np.where(np.isnan(scores), -np.inf, scores)
    best = s.max(axis=0)
    tol = rtol * np.abs(np.where(np.isfinite(best), best, 0.0))
    ok = s >= (best - tol)[None, :]
    # last True row in each column
    return (s.shape[0] - 1 - np.argmax(ok[::-1], axis=0)).astype(np.intp)
