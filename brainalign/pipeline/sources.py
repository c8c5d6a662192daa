"""Data sources of a study: list participants and load one as containers.

Each ``data.source.kind`` maps to a reader in :mod:`brainalign.io`:

- ``bids``: :func:`brainalign.io.load_bids` (+ ``list_subjects``)
- ``roi_table``: ``brainalign.io.roi_table.load_<adapter>`` (+ ``list_<adapter>_participants``)
- ``word_erp``: ``brainalign.io.word_table.load_word_erp`` (one column per participant)
- ``nifti``: :mod:`brainalign.io.nifti_source` (4-D NIfTI runs + transcripts found by patterns)
- ``adapter``: the user's ``module:function`` (:mod:`.source_adapter`)

BIDS details (fMRIPrep by default, sessions, word checks) are in :mod:`.source_bids`.

``load_participant`` returns a :class:`Loaded` ``(recording, stimulus, baseline,
confounds)``: the baseline regressors and the loader's confounds are DataFrames with
one row per sample, or None. Confounds come from the recording's
``confounds_table`` attr (a DataFrame) or a fourth item returned by a table adapter.

``src`` is a :class:`~brainalign.pipeline.specs.LoadSpec` (or the validated
``data.source`` section it is built from: both have the same attributes).
"""
from __future__ import annotations

import functools
import importlib
import inspect
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..errors import ConfigError, MissingDataError, check_safe_label


class Loaded(NamedTuple):
    """One participant's data as the loaders give it (also what a user adapter returns).

    Attributes
    ----------
    recording : Recording
        xarray.DataArray (time, target) made with :func:`brainalign.data.make_recording`
        (attrs ``modality``, ``tr`` or ``sfreq``; coordinate ``run``).
    stimulus : Stimulus
        DataFrame with ``word``, ``onset`` (s, on the run's clock), ``duration`` and ``run``.
    baseline : DataFrame (n_samples, q) or None
        Baseline regressors, one row per recording sample.
    confounds : DataFrame (n_samples, k), FmriprepConfounds or None
        Regressed out of the signal by the cleaning step (``data.preprocess.confounds``).
    """

    recording: Any
    stimulus: pd.DataFrame
    baseline: pd.DataFrame | None
    confounds: Any


def _options(src) -> dict[str, Any]:
    """The source's extra loader keywords as a dict."""
    if hasattr(src, "loader_options"):
        return src.loader_options()
    return dict(src.options)


def _check_options(fn, options: dict, n_fixed: int) -> None:
    """Refuse ``data.source.options`` names that the loader ``fn`` does not take (ConfigError, not TypeError).

    The first ``n_fixed`` parameters of ``fn`` (root, participant...) are not options.
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    named = {n for n, p in list(params.items())[n_fixed:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(options) - named)
    if unknown:
        raise ConfigError(f"data.source.options: {', '.join(unknown)} not taken by {fn.__module__}.{fn.__name__} "
                          f"(it takes: {', '.join(sorted(named))})")


def _roi_module():
    return importlib.import_module("brainalign.io.roi_table")


def _word_module():
    return importlib.import_module("brainalign.io.word_table")


def _adapter(module, name: str, what: str):
    fn = getattr(module, name, None)
    if fn is None:
        raise ConfigError(f"data.source.adapter: {module.__name__} has no {name}() ({what})")
    return fn


@functools.lru_cache(maxsize=4)
def _word_erp_table(path: str, options_key: tuple):
    loader = getattr(_word_module(), "load_word_erp")
    _check_options(loader, dict(options_key), 1)
    return loader(path, **dict(options_key))


def _options_key(opts: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in opts.items()))


def list_participants(src) -> list[str]:
    """Every participant label of the source (labels without ``sub-``), sorted."""
    if src.kind == "bids":
        from ..io import list_subjects

        labels = list(list_subjects(src.root))
    elif src.kind == "nifti":
        from ..io.nifti_source import list_nifti_participants

        labels = list_nifti_participants(src.root, src.bold)
    elif src.kind == "adapter":
        from .source_adapter import adapter_participants

        labels = adapter_participants(src)
    elif src.kind == "roi_table":
        mod = _roi_module()
        fn = _adapter(mod, f"list_{src.adapter}_participants", "lists participants")
        labels = list(fn(src.root, **{k: v for k, v in _options(src).items() if k == "resolution"}))
    else:
        rec, _, _ = _word_erp_table(src.path, _options_key(_options(src)))
        labels = [str(t) for t in rec["target"].values]
    return [str(label) for label in labels if str(label) not in set(getattr(src, "exclude", []) or [])]


def selected_participants(src, requested=None) -> list[str]:
    """The participants to run: ``requested`` (checked to exist) or the source's list."""
    have = list_participants(src)
    want = requested if requested else (src.participants or have)
    want = [check_safe_label(str(w).removeprefix("sub-"), "participant label") for w in want]
    missing = [w for w in want if w not in have]
    if missing:
        shown = ", ".join(have[:20]) + (" ..." if len(have) > 20 else "")
        raise MissingDataError(f"participant(s) {', '.join(missing)} not found in {getattr(src, 'root', None) or src.path}; have: {shown}")
    if src.kind == "bids":
        from .source_bids import check_sessions

        check_sessions(src, want)  # before any work: the choice of session concerns everyone
    return want


def default_task(src, subject: str | None = None) -> str:
    if getattr(src, "task", None):
        return src.task
    if src.kind == "bids":
        from ..io import list_tasks

        tasks = list(list_tasks(src.root, subject)) if subject else []
        if len(tasks) == 1:
            return tasks[0]
        raise ConfigError(f"data.source.task: choose one of {', '.join(tasks)} (--task)")
    return "task"


def _confounds_of(rec) -> pd.DataFrame | None:
    table = rec.attrs.get("confounds_table")
    return table if isinstance(table, pd.DataFrame) else None


def load_participant(src, subject: str, task: str | None = None) -> Loaded:
    """One participant -> :class:`Loaded` (recording, stimulus, baseline, confounds)."""
    if src.kind == "nifti":
        from ..io.nifti_source import load_nifti_participant

        rec, stim = load_nifti_participant(src.root, src.bold, src.words, subject, task=src.task, tr=src.tr,
                                           mask=src.mask, atlas=src.atlas, tier=src.tier, word_column=src.word_column)
        return Loaded(rec, stim, None, None)
    if src.kind == "adapter":
        from .source_adapter import adapter_function, call_adapter

        fn = adapter_function(src.adapter)
        _check_options(fn, _options(src), 2)
        return Loaded(*call_adapter(src, subject))
    opts = _options(src)
    if src.kind == "bids":
        from ..io import load_bids
        from .source_bids import load_bids_participant

        _check_options(load_bids, opts, 3)
        rec, stim, conf = load_bids_participant(src, subject, task or src.task, opts)
        return Loaded(rec, stim, None, conf if conf is not None else _confounds_of(rec))
    if src.kind == "roi_table":
        fn = _adapter(_roi_module(), f"load_{src.adapter}", "loads one participant")
        _check_options(fn, opts, 2)
        out = fn(src.root, subject, **opts)
        rec, stim = out[0], out[1]
        base = out[2] if len(out) > 2 else None
        conf = out[3] if len(out) > 3 else _confounds_of(rec)
        return Loaded(rec, stim, base, conf)
    rec, stim, feats = _word_erp_table(src.path, _options_key(opts))
    labels = [str(t) for t in rec["target"].values]
    if subject not in labels:
        raise MissingDataError(f"participant {subject} not in {src.path}")
    one = rec.isel(target=[labels.index(subject)])
    one = one.assign_coords(target=[str(rec.attrs.get("value", "response"))])
    one.attrs = dict(rec.attrs, subject=subject)
    return Loaded(one, stim, feats, None)


def source_root(src) -> str:
    return str(getattr(src, "root", None) or Path(src.path).parent)
