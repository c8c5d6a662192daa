"""Convolution of word-level features with a haemodynamic response function.

The HRF shapes come from nilearn (``spm_hrf``, ``glover_hrf`` or any callable with
their signature). nilearn's ``compute_regressor`` samples one condition at a time
on an oversampled grid; here every feature column is handled at once by one sparse
(n_frames, n_words) matrix whose entry is the HRF evaluated at the frame-to-word
lag, interpolated linearly between the kernel's samples. Its scale matches
``compute_regressor`` (kernel samples sum to one at spacing ``TR / oversampling``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import sparse

from ._common import apply_word_weights
from ..errors import AlignmentError, NonFiniteError

HRF_MODELS = ("spm", "glover")


def hrf_kernel(hrf_model: str | Callable, tr: float, oversampling: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Sampled HRF from nilearn and the lags (s) of its samples.

    Parameters
    ----------
    hrf_model : {"spm", "glover"} or callable
        A nilearn HRF model name, or a callable ``f(t_r, oversampling) -> kernel``.
    tr : float
        Repetition time in seconds.
    oversampling : int
        Samples per TR of the kernel.

    Returns
    -------
    lags : ndarray, shape (n,)
        Lag of each kernel sample in seconds (``k * tr / oversampling``).
    kernel : ndarray, shape (n,)
    """
    from nilearn.glm.first_level import glover_hrf, spm_hrf

    if callable(hrf_model):
        fn = hrf_model
    elif hrf_model == "spm":
        fn = spm_hrf
    elif hrf_model == "glover":
        fn = glover_hrf
    else:
        raise AlignmentError(f"hrf_model {hrf_model!r} is not one of {HRF_MODELS} or a callable")
    kernel = np.asarray(fn(tr, oversampling), dtype=float).ravel()
    lags = np.arange(kernel.size) * (tr / oversampling)
    return lags, kernel


def hrf_matrix(
    word_times: np.ndarray,
    frame_times: np.ndarray,
    tr: float | None = None,
    hrf_model: str | Callable = "spm",
    oversampling: int = 50,
) -> sparse.csr_matrix:
    """Sparse (n_frames, n_words) matrix of HRF values at frame-minus-word lags.

    Parameters
    ----------
    word_times, frame_times : ndarray
        Seconds, same clock.
    tr : float, optional
        Repetition time; defaults to the median frame spacing.
    hrf_model, oversampling
        See :func:`hrf_kernel`.
    """
    wt = np.asarray(word_times, dtype=float).ravel()
    ft = np.asarray(frame_times, dtype=float).ravel()
    if not (np.all(np.isfinite(wt)) and np.all(np.isfinite(ft))):
        raise NonFiniteError("word or frame times contain NaN or infinite values")
    if tr is None:
        if ft.size < 2:
            raise AlignmentError("cannot infer TR from fewer than 2 frames: pass tr=")
        tr = float(np.median(np.diff(np.sort(ft))))
    if not tr > 0:
        raise AlignmentError(f"tr must be positive seconds, got {tr}")
    lags, kernel = hrf_kernel(hrf_model, tr, oversampling)
    span = lags[-1]
    order = np.argsort(wt, kind="mergesort")
    st = wt[order]
    lo = np.searchsorted(st, ft - span, side="left")
    hi = np.searchsorted(st, ft, side="right")
    counts = hi - lo
    indptr = np.concatenate([[0], np.cumsum(counts)])
    rows = np.repeat(np.arange(ft.size), counts)
    pos = np.arange(indptr[-1]) - np.repeat(indptr[:-1], counts) + np.repeat(lo, counts)
    cols = order[pos]
    vals = np.interp(ft[rows] - wt[cols], lags, kernel, left=0.0, right=0.0)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(ft.size, wt.size))


def hrf_convolve(
    values: np.ndarray,
    word_times: np.ndarray,
    frame_times: np.ndarray,
    hrf_model: str | Callable = "spm",
    oversampling: int = 50,
    tr: float | None = None,
) -> np.ndarray:
    """Word features as impulses at the word times, convolved with an HRF, at frame times.

    Parameters
    ----------
    values : ndarray, shape (n_words, p)
    word_times : ndarray, shape (n_words,)
        Seconds.
    frame_times : ndarray, shape (n_frames,)
        Seconds, same clock.
    hrf_model : {"spm", "glover"} or callable
        nilearn HRF model.
    oversampling : int
        Kernel samples per TR (nilearn's default 50).
    tr : float, optional
        Defaults to the median frame spacing.

    Returns
    -------
    ndarray, shape (n_frames, p)
    """
    return apply_word_weights(values, word_times, lambda wt: hrf_matrix(wt, frame_times, tr=tr, hrf_model=hrf_model, oversampling=oversampling))
