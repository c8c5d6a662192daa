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
    """A training design centred and reduced to its Gram matrix (before eigh).

    ``cross`` (dual only, optional): the centred test-by-train kernel
    ``Xtest_c @ Xc.T``, when it was taken from a kernel of all samples.
    """

    kind: str
    Xc: Any
    x_mean: Any
    G: Any
    cross: Any = None


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
    if X_test is not None and prep.cross is None:
        Xt = X_test - x_mean if fit_intercept else X_test
    if prep.kind == "primal":
        W = Xc @ V
        M = V if for_refit else None
        A = Xt @ V if Xt is not None else None
    else:
        W = V
        M = Xc.T @ V if for_refit else None
        if prep.cross is not None:
            A = prep.cross @ V
        else:
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
    return _decompose_prepared(B, preps, [(Xte, r) for _Xtr, Xte, r in jobs], fit_intercept)


def _decompose_prepared(B: Backend, preps: list, rest: list, fit_intercept: bool) -> list[Decomposition]:
    """Eigendecompositions side by side, then the maps; ``rest`` is ``(X_test, for_refit)`` per job."""
    eigs = _eigh_all(B, [pr.G for pr in preps])
    out = []
    for pr, (s2, V), (Xte, for_refit) in zip(preps, eigs, rest):
        pr.G = None
        out.append(_complete(B, pr, s2, V, Xte, fit_intercept, for_refit))
    return out


def _dual_folds_from_kernel(B: Backend, Xb: Any, splits: list, fit_intercept: bool) -> list[_Prepared]:
    """Every fold's centred kernels from one kernel of all samples.

    When the folds are dual, each needs ``Xc Xc.T`` (train by train) and
    ``Xtest_c Xc.T`` (test by train): both are blocks of ``Xg Xg.T`` over all
    ``n`` samples, re-centred for the fold. With ``Xg`` centred on the mean
    of all samples and ``d`` the fold's training mean of ``Xg``,
    ``(Xg_i - d) . (Xg_j - d) = K_ij - Xg_i . d - Xg_j . d + d . d``, so one
    ``(n, n)`` product replaces ``n_folds`` products of ``(n_train, n_train + n_test)``
    (4 times fewer flops for 5 folds). Centring on the global mean first
    keeps ``d`` small, so the correction costs no precision.
    """
    m = Xb.mean(0) if fit_intercept else None
    Xg = Xb - m if fit_intercept else Xb
    K = Xg @ Xg.T
    preps = []
    for train, test in splits:
        tr, te = B.index(train), B.index(test)
        G = K[tr][:, tr]
        cross = K[te][:, tr]
        x_mean = None
        if fit_intercept:
            d = Xg[tr].mean(0)
            g = Xg @ d  # (n,)
            u, v = g[tr], g[te]
            dd = d @ d
            G -= u[:, None]
            G -= u[None, :]
            G += dd
            cross -= v[:, None]
            cross -= u[None, :]
            cross += dd
            x_mean = m + d
        preps.append(_Prepared("dual", None, x_mean, G, cross))
    return preps


def kernel_is_cheaper(n: int, p: int, splits: list, solver: str) -> bool:
    """Whether every fold is dual and one ``(n, n)`` kernel costs less than the folds' own."""
    if not splits or any(choose_solver(solver, len(tr), p) != "dual" for tr, _te in splits):
        return False
    own = sum(len(tr) * (len(tr) + len(te)) for tr, te in splits)
    return own > n * n


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
    n, p = Xb.shape
    if kernel_is_cheaper(n, p, splits, solver):
        preps = _dual_folds_from_kernel(B, Xb, splits, fit_intercept)
        rest = [(None, False)] * len(splits)
        if with_full:
            preps.append(_prepare(B, Xb, fit_intercept, solver))
            rest.append((None, True))
        out = _decompose_prepared(B, preps, rest, fit_intercept)
    else:
        jobs = [(Xb[B.index(train)], Xb[B.index(test)], False) for train, test in splits]
        if with_full:
            jobs.append((Xb, None, True))
        out = decompose_all(B, jobs, fit_intercept=fit_intercept, solver=solver)
    for d, (train, test) in zip(out, splits):
        d.train, d.test = train, test
    return out
