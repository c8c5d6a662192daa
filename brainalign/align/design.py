"""Design matrices of a scoring run: neural samples, layer designs, baseline design.

These turn a recording, a word table and one layer's word features into the
arrays the scoring kernels take: ``Y`` (n_samples, n_targets) on the clock of the
chosen alignment, ``X`` (n_samples, p') per layer and ``B`` (n_samples, q) for the
baseline. They were in ``pipeline/api.py``; the pipeline's prepare step
(:mod:`brainalign.pipeline.prepare`) calls them once per participant.

Alignment methods (:data:`METHODS`)
-----------------------------------
``lanczos``, ``hrf``  fMRI: features resampled (or HRF-convolved) at the frame
                      times within runs, FIR-delayed; one sample per frame.
``word``              one recording row per word (ERP tables): features z-scored.
``epochs``            M/EEG: the mean of each word's epoch ``[tmin, tmax]`` (s).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import AlignmentError, InputError, ShapeMismatchError
from .delays import fir_delays, trim_mask
from .fmri import fmri_design
from .meeg import word_epochs

#: The alignment methods (the configuration's ``alignment.method``, besides ``auto``).
METHODS = ("lanczos", "hrf", "word", "epochs")
#: Methods whose samples are the recording's frames (trim applies, folds by time).
FRAME_METHODS = ("lanczos", "hrf")
#: The method ``alignment="auto"`` picks per modality (any other modality: ``epochs``).
#: fMRI gets the SPM HRF with no extra delay: across generator families it named the
#: planted layer most often and without a depth lean (docs/validation.md, section 3b).
AUTO_METHOD = {"fmri": "hrf", "erp": "word"}
#: FIR delays (samples) a frame method gets when none are given: the HRF already
#: carries the lag, Lanczos-resampled features need the delays to model it.
DEFAULT_DELAYS = {"hrf": (0,), "lanczos": (1, 2, 3, 4)}


def default_method(modality: str) -> str:
    """The alignment a modality gets with ``alignment="auto"``."""
    return AUTO_METHOD.get(modality, "epochs")


def resolve_method(method: str, modality: str) -> str:
    """``method`` itself, or the modality's default for ``"auto"``; unknown names refused."""
    if method == "auto":
        return default_method(modality)
    if method not in METHODS:
        raise InputError(f"alignment method {method!r} is not one of auto, {', '.join(METHODS)}")
    return method


def resolve_delays(delays: Sequence[int] | None, method: str) -> tuple[int, ...]:
    """``delays`` as a tuple, or the method's default (:data:`DEFAULT_DELAYS`) for ``None``."""
    if delays is None:
        return DEFAULT_DELAYS.get(method, ())
    return tuple(int(d) for d in delays)


def zscore_columns(a: np.ndarray) -> np.ndarray:
    """Column z-score ignoring NaN; NaN cells become 0 (the column mean).

    Parameters
    ----------
    a : array, shape (n, p) or (n,)

    Returns
    -------
    ndarray of float64, shape (n, p); constant columns are centred, not scaled.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    with np.errstate(invalid="ignore"):
        mu, sd = np.nanmean(a, 0), np.nanstd(a, 0)
    mu = np.nan_to_num(mu)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    return np.nan_to_num((a - mu) / sd)


def neural_samples(recording, stimulus: pd.DataFrame, method: str, *, tmin: float = 0.2,
                   tmax: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """The neural data on the alignment's clock.

    Parameters
    ----------
    recording : Recording (time, target)
    stimulus : Stimulus
    method : one of :data:`METHODS`
    tmin, tmax : float
        ``epochs``: the averaging window after each word (s).

    Returns
    -------
    Y : ndarray of float64, shape (n_samples, n_targets)
    runs : ndarray, shape (n_samples,)
        Run label of each sample.
    """
    if method in FRAME_METHODS:
        return np.asarray(recording.values, dtype=np.float64), np.asarray(recording["run"].values)
    if method == "word":
        if recording.sizes["time"] != len(stimulus):
            raise ShapeMismatchError(
                f"alignment 'word' needs one recording row per word: {recording.sizes['time']} rows, "
                f"{len(stimulus)} words"
            )
        return np.asarray(recording.values, dtype=np.float64), np.asarray(stimulus["run"].values)
    if method == "epochs":
        ep = np.asarray(word_epochs(recording, stimulus, tmin, tmax))  # (n_words, n_targets, n_times)
        if ep.ndim != 3:
            raise AlignmentError(f"word_epochs returned shape {ep.shape}, expected (words, targets, times)")
        return np.nanmean(ep, axis=2), np.asarray(stimulus["run"].values)
    raise InputError(f"alignment method {method!r} is not one of {', '.join(METHODS)}")


def sample_mask(Y: np.ndarray, runs: np.ndarray, method: str, trim: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Samples that are scored: not trimmed (frame methods only) and finite in every target.

    Returns
    -------
    ndarray of bool, shape (n_samples,)
    """
    keep = np.ones(Y.shape[0], dtype=bool)
    if method in FRAME_METHODS and (trim[0] or trim[1]):
        keep = np.asarray(trim_mask(runs, int(trim[0]), int(trim[1])), dtype=bool)
    return keep & np.all(np.isfinite(Y), axis=1)


def layer_design(features: np.ndarray, stimulus, recording, method: str, *, delays: Sequence[int] | None = None,
                 window: int = 3, zscore: bool = True) -> np.ndarray:
    """Word features of one layer (n_words, p) -> design X (n_samples, p'), float64.

    Frame methods: :func:`~brainalign.align.fmri_design` (z-scored within runs when
    ``zscore``, then FIR ``delays``, p' = p * len(delays); ``None``: the method's
    :data:`DEFAULT_DELAYS`); word methods: the
    features themselves, column z-scored when ``zscore`` (NaN -> 0 either way).
    """
    if method in FRAME_METHODS:
        kw = {"method": method, "delays": resolve_delays(delays, method), "zscore": zscore}
        if method == "lanczos":
            kw["window"] = window
        return np.asarray(fmri_design(features, stimulus, recording, **kw), dtype=np.float64)
    if zscore:
        return zscore_columns(features)
    X = np.asarray(features, dtype=np.float64)
    return np.nan_to_num(X[:, None] if X.ndim == 1 else X)


def baseline_design(baseline, runs: np.ndarray, delays: Sequence[int] | None = None) -> np.ndarray | None:
    """Baseline regressors (n_samples, q), z-scored, optionally FIR-delayed within runs (samples)."""
    if baseline is None:
        return None
    B = np.asarray(baseline, dtype=np.float64)
    if B.ndim == 1:
        B = B[:, None]
    if B.shape[0] != runs.shape[0]:
        raise ShapeMismatchError(f"baseline has {B.shape[0]} rows but the data have {runs.shape[0]} samples")
    if delays:
        B = np.asarray(fir_delays(B, runs, delays=tuple(delays)))
    return zscore_columns(B)


__all__ = ["AUTO_METHOD", "DEFAULT_DELAYS", "FRAME_METHODS", "METHODS", "baseline_design", "default_method", "layer_design",
           "neural_samples", "resolve_delays", "resolve_method", "sample_mask", "zscore_columns"]
