"""Per-run cleaning of a recording (nilearn.signal.clean), as ``data.preprocess`` says.

Two kinds of confounds reach :func:`preprocess`:

- fMRIPrep's (a :class:`~brainalign.io.confounds.FmriprepConfounds`, from a BIDS
  source that read ``derivatives/fmriprep`` without cleaning): each run is cleaned
  in one :func:`nilearn.signal.clean` call that detrends, regresses the regressors of
  the strategy ``data.preprocess.confounds`` names (nilearn's
  ``load_confounds_strategy``) and z-scores, on the volumes nilearn's sample mask
  keeps. The volumes left out (non-steady-state, scrubbed) are removed from the
  recording: they are not fitted and the folds are cut from the kept ones. What was
  done is recorded in the recording's ``preprocessing`` attr (the sidecar's
  ``Preprocessing``).
- A table of the loader's own (a DataFrame, one row per sample): regressed out when
  ``confounds`` is "auto".
"""
from __future__ import annotations

import json

import numpy as np
from nilearn.signal import clean

from ..errors import ConfigError, ShapeMismatchError
from ..io.confounds import NILEARN_STRATEGIES, FmriprepConfounds, dropped, strategy_confounds
from .specs import PreprocessSpec

#: High-pass (Hz) of fMRIPrep data cleaned without fMRIPrep's cosine regressors (as for raw BOLD).
RAW_HIGH_PASS = 0.008


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
        ``high_pass``/``low_pass`` in Hz; ``confounds`` the strategy ("auto",
        "simple", "compcor", "scrubbing", "none").
    confounds : FmriprepConfounds, DataFrame or array (n_samples, k), optional
        fMRIPrep's confound files per run, or the loader's confounds table.

    Returns
    -------
    Recording
        float64; the same shape and coordinates, except that fMRIPrep runs lose the
        volumes the strategy's sample mask leaves out. Word-level (``erp``) data are
        only z-scored over words.
    """
    if isinstance(confounds, FmriprepConfounds):
        return clean_fmriprep(recording, spec, confounds)
    named = spec.confounds in NILEARN_STRATEGIES
    if named:
        raise ConfigError(f"data.preprocess.confounds: {spec.confounds} (--confounds) needs fMRIPrep derivatives "
                          "(BIDS fMRI with derivatives/fmriprep, or --derivatives PATH); set it to auto or none")
    use = spec.confounds == "auto" and confounds is not None
    if not spec.active:
        return recording
    if recording.attrs.get("modality") == "erp":  # one number per word: only z-score
        if spec.standardize:
            v = recording.values.astype(np.float64)
            mu, sd = np.nanmean(v, 0), np.nanstd(v, 0)
            sd[sd == 0] = 1
            return recording.copy(data=(v - mu) / sd)
        return recording
    C = _confound_matrix(confounds, recording.sizes["time"]) if use else None
    runs = np.asarray(recording["run"].values)
    tr = recording.attrs.get("tr") or (1.0 / recording.attrs["sfreq"])
    out = np.empty(recording.shape, dtype=np.float64)
    for r in dict.fromkeys(runs.tolist()):
        sel = runs == r
        out[sel] = clean(recording.values[sel].astype(np.float64), detrend=spec.detrend, high_pass=spec.high_pass,
                         low_pass=spec.low_pass, t_r=tr, confounds=None if C is None else C[sel],
                         standardize="zscore_sample" if spec.standardize else False)
    res = recording.copy(data=out)
    if use:
        res.attrs["preprocessing"] = json.dumps({"ConfoundStrategy": "loader", "NConfounds": int(C.shape[1])})
    return res


def _run_options(spec: PreprocessSpec, strategy: str, tr: float) -> dict:
    """nilearn.signal.clean keywords for one fMRIPrep run (fMRIPrep's cosines do the high-pass when regressed)."""
    high = spec.high_pass if spec.high_pass else (None if strategy != "none" else RAW_HIGH_PASS)
    opts = dict(detrend=True, standardize="zscore_sample" if spec.standardize else False, high_pass=high,
                low_pass=spec.low_pass, t_r=tr)
    opts["filter"] = "butterworth" if spec.low_pass else ("cosine" if high else False)
    return opts


def clean_fmriprep(recording, spec: PreprocessSpec, conf: FmriprepConfounds):
    """Clean fMRIPrep runs with the confounds of the strategy ``spec.confounds`` ("auto" = "simple").

    Returns
    -------
    Recording
        The kept volumes of every run, float64, with attr ``preprocessing`` (JSON):
        ``ConfoundStrategy``, ``NConfounds`` and ``ConfoundColumns`` per run,
        ``DroppedVolumes`` per run (indices in the run), ``ConfoundFiles``, ``Mask``.
    """
    strategy = "simple" if spec.confounds == "auto" else spec.confounds
    runs = np.asarray(recording["run"].values).astype(str)
    tr = float(recording.attrs["tr"])
    opts = _run_options(spec, strategy, tr)
    vals = recording.values
    parts, rows, info = [], [], {"columns": {}, "dropped": {}}
    for rc in conf.runs:
        sel = np.flatnonzero(runs == rc.run)
        if sel.size != rc.n_volumes:
            raise ShapeMismatchError(f"run {rc.run}: {sel.size} samples in the recording but {rc.bold} has "
                                     f"{rc.n_volumes} volumes")
        C, kept, cols = strategy_confounds(rc, strategy)
        Y = np.asarray(vals[sel], dtype=np.float64)
        parts.append(clean(Y, confounds=C, sample_mask=kept if kept.size < rc.n_volumes else None, **opts))
        rows.append(sel[kept])
        info["columns"][rc.run], info["dropped"][rc.run] = cols, dropped(kept, rc.n_volumes)
    out = recording.isel(time=np.concatenate(rows)).copy(data=np.concatenate(parts))
    out.attrs["preprocessing"] = json.dumps({
        "ConfoundStrategy": strategy, "ConfoundColumns": info["columns"],
        "NConfounds": {r: len(c) for r, c in info["columns"].items()},
        "DroppedVolumes": info["dropped"], "NDroppedVolumes": sum(len(v) for v in info["dropped"].values()),
        "ConfoundFiles": conf.files(), "Mask": recording.attrs.get("mask"),
        "Cleaning": {k: v for k, v in opts.items() if k != "t_r"}})
    return out
