"""``load_bids``: one subject and task of a BIDS dataset as (Recording, Stimulus)."""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data import make_stimulus
from ..errors import DataQualityWarning, InputError, MissingDataError
from .layout import check_datatype, check_root, list_sessions, require_subject, strip_prefix
from .surface_runs import surface_kind
from .words import concat_stimuli, read_events_words, read_words

_FMRI_ONLY = ("space", "mask", "atlas", "atlas_labels", "tr", "derivatives")
#: Largest share of a run's words whose onsets may fall outside the run and be dropped (with a warning).
MAX_OUTSIDE = 0.05


def _session(root: Path, sub: str, session: str | None) -> str | None:
    sessions = list_sessions(root, sub)
    if session is None:
        if len(sessions) > 1:
            raise InputError(f"sub-{sub} has sessions {', '.join(sessions)}: choose one with --session "
                             "(data.source.session), or fit them together with --pool-sessions "
                             "(data.source.pool_sessions: true)")
        return sessions[0] if sessions else None
    ses = strip_prefix(session, "ses")
    if ses not in sessions:
        raise MissingDataError(f"sub-{sub} has no session {ses!r} (--session, data.source.session; sessions: "
                               f"{', '.join(sessions) or 'none'})")
    return ses


def _derivatives_root(root: Path, derivatives: Any) -> Path | None:
    if derivatives is None or derivatives is False:
        return None
    d = root / "derivatives" / "fmriprep" if derivatives is True else Path(derivatives).expanduser()
    if not d.is_dir():
        raise MissingDataError(f"derivatives folder {d} does not exist")
    return d


def _run_words(
    labels: Sequence[str],
    events: Sequence[Path | None],
    words: Any,
    word_column: str,
    trial_type,
    sentence_column: str | None,
    tier: str | None,
) -> pd.DataFrame:
    if isinstance(words, pd.DataFrame):
        stim = make_stimulus(words)
        stim["run"] = stim["run"].astype(str)
        return stim
    parts = []
    for lab, ev in zip(labels, events):
        if words is None:
            if ev is None or not Path(ev).is_file():
                raise MissingDataError(
                    f"no events file {ev} for run {lab}: add it, or pass words= (a TextGrid or transcript per run)"
                )
            parts.append(read_events_words(ev, word_column=word_column, trial_type=trial_type, run=lab, sentence_column=sentence_column))
            continue
        if isinstance(words, Mapping):
            src = words.get(lab)
            if src is None:
                src = next((v for k, v in words.items() if (str(k).lstrip("0") or "0") == (lab.lstrip("0") or "0")), None)
            if src is None:
                raise MissingDataError(f"words has no entry for run {lab!r} (entries: {list(words)})")
        elif isinstance(words, (str, Path)):
            if len(labels) > 1 and Path(words).suffix.lower() == ".textgrid":
                raise InputError(f"one TextGrid {words} for runs {list(labels)}: pass words={{run: path}}")
            src = words
        else:
            raise InputError(f"words must be None, a path, a {{run: path}} mapping or a DataFrame; got {type(words).__name__}")
        kw = {"tier": tier} if Path(src).suffix.lower() == ".textgrid" else {}
        if Path(src).name.endswith("_events.tsv"):
            kw = dict(word_column=word_column, trial_type=trial_type, sentence_column=sentence_column)
        part = read_words(src, run=lab, **kw)
        if not isinstance(words, Mapping) and len(labels) > 1 and "run" in part.columns:
            part = part[part["run"].astype(str).isin(labels)]
        parts.append(part)
    stim = concat_stimuli(parts)
    stim["run"] = stim["run"].astype(str)
    return stim


def load_options() -> list[str]:
    """Names :func:`load_bids` takes as options (``data.source.options``): all but the root, subject and task."""
    return [n for n in inspect.signature(load_bids).parameters if n not in ("root", "subject", "task")]


def _word_sources(labels: Sequence[str], events: Sequence, words: Any) -> dict[str, str]:
    """Run label -> the file its words came from (for messages)."""
    if words is None:
        return {lab: str(ev) for lab, ev in zip(labels, events)}
    if isinstance(words, Mapping):
        return {lab: str(words.get(lab, "the words= table")) for lab in labels}
    if isinstance(words, (str, Path)):
        return {lab: str(words) for lab in labels}
    return {lab: f"the words= table (run {lab})" for lab in labels}


def _run_span(rec, run: str) -> float | None:
    """End of a run in seconds on its own clock, None if absent.

    fMRI: volumes acquired x TR (``run_spans`` from the loader, censored volumes included);
    otherwise the last sample + one sampling step.
    """
    spans = dict(str(x).rsplit(":", 1) for x in rec.attrs.get("run_spans", []))
    if run in spans:
        return float(spans[run])
    sel = np.asarray(rec["run"].values).astype(str) == run
    if not sel.any():
        return None
    step = float(rec.attrs["tr"]) if rec.attrs.get("tr") else 1.0 / float(rec.attrs["sfreq"])
    return float(np.asarray(rec["time"].values, dtype=float)[sel].max()) + step


def check_onsets(stim: pd.DataFrame, rec, sources: Mapping[str, str], max_outside: float = MAX_OUTSIDE) -> pd.DataFrame:
    """Check word onsets against their run's time span: refuse, or drop a few with a counted warning.

    Parameters
    ----------
    stim : Stimulus
        Word table with ``onset`` (s, on each run's clock) and ``run``.
    rec : Recording
        The recording the words are aligned to (its ``time`` and ``run`` coordinates).
    sources : mapping of run label to str
        The file each run's words came from, named in messages.
    max_outside : float
        Largest fraction of a run's words that may lie outside ``[0, run end]`` and be dropped.

    Returns
    -------
    Stimulus
        The words inside their runs.

    Raises
    ------
    InputError
        When onsets look like milliseconds, or more than ``max_outside`` of a run's words fall outside it.
    """
    run_of = stim["run"].astype(str).to_numpy()
    onsets = stim["onset"].to_numpy(dtype=float)
    keep = np.ones(len(stim), dtype=bool)
    for run in dict.fromkeys(run_of.tolist()):
        end = _run_span(rec, run)
        rows = np.flatnonzero(run_of == run)
        if end is None or rows.size == 0:
            continue
        on = onsets[rows]
        outside = (on < 0) | (on > end)
        n_out = int(outside.sum())
        if n_out == 0:
            continue
        src = sources.get(run, f"the words of run {run}")
        if n_out > max_outside * on.size and on.max() > 20 * end and np.all((on >= 0) & (on / 1000.0 <= end)):
            raise InputError(f"{src}: onsets look like milliseconds (up to {on.max():g}, the run lasts {end:g} s); "
                             "BIDS onsets are in seconds: divide the onset column by 1000")
        if n_out > max_outside * on.size:
            raise InputError(f"{src}: {n_out} of {on.size} word onsets fall outside the run (0 to {end:g} s; "
                             f"onsets range {on.min():g} to {on.max():g} s): onsets are seconds from the run's first volume")
        warnings.warn(f"{src}: dropped {n_out} of {on.size} words whose onsets fall outside the run (0 to {end:g} s)",
                      DataQualityWarning, stacklevel=3)
        keep[rows[outside]] = False
    if keep.all():
        return stim
    out = stim[keep].reset_index(drop=True)
    out.attrs.update(stim.attrs)
    return out


def load_bids(
    root: str | Path,
    subject: str,
    task: str,
    datatype: str = "func",
    session: str | None = None,
    runs: Sequence | None = None,
    space: str | None = None,
    mask: Any = None,
    atlas: Any = None,
    confounds: Any = "auto",
    derivatives: Any = None,
    tr: float | None = None,
    *,
    word_column: str = "word",
    trial_type: str | Sequence[str] | None = None,
    sentence_column: str | None = "sentence",
    words: Any = None,
    tier: str | None = None,
    frame_time: str | float = "start",
    clean: bool | dict = True,
    atlas_labels: Sequence[str] | None = None,
    picks: Sequence[str] | None = None,
    l_freq: float | None = None,
    h_freq: float | None = None,
    sfreq: float | None = None,
    high_gamma: bool | dict = False,
    notch: float | Sequence[float] | None = None,
    chunk_mb: float = 64.0,
) -> tuple[Any, pd.DataFrame]:
    """Load one subject and task of a BIDS dataset as (Recording, Stimulus).

    Parameters
    ----------
    root : path-like
        The raw BIDS dataset (its events.tsv files give the words).
    subject, task : str
        Labels, with or without ``sub-``.
    datatype : {"func", "meg", "eeg", "ieeg"}
    session : str, optional
        Needed when the subject has several sessions.
    runs : sequence, optional
        Run labels to load (default all), e.g. ``[1, 2]`` or ``["01"]``.
    space : str, optional
        fMRIPrep output space (e.g. ``"MNI152NLin2009cAsym"``); surfaces: ``"fsaverage5"``,
        ``"fsaverage6"``, ``"fsaverage"``, ``"fsnative"`` (GIFTI per hemisphere, :mod:`.surface`) or
        ``"fsLR"`` (CIFTI dense time series, :mod:`.cifti`).
    mask : path or image, optional
        Voxels to keep (resampled to the BOLD grid if needed). Default: the
        fMRIPrep brain masks (intersected over runs), else nilearn's
        ``compute_epi_mask`` of the first run.
    atlas : path or image, optional
        Labels (3-D) or maps (4-D) image: targets become parcel means.
    confounds : "auto", None, str, tuple, dict
        "auto": nilearn's ``load_confounds_strategy(..., "simple")`` for fMRIPrep
        derivatives, none for raw data. A strategy name ("simple", "scrubbing",
        "compcor", "ica_aroma"), a tuple of ``load_confounds`` strategies, a dict
        of ``load_confounds`` keywords (with ``strategy``), or a dict run -> array.
    derivatives : path or True, optional
        fMRIPrep output folder (True: ``root/derivatives/fmriprep``).
    tr : float, optional
        Repetition time in seconds, required when the sidecar lacks it.
    word_column, trial_type, sentence_column
        How words are read from events.tsv.
    words : path, {run: path} or DataFrame, optional
        Words from TextGrids or transcript tables instead of events.tsv.
    tier : str, optional
        TextGrid tier of the words.
    frame_time : "start", "middle" or float
        fMRI: where in its TR a frame is placed (fraction of TR).
    clean : bool or dict
        fMRI: :func:`nilearn.signal.clean` options (default detrend, z-score,
        0.008 Hz high-pass by cosine regressors, the latter off when fMRIPrep
        confounds are used since they carry fMRIPrep's own cosines). A
        ``low_pass`` switches to nilearn's Butterworth filter, which loops over
        voxels in nilearn and is slow for voxelwise data.
    atlas_labels : sequence of str, optional
        Names of the atlas regions in order of label value, background excluded.
    picks : sequence of str, optional
        MEG/EEG/iEEG channel types to keep (default the modality's).
    l_freq, h_freq : float, optional
        Band-pass edges in Hz (mne ``Raw.filter``).
    sfreq : float, optional
        Resample to this rate in Hz (mne ``Raw.resample``).
    high_gamma : bool or dict
        iEEG: band-pass 70-150 Hz, Hilbert envelope, resample (100 Hz unless
        ``sfreq``); a dict overrides ``l_freq``, ``h_freq``, ``sfreq``.
    notch : float or sequence, optional
        Line-noise frequencies for ``Raw.notch_filter``.
    chunk_mb : float
        fMRI: MB read from disk at a time.

    Returns
    -------
    recording : Recording
    stimulus : Stimulus
        Run labels (str) match the recording's ``run`` coordinate.
    """
    r = check_root(root)
    check_datatype(datatype)
    sub = require_subject(r, subject)
    tsk = strip_prefix(task, "task")
    ses = _session(r, sub, session)
    if datatype == "func" and surface_kind(space) is not None:  # GIFTI / CIFTI (io/surface_load.py)
        from .surface_load import load_surface_space

        rec, found = load_surface_space(
            r, sub, tsk, space=space, mask=mask, atlas=atlas, session=ses, runs=runs, tr=tr, frame_time=frame_time,
            derivatives=_derivatives_root(r, derivatives), clean=clean, confounds=confounds,
        )
        labels = ["1" if f.run is None else str(f.run) for f in found]
        events = [f.events for f in found]
    elif datatype == "func":
        from .func import load_func

        rec, found = load_func(
            r, sub, tsk, session=ses, runs=runs, space=space, mask=mask, atlas=atlas, atlas_labels=atlas_labels,
            confounds=confounds, derivatives=_derivatives_root(r, derivatives), tr=tr, frame_time=frame_time,
            clean=clean, chunk_mb=chunk_mb,
        )
        labels = ["1" if f.run is None else str(f.run) for f in found]
        events = [f.events for f in found]
    else:
        given = {k: v for k, v in dict(space=space, mask=mask, atlas=atlas, atlas_labels=atlas_labels, tr=tr,
                                        derivatives=derivatives).items() if v is not None}
        if given:
            raise InputError(f"options {sorted(given)} apply to fMRI only, not to datatype {datatype!r}")
        from .meeg import load_meeg

        rec, found = load_meeg(
            r, sub, tsk, datatype, session=ses, runs=runs, picks=picks, l_freq=l_freq, h_freq=h_freq, sfreq=sfreq,
            high_gamma=high_gamma, notch=notch,
        )
        labels = ["1" if bp.run is None else str(bp.run) for bp in found]
        events = [bp.copy().update(suffix="events", extension=".tsv", split=None).fpath for bp in found]
    stim = _run_words(labels, events, words, word_column, trial_type, sentence_column, tier)
    stim = check_onsets(stim, rec, _word_sources(labels, events, words))
    stim.attrs["subject"] = sub
    stim.attrs["task"] = tsk
    rec.attrs.update(subject=sub, task=tsk, session=ses or "", datatype=datatype)
    return rec, stim
