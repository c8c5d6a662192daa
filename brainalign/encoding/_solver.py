"""The ridge kernel: per-target alpha by cross-validation, then one refit.

Each fold is first reduced to its spectral basis (:mod:`._decompose`) and the
penalty weights of all alphas to a low-rank basis (:mod:`._alphas`).

Targets are processed in batches sized from a memory budget; within a batch,
every fold is one GEMM ``(m * n_test, r) @ (r, batch)``, where ``m`` is the
number of alphas or, usually fewer, the rows of the fold's low-rank basis of
penalty weights (:func:`alpha_basis`); the validation error of every alpha is
rebuilt and reduced on the spot and only ``(a, batch)`` numbers are kept.
The refit of the batch follows at once, so ``Y`` is read once.

This module sets a fit up (decompositions, validation maps, batch size,
output arrays); the batch loop itself is in :mod:`._cv_loop`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import FitError, InputError
from ._alphas import ALPHA_BASIS_TOL, alpha_basis, basis_tolerance, penalty_weights, select_alphas, sorted_alphas
from ._backend import Backend, available_memory, thread_limit, threads_for
from ._cv_loop import RidgeOutputs, ValidationMaps, Workspace, on_host, run_batches
from ._decompose import Decomposition, decompose, fold_decompositions

__all__ = ["ALPHA_BASIS_TOL", "alpha_basis", "basis_tolerance", "decompose", "fold_decompositions", "penalty_weights",
           "select_alphas", "ridge_cv", "refit_coefficients", "check_rank_inputs", "work_flops", "Workspace"]

#: Upper bound on the target batch on CPU: beyond it the GEMMs get no faster
#: and the working set only grows (measured on 2-core AVX2/AVX-512 CPUs).
TARGET_BATCH_CAP = 512
#: The same bound on a GPU, where wide products are needed to fill the device
#: (the memory budget still applies).
TARGET_BATCH_CAP_GPU = 16384
#: Fraction of available memory the working set may use when ``max_memory`` is None.
MEMORY_FRACTION = 0.5
CRITERIA = ("mse", "r")
#: With at least this many targets (and a solve large enough to be
#: multi-threaded), torch-on-CPU fits run their per-batch products through
#: numpy's BLAS (see :func:`_batches_on_host_blas`).
HOST_BLAS_MIN_TARGETS = 1024


def batch_size(
    B: Backend,
    *,
    n_targets: int,
    per_target: int,
    fixed: int,
    max_memory: int | float | None,
) -> int:
    """Targets per batch so that ``fixed + batch * per_target`` elements fit the budget.

    ``per_target`` and ``fixed`` count array elements of the working dtype.
    """
    item = B.np_dtype.itemsize
    budget = float(max_memory) if max_memory is not None else MEMORY_FRACTION * available_memory(B)
    room = budget / item - fixed
    size = int(room // max(per_target, 1)) if room > 0 else 1
    cap = TARGET_BATCH_CAP if (B.name == "numpy" or B.device == "cpu") else TARGET_BATCH_CAP_GPU
    return int(max(1, min(size, n_targets, cap)))


@dataclass
class RidgePath:
    """What :func:`ridge_cv` returns (numpy arrays, float64 scores)."""

    alpha_index: np.ndarray  # (T,) index into the caller's alphas
    cv_scores: np.ndarray  # (n_alphas, T) in the caller's order; higher is better
    coef: np.ndarray | None  # (p, T)
    intercept: np.ndarray | None  # (T,)


def _batches_on_host_blas(B: Backend, n_targets: int, flops: float) -> bool:
    """Whether a torch-on-CPU fit runs its per-batch products through numpy's BLAS.

    On the AMD EPYC we benchmark on, numpy's OpenBLAS ran the batch products
    10-40% faster than torch's MKL (181-200 against 129-181 GFLOP/s for
    ``(2560, 1280) @ (1280, 512)``) and a 20,000-target fit 13-17% faster.
    Only the batch loop moves (the decompositions stay on torch), and only when
    it dominates: many targets and a multi-threaded solve. Smaller fits keep
    torch throughout, since the first OpenBLAS call after torch's costs a
    thread hand-over. The choice depends on the problem's size only, so a
    rerun gives bit-identical results.
    """
    return (
        B.name == "torch" and B.device == "cpu" and n_targets >= HOST_BLAS_MIN_TARGETS
        and threads_for(flops) is None
    )

def fold_is_cheaper(n_alphas: int, n_test: int, n_train: int, rank: int, n_targets: int) -> bool:
    """Whether multiplying a fold's validation map by ``W.T`` once saves work.

    Per target, the unfolded path costs ``n_train * r + a * n_test * r``
    multiply-adds and the folded one ``a * n_test * n_train`` (fewer when
    ``r`` is close to ``n_train``, as in the dual); folding itself costs
    ``a * n_test * r * n_train`` once, so it pays only for enough targets.
    """
    saved = n_targets * (n_train * rank + n_alphas * n_test * rank - n_alphas * n_test * n_train)
    return saved > n_alphas * n_test * rank * n_train


def _decompositions(
    B: Backend,
    X: Any,
    splits: list,
    *,
    fit_intercept: bool,
    solver: str,
    refit: bool,
    folds: list[Decomposition] | None,
    full: Decomposition | None,
) -> tuple[int, int, list[Decomposition], Decomposition | None]:
    """The fold decompositions and, with ``refit``, that of all samples.

    Parameters
    ----------
    X : array, shape (n, p)
    splits : list of (train, test) index arrays
    folds, full : precomputed decompositions to reuse, or None

    Returns
    -------
    n, p : int
    folds : list of Decomposition, one per split
    full : Decomposition or None
        As given when ``refit`` is False.
    """
    Xb = B.asarray(X)
    n, p = Xb.shape
    if folds is None:
        both = refit and full is None
        folds = fold_decompositions(B, Xb, splits, fit_intercept=fit_intercept, solver=solver, with_full=both)
        if both:
            full = folds.pop()
    if refit and full is None:
        full = decompose(B, Xb, fit_intercept=fit_intercept, solver=solver, for_refit=True)
    return n, p, folds, full


def validation_maps(
    B: Backend,
    folds: list[Decomposition],
    alphas_sorted: np.ndarray,
    *,
    criterion: str,
    n_targets: int,
    fold_maps: bool | None,
    use_alpha_basis: bool,
) -> ValidationMaps:
    """Fold-wise stacked validation maps ``(m * n_test, r)``.

    ``m`` is ``n_alphas`` or the size ``k`` of the fold's alpha basis
    (:func:`alpha_basis`, with ``use_alpha_basis``); a map is multiplied by
    ``W.T`` up front (``(m * n_test, n_train)``) as ``fold_maps`` says, or
    where :func:`fold_is_cheaper` for ``n_targets`` when it is None.

    Parameters
    ----------
    folds : list of Decomposition
    alphas_sorted : ndarray, shape (n_alphas,)
        Increasing.

    Returns
    -------
    ValidationMaps
    """
    Aws, folded, mixes = [], [], []
    for d in folds:
        basis = None
        if use_alpha_basis:
            basis = alpha_basis(B.to_numpy(d.s2), alphas_sorted, basis_tolerance(B.np_dtype, d.rank))
        if basis is None:
            w = penalty_weights(B, d.s2, alphas_sorted)  # (a, r)
            mixes.append(None)
        else:
            E, C = basis
            w = B.asarray(E)  # (k, r)
            if criterion == "mse":  # the last column takes the validation targets off
                C = np.hstack([C, -np.ones((C.shape[0], 1))])
            mixes.append(B.asarray(C))
        m = w.shape[0]
        Aw = (d.A[None, :, :] * w[:, None, :]).reshape(m * d.A.shape[0], d.rank)
        fold = fold_is_cheaper(m, d.A.shape[0], d.W.shape[0], d.rank, n_targets) if fold_maps is None else fold_maps
        # a row-major copy of W.T makes this product ~30% faster than the transposed view
        Aws.append(Aw @ B.contiguous(d.W.T) if fold else Aw)
        folded.append(fold)
    return ValidationMaps(Aw=Aws, folded=folded, mix=mixes)


def _batching(
    B: Backend,
    Y: np.ndarray,
    folds: list[Decomposition],
    maps: ValidationMaps,
    full: Decomposition | None,
    n_alphas: int,
    p: int,
    max_memory: float | None,
) -> tuple[Any, int]:
    """Where the batches read ``Y`` from, and how many targets a batch holds.

    The decompositions and the stacked validation maps are part of the
    budget. On a GPU, ``Y`` (n, T) goes over in one contiguous upload when it
    fits a quarter of the budget (column slices of a host array cost a
    host-side copy each). ``full`` is None without a refit; ``p`` is the
    number of features.

    Returns
    -------
    Ysrc : array, shape (n, T)
        ``Y`` itself, or its device copy.
    tb : int
        Targets per batch.
    """
    n, T = Y.shape
    r_max = max([d.rank for d in folds] + ([full.rank] if full is not None else [0]))
    n_test_max = max(d.A.shape[0] for d in folds)
    fixed = sum(d.W.numel() if hasattr(d.W, "numel") else d.W.size for d in folds)
    fixed += sum(a.shape[0] * a.shape[1] for a in maps.Aw) + sum(d.A.shape[0] * d.A.shape[1] for d in folds)
    if full is not None:
        fixed += full.W.shape[0] * full.W.shape[1] + full.M.shape[0] * full.M.shape[1]
    per_target = 2 * n + 2 * r_max + 2 * n_alphas * n_test_max + (p if full is not None else 0) + 4 * n_alphas
    Ysrc = Y
    if not B.writes_through:
        budget = float(max_memory) if max_memory is not None else MEMORY_FRACTION * available_memory(B)
        if Y.size * B.np_dtype.itemsize <= budget / 4:
            Ysrc = B.asarray(Y)
            fixed += Y.size
    return Ysrc, batch_size(B, n_targets=T, per_target=per_target, fixed=fixed, max_memory=max_memory)


def _outputs(B: Backend, n_alphas: int, T: int, p: int, refit: bool) -> RidgeOutputs:
    """The output arrays of a fit of ``T`` targets on ``p`` features.

    On a GPU, the coefficients come back through a pinned (T, p) host buffer,
    row blocks at a time; ``coef`` is then its transposed (Fortran-ordered)
    view. Elsewhere the refit writes straight into ``coef`` (p, T).
    """
    scores = np.empty((n_alphas, T), dtype=np.float64)
    alpha_idx = np.empty(T, dtype=np.intp)
    coef_view = coef_rows = None
    if refit and not B.writes_through:
        coef_rows = B.host_buffer((T, p))
        coef = coef_rows.numpy().T
    elif refit:
        coef = np.empty((p, T), dtype=B.np_dtype)
        coef_view = B.view_numpy(coef)
    else:
        coef = None
    intercept = np.zeros(T, dtype=B.np_dtype) if refit else None
    return RidgeOutputs(scores, alpha_idx, coef, coef_view, coef_rows, intercept)


def _ridge_cv(
    B: Backend,
    X: Any,
    Y: np.ndarray,
    splits: list,
    alphas: Sequence[float],
    *,
    criterion: str = "mse",
    fit_intercept: bool = True,
    solver: str = "auto",
    max_memory: float | None = None,
    refit: bool = True,
    folds: list[Decomposition] | None = None,
    full: Decomposition | None = None,
    fold_maps: bool | None = None,
    use_alpha_basis: bool = True,
) -> RidgePath:
    """Cross-validate one alpha per target, then refit on all samples.

    Parameters
    ----------
    X : array, shape (n, p)
        Design (numpy or backend array).
    Y : ndarray, shape (n, T)
        Targets; read one batch of columns at a time.
    splits : list of (train, test) index arrays
    alphas : sequence of float, shape (n_alphas,)
    criterion : {"mse", "r"}
        Mean over folds of the negative validation MSE, or of the Pearson r.
    solver : {"auto", "primal", "dual"}
    max_memory : float, optional
        Bytes the working set may use; default half the available memory.
    refit : bool
        Also return coefficients (and intercepts) for the chosen alphas.
    folds, full : precomputed decompositions to reuse (banded ridge).
    fold_maps, use_alpha_basis
        See :func:`validation_maps` (``fold_maps=None``: where
        :func:`fold_is_cheaper`; the alpha basis of :func:`alpha_basis` is
        used where it has fewer rows than there are alphas).

    Returns
    -------
    RidgePath
    """
    if criterion not in CRITERIA:
        raise InputError(f"alpha_criterion {criterion!r} is not one of {CRITERIA}")
    alphas_sorted, order = sorted_alphas(alphas)
    n_alphas, T = alphas_sorted.size, Y.shape[1]
    n, p, folds, full = _decompositions(B, X, splits, fit_intercept=fit_intercept, solver=solver, refit=refit,
                                        folds=folds, full=full)
    maps = validation_maps(B, folds, alphas_sorted, criterion=criterion, n_targets=T, fold_maps=fold_maps,
                           use_alpha_basis=use_alpha_basis)
    full, w_full = (full, penalty_weights(B, full.s2, alphas_sorted)) if refit else (None, None)
    Ysrc, tb = _batching(B, Y, folds, maps, full, n_alphas, p, max_memory)
    out = _outputs(B, n_alphas, T, p, refit)
    if _batches_on_host_blas(B, T, work_flops(n, p, T, n_alphas, len(folds))):
        B, folds, maps, full, w_full = on_host(B, folds, maps, full, w_full, out)
    run_batches(B, Ysrc, tb, folds, maps, out, n_alphas=n_alphas, criterion=criterion,
                fit_intercept=fit_intercept, full=full, w_full=w_full)
    return _in_caller_order(out, order)


def _in_caller_order(out: RidgeOutputs, order: np.ndarray) -> RidgePath:
    """``out`` as a :class:`RidgePath`, back in the caller's alpha order.

    ``order`` (n_alphas,) gives, for each sorted alpha, its index among the
    caller's alphas.
    """
    cv_scores = np.empty_like(out.scores)
    cv_scores[order] = out.scores
    return RidgePath(alpha_index=order[out.alpha_idx], cv_scores=cv_scores, coef=out.coef, intercept=out.intercept)


def work_flops(n: int, p: int, n_targets: int, n_alphas: int, n_folds: int) -> float:
    """Rough floating-point operation count of a cross-validated ridge solve."""
    r = min(n, p)
    decomp = (n_folds + 1) * (2 * n * p * r + 10 * r**3)
    gemm = 2.0 * n_targets * (n_folds * r * n + n * n_alphas * r + n * r + p * r)
    return float(decomp + gemm)


def ridge_cv(B: Backend, X: Any, Y: np.ndarray, splits: list, alphas: Sequence[float], **kw: Any) -> RidgePath:
    """Cross-validate one alpha per target, then refit on all samples.

    Small problems run on one thread (see :data:`SMALL_WORK_FLOPS`); the
    arguments are those of :func:`_ridge_cv`.
    """
    n, p = np.shape(X)
    flops = work_flops(n, p, Y.shape[1], len(np.ravel(alphas)), len(splits))
    with thread_limit(B, threads_for(flops)):
        return _ridge_cv(B, X, Y, splits, alphas, **kw)


def refit_coefficients(
    B: Backend,
    full: Decomposition,
    Y: np.ndarray,
    alphas: np.ndarray,
    *,
    fit_intercept: bool,
    max_memory: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (p, T) and intercepts (T,) for a given alpha per target."""
    alphas = np.asarray(alphas, dtype=np.float64)
    T = Y.shape[1]
    p = full.M.shape[0]
    n = full.W.shape[0]
    uniq, inv = np.unique(alphas, return_inverse=True)
    w_full = penalty_weights(B, full.s2, uniq)
    tb = batch_size(B, n_targets=T, per_target=2 * n + 2 * full.rank + p, fixed=0, max_memory=max_memory)
    coef = np.empty((p, T), dtype=B.np_dtype)
    intercept = np.zeros(T, dtype=B.np_dtype)
    for start in range(0, T, tb):
        sl = slice(start, min(start + tb, T))
        Yb = B.asarray(Y[:, sl])
        if fit_intercept:
            mu = Yb.mean(0)
            Yb = Yb - mu
        c = full.W.T @ Yb
        cb = full.M @ (c * w_full[B.index(inv[sl])].T)
        coef[:, sl] = B.to_numpy(cb)
        if fit_intercept:
            intercept[sl] = B.to_numpy(mu - full.x_mean @ cb)
    return coef, intercept


def check_rank_inputs(n_samples: int, splits: list) -> None:
    for k, (train, _test) in enumerate(splits):
        if train.size < 2:
            raise FitError(f"fold {k} has {train.size} training samples; ridge needs at least 2")
    if n_samples < 3:
        raise FitError(f"ridge needs at least 3 samples; got {n_samples}")
