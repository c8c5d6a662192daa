"""The ridge kernel: per-target alpha by cross-validation, then one refit.

Each fold is first reduced to its spectral basis (:mod:`._decompose`) and the
penalty weights of all alphas to a low-rank basis (:mod:`._alphas`).

Targets are processed in batches sized from a memory budget; within a batch,
every fold is one GEMM ``(m * n_test, r) @ (r, batch)``, where ``m`` is the
number of alphas or, usually fewer, the rows of the fold's low-rank basis of
penalty weights (:func:`alpha_basis`); the validation error of every alpha is
rebuilt and reduced on the spot and only ``(a, batch)`` numbers are kept.
The refit of the batch follows at once, so ``Y`` is read once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import FitError, InputError
from ._alphas import ALPHA_BASIS_TOL, alpha_basis, basis_tolerance, penalty_weights, select_alphas, sorted_alphas
from ._backend import Backend, available_memory, thread_limit, threads_for
from ._decompose import Decomposition, decompose, fold_decompositions

__all__ = ["ALPHA_BASIS_TOL", "alpha_basis", "basis_tolerance", "decompose", "fold_decompositions", "penalty_weights",
           "select_alphas", "ridge_cv", "refit_coefficients", "check_rank_inputs", "work_flops"]

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


class Workspace:
    """Flat buffers reused from batch to batch, so that batches allocate nothing large.

    Temporaries of several MB freed and allocated again every batch can be
    handed back to the operating system and come back as fresh pages (a fresh
    13 MB torch tensor cost about 6 ms of page faults on our 2-core VM).
    Each named buffer is allocated once, at its first (largest) request.
    """

    def __init__(self, B: Backend) -> None:
        self.B = B
        self._flat: dict[str, Any] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> Any:
        """A contiguous array of ``shape`` on the buffer ``name`` (contents undefined)."""
        size = int(np.prod(shape))
        flat = self._flat.get(name)
        if flat is None or flat.shape[0] < size:
            flat = self._flat[name] = self.B.empty((size,))
        return flat[:size].reshape(shape)


def _validation_scores(
    B: Backend,
    d: Decomposition,
    idx: tuple[Any, Any],
    Aw: Any,
    Yb: Any,
    n_alphas: int,
    criterion: str,
    fit_intercept: bool,
    folded: bool,
    mix: Any,
    ws: Workspace,
) -> Any:
    """Scores (n_alphas, batch) of one fold: negative MSE or Pearson r.

    ``idx`` are the fold's (train, test) rows as backend indices. ``Aw`` is
    the stacked validation map, either on the spectral coefficients
    (``(m * n_test, r)``, then ``c = W.T @ Y_train`` is formed) or, when
    ``folded``, already multiplied by ``W.T`` (``(m * n_test, n_train)``).
    ``m`` is ``n_alphas``, or the size ``k`` of the fold's alpha basis when
    ``mix`` is given: the predictions for every alpha are then ``mix @`` the
    ``k`` basis predictions (for ``"mse"``, ``mix`` is (n_alphas, k + 1) and
    its last column, -1, subtracts the validation targets in the same product).
    Intermediate arrays live in ``ws``.
    """
    tr, te = idx
    n_tr, n_te, b = int(tr.shape[0]), int(te.shape[0]), Yb.shape[1]
    Ytr = B.take_rows_into(ws.get("y_train", (n_tr, b)), Yb, tr)
    c = Ytr if folded else B.matmul_into(ws.get("c", (d.rank, b)), d.W.T, Ytr)
    m = Aw.shape[0] // n_te
    if criterion == "mse" and mix is not None:
        # residuals of every alpha in one product: [C, -1] @ [basis predictions; Yte]
        Q = ws.get("basis_pred", ((m + 1) * n_te, b))
        B.matmul_into(Q[: m * n_te], Aw, c)
        Yte = B.take_rows_into(Q[m * n_te:], Yb, te)
        if fit_intercept:
            Yte -= Ytr.mean(0)
        P = B.matmul_into(ws.get("pred", (n_alphas, n_te * b)), mix, Q.reshape(m + 1, -1))
        return -B.sumsq(P.reshape(n_alphas, n_te, b), 1, overwrite=True) / n_te
    Yte = B.take_rows_into(ws.get("y_test", (n_te, b)), Yb, te)
    if fit_intercept:
        Yte -= Ytr.mean(0)
    P = B.matmul_into(ws.get("basis_pred", (m * n_te, b)), Aw, c)
    if mix is not None:
        P = B.matmul_into(ws.get("pred", (n_alphas, n_te * b)), mix, P.reshape(m, -1))
    P = P.reshape(n_alphas, n_te, b)
    if criterion == "mse":
        P -= Yte[None]
        return -B.sumsq(P, 1, overwrite=True) / n_te
    # Pearson r within the fold, per alpha
    yc = Yte - Yte.mean(0)
    P -= P.mean(1)[:, None, :]
    num = (P * yc[None]).sum(1)
    den = (B.sumsq(P, 1) * (yc * yc).sum(0)[None]) ** 0.5
    return num / den


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


def _host_view(B: Backend, d: Decomposition) -> Decomposition:
    """``d`` with its arrays as numpy views (torch on CPU: no copy)."""
    from dataclasses import replace

    def as_np(a: Any) -> Any:
        return None if a is None else B.to_numpy(a)

    return replace(d, W=as_np(d.W), s2=as_np(d.s2), x_mean=as_np(d.x_mean), A=as_np(d.A), M=as_np(d.M))


def fold_is_cheaper(n_alphas: int, n_test: int, n_train: int, rank: int, n_targets: int) -> bool:
    """Whether multiplying a fold's validation map by ``W.T`` once saves work.

    Per target, the unfolded path costs ``n_train * r + a * n_test * r``
    multiply-adds and the folded one ``a * n_test * n_train`` (fewer when
    ``r`` is close to ``n_train``, as in the dual); folding itself costs
    ``a * n_test * r * n_train`` once, so it pays only for enough targets.
    """
    saved = n_targets * (n_train * rank + n_alphas * n_test * rank - n_alphas * n_test * n_train)
    return saved > n_alphas * n_test * rank * n_train


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
    B : Backend
    X : array, shape (n, p)
        Design (numpy or backend array).
    Y : ndarray, shape (n, T)
        Targets; read one batch of columns at a time.
    splits : list of (train, test) index arrays
    alphas : sequence of float, shape (n_alphas,)
    criterion : {"mse", "r"}
        Mean over folds of the negative validation MSE, or of the validation
        Pearson r.
    fit_intercept : bool
    solver : {"auto", "primal", "dual"}
    max_memory : float, optional
        Bytes the working set may use; default half the available memory.
    refit : bool
        Also return coefficients (and intercepts) for the chosen alphas.
    folds, full : precomputed decompositions to reuse (banded ridge).
    fold_maps : bool, optional
        Multiply each validation map by ``W.T`` up front (see
        :func:`fold_is_cheaper`, used when None).
    use_alpha_basis : bool
        Validate on a low-rank basis of the penalty weights (see
        :func:`alpha_basis`) when it has fewer rows than there are alphas.

    Returns
    -------
    RidgePath
    """
    if criterion not in CRITERIA:
        raise InputError(f"alpha_criterion {criterion!r} is not one of {CRITERIA}")
    alphas_sorted, order = sorted_alphas(alphas)
    n_alphas = alphas_sorted.size
    Xb = B.asarray(X)
    n, p = Xb.shape
    T = Y.shape[1]
    if folds is None:
        both = refit and full is None
        folds = fold_decompositions(B, Xb, splits, fit_intercept=fit_intercept, solver=solver, with_full=both)
        if both:
            full = folds.pop()
    if refit and full is None:
        full = decompose(B, Xb, fit_intercept=fit_intercept, solver=solver, for_refit=True)
    del Xb

    # fold-wise stacked validation maps: (m * n_test, r), m = n_alphas or the
    # size of the fold's alpha basis
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
        fold = fold_is_cheaper(m, d.A.shape[0], d.W.shape[0], d.rank, T) if fold_maps is None else fold_maps
        # a row-major copy of W.T makes this product ~30% faster than the transposed view
        Aws.append(Aw @ B.contiguous(d.W.T) if fold else Aw)
        folded.append(fold)
    w_full = penalty_weights(B, full.s2, alphas_sorted) if refit else None

    r_max = max([d.rank for d in folds] + ([full.rank] if refit else [0]))
    n_test_max = max(d.A.shape[0] for d in folds)
    # the decompositions (and the stacked validation maps) are part of the budget
    fixed = sum(d.W.numel() if hasattr(d.W, "numel") else d.W.size for d in folds)
    fixed += sum(a.shape[0] * a.shape[1] for a in Aws) + sum(d.A.shape[0] * d.A.shape[1] for d in folds)
    if refit:
        fixed += full.W.shape[0] * full.W.shape[1] + full.M.shape[0] * full.M.shape[1]
    per_target = 2 * n + 2 * r_max + 2 * n_alphas * n_test_max + (p if refit else 0) + 4 * n_alphas
    # On a GPU, Y goes over in one contiguous upload when it fits a quarter of
    # the budget (column slices of a host array cost a host-side copy each),
    # and the coefficients come back through a pinned (T, p) host buffer, row
    # blocks at a time; coef is then its transposed (Fortran-ordered) view.
    device_side = not B.writes_through
    Ysrc = Y
    if device_side:
        budget = float(max_memory) if max_memory is not None else MEMORY_FRACTION * available_memory(B)
        if Y.size * B.np_dtype.itemsize <= budget / 4:
            Ysrc = B.asarray(Y)
            fixed += Y.size
    tb = batch_size(B, n_targets=T, per_target=per_target, fixed=fixed, max_memory=max_memory)

    scores = np.empty((n_alphas, T), dtype=np.float64)
    tie_rtol = 8 * float(np.finfo(B.np_dtype).eps)
    alpha_idx = np.empty(T, dtype=np.intp)
    coef_view = coef_rows = None
    if refit and device_side:
        coef_rows = B.host_buffer((T, p))
        coef = coef_rows.numpy().T
    elif refit:
        coef = np.empty((p, T), dtype=B.np_dtype)
        coef_view = B.view_numpy(coef)
    else:
        coef = None
    intercept = np.zeros(T, dtype=B.np_dtype) if refit else None

    if _batches_on_host_blas(B, T, work_flops(n, p, T, n_alphas, len(folds))):
        # zero-copy numpy views of everything the batches read
        B, host = Backend("numpy", "cpu", B.dtype), B
        folds = [_host_view(host, d) for d in folds]
        Aws = [host.to_numpy(a) for a in Aws]
        mixes = [None if m_ is None else host.to_numpy(m_) for m_ in mixes]
        if refit:
            full, w_full, coef_view = _host_view(host, full), host.to_numpy(w_full), coef
    x_mean_full = full.x_mean if (refit and fit_intercept) else None
    ws = Workspace(B)
    idx = [(B.index(d.train), B.index(d.test)) for d in folds]
    for start in range(0, T, tb):
        sl = slice(start, min(start + tb, T))
        Yb = B.copy_into(ws.get("y", (n, sl.stop - start)), Ysrc[:, sl])
        mu = None
        if fit_intercept:
            mu = Yb.mean(0)
            Yb -= mu
        acc = None
        for d, ix, Aw, fold, mix in zip(folds, idx, Aws, folded, mixes):
            s = _validation_scores(B, d, ix, Aw, Yb, n_alphas, criterion, fit_intercept, fold, mix, ws)
            s = B.to_numpy(s).astype(np.float64)
            acc = s if acc is None else acc + s
        acc /= len(folds)
        scores[:, sl] = acc
        best = select_alphas(acc, rtol=tie_rtol)
        alpha_idx[sl] = best
        if refit:
            c = B.matmul_into(ws.get("c_full", (full.rank, Yb.shape[1])), full.W.T, Yb)  # (r, b)
            c *= w_full[B.index(best)].T
            if coef_view is not None:  # straight into the caller's (p, T) array
                cb = B.matmul_into(coef_view[:, sl], full.M, c)
            else:
                cb = B.matmul_into(ws.get("coef", (p, Yb.shape[1])), full.M, c)  # (p, b)
                coef_rows[sl].copy_(cb.T)
            if fit_intercept:
                icp = mu - x_mean_full @ cb
                intercept[sl] = B.to_numpy(icp)
    # back to the caller's alpha order
    cv_scores = np.empty_like(scores)
    cv_scores[order] = scores
    return RidgePath(alpha_index=order[alpha_idx], cv_scores=cv_scores, coef=coef, intercept=intercept)


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
