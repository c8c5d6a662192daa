"""Helpers shared by the design builders: features, runs and word times."""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import AlignmentError, MissingFieldError, ShapeMismatchError


def feature_matrix(features, stimulus: pd.DataFrame) -> np.ndarray:
    """(n_words, p) float array from an ndarray or a 2-D ("word", "feature") DataArray."""
    dims = getattr(features, "dims", None)
    if dims is not None and "layer" in dims:
        if features.sizes["layer"] != 1:
            raise ShapeMismatchError(
                f"features have {features.sizes['layer']} layers: select one, e.g. activations.sel(layer=3)"
            )
        features = features.squeeze("layer", drop=True)
    X = np.asarray(features)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ShapeMismatchError(f"features must be (n_words, p); got shape {X.shape}")
    if X.shape[0] != len(stimulus):
        raise ShapeMismatchError(f"features have {X.shape[0]} rows but the stimulus has {len(stimulus)} words")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    return X


def word_times(stimulus: pd.DataFrame, word_time: str | float = "onset") -> np.ndarray:
    """Word times in seconds: ``"onset"``, ``"midpoint"`` (onset + duration/2) or onset + a fraction of duration."""
    for col in ("onset", "run"):
        if col not in stimulus.columns:
            raise MissingFieldError(f"stimulus has no {col!r} column (columns: {', '.join(map(str, stimulus.columns))})")
    onset = stimulus["onset"].to_numpy(dtype=float)
    if word_time == "onset":
        return onset
    dur = stimulus["duration"].to_numpy(dtype=float) if "duration" in stimulus.columns else np.zeros_like(onset)
    if word_time == "midpoint":
        return onset + dur / 2.0
    if isinstance(word_time, (int, float)) and 0.0 <= float(word_time) <= 1.0:
        return onset + float(word_time) * dur
    raise AlignmentError(f"word_time must be 'onset', 'midpoint' or a fraction in [0, 1]; got {word_time!r}")


def match_runs(rec_runs: np.ndarray, stim_runs: np.ndarray) -> dict:
    """Map each recording run label to the stimulus rows of that run (matched as strings)."""
    rec_labels = list(pd.unique(np.asarray(rec_runs)))
    stim_str = np.asarray([str(r) for r in np.asarray(stim_runs)])
    out = {}
    for lab in rec_labels:
        out[lab] = np.flatnonzero(stim_str == str(lab))
    rec_str = {str(r) for r in rec_labels}
    missing = sorted(set(stim_str.tolist()) - rec_str)
    if all(v.size == 0 for v in out.values()) and len(stim_str):
        raise AlignmentError(
            f"no stimulus run matches a recording run: stimulus runs {sorted(set(stim_str.tolist()))}, "
            f"recording runs {sorted(rec_str)}"
        )
    if missing:
        warnings.warn(
            f"words of runs {missing} have no recording run and are ignored (recording runs {sorted(rec_str)})",
            stacklevel=3,
        )
    return out


def apply_word_weights(values, word_times, weights: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Put word features on the frame clock through a weight matrix.

    Parameters
    ----------
    values : array, shape (n_words, p) or (n_words,)
        Word features.
    word_times : array, shape (n_words,)
        Word times in seconds.
    weights : callable
        Given the word times (float64, shape (n_words,)), returns the
        (n_frames, n_words) weight matrix.

    Returns
    -------
    ndarray, shape (n_frames, p) or (n_frames,), dtype of ``values`` if floating, else float64
    """
    v = np.asarray(values)
    squeeze = v.ndim == 1
    if squeeze:
        v = v[:, None]
    if v.ndim != 2:
        raise ShapeMismatchError(f"values must be (n_words, p); got shape {v.shape}")
    wt = np.asarray(word_times, dtype=float).ravel()
    if v.shape[0] != wt.size:
        raise ShapeMismatchError(f"{v.shape[0]} feature rows but {wt.size} word times")
    dtype = v.dtype if np.issubdtype(v.dtype, np.floating) else np.float64
    out = np.asarray(weights(wt).astype(dtype) @ v.astype(dtype, copy=False))
    return out[:, 0] if squeeze else out
