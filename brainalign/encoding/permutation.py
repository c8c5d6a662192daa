"""Per-target p-values of cross-validated encoding r from a refit circular-shift null.

Why a refit null (and not a shift of the held-out predictions)
---------------------------------------------------------------
The statistic is the fold-mean held-out r, ``mean_k corr(Y_k, X_k W_{-k})``.
Fold ``k``'s prediction is built from every other fold's data, so under the null
the fold r are positively correlated (about ``1 / (n_folds - 1)`` for ridge:
the cross term ``Y_k' X_k A X_j' Y_j`` appears in both ``r_k`` and ``r_j``), and
the variance of their mean is about twice what independent folds would give.
Shifting the *predictions* against the data within each fold breaks that
sharing, so its null is too narrow (liberal), and so is a t-test over the folds,
which also treats them as independent (docs/validation.md, "Calibration of
per-target p-values", measures both).

The null here shifts the data ``Y`` circularly within each run, by a random lag
of at least ``min_shift`` samples (so it is never close to the identity), and
re-predicts every outer fold from the shifted training data **with the alphas
the real fit chose** (no inner CV again): ridge predictions are linear in ``Y``,
``pred_k = H_k(alpha) Y_train``, with ``H_k`` the fold's dual hat map
``K_te (K_tr + alpha I)^-1``. Each shift costs two gathers and one matrix product
per fold and distinct alpha, over all targets of that alpha at once. The shifted
series keeps the autocorrelation of the data and of the features, the sharing of
training data between folds and the leakage across fold boundaries, which is
what makes the null match the observed statistic.

Kernels: arrays in, arrays out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from scipy import stats

from ..errors import InputError, ShapeMismatchError

#: Default smallest circular shift, as a fraction of each run's length.
MIN_SHIFT_FRACTION = 0.1

#: Ways to turn the null into a p-value (:func:`null_pvalues`).
P_TAILS = ("t", "empirical")

#: Bytes of gathered data per block of shifts (the memory cap of :func:`refit_shift_null`).
BLOCK_BYTES = 48 * 2**20


@dataclass(frozen=True)
class ShiftNull:
    """The observed statistic and its refit circular-shift null.

    Attributes
    ----------
    observed : ndarray, shape (n_targets,)
        Fold-mean held-out r at the chosen alphas (equals the fit's ``r``).
    null : ndarray, shape (n_permutations, n_targets)
        The same statistic on circularly shifted data.
    shifts : ndarray of int, shape (n_permutations, n_runs)
        The lag (samples) of every run in every permutation.
    """

    observed: np.ndarray
    null: np.ndarray
    shifts: np.ndarray


def run_blocks(runs: Sequence | None, n: int) -> list[np.ndarray]:
    """Index arrays of the contiguous blocks of equal run labels (one block if ``runs`` is None)."""
    if runs is None:
        return [np.arange(n)]
    r = np.asarray(runs)
    if r.shape != (n,):
        raise ShapeMismatchError(f"runs has shape {r.shape}; expected ({n},)")
    edges = np.flatnonzero(r[1:] != r[:-1]) + 1
    return [b for b in np.split(np.arange(n), edges) if b.size]


def draw_shifts(blocks: list[np.ndarray], n_permutations: int, seed: int,
                min_shift: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random circular lags per run and the row orders they give.

    Parameters
    ----------
    blocks : list of ndarray
        Sample indices of each run (:func:`run_blocks`).
    n_permutations : int
    seed : int
        ``numpy.random.default_rng`` seed: the same seed gives the same lags.
    min_shift : int, optional
        Lags are drawn uniformly in ``[m, n_run - m]`` (samples); default
        ``m = ceil(MIN_SHIFT_FRACTION * n_run)``, at least 1.

    Returns
    -------
    shifts : ndarray of int, shape (n_permutations, n_runs)
    order : ndarray of int, shape (n_permutations, n_samples)
        ``Y[order[i]]`` is the data of permutation ``i``.
    """
    if n_permutations < 1:
        raise InputError(f"scoring.permutations must be >= 1 for a shift null; got {n_permutations}")
    rng = np.random.default_rng(seed)
    n = int(sum(b.size for b in blocks))
    shifts = np.zeros((n_permutations, len(blocks)), dtype=np.intp)
    order = np.empty((n_permutations, n), dtype=np.intp)
    for j, b in enumerate(blocks):
        m = int(np.ceil(MIN_SHIFT_FRACTION * b.size)) if min_shift is None else int(min_shift)
        m = max(m, 1)
        if b.size - m < m:
            raise InputError(f"a run of {b.size} samples leaves no circular shift of at least {m} samples; "
                             "use longer runs or scoring.permutations: 0")
        shifts[:, j] = rng.integers(m, b.size - m + 1, size=n_permutations)
        pos = (np.arange(b.size)[None, :] + shifts[:, j:j + 1]) % b.size
        order[:, b] = b[pos]
    return shifts, order


def _one_band_maps(Xtr: np.ndarray, Xte: np.ndarray, alphas: np.ndarray) -> Iterator[np.ndarray]:
    """``Xte (Xtr'Xtr + a I)^-1 Xtr'`` for each alpha in turn, from one thin SVD (or eigh) of the centred design."""
    if Xtr.shape[1] <= Xtr.shape[0]:
        U, s, Vt = np.linalg.svd(Xtr, full_matrices=False)
        XV = Xte @ Vt.T
        for a in alphas:
            yield (XV * (s / (s * s + a))) @ U.T
        return
    lam, Q = np.linalg.eigh(Xtr @ Xtr.T)  # dual: Xte Xtr' (Xtr Xtr' + a I)^-1
    lam = np.clip(lam, 0.0, None)
    KQ = (Xte @ Xtr.T) @ Q
    for a in alphas:
        yield (KQ / (lam + a)) @ Q.T


def _band_maps(Xtr: np.ndarray, Xte: np.ndarray, rows: np.ndarray, bands: Sequence[int] | None
               ) -> Iterator[np.ndarray]:
    """``K_te (K_tr + I)^-1`` with ``K = sum_b X_b X_b' / penalty_b`` for each penalty row in turn (banded)."""
    ktr, kte = _fold_kernels(Xtr, Xte, bands)
    eye = np.eye(Xtr.shape[0])
    for row in rows:
        K = sum(k / a for k, a in zip(ktr, row))
        Kt = sum(k / a for k, a in zip(kte, row))
        yield np.linalg.solve(K + eye, Kt.T).T


def _fold_kernels(Xtr: np.ndarray, Xte: np.ndarray,
                  bands: Sequence[int] | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Train and test-by-train kernels of one fold, one pair per band (train-centred design)."""
    cuts = np.cumsum([0, *(bands or [Xtr.shape[1]])])
    ktr = [Xtr[:, a:b] @ Xtr[:, a:b].T for a, b in zip(cuts[:-1], cuts[1:])]
    kte = [Xte[:, a:b] @ Xtr[:, a:b].T for a, b in zip(cuts[:-1], cuts[1:])]
    return ktr, kte


def hat_maps(X: np.ndarray, train: np.ndarray, test: np.ndarray, penalties: np.ndarray,
             bands: Sequence[int] | None = None) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """Dual ridge hat maps ``H`` (n_test, n_train) of one fold, one per distinct penalty.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
    train, test : ndarray of int
    penalties : ndarray, shape (n_bands, n_targets)
        Penalty of each band (columns of ``X`` cut by ``bands``) per target, on the
        un-normalised centred design (``X'X + diag(penalty)``); NaN: no fit.
    bands : sequence of int, optional
        Columns per band; default one band.

    Returns
    -------
    group : ndarray of int, shape (n_targets,)
        Index of each target's hat map; -1 where a penalty is not finite.
    maps : iterator of ndarray
        ``pred_test = H @ Y_train`` (up to a constant per target), made one at a time
        (so only one n_test x n_train map is held).
    """
    pen = np.atleast_2d(np.asarray(penalties, dtype=np.float64))
    ok = np.all(np.isfinite(pen) & (pen > 0), axis=0)
    uniq, inv = np.unique(pen[:, ok].T, axis=0, return_inverse=True)
    group = np.full(pen.shape[1], -1, dtype=np.intp)
    group[ok] = np.ravel(inv)
    mu = X[train].mean(0)
    Xtr, Xte = X[train] - mu, X[test] - mu
    if pen.shape[0] == 1:
        return group, _one_band_maps(Xtr, Xte, uniq[:, 0])
    return group, _band_maps(Xtr, Xte, uniq, bands)


def _r_along(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Pearson r of two equal-shape 3-D arrays along ``axis`` (the samples); NaN when either side is constant."""
    ac = a - a.mean(axis, dtype=np.float64, keepdims=True).astype(a.dtype)
    bc = b - b.mean(axis, dtype=np.float64, keepdims=True).astype(b.dtype)
    num = (ac * bc).sum(axis, dtype=np.float64)
    den = np.sqrt((ac * ac).sum(axis, dtype=np.float64) * (bc * bc).sum(axis, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[~(den > 0)] = np.nan
    return r


def _group_stats(H: np.ndarray, Yg: np.ndarray, orders: np.ndarray, inverse: np.ndarray, train: np.ndarray,
                 test: np.ndarray) -> np.ndarray:
    """Fold r of one hat map for every row order in ``orders`` (S, n) -> (S, n_targets_of_group).

    The prediction of order ``o`` is ``H @ Y[o[train]]``: one matrix product per block
    of orders, either on the gathered data (few targets) or, with many targets, on
    the gathered hat map against the unshifted data,
    ``H_ext @ Y[o] = H_ext[:, o^-1] @ Y`` (``H_ext`` is ``H`` on the training
    columns, 0 on the test ones), which moves n_test x n numbers instead of
    n_train x n_targets.
    """
    n, c = Yg.shape
    S, nk = orders.shape[0], test.size
    move_h = n * nk < train.size * c
    if move_h:
        Hext = np.zeros((n, nk), dtype=Yg.dtype)
        Hext[train] = H.T
        YgT = np.ascontiguousarray(Yg.T)
    per = (n * nk if move_h else train.size * c) + 3 * nk * c
    step = max(1, int(BLOCK_BYTES // (Yg.itemsize * per)))
    out = np.empty((S, c))
    for s0 in range(0, S, step):
        o = orders[s0:s0 + step]
        k = o.shape[0]
        if move_h:  # (c, n) @ (n, k * nk): predictions as (c, k, nk)
            pred = (YgT @ Hext[inverse[s0:s0 + step].T].reshape(n, k * nk)).reshape(c, k, nk)
            out[s0:s0 + k] = _r_along(YgT[:, o[:, test]], pred, 2).T
        else:  # H @ (ntr, k * c): predictions as (nk, k, c)
            pred = (H @ Yg[o[:, train].T].reshape(train.size, k * c)).reshape(nk, k, c)
            out[s0:s0 + k] = _r_along(Yg[o[:, test].T], pred, 0)
    return out


def refit_shift_null(
    X: np.ndarray,
    Y: np.ndarray,
    folds: Sequence[np.ndarray],
    penalties: np.ndarray,
    *,
    runs: Sequence | None = None,
    bands: Sequence[int] | None = None,
    n_permutations: int = 200,
    min_shift: int | None = None,
    seed: int = 0,
    dtype: type = np.float32,
) -> ShiftNull:
    """Fold-mean held-out r and its null from circular shifts of ``Y`` within runs, refit at fixed alphas.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
        The design the fit used (baseline columns first when there is a baseline band).
    Y : ndarray, shape (n_samples, n_targets)
    folds : sequence of ndarray
        Outer test indices (the rest of the samples is each fold's training set).
    penalties : ndarray, shape (n_folds, n_targets) or (n_folds, n_bands, n_targets)
        The penalty each fold's inner CV chose per target (``alpha_folds``), per band
        for a banded fit.
    runs : array-like, shape (n_samples,), optional
        Run label per sample: shifts stay within runs (default: one run).
    bands : sequence of int, optional
        Columns per band of ``X`` for a banded fit.
    n_permutations : int
    min_shift : int, optional
        Smallest lag in samples; default 10% of each run.
    seed : int
    dtype : numpy dtype
        Precision of the shifted products (float32: half the memory traffic; the
        observed statistic goes through the same path, so ties are compared alike).

    Returns
    -------
    ShiftNull
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ShapeMismatchError(f"X {X.shape} and Y {Y.shape} must be 2-D with the same samples")
    pen = np.asarray(penalties, dtype=np.float64)
    pen = pen[:, None, :] if pen.ndim == 2 else pen
    if pen.shape[0] != len(folds) or pen.shape[2] != Y.shape[1]:
        raise ShapeMismatchError(f"penalties {pen.shape} do not match {len(folds)} folds x {Y.shape[1]} targets")
    n = Y.shape[0]
    shifts, orders = draw_shifts(run_blocks(runs, n), n_permutations, seed, min_shift)
    orders = np.vstack([np.arange(n)[None, :], orders])  # row 0: the data as observed
    stat = _fold_mean_r(X, Y, folds, pen, bands, orders, dtype)
    return ShiftNull(observed=stat[0], null=stat[1:], shifts=shifts)


def _fold_mean_r(X: np.ndarray, Y: np.ndarray, folds: Sequence[np.ndarray], pen: np.ndarray,
                 bands: Sequence[int] | None, orders: np.ndarray, dtype: type) -> np.ndarray:
    """Fold-mean r (S, n_targets) of the refit predictions for every row order of ``Y`` in ``orders`` (S, n)."""
    n, T = Y.shape
    inverse = np.empty_like(orders)
    np.put_along_axis(inverse, orders, np.broadcast_to(np.arange(n), orders.shape), axis=1)
    total = np.zeros((orders.shape[0], T))  # sum of the finite fold r, and their count
    count = np.zeros((orders.shape[0], T), dtype=np.int32)
    for k, test in enumerate(folds):
        test = np.sort(np.asarray(test, dtype=np.intp))
        train = np.setdiff1d(np.arange(n), test)
        group, maps = hat_maps(X, train, test, pen[k], bands)
        for g, H in enumerate(maps):
            cols = np.flatnonzero(group == g)
            Yg = np.ascontiguousarray(Y[:, cols], dtype=dtype)
            rk = _group_stats(H.astype(dtype), Yg, orders, inverse, train, test)
            ok = np.isfinite(rk)
            total[:, cols] += np.where(ok, rk, 0.0)
            count[:, cols] += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def null_pvalues(observed: np.ndarray, null: np.ndarray, tail: str = "t") -> np.ndarray:
    """One-sided p-values of ``observed`` (n_targets,) against ``null`` (n_permutations, n_targets).

    ``"empirical"``: ``(1 + #{null >= observed}) / (1 + n_permutations)`` (floor
    ``1 / (1 + n_permutations)``). ``"t"``: the Student-t prediction tail of a normal
    null with the null's mean and s.d., ``t.sf((obs - mean) / (sd * sqrt(1 + 1/N)), N - 1)``;
    exact when the null is normal (a mean of fold correlations nearly is), and it
    reaches the small p a Benjamini-Hochberg family of layers x targets needs with a
    few hundred shifts. NaN observed -> NaN.
    """
    if tail not in P_TAILS:
        raise InputError(f"p tail {tail!r} is not one of {P_TAILS}")
    obs = np.asarray(observed, dtype=np.float64)
    nul = np.asarray(null, dtype=np.float64)
    N = nul.shape[0]
    if tail == "empirical":
        with np.errstate(invalid="ignore"):
            count = (nul >= obs[None, :]).sum(0)
        p = (1.0 + count) / (1.0 + N)
    else:
        if N < 3:
            raise InputError(f"the t tail needs at least 3 permutations; got {N}")
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.nanmean(nul, 0)
            sd = np.nanstd(nul, 0, ddof=1)
            z = (obs - mu) / (sd * np.sqrt(1.0 + 1.0 / N))
        p = stats.t.sf(z, df=N - 1)
        p = np.where(sd > 0, p, np.nan)
    return np.where(np.isfinite(obs), p, np.nan)


__all__ = ["MIN_SHIFT_FRACTION", "P_TAILS", "ShiftNull", "draw_shifts", "hat_maps", "null_pvalues",
           "refit_shift_null", "run_blocks"]
