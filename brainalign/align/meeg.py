"""MEG/EEG/iEEG designs: lagged (TRF) designs within runs and word-locked epochs."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import AlignmentError
from ._common import feature_matrix, match_runs, word_times
from .delays import fir_delays


def lag_samples(lags: Sequence[float], sfreq: float) -> np.ndarray:
    """Lags in seconds to whole samples (rounded), refusing duplicates."""
    if not sfreq > 0:
        raise AlignmentError(f"sfreq must be positive Hz, got {sfreq}")
    lag_s = np.asarray(lags, dtype=float).ravel()
    if lag_s.size == 0:
        raise AlignmentError("lags is empty: give at least one lag in seconds")
    samples = np.rint(lag_s * sfreq).astype(int)
    if np.unique(samples).size != samples.size:
        raise AlignmentError(f"lags {lag_s.tolist()} s give repeated sample lags at {sfreq} Hz: space them >= 1/sfreq")
    return samples


def lagged_design(values_at_samples: np.ndarray, runs: Sequence, lags: Sequence[float], sfreq: float) -> np.ndarray:
    """Time-lagged copies of a sampled signal, shifted within runs (a TRF design).

    Parameters
    ----------
    values_at_samples : ndarray, shape (n_samples, p)
        Features on the neural sample grid (e.g. word impulses, an envelope).
    runs : sequence, shape (n_samples,)
        Run label per sample; lags never cross a run boundary (zero-padded).
    lags : sequence of float
        Lags in seconds; a positive lag relates the response at ``t`` to the
        stimulus at ``t - lag``.
    sfreq : float
        Sampling frequency in Hz.

    Returns
    -------
    ndarray, shape (n_samples, p * n_lags)
        Column block ``k`` is lag ``lags[k]``.
    """
    return fir_delays(values_at_samples, runs, lag_samples(lags, sfreq))


def _run_starts(times: np.ndarray, runs: np.ndarray) -> dict:
    out = {}
    for lab in pd.unique(runs):
        sel = np.flatnonzero(runs == lab)
        if np.any(np.diff(sel) != 1):
            raise AlignmentError(f"run {lab!r} is not one contiguous block of recording rows")
        out[lab] = sel
    return out


def word_impulses(
    features, stimulus: pd.DataFrame, recording, word_time: str | float = "onset"
) -> np.ndarray:
    """Word features placed as impulses at the nearest sample of each word's run.

    Parameters
    ----------
    features : ndarray, shape (n_words, p)
    stimulus : Stimulus
    recording : Recording
        With coords ``time`` (s) and ``run`` and attr ``sfreq`` (Hz).
    word_time : {"onset", "midpoint"} or float

    Returns
    -------
    ndarray, shape (n_samples, p)
        Words falling outside their run's samples are left out (one warning).
    """
    X = feature_matrix(features, stimulus)
    wt = word_times(stimulus, word_time)
    times = np.asarray(recording["time"].values, dtype=float)
    runs = np.asarray(recording["run"].values)
    sfreq = _sfreq(recording)
    blocks = _run_starts(times, runs)
    out = np.zeros((times.size, X.shape[1]), dtype=X.dtype)
    outside = 0
    for lab, rows in match_runs(runs, stimulus["run"].to_numpy()).items():
        sel = blocks[lab]
        k = np.rint((wt[rows] - times[sel[0]]) * sfreq).astype(int)
        ok = (k >= 0) & (k < sel.size)
        outside += int((~ok).sum())
        np.add.at(out, sel[k[ok]], X[rows[ok]])
    if outside:
        warnings.warn(f"{outside} words fall outside their run's recording and are left out", stacklevel=2)
    return out


def trf_design(
    features,
    stimulus: pd.DataFrame,
    recording,
    tmin: float = 0.0,
    tmax: float = 0.6,
    word_time: str | float = "onset",
) -> tuple[np.ndarray, np.ndarray]:
    """TRF design: word impulses lagged from ``tmin`` to ``tmax`` s at every sample.

    Returns
    -------
    X : ndarray, shape (n_samples, p * n_lags)
    lags : ndarray, shape (n_lags,)
        The lags in seconds (multiples of 1/sfreq).
    """
    sfreq = _sfreq(recording)
    if tmax < tmin:
        raise AlignmentError(f"tmax ({tmax}) is before tmin ({tmin})")
    k = np.arange(int(np.ceil(tmin * sfreq - 1e-9)), int(np.floor(tmax * sfreq + 1e-9)) + 1)
    lags = k / sfreq
    imp = word_impulses(features, stimulus, recording, word_time)
    return fir_delays(imp, np.asarray(recording["run"].values), k), lags


def _sfreq(recording) -> float:
    sfreq = recording.attrs.get("sfreq")
    if sfreq is None:
        tr = recording.attrs.get("tr")
        if tr is None:
            raise AlignmentError("recording has neither 'sfreq' (Hz) nor 'tr' (s) in its attrs")
        sfreq = 1.0 / float(tr)
    return float(sfreq)


def word_epochs(
    recording,
    stimulus: pd.DataFrame,
    tmin: float = -0.2,
    tmax: float = 0.8,
    baseline: tuple | None = None,
    word_time: str | float = "onset",
    keep_all: bool = False,
) -> xr.DataArray:
    """Word-locked epochs cut with :class:`mne.Epochs`, run by run.

    Parameters
    ----------
    recording : Recording
        Continuous recording with coords ``time``, ``run`` and attr ``sfreq``.
    stimulus : Stimulus
    tmin, tmax : float
        Epoch window in seconds relative to each word.
    baseline : tuple or None
        Passed to :class:`mne.Epochs` (e.g. ``(None, 0)``); None for none.
    word_time : {"onset", "midpoint"} or float
    keep_all : bool
        Return one epoch per stimulus row, NaN where a word has no full epoch,
        instead of dropping those words.

    Returns
    -------
    xarray.DataArray, dims ("word", "target", "lag"), shape (n_kept, n_targets, n_times)
        Coordinate ``word`` holds the stimulus row of each epoch: words whose
        window leaves their run, or that fall on the same sample as an earlier
        word, are dropped (one warning counts them) unless ``keep_all``.
        ``lag`` is in seconds.
    """
    import mne

    sfreq = _sfreq(recording)
    times = np.asarray(recording["time"].values, dtype=float)
    runs = np.asarray(recording["run"].values)
    targets = [str(t) for t in recording["target"].values]
    if len(set(targets)) != len(targets):
        targets = [f"t{i}" for i in range(len(targets))]
    wt = word_times(stimulus, word_time)
    blocks = _run_starts(times, runs)
    data = np.asarray(recording.values)
    parts, kept, lag_times = [], [], None
    for lab, rows in match_runs(runs, stimulus["run"].to_numpy()).items():
        if rows.size == 0:
            continue
        sel = blocks[lab]
        info = mne.create_info(targets, sfreq, ch_types="misc")
        raw = mne.io.RawArray(data[sel].T.astype(np.float64), info, verbose="error")
        samp = np.rint((wt[rows] - times[sel[0]]) * sfreq).astype(int)
        inside = (samp >= 0) & (samp < sel.size)
        rows, samp = rows[inside], samp[inside]
        if rows.size == 0:
            continue
        events = np.column_stack([samp + raw.first_samp, np.zeros_like(samp), np.ones_like(samp)])
        ep = mne.Epochs(
            raw, events, event_id={"word": 1}, tmin=tmin, tmax=tmax, baseline=baseline, picks="all",
            preload=True, reject_by_annotation=False, event_repeated="drop", verbose="error",
        )
        parts.append(ep.get_data(copy=False).astype(data.dtype, copy=False))
        kept.append(rows[ep.selection])
        lag_times = ep.times
    n_total = len(stimulus)
    if not parts:
        raise AlignmentError(f"no word of the {n_total} in the stimulus has a full epoch in the recording")
    arr = np.concatenate(parts)
    kept = np.concatenate(kept)
    if kept.size < n_total:
        warnings.warn(
            f"{n_total - kept.size} of {n_total} words have no full epoch ({tmin}..{tmax} s) in their run "
            f"or share a sample with an earlier word; they are {'NaN' if keep_all else 'left out'}",
            stacklevel=2,
        )
    if keep_all:
        full = np.full((n_total,) + arr.shape[1:], np.nan, dtype=np.result_type(arr.dtype, np.float32))
        full[kept] = arr
        arr, kept = full, np.arange(n_total)
    return xr.DataArray(
        arr,
        dims=("word", "target", "lag"),
        coords={"word": kept, "target": recording["target"].values, "lag": lag_times},
        attrs={"sfreq": sfreq, "tmin": tmin, "tmax": tmax, "baseline": str(baseline)},
        name="epochs",
    )
