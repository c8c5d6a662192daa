"""Data sources of a study: list participants and load one as containers.

Each ``data.source.kind`` maps to a reader in :mod:`brainalign.io`:

- ``bids``: :func:`brainalign.io.load_bids` (+ ``list_subjects``)
- ``roi_table``: ``brainalign.io.roi_table.load_<adapter>`` (+ ``list_<adapter>_participants``)
- ``word_erp``: ``brainalign.io.word_table.load_word_erp`` (one column per participant)

``load_participant`` returns ``(recording, stimulus, baseline)`` where baseline is a
DataFrame with one row per sample, or None.
"""
from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, MissingDataError, check_safe_label


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
    mod = _word_module()
    loader = getattr(mod, "load_word_erp")
    return loader(path, **dict(options_key))


def _options_key(opts: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in opts.items()))


def list_participants(src) -> list[str]:
    """Every participant label of the source (labels without ``sub-``), sorted."""
    if src.kind == "bids":
        from ..io import list_subjects

        labels = list(list_subjects(src.root))
    elif src.kind == "roi_table":
        mod = _roi_module()
        fn = _adapter(mod, f"list_{src.adapter}_participants", "lists participants")
        labels = list(fn(src.root, **{k: v for k, v in src.options.items() if k == "resolution"}))
    else:
        rec, _, _ = _word_erp_table(src.path, _options_key(src.options))
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


def load_participant(src, subject: str, task: str | None = None):
    """One participant -> (recording, stimulus, baseline DataFrame or None)."""
    if src.kind == "bids":
        from ..io import load_bids

        kw: dict[str, Any] = dict(datatype=src.datatype, session=src.session, runs=src.runs, space=src.space,
                                  mask=src.mask, atlas=src.atlas, tr=src.tr, word_column=src.word_column)
        kw = {k: v for k, v in kw.items() if v is not None}
        kw.update(src.options)
        rec, stim = load_bids(src.root, subject, task or src.task, **kw)[:2]
        confounds = rec.attrs.get("confounds_table")
        return rec, stim, confounds if isinstance(confounds, pd.DataFrame) else None
    if src.kind == "roi_table":
        fn = _adapter(_roi_module(), f"load_{src.adapter}", "loads one participant")
        out = fn(src.root, subject, **src.options)
        rec, stim = out[0], out[1]
        base = out[2] if len(out) > 2 else None
        return rec, stim, base
    rec, stim, feats = _word_erp_table(src.path, _options_key(src.options))
    labels = [str(t) for t in rec["target"].values]
    if subject not in labels:
        raise MissingDataError(f"participant {subject} not in {src.path}")
    one = rec.isel(target=[labels.index(subject)])
    one = one.assign_coords(target=[str(rec.attrs.get("value", "response"))])
    one.attrs = dict(rec.attrs, subject=subject)
    return one, stim, feats


def participant_matrix(src, subjects, task=None) -> dict[str, np.ndarray]:
    """Each participant's (samples, targets) data, for inter-subject ceilings."""
    out = {}
    for s in subjects:
        rec = load_participant(src, s, task)[0]
        out[s] = np.asarray(rec.values, dtype=np.float64)
    return out


def source_root(src) -> str:
    return str(getattr(src, "root", None) or Path(src.path).parent)
