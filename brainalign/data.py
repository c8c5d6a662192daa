"""The containers that flow between brainalign's parts.

``Recording``
    :class:`xarray.DataArray` with dims ``("time", "target")``; coords ``time``
    (seconds, on the stimulus clock), ``run`` (per time point) and ``target``
    (names: ROI, voxel index, channel); attrs ``modality`` ("fmri", "meg", "eeg",
    "ieeg", "erp"), ``tr`` (s) or ``sfreq`` (Hz), ``units``, ``sources`` (list of
    file paths) and any target metadata.
``Stimulus``
    :class:`pandas.DataFrame` with columns ``word`` (str), ``onset`` (s),
    ``duration`` (s), ``run`` and optionally ``sentence``.
``Activations``
    :class:`xarray.DataArray` with dims ``("layer", "word", "feature")`` (built by
    :mod:`brainalign.encoders`).
``PermutationResult``
    What every permutation test returns (:func:`brainalign.encoding.permutation_test`,
    :func:`brainalign.rsa.permutation_test`).

Builders here validate on construction, so a malformed container never travels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .errors import InputError, MissingFieldError, NonFiniteError, ShapeMismatchError

MODALITIES = ("fmri", "meg", "eeg", "ieeg", "erp")
STIMULUS_COLUMNS = ("word", "onset", "duration", "run")


def make_recording(
    data: np.ndarray,
    time: Sequence[float],
    run: Sequence[Any] | None = None,
    *,
    modality: str,
    target: Sequence[Any] | None = None,
    tr: float | None = None,
    sfreq: float | None = None,
    units: str = "a.u.",
    sources: Iterable[str] = (),
    name: str | None = None,
    **attrs: Any,
) -> xr.DataArray:
    """Build a validated Recording.

    Parameters
    ----------
    data : ndarray, shape (n_times, n_targets)
        Neural signal, one column per target (voxel, ROI, sensor, electrode).
    time : sequence of float, shape (n_times,)
        Acquisition time of each row in seconds, on the same clock as the word
        onsets of the matching Stimulus.
    run : sequence, shape (n_times,), optional
        Run label of each row. Defaults to a single run ``1``.
    modality : {"fmri", "meg", "eeg", "ieeg", "erp"}
    target : sequence, shape (n_targets,), optional
        Target names; defaults to ``0..n_targets-1``.
    tr, sfreq : float, optional
        Repetition time in seconds (fMRI) or sampling frequency in Hz.
    units : str
        Physical units of ``data``.
    sources : iterable of str
        Files the data came from.
    **attrs
        Extra metadata (affine, mask shape, channel positions...).

    Returns
    -------
    xarray.DataArray
    """
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ShapeMismatchError(f"recording data must be 2-D (time, target); got shape {arr.shape}")
    n_t, n_y = arr.shape
    time = np.asarray(time, dtype=float)
    if time.shape != (n_t,):
        raise ShapeMismatchError(f"recording has {n_t} time points but {time.size} times were given")
    if run is None:
        run = np.ones(n_t, dtype=int)
    run = np.asarray(run)
    if run.shape != (n_t,):
        raise ShapeMismatchError(f"recording has {n_t} time points but {run.size} run labels were given")
    if target is None:
        target = np.arange(n_y)
    target = np.asarray(target)
    if target.shape != (n_y,):
        raise ShapeMismatchError(f"recording has {n_y} targets but {target.size} target names were given")
    if modality not in MODALITIES:
        raise InputError(f"modality {modality!r} is not one of {MODALITIES}")
    if not np.all(np.isfinite(time)):
        raise NonFiniteError("recording times contain NaN or infinite values")
    all_attrs = dict(modality=modality, units=units, sources=[str(s) for s in sources])
    if tr is not None:
        all_attrs["tr"] = float(tr)
    if sfreq is not None:
        all_attrs["sfreq"] = float(sfreq)
    all_attrs.update(attrs)
    return xr.DataArray(
        arr,
        dims=("time", "target"),
        coords={"time": time, "run": ("time", run), "target": target},
        attrs=all_attrs,
        name=name or "recording",
    )


def make_stimulus(table: pd.DataFrame | dict, *, source: str | None = None) -> pd.DataFrame:
    """Validate and normalise a word table into a Stimulus.

    Parameters
    ----------
    table : DataFrame or dict of columns
        Must have ``word`` and ``onset`` (s). ``duration`` defaults to 0 and
        ``run`` to 1. ``sentence`` is kept when present.
    source : str, optional
        The file the table came from, named in error messages.

    Returns
    -------
    pandas.DataFrame
        Columns ``word`` (str, stripped of surrounding whitespace), ``onset``,
        ``duration`` (float seconds), ``run`` and, when given, ``sentence``;
        sorted by (run, onset) with a fresh RangeIndex.
    """
    df = pd.DataFrame(table).copy()
    where = f" in {source}" if source else ""
    for col in ("word", "onset"):
        if col not in df.columns:
            raise MissingFieldError(
                f"word table{where} has no {col!r} column (columns: {', '.join(map(str, df.columns))})"
            )
    if "duration" not in df.columns:
        df["duration"] = 0.0
    if "run" not in df.columns:
        df["run"] = 1
    df["word"] = df["word"].astype(str).str.strip()
    df["onset"] = pd.to_numeric(df["onset"], errors="coerce").astype(float)
    df["duration"] = pd.to_numeric(df["duration"], errors="coerce").fillna(0.0).astype(float)
    bad = np.flatnonzero(~np.isfinite(df["onset"].to_numpy()))
    if bad.size:
        raise NonFiniteError(f"word table{where} has {bad.size} non-numeric onsets (rows {bad[:5].tolist()})")
    cols = list(STIMULUS_COLUMNS) + (["sentence"] if "sentence" in df.columns else [])
    extra = [c for c in df.columns if c not in cols]
    df = df[cols + extra]
    df = df.sort_values(["run", "onset"], kind="mergesort").reset_index(drop=True)
    df.attrs["source"] = source
    return df


def stimulus_runs(stimulus: pd.DataFrame) -> list:
    """Run labels of a Stimulus in order of first appearance."""
    return list(pd.unique(stimulus["run"]))


def invalid_targets(data: np.ndarray, runs: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Which targets carry no usable signal.

    Parameters
    ----------
    data : ndarray, shape (n_times, n_targets)
    runs : sequence, shape (n_times,), optional
        A target constant within any one run is useless there (z-scoring per
        run would divide by zero), so constancy is checked run by run.

    Returns
    -------
    nonfinite : ndarray of bool, shape (n_targets,)
        Targets with any NaN or infinite value.
    constant : ndarray of bool, shape (n_targets,)
        Finite targets with zero variance in at least one run.
    """
    import warnings

    arr = np.asarray(data)
    nonfinite = ~np.isfinite(arr).all(axis=0)
    constant = np.zeros(arr.shape[1], dtype=bool)
    labels = np.zeros(arr.shape[0], dtype=int) if runs is None else np.asarray(runs)
    for lab in pd.unique(labels):
        block = arr[labels == lab]
        if block.shape[0] == 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            constant |= np.nanmax(block, axis=0) == np.nanmin(block, axis=0) if block.shape[0] > 1 else True
    return nonfinite, constant & ~nonfinite


def drop_invalid_targets(recording: xr.DataArray, what: str | None = None) -> xr.DataArray:
    """Drop all-NaN / non-finite and constant targets, with one warning that counts them.

    Parameters
    ----------
    recording : Recording
    what : str, optional
        Name of the recording for the messages (e.g. a participant or file).

    Returns
    -------
    Recording
        The same object when nothing is dropped, else a subset along ``target``.

    Raises
    ------
    ConstantSignalError
        When no target is left (e.g. Alice participant s33, constant in every ROI).
    """
    import warnings

    from .errors import ConstantSignalError, DataQualityWarning

    nonfinite, constant = invalid_targets(recording.values, recording["run"].values)
    bad = nonfinite | constant
    name = what or ", ".join(recording.attrs.get("sources", [])[:1]) or "recording"
    if bad.all():
        raise ConstantSignalError(
            f"{name}: all {bad.size} targets are unusable ({int(constant.sum())} constant, "
            f"{int(nonfinite.sum())} with NaN/inf values); skip this recording"
        )
    if not bad.any():
        return recording
    msg = (f"{name}: dropped {int(bad.sum())} of {bad.size} targets ({int(constant.sum())} constant within a run, "
           f"{int(nonfinite.sum())} with NaN/inf values)")
    warnings.warn(msg, DataQualityWarning, stacklevel=2)
    out = recording.isel(target=np.flatnonzero(~bad))
    out.attrs = dict(recording.attrs)
    out.attrs["n_dropped_targets"] = int(bad.sum())
    out.attrs["warnings"] = list(recording.attrs.get("warnings", [])) + [msg]  # reaches the sidecar once
    return out


@dataclass(frozen=True)
class PermutationResult:
    """Result of a permutation test: one test per target (encoding) or per model (RSA).

    Attributes
    ----------
    observed : ndarray, shape (n_tests,), or float
        The statistic: encoding, Pearson r within each group averaged over groups;
        RSA, the model's score averaged over participants. A float for one test
        (1-D input to the encoding test, one model RDM to the RSA test).
    p_value : ndarray, shape (n_tests,), or float
        One-sided, ``(1 + #{null >= observed}) / (1 + n_permutations)``; NaN where
        ``observed`` is not finite.
    null_mean, null_std : ndarray, shape (n_tests,), or float
        Moments of the null distribution.
    n_permutations : int
    method : str
        How the null was drawn: ``"circular"`` or ``"block"`` (encoding: the
        signal moved against the prediction within each group), ``"stimulus_labels"``
        (RSA: the model's stimuli relabelled).
    null : ndarray, shape (n_permutations, n_tests) or (n_permutations,), optional
        The whole null where it is small (RSA); ``None`` for the encoding test,
        whose targets can number in the hundreds of thousands.
    permutations : ndarray of int, shape (n_permutations, n_stimuli), optional
        RSA: the stimulus relabelling of each null sample (``model[perm][:, perm]``).
    """

    observed: Any
    p_value: Any
    null_mean: Any
    null_std: Any
    n_permutations: int
    method: str
    null: np.ndarray | None = None
    permutations: np.ndarray | None = None
