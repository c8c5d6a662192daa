"""Finite-impulse-response delays, z-scoring and trimming, all within runs.

Every function takes a ``runs`` label per frame. A run is a contiguous block of
equal labels; nothing is ever shifted, averaged or trimmed across the boundary
between two blocks. (The voxelwise tutorials' ``Delayer``, the Huth lab's
``make_delayed`` and ``np.roll`` all delay the concatenated runs, so the end of one
run leaks into the start of the next.)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import AlignmentError, ShapeMismatchError


def run_segments(runs: Sequence) -> list[slice]:
    """Contiguous blocks of equal run labels, as slices in order.

    Parameters
    ----------
    runs : sequence, shape (n_frames,)

    Returns
    -------
    list of slice
    """
    r = np.asarray(runs)
    if r.ndim != 1:
        raise ShapeMismatchError(f"runs must be 1-D (one label per frame); got shape {r.shape}")
    if r.size == 0:
        return []
    change = np.flatnonzero(r[1:] != r[:-1]) + 1
    edges = np.concatenate([[0], change, [r.size]])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _check_rows(X: np.ndarray, runs: Sequence) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ShapeMismatchError(f"X must be (n_frames, p); got shape {X.shape}")
    n = np.asarray(runs).shape[0] if np.ndim(runs) else 0
    if X.shape[0] != n:
        raise ShapeMismatchError(f"X has {X.shape[0]} rows but runs has {n} labels")
    return X


def fir_delays(X: np.ndarray, runs: Sequence, delays: Sequence[int] = (1, 2, 3, 4)) -> np.ndarray:
    """Stack delayed copies of ``X``, shifted within each run and zero-padded.

    Parameters
    ----------
    X : ndarray, shape (n_frames, p)
    runs : sequence, shape (n_frames,)
        Run label of each frame.
    delays : sequence of int
        Delays in frames; positive values look back in time (row ``t`` of the
        copy for delay ``d`` holds ``X[t - d]`` of the same run, or 0 when
        ``t - d`` falls before the run's start). Negative delays look ahead.

    Returns
    -------
    ndarray, shape (n_frames, p * n_delays)
        Blocks in the order of ``delays``: columns ``[k*p:(k+1)*p]`` are delay
        ``delays[k]``.
    """
    X = _check_rows(X, runs)
    delays = [int(d) for d in delays]
    if not delays:
        raise AlignmentError("delays is empty: give at least one delay (0 for none)")
    n, p = X.shape
    out = np.zeros((n, p * len(delays)), dtype=X.dtype)
    for seg in run_segments(runs):
        a, b = seg.start, seg.stop
        m = b - a
        for k, d in enumerate(delays):
            cols = slice(k * p, (k + 1) * p)
            if abs(d) >= m:
                continue
            if d >= 0:
                out[a + d : b, cols] = X[a : b - d]
            else:
                out[a : b + d, cols] = X[a - d : b]
    return out


def zscore_by_run(X: np.ndarray, runs: Sequence, ddof: int = 0) -> np.ndarray:
    """Z-score each column within each run.

    Columns that are constant within a run become 0 there (not NaN).

    Parameters
    ----------
    X : ndarray, shape (n_frames, p)
    runs : sequence, shape (n_frames,)
    ddof : int
        Delta degrees of freedom of the standard deviation.

    Returns
    -------
    ndarray, shape (n_frames, p), floating
    """
    X = _check_rows(X, runs)
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64
    out = np.empty(X.shape, dtype=dtype)
    for seg in run_segments(runs):
        block = X[seg].astype(dtype, copy=False)
        mu = block.mean(axis=0)
        sd = block.std(axis=0, ddof=ddof) if block.shape[0] > ddof else np.zeros_like(mu)
        ok = sd > np.finfo(dtype).eps * np.maximum(1.0, np.abs(mu))
        scale = np.where(ok, sd, 1.0)
        out[seg] = np.where(ok, (block - mu) / scale, 0.0)
    return out


def trim_mask(runs: Sequence, n_start: int = 0, n_end: int = 0) -> np.ndarray:
    """Boolean mask that drops the first ``n_start`` and last ``n_end`` frames of each run.

    Parameters
    ----------
    runs : sequence, shape (n_frames,)
    n_start, n_end : int
        Frames to drop at each run's start and end.

    Returns
    -------
    ndarray of bool, shape (n_frames,)
    """
    if n_start < 0 or n_end < 0:
        raise AlignmentError(f"trim sizes must be >= 0, got n_start={n_start}, n_end={n_end}")
    segs = run_segments(runs)
    keep = np.zeros(sum(s.stop - s.start for s in segs), dtype=bool)
    for seg in segs:
        a, b = seg.start + n_start, seg.stop - n_end
        if a < b:
            keep[a:b] = True
    return keep
