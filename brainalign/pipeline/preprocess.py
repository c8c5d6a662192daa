"""Per-run cleaning of a recording (nilearn.signal.clean), as ``data.preprocess`` says."""
from __future__ import annotations

import numpy as np
from nilearn.signal import clean

from ..errors import ConfigError, ShapeMismatchError
from .specs import PreprocessSpec


def _confound_matrix(confounds, n_samples: int) -> np.ndarray:
    C = np.asarray(confounds, dtype=np.float64)
    C = C[:, None] if C.ndim == 1 else C
    if C.shape[0] != n_samples:
        raise ShapeMismatchError(f"the loader's confounds have {C.shape[0]} rows but the recording has "
                                 f"{n_samples} samples")
    return C


def preprocess(recording, spec: PreprocessSpec, confounds=None):
    """Clean each run of ``recording`` (detrend, filters, confound regression, z-score).

    Parameters
    ----------
    recording : Recording (time, target)
        attrs ``modality`` and ``tr`` (s) or ``sfreq`` (Hz).
    spec : PreprocessSpec
        ``high_pass``/``low_pass`` in Hz; ``confounds`` regresses ``confounds`` out.
    confounds : DataFrame or array, shape (n_samples, k), optional
        The loader's confounds, one row per recording sample.

    Returns
    -------
    Recording
        Same shape and coordinates, float64. Word-level (``erp``) data are only
        z-scored over words (and get no confound regression: refused).
    """
    if not spec.active:
        return recording
    if spec.confounds and confounds is None:
        raise ConfigError("data.preprocess.confounds: the data source gives no confounds; set it to false")
    if recording.attrs.get("modality") == "erp":  # one number per word: only z-score
        if spec.confounds:
            raise ConfigError("data.preprocess.confounds: word-level (erp) data are not cleaned per run; set it to false")
        if spec.standardize:
            v = recording.values.astype(np.float64)
            mu, sd = np.nanmean(v, 0), np.nanstd(v, 0)
            sd[sd == 0] = 1
            return recording.copy(data=(v - mu) / sd)
        return recording
    C = _confound_matrix(confounds, recording.sizes["time"]) if spec.confounds else None
    runs = np.asarray(recording["run"].values)
    tr = recording.attrs.get("tr") or (1.0 / recording.attrs["sfreq"])
    out = np.empty(recording.shape, dtype=np.float64)
    for r in dict.fromkeys(runs.tolist()):
        sel = runs == r
        out[sel] = clean(recording.values[sel].astype(np.float64), detrend=spec.detrend, high_pass=spec.high_pass,
                         low_pass=spec.low_pass, t_r=tr, confounds=None if C is None else C[sel],
                         standardize="zscore_sample" if spec.standardize else False)
    return recording.copy(data=out)
