"""The fMRI design matrix: word features on the frame clock, run by run."""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import AlignmentError
from ._common import feature_matrix, match_runs, word_times
from .delays import fir_delays, zscore_by_run
from .hrf import hrf_convolve
from .lanczos import lanczos_resample


def _run_grid(times: np.ndarray, tr: float) -> tuple[np.ndarray, np.ndarray]:
    """Regular frame grid covering a run's (possibly censored) frames, and each frame's index in it."""
    t0 = times[0]
    idx = np.rint((times - t0) / tr).astype(int)
    if np.any(np.abs(times - (t0 + idx * tr)) > 0.01 * tr) or np.any(np.diff(idx) <= 0):
        raise AlignmentError(
            f"frame times are not on a regular grid of TR={tr} s within a run: check the recording's time coordinate"
        )
    grid = t0 + np.arange(idx[-1] + 1) * tr
    return grid, idx


def fmri_design(
    features,
    stimulus: pd.DataFrame,
    recording,
    method: str = "lanczos",
    delays: Sequence[int] = (1, 2, 3, 4),
    *,
    word_time: str | float = "onset",
    window: int = 3,
    cutoff: float | None = None,
    normalize: bool = False,
    hrf_model: str | Callable = "spm",
    oversampling: int = 50,
    zscore: bool = True,
    dtype=np.float32,
) -> np.ndarray:
    """Design matrix for an fMRI recording, built within each run.

    For each run of ``recording``: take that run's words, resample their
    features at the run's frame times (Lanczos) or convolve them with an HRF,
    z-score each column within the run, then add FIR delays that never reach
    into another run (zero-padded at the run start; the padding equals the
    run mean after z-scoring). Censored frames are handled: the run is built
    on its full TR grid and the recorded frames are picked from it.

    Parameters
    ----------
    features : ndarray or DataArray, shape (n_words, p)
        One row per row of ``stimulus`` (one layer of Activations).
    stimulus : Stimulus
        Word table with ``onset`` (s), ``duration`` (s) and ``run``.
    recording : Recording
        fMRI recording with coords ``time`` (s, the run's stimulus clock) and
        ``run``, attr ``tr`` (s).
    method : {"lanczos", "hrf"}
    delays : sequence of int
        FIR delays in frames (``(0,)`` for none; with ``method="hrf"`` one
        usually passes ``(0,)``).
    word_time : {"onset", "midpoint"} or float
        Which time of each word is used (the Huth lab uses midpoints).
    window, cutoff, normalize
        Lanczos options (cutoff defaults to 1/TR).
    hrf_model, oversampling
        HRF options (nilearn models).
    zscore : bool
        Z-score each column within each run before delaying.
    dtype
        Output dtype.

    Returns
    -------
    ndarray, shape (n_frames_total, p * len(delays))
        Rows aligned with the recording's rows; column block ``k`` is delay
        ``delays[k]``.
    """
    if method not in ("lanczos", "hrf"):
        raise AlignmentError(f"method must be 'lanczos' or 'hrf', got {method!r}")
    X = feature_matrix(features, stimulus)
    wt = word_times(stimulus, word_time)
    times = np.asarray(recording["time"].values, dtype=float)
    runs = np.asarray(recording["run"].values)
    tr = recording.attrs.get("tr")
    if tr is None:
        raise AlignmentError("recording has no 'tr' attribute (seconds): fmri_design needs the repetition time")
    tr = float(tr)
    rows_of = match_runs(runs, stimulus["run"].to_numpy())
    n_del = len(tuple(delays))
    out = np.zeros((times.size, X.shape[1] * n_del), dtype=dtype)
    empty = []
    for lab, word_rows in rows_of.items():
        sel = np.flatnonzero(runs == lab)
        if sel.size and np.any(np.diff(sel) != 1):
            raise AlignmentError(f"run {lab!r} is not one contiguous block of recording rows")
        grid, idx = _run_grid(times[sel], tr)
        if word_rows.size == 0:
            empty.append(lab)
            continue
        if method == "lanczos":
            Z = lanczos_resample(X[word_rows], wt[word_rows], grid, window=window, cutoff=cutoff, normalize=normalize)
        else:
            Z = hrf_convolve(X[word_rows], wt[word_rows], grid, hrf_model=hrf_model, oversampling=oversampling, tr=tr)
        one = np.zeros(grid.size, dtype=int)
        if zscore:
            Z = zscore_by_run(Z, one)
        D = fir_delays(Z, one, delays)
        out[sel] = D[idx]
    if empty:
        warnings.warn(f"runs {empty} have no words: their design rows are zero", stacklevel=2)
    return out
