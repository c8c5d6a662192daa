"""Banded ridge on wide designs: one eigendecomposition per fold for every band weighting.

Notation: feature spaces ``X_k`` (n, p_k) with band weights ``g`` (on the
simplex), alphas ``a``. The banded estimator with weights ``g`` is the ridge on
``Xg = [sqrt(g_k) X_k]``; when the stacked design is wide (``n_train < p``) it
is solved in the dual, through ``(Kg + a I)^{-1} y`` with the kernel
``Kg = sum_k g_k X_k X_k.T``.

The generic path (:mod:`._solver`) decomposes ``Kg`` anew for every weighting
``g``. When one *main* band is large and the others together have few columns
``q`` (a baseline of a few regressors next to a language-model layer),
``Kg = g_m K_m + L L.T`` with ``L = [sqrt(g_k) X_k]`` (n, q) over the small
bands, and with ``K_m = U diag(s) U.T`` decomposed once per fold,

``(Kg + a I)^{-1} = U (D^{-1} - D^{-1} Lt (I_q + Lt.T D^{-1} Lt)^{-1} Lt.T D^{-1}) U.T``

(Woodbury), where ``D = diag(g_m s + a)`` and ``Lt = U.T L``: every weighting
and every alpha then costs a ``(q, q)`` solve and a few products instead of an
``(n, n)`` eigendecomposition. This is the same estimator as the generic path
(same folds, centring, criterion, tie rule and choice of ``(g, a)`` per target),
computed in float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.linalg
from ._alphas import select_alphas
from ._backend import serial_eigh

#: The Woodbury path is taken when the small bands have together at most this
#: fraction of the smallest training fold's samples as columns.
LOWRANK_MAX_FRACTION = 0.25
#: Up to this many distinct (weighting, alpha) pairs the refit solves each by Cholesky.
REFIT_CHOLESKY_MAX = 24
#: Targets per block of the validation products (bounds the (a, n, T) temporaries).
TARGET_BLOCK = 256


def lowrank_main_band(sizes: Sequence[int], splits: list, n_samples: int) -> int | None:
    """The band whose kernel is decomposed, or None when the Woodbury path does not apply.

    It applies when every training set (each fold's and all ``n_samples``) is
    smaller than the stacked width (the generic path would be dual) and the
    bands other than the largest have together at most
    ``LOWRANK_MAX_FRACTION`` of the smallest training fold's samples.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.size < 2:
        return None
    main = int(np.argmax(sizes))
    q = int(sizes.sum() - sizes[main])
    n_min = min(len(tr) for tr, _te in splits)
    n_max = max([len(tr) for tr, _te in splits] + [n_samples])
    if n_max >= int(sizes.sum()) or q > LOWRANK_MAX_FRACTION * n_min:
        return None
    return main


@dataclass
class _Fold:
    """One training set reduced for the Woodbury path (all float64)."""

    U: np.ndarray  # (n_tr, n_tr) eigenvectors of the centred main-band kernel
    s: np.ndarray  # (n_tr,) its eigenvalues (clipped at 0)
    Lt: np.ndarray  # (n_tr, q) U.T @ centred small bands, unweighted
    A: np.ndarray | None  # (n_te, n_tr) centred test-by-train main kernel @ U
    L_te: np.ndarray | None  # (n_te, q) centred test rows of the small bands
    centred: bool  # whether the blocks were centred on the training mean


def _centred_blocks(K: np.ndarray, tr: np.ndarray, te: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Train-by-train and test-by-train blocks of ``K``, centred on the training mean."""
    r = K[:, tr].mean(1)  # (n,) each sample's mean kernel value with the training set
    m = r[tr].mean()
    G = K[np.ix_(tr, tr)] - r[tr][:, None] - r[tr][None, :] + m
    if te is None:
        return G, None
    C = K[np.ix_(te, tr)] - r[te][:, None] - r[tr][None, :] + m
    return G, C


def _reduce(K: np.ndarray, L: np.ndarray, tr: np.ndarray, te: np.ndarray | None, fit_intercept: bool) -> _Fold:
    if fit_intercept:
        G, C = _centred_blocks(K, tr, te)
        mu = L[tr].mean(0)
    else:
        G = K[np.ix_(tr, tr)]
        C = K[np.ix_(te, tr)] if te is not None else None
        mu = np.zeros(L.shape[1])
    s, U = serial_eigh(G)  # numpy's syevd: ~20% faster here than scipy's at n ~ 250
    s = np.maximum(s, 0.0)
    Lt = U.T @ (L[tr] - mu)
    A = C @ U if C is not None else None
    L_te = (L[te] - mu) if te is not None else None
    return _Fold(U=U, s=s, Lt=Lt, A=A, L_te=L_te, centred=fit_intercept)


def _solve_rotated(f: _Fold, g_main: float, lw: np.ndarray, alphas: np.ndarray, yt: np.ndarray) -> tuple:
    """``U.T (Kg + a I)^{-1} y`` for every alpha, from ``yt = U.T y``.

    Returns ``zt`` (n_alphas, n_tr, T) and the weighted ``Lt`` (n_tr, q).
    """
    Lt = f.Lt * lw[None, :]
    Dinv = 1.0 / (g_main * f.s[None, :] + alphas[:, None])  # (a, n_tr)
    Dy = Dinv[:, :, None] * yt[None]  # (a, n_tr, T)
    DL = Dinv[:, :, None] * Lt[None]  # (a, n_tr, q)
    DLt = DL.transpose(0, 2, 1)
    S = DLt @ Lt  # (a, q, q): Lt.T D^-1 Lt
    S[:, np.arange(Lt.shape[1]), np.arange(Lt.shape[1])] += 1.0
    sol = np.linalg.solve(S, DLt @ yt)  # (a, q, T)
    return Dy - DL @ sol, Lt


def _fold_scores(f: _Fold, g_main: float, lw: np.ndarray, alphas: np.ndarray, y_tr: np.ndarray,
                 y_te: np.ndarray, criterion: str) -> np.ndarray:
    """Validation scores (n_alphas, T) of one fold for one weighting; higher is better."""
    zt, Lt = _solve_rotated(f, g_main, lw, alphas, f.U.T @ y_tr)
    # test predictions: g_m K_m[te, tr] z + L_te L_tr.T z, with L_tr.T z = Lt.T zt
    pred = g_main * (f.A[None] @ zt) + (f.L_te * lw[None, :])[None] @ (Lt.T[None] @ zt)
    if criterion == "mse":
        return -((pred - y_te[None]) ** 2).mean(1)
    yc = y_te - y_te.mean(0)
    pc = pred - pred.mean(1)[:, None, :]
    num = (pc * yc[None]).sum(1)
    den = np.sqrt((pc * pc).sum(1) * (yc * yc).sum(0)[None])
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _split_bands(Xs: list, main: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Main band (float64), small bands stacked (n, q), and the small bands' indices."""
    others = [k for k in range(len(Xs)) if k != main]
    M = np.asarray(Xs[main], dtype=np.float64)
    L = np.hstack([np.asarray(Xs[k], dtype=np.float64) for k in others])
    return M, L, others


@dataclass
class LowRankFit:
    """What :func:`fit_lowrank` returns (float64 arrays)."""

    best: np.ndarray  # (T,) best mean validation score
    best_g: np.ndarray  # (T,) index of the chosen weighting
    best_a: np.ndarray  # (T,) index of the chosen alpha, in the caller's order
    cv_scores: np.ndarray  # (n_weights, T) best score of each weighting
    coef: np.ndarray  # (sum p_k, T) on the unscaled features, spaces in order
    intercept: np.ndarray  # (T,)


def _band_columns(sizes: np.ndarray, others: list[int]) -> list[np.ndarray]:
    """Column indices of each small band inside the stacked ``L``."""
    edges = np.concatenate([[0], np.cumsum(sizes[others])])
    return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _cv_search(folds, splits, Yc, gammas, main, others, cols, alphas_sorted, criterion, tie_rtol, eps):
    """Best (weighting, alpha) per target, as the generic path chooses them."""
    T = Yc.shape[1]
    best = np.full(T, -np.inf)
    best_g = np.zeros(T, dtype=np.intp)
    best_a = np.zeros(T, dtype=np.intp)
    cv_scores = np.full((gammas.shape[0], T), np.nan)
    q = sum(c.size for c in cols)
    for i, g in enumerate(gammas):
        lw = np.zeros(q)
        for k, c in zip(others, cols):
            lw[c] = np.sqrt(g[k])
        acc = np.zeros((alphas_sorted.size, T))
        for start in range(0, T, TARGET_BLOCK):
            sl = slice(start, min(start + TARGET_BLOCK, T))
            total = None
            for f, (tr, te) in zip(folds, splits):
                y_tr, y_te = Yc[tr, sl], Yc[te, sl]
                if f.centred:
                    mu = y_tr.mean(0)
                    y_tr, y_te = y_tr - mu, y_te - mu
                s = _fold_scores(f, float(g[main]), lw, alphas_sorted, y_tr, y_te, criterion)
                total = s if total is None else total + s
            acc[:, sl] = total / len(folds)
        idx = select_alphas(acc, rtol=tie_rtol)
        sc = acc[idx, np.arange(T)]
        cv_scores[i] = sc
        better = np.nan_to_num(sc, nan=-np.inf) > best + eps
        best[better] = sc[better]
        best_g[better] = i
        best_a[better] = idx[better]
    return best, best_g, best_a, cv_scores


def fit_lowrank(
    Xs: list,
    main: int,
    Y: np.ndarray,
    splits: list,
    alphas: np.ndarray,
    gammas: np.ndarray,
    *,
    criterion: str,
    fit_intercept: bool,
    tie_rtol: float,
    eps: float,
) -> LowRankFit:
    """Cross-validated banded ridge through the Woodbury path (see module docstring).

    Parameters
    ----------
    Xs : list of ndarray, each (n, p_k)
    main : int
        The band whose kernel is decomposed (:func:`lowrank_main_band`).
    Y : ndarray, shape (n, T)
    splits : list of (train, test) index arrays
    alphas : ndarray, shape (n_alphas,), positive
    gammas : ndarray, shape (n_weights, n_spaces)
    criterion : {"mse", "r"}
    fit_intercept : bool
    tie_rtol, eps : float
        The generic path's tie tolerance between alphas and the margin by
        which a later weighting must beat an earlier one.
    """
    sizes = np.array([X.shape[1] for X in Xs])
    M, L, others = _split_bands(Xs, main)
    cols = _band_columns(sizes, others)
    x_mean = [np.asarray(X, dtype=np.float64).mean(0) if fit_intercept else None for X in Xs]
    if fit_intercept:
        M = M - x_mean[main]
    K = M @ M.T
    Y = np.asarray(Y, dtype=np.float64)
    y_mean = Y.mean(0) if fit_intercept else np.zeros(Y.shape[1])
    Yc = Y - y_mean
    order = np.argsort(alphas, kind="stable")
    alphas_sorted = alphas[order]
    folds = [_reduce(K, L, tr, te, fit_intercept) for tr, te in splits]
    best, best_g, best_a, cv_scores = _cv_search(
        folds, splits, Yc, gammas, main, others, cols, alphas_sorted, criterion, tie_rtol, eps
    )
    coef = _refit(K, M, L, Xs, main, others, cols, sizes, x_mean, Yc, gammas, best_g,
                  alphas_sorted[best_a], fit_intercept)
    x_all = np.concatenate(x_mean) if fit_intercept else None
    intercept = y_mean - x_all @ coef if fit_intercept else np.zeros(Y.shape[1])
    return LowRankFit(best=best, best_g=best_g, best_a=order[best_a], cv_scores=cv_scores,
                      coef=coef, intercept=intercept)


def _refit(K, M, L, Xs, main, others, cols, sizes, x_mean, Yc, gammas, best_g, best_alpha, fit_intercept):
    """Coefficients (sum p_k, T) on all samples for each target's chosen (weighting, alpha).

    ``K`` is the kernel of the (centred) main band over all samples. With few
    distinct (weighting, alpha) pairs each system ``(Kg + a I) z = y`` is
    solved by Cholesky (``n^3 / 3`` flops each); with many, through one
    eigendecomposition (about ``9 n^3``) and the Woodbury identity.
    """
    n = K.shape[0]
    Lc = L - L.mean(0) if fit_intercept else L
    edges = np.concatenate([[0], np.cumsum(sizes)])
    coef = np.zeros((int(sizes.sum()), Yc.shape[1]))
    uniq_a = np.unique(best_alpha)
    pairs = np.stack([best_g, np.searchsorted(uniq_a, best_alpha)], axis=1)
    todo = np.unique(pairs, axis=0)
    full = _reduce(K, L, np.arange(n), None, fit_intercept) if len(todo) > REFIT_CHOLESKY_MAX else None
    for gi, ai in todo:
        tcols = np.flatnonzero((pairs[:, 0] == gi) & (pairs[:, 1] == ai))
        g = gammas[gi]
        lw = np.zeros(L.shape[1])
        for k, c in zip(others, cols):
            lw[c] = np.sqrt(g[k])
        if full is None:
            Lw = Lc * lw[None, :]
            Kg = g[main] * K + Lw @ Lw.T
            Kg[np.diag_indices(n)] += uniq_a[ai]
            z = scipy.linalg.cho_solve(scipy.linalg.cho_factor(Kg, overwrite_a=True, check_finite=False),
                                       Yc[:, tcols], check_finite=False)
        else:
            zt, _ = _solve_rotated(full, float(g[main]), lw, uniq_a[ai:ai + 1], full.U.T @ Yc[:, tcols])
            z = full.U @ zt[0]
        # z = (Kg + a I)^{-1} y, the dual coefficients
        coef[edges[main]:edges[main + 1], tcols] = g[main] * (M.T @ z)
        for k, c in zip(others, cols):
            coef[edges[k]:edges[k + 1], tcols] = g[k] * (Lc[:, c].T @ z)
    return coef
