"""Lanczos resampling of word-level features onto frame times.

The Lanczos kernel of window ``a`` is ``L(x) = sinc(x) * sinc(x / a)`` for
``|x| < a`` and 0 elsewhere, with ``sinc(x) = sin(pi x) / (pi x)``. A word at time
``t_w`` contributes ``L(cutoff * (t_f - t_w)) * value`` to the frame at ``t_f``.
With ``cutoff = 1 / TR`` and ``a = 3`` this is the resampling of the Huth lab's
``ridge_utils``; there the rows are not normalised, so a frame with many words gets
a larger feature vector (speaking rate leaks into feature size). ``normalize=True``
divides each frame's weights by their sum instead.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from ._common import apply_word_weights
from ..errors import AlignmentError, NonFiniteError


def lanczos_kernel(x: np.ndarray, window: int = 3) -> np.ndarray:
    """Lanczos kernel ``sinc(x) sinc(x / window)`` on ``|x| < window``, else 0.

    Parameters
    ----------
    x : ndarray
        Dimensionless distances (time difference times cutoff frequency).
    window : int
        Number of lobes on each side.

    Returns
    -------
    ndarray, same shape as ``x``
    """
    x = np.asarray(x, dtype=float)
    out = np.sinc(x) * np.sinc(x / window)
    out[np.abs(x) >= window] = 0.0
    return out


def lanczos_matrix(
    word_times: np.ndarray,
    frame_times: np.ndarray,
    window: int = 3,
    cutoff: float | None = None,
    normalize: bool = False,
) -> sparse.csr_matrix:
    """Sparse (n_frames, n_words) matrix of Lanczos weights.

    Parameters
    ----------
    word_times : ndarray, shape (n_words,)
        Times of the words in seconds.
    frame_times : ndarray, shape (n_frames,)
        Times of the frames in seconds (on the same clock).
    window : int
        Lobes on each side of the kernel.
    cutoff : float, optional
        Cutoff frequency in Hz; defaults to ``1 / median frame spacing`` (1/TR).
    normalize : bool
        Divide each row by the sum of its weights (rows whose weights sum to
        nearly zero, e.g. frames far from any word, stay zero).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_frames, n_words)
    """
    wt = np.asarray(word_times, dtype=float).ravel()
    ft = np.asarray(frame_times, dtype=float).ravel()
    if not (np.all(np.isfinite(wt)) and np.all(np.isfinite(ft))):
        raise NonFiniteError("word or frame times contain NaN or infinite values")
    if cutoff is None:
        if ft.size < 2:
            raise AlignmentError("cannot infer the cutoff (1/TR) from fewer than 2 frames: pass cutoff=")
        spacing = float(np.median(np.diff(np.sort(ft))))
        if spacing <= 0:
            raise AlignmentError("frame times are not increasing: cannot infer the cutoff, pass cutoff=")
        cutoff = 1.0 / spacing
    if cutoff <= 0 or not np.isfinite(cutoff):
        raise AlignmentError(f"cutoff must be a positive frequency in Hz, got {cutoff}")
    if window < 1:
        raise AlignmentError(f"window must be >= 1, got {window}")
    order = np.argsort(wt, kind="mergesort")
    sorted_t = wt[order]
    half = window / cutoff
    lo = np.searchsorted(sorted_t, ft - half, side="right")
    hi = np.searchsorted(sorted_t, ft + half, side="left")
    counts = hi - lo
    indptr = np.concatenate([[0], np.cumsum(counts)])
    if indptr[-1] == 0:
        return sparse.csr_matrix((ft.size, wt.size))
    rows = np.repeat(np.arange(ft.size), counts)
    pos = np.arange(indptr[-1]) - np.repeat(indptr[:-1], counts) + np.repeat(lo, counts)
    cols = order[pos]
    vals = lanczos_kernel(cutoff * (ft[rows] - wt[cols]), window)
    if normalize:
        sums = np.bincount(rows, weights=vals, minlength=ft.size)
        ok = np.abs(sums) > 1e-8
        scale = np.zeros_like(sums)
        scale[ok] = 1.0 / sums[ok]
        vals = vals * scale[rows]
    return sparse.csr_matrix((vals, (rows, cols)), shape=(ft.size, wt.size))


def lanczos_resample(
    values: np.ndarray,
    word_times: np.ndarray,
    frame_times: np.ndarray,
    window: int = 3,
    cutoff: float | None = None,
    normalize: bool = False,
) -> np.ndarray:
    """Resample word features onto frame times with a Lanczos kernel.

    Parameters
    ----------
    values : ndarray, shape (n_words, p)
        One feature vector per word.
    word_times : ndarray, shape (n_words,)
        Word times in seconds (onsets or midpoints; the caller chooses).
    frame_times : ndarray, shape (n_frames,)
        Frame times in seconds on the same clock.
    window : int
        Lobes on each side (3 as in the Huth lab's code).
    cutoff : float, optional
        Cutoff frequency in Hz; default ``1/TR`` from the frame spacing.
    normalize : bool
        Normalise each frame's weights to sum to one.

    Returns
    -------
    ndarray, shape (n_frames, p), dtype of ``values`` if floating, else float64
    """
    return apply_word_weights(values, word_times, lambda wt: lanczos_matrix(wt, frame_times, window=window, cutoff=cutoff, normalize=normalize))
