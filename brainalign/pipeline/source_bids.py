"""The ``bids`` data source: fMRIPrep by default, sessions (one or pooled), word checks.

:func:`load_bids_participant` is what :func:`brainalign.pipeline.sources.load_participant`
calls for ``data.source.kind: bids``:

- fMRI reads ``derivatives/fmriprep`` when it exists (``data.source.derivatives:
  auto``, ``--derivatives PATH``, ``none`` for the raw BOLD): the preprocessed BOLD
  of ``--space``, its brain mask unless ``--mask`` is given, uncleaned, with its
  confound files handed on as a :class:`~brainalign.io.confounds.FmriprepConfounds`
  (the cleaning step regresses the ``--confounds`` strategy out).
- ``data.source.session`` (``--session``) picks a session; ``pool_sessions: true``
  loads every session and concatenates them, run labels ``ses-<s>_run-<r>`` (so
  sessions x runs are the runs of the cross-validation).
- Numeric-looking "words" (event codes in a ``value`` column) are refused unless
  ``--trial-type`` selects the word events or ``allow_numeric_words`` is set.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ConfigError, InputError, MissingDataError
from ..io.confounds import FmriprepConfounds, from_recording

#: Share of numeric-looking words above which a word column is taken for event codes and refused.
NUMERIC_SHARE = 0.05
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")
#: ``data.source.options`` that have their own field (and flag) now.
_OWN_FIELDS = {"derivatives": "data.source.derivatives (--derivatives)", "confounds": "data.preprocess.confounds "
               "(--confounds)", "session": "data.source.session (--session)", "trial_type": "data.source.trial_type "
               "(--trial-type)", "high_gamma": "data.source.high_gamma (--high-gamma)", "clean": "data.preprocess"}


def fmriprep_root(src) -> Path | None:
    """The fMRIPrep folder a BIDS fMRI source reads, or None (raw BOLD)."""
    if src.datatype != "func":
        return None
    value = src.derivatives or "auto"
    if value == "none":
        return None
    if value == "auto":
        d = Path(src.root) / "derivatives" / "fmriprep"
        return d if d.is_dir() else None
    d = Path(value).expanduser()
    if not d.is_dir():
        raise MissingDataError(f"--derivatives {value} (data.source.derivatives) is not a folder")
    return d


def _check(src, opts: dict, deriv: Path | None) -> None:
    clash = sorted(set(opts) & set(_OWN_FIELDS))
    if clash:
        raise ConfigError(f"data.source.options.{clash[0]}: set {_OWN_FIELDS[clash[0]]} instead")
    if src.pool_sessions and src.session:
        raise ConfigError("data.source.session and data.source.pool_sessions: choose one session (--session) "
                          "or pool them all")
    if src.high_gamma and src.datatype != "ieeg":
        raise ConfigError(f"--high-gamma (data.source.high_gamma) applies to iEEG, not to datatype {src.datatype}")
    if src.space and src.datatype == "func" and deriv is None and not _surface(src.space):
        raise ConfigError(f"--space {src.space} (data.source.space) picks an fMRIPrep output space, but no fMRIPrep "
                          f"derivatives are read (none at {Path(src.root) / 'derivatives' / 'fmriprep'}): "
                          "set --derivatives PATH")


def _surface(space: str) -> bool:
    return str(space).startswith(("fsaverage", "fsnative", "fsLR"))


def check_sessions(src, subjects) -> None:
    """Refuse, before any work, a study that names no session of participants who have several."""
    if src.session or src.pool_sessions:
        return
    from ..io import list_sessions

    for s in subjects:
        have = list_sessions(src.root, s)
        if len(have) > 1:
            raise InputError(f"sub-{s} has sessions {', '.join(have)}: choose one with --session "
                             "(data.source.session), or fit them together with --pool-sessions "
                             "(data.source.pool_sessions: true)")


def _sessions(src, subject: str) -> list[str | None]:
    if not src.pool_sessions:
        return [src.session]
    from ..io import list_sessions

    return list(list_sessions(src.root, subject)) or [None]


def _kwargs(src, deriv: Path | None) -> dict[str, Any]:
    kw: dict[str, Any] = dict(datatype=src.datatype, runs=src.runs, space=src.space, mask=src.mask, atlas=src.atlas,
                              tr=src.tr, word_column=src.word_column, trial_type=src.trial_type)
    if src.high_gamma:
        kw["high_gamma"] = True
    if deriv is not None:
        kw.update(derivatives=deriv)
        kw.update(clean=False, confounds=None)  # cleaned with the study's confounds by preprocess (surfaces too)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items() if v is not None}


def load_bids_participant(src, subject: str, task: str, opts: dict) -> tuple[Any, pd.DataFrame, Any]:
    """(recording, stimulus, confounds) of one participant of a BIDS source (see the module docstring)."""
    from ..io import load_bids

    deriv = fmriprep_root(src)
    _check(src, opts, deriv)
    kw = {**_kwargs(src, deriv), **opts}
    parts = []
    for ses in _sessions(src, subject):
        rec, stim = load_bids(src.root, subject, task, session=ses, **kw)[:2]
        parts.append((ses, rec, stim))
    if not src.allow_numeric_words and not src.trial_type:
        for _, rec, stim in parts:
            check_words(stim, src.word_column or "word", rec)
    uncleaned = deriv is not None and kw.get("clean") is False
    if len(parts) == 1 and not src.pool_sessions:
        _, rec, stim = parts[0]
        return rec, stim, (from_recording(rec) if uncleaned else None)
    return pool(parts, uncleaned)


def check_words(stim: pd.DataFrame, column: str, rec) -> None:
    """Refuse a word column whose words are more than :data:`NUMERIC_SHARE` numbers (event codes), naming the fixes."""
    words = stim["word"].astype(str).str.strip()
    numeric = words.str.match(_NUMBER)
    if numeric.sum() < max(2, NUMERIC_SHARE * len(words)):  # a few numerals in a transcript are words
        return
    runs = sorted(set(stim.loc[numeric, "run"].astype(str)))
    shown = ", ".join(dict.fromkeys(words[numeric].tolist()[:5]))
    ses = rec.attrs.get("session")
    where = f"sub-{stim.attrs.get('subject', rec.attrs.get('subject', '?'))}" + (f" ses-{ses}" if ses else "")
    raise InputError(f"{where}: {int(numeric.sum())} of {len(words)} words in the events' {column!r} column "
                     f"(runs {', '.join(runs)}) are numbers ({shown}): event codes, not words; keep the word "
                     "events with --trial-type (data.source.trial_type), choose the word column with --word-column "
                     "(data.source.word_column), or accept them with data.source.allow_numeric_words: true")


def _relabel(rec, stim: pd.DataFrame, ses: str | None):
    if ses is None:
        return rec, stim, {}
    labels = np.asarray(rec["run"].values).astype(str)
    new = {r: f"ses-{ses}_run-{r}" for r in dict.fromkeys(labels.tolist())}
    rec = rec.assign_coords(run=("time", np.array([new[r] for r in labels], dtype=object).astype(str)))
    for key in ("run_spans", "run_files", "confound_files", "run_volumes"):
        if key in rec.attrs:
            rec.attrs[key] = [f"{new.get(r, r)}:{rest}" for r, rest in (str(x).split(":", 1) for x in rec.attrs[key])]
    stim = stim.copy()
    stim["run"] = [new.get(str(r), str(r)) for r in stim["run"]]
    return rec, stim, new


def pool(parts, uncleaned: bool) -> tuple[Any, pd.DataFrame, FmriprepConfounds | None]:
    """Concatenate sessions: targets present in every session, runs relabelled ``ses-<s>_run-<r>``."""
    recs, stims, runs = [], [], []
    for ses, rec, stim in parts:
        rec, stim, new = _relabel(rec, stim, ses)
        recs.append(rec)
        stims.append(stim)
        if uncleaned:
            runs += list(from_recording(rec).runs)
    common = set.intersection(*(set(np.asarray(r["target"].values).tolist()) for r in recs))
    if not common:
        raise InputError("data.source.pool_sessions: the sessions share no target (voxel, channel): "
                         "give one mask (--mask) or run the sessions one at a time (--session)")
    keep = [t for t in recs[0]["target"].values.tolist() if t in common]
    recs = [r.sel(target=keep) for r in recs]
    out = xr.concat(recs, dim="time", coords="minimal", compat="override", combine_attrs="override")
    attrs = dict(recs[0].attrs)
    for key in ("run_spans", "run_files", "confound_files", "run_volumes", "sources", "warnings"):
        attrs[key] = [x for r in recs for x in r.attrs.get(key, [])]
    attrs["session"] = "+".join(str(s) for s, _, _ in parts if s is not None)
    out.attrs = attrs
    stim = pd.concat(stims, ignore_index=True)
    stim.attrs.update(stims[0].attrs)
    return out, stim, (FmriprepConfounds(tuple(runs)) if uncleaned else None)
