"""Statistics on encoding scores: Pearson r, R², FDR and permutation tests."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..data import PermutationResult
from ..errors import InputError, ShapeMismatchError


class ConstantTargetWarning(UserWarning):
    """Some targets are constant, so their correlation is undefined (NaN)."""


def _as_2d(a: Any, name: str) -> tuple[np.ndarray, bool]:
    a = np.asarray(a)
    if a.ndim == 1:
        return a[:, None], True
    if a.ndim != 2:
        raise ShapeMismatchError(f"{name} must be 1-D or 2-D (samples, targets); got shape {a.shape}")
    return a, False


def _constant_columns(a: np.ndarray) -> np.ndarray:
    return (a.max(0) == a.min(0)) if a.shape[0] else np.ones(a.shape[1], bool)


def warn_constant(n_constant: int, n_total: int, what: str = "targets") -> None:
    """Issue the one warning about constant targets (no-op when there are none)."""
    if n_constant:
        warnings.warn(
            f"{n_constant} of {n_total} {what} are constant: their score is NaN",
            ConstantTargetWarning,
            stacklevel=3,
        )


def pearson_r(a: Any, b: Any, *, warn: bool = True) -> np.ndarray | float:
    """Column-wise Pearson correlation.

    Parameters
    ----------
    a, b : array-like, shape (n_samples,) or (n_samples, n_targets)
        Observed and predicted values; same shape.
    warn : bool
        Warn once (with their count) when some columns are constant.

    Returns
    -------
    ndarray, shape (n_targets,), or float for 1-D input
        Correlations in float64; NaN where either column is constant.
    """
    a2, flat = _as_2d(a, "a")
    b2, _ = _as_2d(b, "b")
    if a2.shape != b2.shape:
        raise ShapeMismatchError(f"pearson_r needs equal shapes; got {np.shape(a)} and {np.shape(b)}")
    if a2.shape[0] < 2:
        raise InputError(f"pearson_r needs at least 2 samples; got {a2.shape[0]}")
    const = _constant_columns(a2) | _constant_columns(b2)
    ac = a2 - a2.mean(0, dtype=np.float64)
    bc = b2 - b2.mean(0, dtype=np.float64)
    num = np.einsum("ij,ij->j", ac, bc)
    den = np.sqrt(np.einsum("ij,ij->j", ac, ac) * np.einsum("ij,ij->j", bc, bc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r = np.clip(r, -1.0, 1.0)
    r[const | ~(den > 0)] = np.nan
    if warn:
        warn_constant(int(const.sum()), const.size)
    return float(r[0]) if flat else r


def r2_score(y_true: Any, y_pred: Any) -> np.ndarray:
    """Column-wise coefficient of determination ``1 - SS_res / SS_tot``.

    ``SS_tot`` is taken around the mean of ``y_true`` in the same samples
    (a held-out fold), as scikit-learn does. NaN for constant ``y_true``.
    """
    t, flat = _as_2d(y_true, "y_true")
    pr, _ = _as_2d(y_pred, "y_pred")
    if t.shape != pr.shape:
        raise ShapeMismatchError(f"r2_score needs equal shapes; got {np.shape(y_true)} and {np.shape(y_pred)}")
    t = t.astype(np.float64, copy=False)
    res = ((t - pr) ** 2).sum(0)
    tc = t - t.mean(0)
    tot = (tc * tc).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 1.0 - res / tot
    out[~(tot > 0)] = np.nan
    return float(out[0]) if flat else out


def fdr_bh(p: Any, axis: int = -1) -> np.ndarray:
    """Benjamini-Hochberg q-values (false discovery rate adjusted p-values).

    Parameters
    ----------
    p : array-like
        p-values in [0, 1]; NaN entries are left out of the adjustment and
        stay NaN.
    axis : int
        Axis along which the family of tests lies.

    Returns
    -------
    ndarray
        q-values, same shape as ``p``.
    """
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=np.float64)
    finite = p[np.isfinite(p)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise InputError("fdr_bh needs p-values between 0 and 1")
    if p.ndim == 0:
        return p.copy()
    moved = np.moveaxis(p, axis, -1)
    out = np.full_like(moved, np.nan)
    flat_in = moved.reshape(-1, moved.shape[-1])
    flat_out = out.reshape(-1, moved.shape[-1])
    for k in range(flat_in.shape[0]):
        ok = np.isfinite(flat_in[k])
        if ok.any():
            flat_out[k, ok] = false_discovery_control(flat_in[k, ok], method="bh")
    return np.moveaxis(out, -1, axis)


def _standardise(a: np.ndarray) -> np.ndarray:
    ac = a - a.mean(0)
    sd = np.sqrt((ac * ac).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return ac / sd


def permutation_test(
    y_true: Any,
    y_pred: Any,
    groups: Any = None,
    *,
    n_permutations: int = 1000,
    method: str = "circular",
    block_size: int | None = None,
    min_shift: int | None = None,
    random_state: int | None = 0,
) -> PermutationResult:
    """Permutation test of encoding r that keeps the autocorrelation of the data.

    The statistic is the Pearson r computed within each group (an outer test
    fold, a run) and averaged over groups, as in
    :func:`cross_validated_scores`. The null is built by moving the observed
    signal relative to the prediction *within each group*: a random circular
    shift (default), or a random permutation of contiguous blocks. The same
    shift is applied to every target, so the spatial correlation of targets is
    kept too. Vectorised over targets; the circular null of every shift is
    computed at once with FFT cross-correlations.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (n_samples, n_targets) or (n_samples,)
        Observed and held-out predicted values.
    groups : array-like, shape (n_samples,), optional
        Run / fold label per sample; default one group.
    n_permutations : int
    method : {"circular", "block"}
    block_size : int, optional
        Samples per block for ``"block"``; default ``max(2, round(sqrt(n_g)))``.
        Blocks must be longer than the autocorrelation of the data, or the
        test is liberal; the circular null has no such parameter.
    min_shift : int, optional
        Draw shifts in ``[min_shift, n_g - min_shift]`` only. Default: every
        shift ``0..n_g-1`` (the cyclic group, so the test is exact for
        stationary series); excluding small shifts biases the null away from
        the observed value and makes the test liberal.
    random_state : int or None
        Seed; the same seed gives the same p-values.

    Returns
    -------
    PermutationResult
        ``observed`` is the r above, ``p_value`` its p-value, one per target
        (floats for 1-D input); the null is kept as its mean and s.d.
    """
    if method not in ("circular", "block"):
        raise InputError(f"method {method!r} is not 'circular' or 'block'")
    if n_permutations < 1:
        raise InputError(f"n_permutations must be >= 1; got {n_permutations}")
    t2, flat = _as_2d(y_true, "y_true")
    p2, _ = _as_2d(y_pred, "y_pred")
    if t2.shape != p2.shape:
        raise ShapeMismatchError(f"y_true and y_pred shapes differ: {t2.shape} vs {p2.shape}")
    n = t2.shape[0]
    if groups is None:
        groups = np.zeros(n, dtype=int)
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ShapeMismatchError(f"groups has shape {groups.shape}; expected ({n},)")
    rng = np.random.default_rng(random_state)
    labels = list(dict.fromkeys(groups.tolist()))
    T = t2.shape[1]
    observed = np.zeros(T)
    null = np.zeros((n_permutations, T))
    for g in labels:
        idx = np.flatnonzero(groups == g)
        ng = idx.size
        if ng < 4:
            raise InputError(f"group {g!r} has {ng} samples; a permutation test needs at least 4 per group")
        zt = _standardise(t2[idx].astype(np.float64))
        zp = _standardise(p2[idx].astype(np.float64))
        observed += (zt * zp).sum(0)
        if method == "circular":
            lo = 0 if min_shift is None else int(min_shift)
            hi = ng - lo + 1 if lo > 0 else ng
            if lo < 0 or lo >= hi:
                raise InputError(f"min_shift={lo} leaves no circular shift in a group of {ng} samples")
            # xc[k] = sum_i zt[(i + k) % ng] * zp[i] for every shift k at once
            ft = np.fft.rfft(zt, axis=0)
            fp = np.fft.rfft(zp, axis=0)
            xc = np.fft.irfft(ft * np.conj(fp), n=ng, axis=0)
            shifts = rng.integers(lo, hi, size=n_permutations)
            null += xc[shifts]
        else:
            bs = max(2, int(round(np.sqrt(ng)))) if block_size is None else int(block_size)
            starts = np.arange(0, ng, bs)
            for k in range(n_permutations):
                order = rng.permutation(starts.size)
                perm = np.concatenate([np.arange(starts[j], min(starts[j] + bs, ng)) for j in order])
                null[k] += (zt[perm] * zp).sum(0)
    observed /= len(labels)
    null /= len(labels)
    with np.errstate(invalid="ignore"):
        count = (null >= observed[None, :] - 1e-12).sum(0)
    p = (1.0 + count) / (1.0 + n_permutations)
    bad = ~np.isfinite(observed)
    p[bad] = np.nan
    moments = null.mean(0), null.std(0)
    if flat:
        observed, p, moments = float(observed[0]), float(p[0]), (float(moments[0][0]), float(moments[1][0]))
    return PermutationResult(
        observed=observed, p_value=p, null_mean=moments[0], null_std=moments[1],
        n_permutations=int(n_permutations), method=method,
    )
