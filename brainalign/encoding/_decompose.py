"""A training design reduced to its spectral basis, once per fold.

Notation: ``X`` (n, p), ``Y`` (n, T), alphas (a,). For a training set the
ridge solution depends on ``X`` only through its spectral decomposition, so
each fold is reduced once to three arrays

``W`` (n_train, r)
    ``c = W.T @ Y_train`` are the targets in the spectral basis,
``A`` (n_test, r)
    test predictions for penalty ``alpha`` are ``A @ diag(1 / (s2 + alpha)) @ c``,
``s2`` (r,)
    squared singular values of the (centred) training ``X``.

Primal (``p <= n_train``): ``G = Xc.T Xc = V diag(s2) V.T``, ``W = Xc V``,
``A = Xtest_c V`` and the refit coefficients are ``V (w * c)``.
Dual (``p > n_train``): ``K = Xc Xc.T = U diag(s2) U.T``, ``W = U``,
``A = Xtest_c Xc.T U`` and the coefficients are ``Xc.T U (w * c)``.
Both are the same estimator (the SVD of ``Xc`` seen from either side); the
smaller Gram matrix is decomposed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ._backend import EIGH_SERIAL_MAX, Backend, current_threads, pin_thread_to_one, thread_limit

SOLVERS = ("auto", "primal", "dual")


@dataclass
class Decomposition:
    """One training set reduced to its spectral basis (see module docstring)."""

    W: Any  # (n_train, r)
    s2: Any  # (r,)
    x_mean: Any  # (p,) or None when no intercept is fitted
    A: Any = None  # (n_test, r), for validation
    M: Any = None  # (p, r), for the refit
    train: np.ndarray | None = None
    test: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return int(self.s2.shape[0])


def choose_solver(solver: str, n_samples: int, n_features: int) -> str:
    """``"primal"`` when ``n_features <= n_samples`` (for ``"auto"``), else ``"dual"``."""
    if solver not in SOLVERS:
        raise InputError(f"solver {solver!r} is not one of {SOLVERS}")
    if solver == "auto":
        return "primal" if n_features <= n_samples else "dual"
    return solver


@dataclass
class _Prepared:
    """A training design centred and reduced to its Gram matrix (before eigh)."""

    kind: str
    Xc: Any
    x_mean: Any
    G: Any


def _prepare(B: Backend, X_train: Any, fit_intercept: bool, solver: str) -> _Prepared:
    n, p = X_train.shape
    kind = choose_solver(solver, n, p)
    x_mean = X_train.mean(0) if fit_intercept else None
    Xc = X_train - x_mean if fit_intercept else X_train
    G = Xc.T @ Xc if kind == "primal" else Xc @ Xc.T
    return _Prepared(kind, Xc, x_mean, G)


def _complete(
    B: Backend, prep: _Prepared, s2: Any, V: Any, X_test: Any, fit_intercept: bool, for_refit: bool
) -> Decomposition:
    # Components with (numerically) zero variance carry nothing: W or A are
    # zero along them analytically. Dropping them keeps r at the rank.
    s2 = B.clip_min(s2, 0.0)
    top = float(s2[-1]) if s2.shape[0] else 0.0
    eps = float(np.finfo(B.np_dtype).eps)
    keep_from = int((s2 <= top * eps * 10).sum()) if top > 0 else int(s2.shape[0])
    s2 = s2[keep_from:]
    V = V[:, keep_from:]
    # LAPACK hands back column-major eigenvectors; row-major ones make the
    # products with V.T (the folded validation maps) about 25% faster.
    V = B.contiguous(V)
    Xc, x_mean = prep.Xc, prep.x_mean
    Xt = None
    if X_test is not None:
        Xt = X_test - x_mean if fit_intercept else X_test
    if prep.kind == "primal":
        W = Xc @ V
        M = V if for_refit else None
        A = Xt @ V if Xt is not None else None
    else:
        W = V
        M = Xc.T @ V if for_refit else None
        A = (Xt @ Xc.T) @ V if Xt is not None else None
    return Decomposition(W=W, s2=s2, x_mean=x_mean, A=A, M=M)


def _eigh_all(B: Backend, Gs: list) -> list:
    """``B.eigh`` of every matrix; on CPU, several at once on one thread each.

    Matrices up to ``EIGH_SERIAL_MAX`` rows are decomposed on one thread (see
    :meth:`Backend.eigh`), which leaves the other cores idle; independent
    folds are therefore decomposed side by side, as many at a time as the
    process's thread setting allows. Each decomposition still runs on one
    thread, so the results are bit-identical to a serial loop.
    """
    workers = min(len(Gs), max(1, current_threads()))
    on_cpu = B.name == "numpy" or B.device == "cpu"
    if workers < 2 or not on_cpu or any(G.shape[0] > EIGH_SERIAL_MAX for G in Gs):
        return [B.eigh(G) for G in Gs]
    from concurrent.futures import ThreadPoolExecutor

    def one(G: Any) -> Any:
        # OpenMP's thread count is per calling thread: a fresh worker would
        # otherwise start from every core, and B.eigh's thread_limit would
        # restore that count (globally, for MKL) while the other worker runs.
        pin_thread_to_one()
        return B.eigh(G)

    with thread_limit(B, 1), ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, Gs))


def decompose_all(
    B: Backend,
    jobs: Sequence[tuple[Any, Any, bool]],
    *,
    fit_intercept: bool = True,
    solver: str = "auto",
) -> list[Decomposition]:
    """:func:`decompose` for several ``(X_train, X_test, for_refit)`` at once.

    The Gram products run first (multi-threaded), then the eigendecompositions
    side by side (:func:`_eigh_all`), then the maps.
    """
    preps = [_prepare(B, Xtr, fit_intercept, solver) for Xtr, _Xte, _r in jobs]
    eigs = _eigh_all(B, [pr.G for pr in preps])
    out = []
    for pr, (s2, V), (_Xtr, Xte, for_refit) in zip(preps, eigs, jobs):
        pr.G = None
        out.append(_complete(B, pr, s2, V, Xte, fit_intercept, for_refit))
    return out


def decompose(
    B: Backend,
    X_train: Any,
    *,
    X_test: Any = None,
    fit_intercept: bool = True,
    solver: str = "auto",
    for_refit: bool = False,
) -> Decomposition:
    """Reduce a training design to ``(W, s2, A, M)``.

    Parameters
    ----------
    B : Backend
    X_train : backend array, shape (n_train, p)
    X_test : backend array, shape (n_test, p), optional
        When given, the validation map ``A`` is built.
    fit_intercept : bool
        Centre with the training mean of ``X``.
    solver : {"auto", "primal", "dual"}
    for_refit : bool
        Build ``M`` so that coefficients can be formed.
    """
    prep = _prepare(B, X_train, fit_intercept, solver)
    s2, V = B.eigh(prep.G)
    prep.G = None
    return _complete(B, prep, s2, V, X_test, fit_intercept, for_refit)


def fold_decompositions(
    B: Backend, Xb: Any, splits: list, *, fit_intercept: bool, solver: str, with_full: bool = False
) -> list[Decomposition]:
    """One :class:`Decomposition` (with ``A``) per ``(train, test)`` split.

    With ``with_full`` the decomposition of all samples for the refit (with
    ``M``) is appended as the last element.
    """
    jobs = [(Xb[B.index(train)], Xb[B.index(test)], False) for train, test in splits]
    if with_full:
        jobs.append((Xb, None, True))
    out = decompose_all(B, jobs, fit_intercept=fit_intercept, solver=solver)
    for d, (train, test) in zip(out, splits):
        d.train, d.test = train, test
    return out
