"""The batch loop of the ridge kernel (:func:`._solver.ridge_cv`).

Each batch of targets is centred once, scored on every fold's stacked
validation map (one GEMM per fold, :func:`_validation_scores`), given its best
alpha per target, and refit at once (:func:`_refit_batch`), so ``Y`` is read
once. Every large temporary lives in a :class:`Workspace` reused from batch
to batch. The setup (decompositions, validation maps, batch size, output
arrays) is in :mod:`._solver`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._alphas import select_alphas
from ._backend import Backend
from ._decompose import Decomposition

__all__ = ["Workspace", "ValidationMaps", "RidgeOutputs", "on_host", "run_batches"]


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


@dataclass
class ValidationMaps:
    """The stacked validation map of every fold (see :func:`._solver.validation_maps`).

    Attributes
    ----------
    Aw : list of array, one per fold, shape (m * n_test, r) or (m * n_test, n_train)
        The second shape when the fold's map was multiplied by ``W.T`` up front.
    folded : list of bool, one per fold
        Whether ``Aw`` has been multiplied by ``W.T``.
    mix : list of array or None, one per fold, shape (n_alphas, k) or (n_alphas, k + 1)
        Predictions of every alpha from the ``k`` alpha-basis predictions
        (``m = k``); None when the map holds every alpha (``m = n_alphas``).
    """

    Aw: list
    folded: list
    mix: list


@dataclass
class RidgeOutputs:
    """The arrays the batches write into, in sorted-alpha order.

    Attributes
    ----------
    scores : ndarray, shape (n_alphas, T), float64
    alpha_idx : ndarray, shape (T,), intp
        Index into the sorted alphas.
    coef : ndarray, shape (p, T), or None
        What the caller gets (on a GPU, the transposed view of ``coef_rows``).
    coef_view : array, shape (p, T), or None
        ``coef`` as a backend array the refit writes straight into, when it can.
    coef_rows : pinned host tensor, shape (T, p), or None
        Where the device refit copies its row blocks, when ``coef_view`` is None.
    intercept : ndarray, shape (T,), or None
    """

    scores: np.ndarray
    alpha_idx: np.ndarray
    coef: np.ndarray | None
    coef_view: Any
    coef_rows: Any
    intercept: np.ndarray | None


def _host_view(B: Backend, d: Decomposition) -> Decomposition:
    """``d`` with its arrays as numpy views (torch on CPU: no copy)."""

    def as_np(a: Any) -> Any:
        return None if a is None else B.to_numpy(a)

    return replace(d, W=as_np(d.W), s2=as_np(d.s2), x_mean=as_np(d.x_mean), A=as_np(d.A), M=as_np(d.M))


def on_host(
    host: Backend,
    folds: list[Decomposition],
    maps: ValidationMaps,
    full: Decomposition | None,
    w_full: Any,
    out: RidgeOutputs,
) -> tuple[Backend, list[Decomposition], ValidationMaps, Decomposition | None, Any]:
    """Zero-copy numpy views of everything the batches read (torch on CPU).

    Parameters
    ----------
    host : Backend
        The torch-on-CPU backend the arrays live on.
    folds : list of Decomposition
    maps : ValidationMaps
    full : Decomposition or None
        The refit decomposition (None without refit).
    w_full : array, shape (n_alphas, r_full), or None
    out : RidgeOutputs
        With a refit, its ``coef_view`` becomes ``coef`` itself (in place).

    Returns
    -------
    B : Backend
        numpy, in the dtype of ``host``.
    folds, maps, full, w_full
        The same, as numpy views.
    """
    B = Backend("numpy", "cpu", host.dtype)
    folds = [_host_view(host, d) for d in folds]
    Aws = [host.to_numpy(a) for a in maps.Aw]
    mixes = [None if m_ is None else host.to_numpy(m_) for m_ in maps.mix]
    maps = ValidationMaps(Aw=Aws, folded=maps.folded, mix=mixes)
    if full is not None:
        full, w_full, out.coef_view = _host_view(host, full), host.to_numpy(w_full), out.coef
    return B, folds, maps, full, w_full


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


def _refit_batch(
    B: Backend,
    full: Decomposition,
    w_full: Any,
    x_mean_full: Any,
    Yb: Any,
    mu: Any,
    best: np.ndarray,
    sl: slice,
    out: RidgeOutputs,
    ws: Workspace,
) -> None:
    """Coefficients and intercepts of one batch at its chosen alphas, into ``out``.

    Parameters
    ----------
    full : Decomposition
        Of all samples, ``W`` (n, r) and ``M`` (p, r).
    w_full : array, shape (n_alphas, r)
        Penalty weights of the sorted alphas on ``full``.
    x_mean_full : array, shape (p,), or None
        Column means of ``X``; None without an intercept.
    Yb : array, shape (n, b)
        The batch's targets, centred when ``mu`` is given.
    mu : array, shape (b,), or None
        The batch's target means; None without an intercept.
    best : ndarray, shape (b,)
        Index of each target's alpha in the sorted alphas.
    sl : slice
        The batch's columns in ``out``.
    """
    c = B.matmul_into(ws.get("c_full", (full.rank, Yb.shape[1])), full.W.T, Yb)  # (r, b)
    c *= w_full[B.index(best)].T
    if out.coef_view is not None:  # straight into the caller's (p, T) array
        cb = B.matmul_into(out.coef_view[:, sl], full.M, c)
    else:
        cb = B.matmul_into(ws.get("coef", (full.M.shape[0], Yb.shape[1])), full.M, c)  # (p, b)
        out.coef_rows[sl].copy_(cb.T)
    if mu is not None:
        icp = mu - x_mean_full @ cb
        out.intercept[sl] = B.to_numpy(icp)


def run_batches(
    B: Backend,
    Ysrc: Any,
    tb: int,
    folds: list[Decomposition],
    maps: ValidationMaps,
    out: RidgeOutputs,
    *,
    n_alphas: int,
    criterion: str,
    fit_intercept: bool,
    full: Decomposition | None,
    w_full: Any,
) -> None:
    """Score, choose and (when ``full`` is given) refit every batch of ``tb`` targets.

    Parameters
    ----------
    Ysrc : array, shape (n, T)
        Targets, on the host or already on the device.
    tb : int
        Targets per batch.
    folds : list of Decomposition
    maps : ValidationMaps
        One stacked validation map per fold, on the sorted alphas.
    out : RidgeOutputs
        Filled in place: the mean fold scores, the chosen alphas and, with a
        refit, coefficients and intercepts.
    full : Decomposition or None
        Of all samples, for the refit; None for no refit.
    w_full : array, shape (n_alphas, r_full), or None
    """
    n, T = Ysrc.shape[0], Ysrc.shape[1]
    tie_rtol = 8 * float(np.finfo(B.np_dtype).eps)
    x_mean_full = full.x_mean if (full is not None and fit_intercept) else None
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
        for d, ix, Aw, fold, mix in zip(folds, idx, maps.Aw, maps.folded, maps.mix):
            s = _validation_scores(B, d, ix, Aw, Yb, n_alphas, criterion, fit_intercept, fold, mix, ws)
            s = B.to_numpy(s).astype(np.float64)
            acc = s if acc is None else acc + s
        acc /= len(folds)
        out.scores[:, sl] = acc
        best = select_alphas(acc, rtol=tie_rtol)
        out.alpha_idx[sl] = best
        if full is not None:
            _refit_batch(B, full, w_full, x_mean_full, Yb, mu, best, sl, out, ws)
