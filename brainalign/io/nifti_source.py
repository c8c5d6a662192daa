"""Plain NIfTI studies: a 4-D NIfTI per run and a transcript per run, found by file patterns.

The ``kind: nifti`` data source. Files are named by two patterns under a root, with
``{participant}`` and ``{run}`` placeholders (letters and digits)::

    bold:  sub-{participant}/run-{run}_bold.nii.gz
    words: transcripts/run-{run}.TextGrid          # or .tsv/.csv with onset and word columns

``words`` may leave ``{participant}`` out (one story for everyone). A run's volumes
are read, masked (the mask given, else nilearn's EPI mask) and cleaned as raw BIDS
BOLD are (:func:`brainalign.io.func.read_func_runs`); the repetition time is the
given ``tr`` or the header's time step (seconds; milliseconds are converted).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import CorruptFileError, InputError, MissingDataError, MissingFieldError
from .fmri import FuncRun
from .nifti import load_header
from .words import concat_stimuli, read_words

_LABEL = "[A-Za-z0-9]+"


def _regex(pattern: str) -> re.Pattern:
    out, pos = "", 0
    for m in re.finditer(r"\{(participant|run)\}", pattern):
        out += re.escape(pattern[pos:m.start()]) + f"(?P<{m.group(1)}>{_LABEL})"
        pos = m.end()
    return re.compile(out + re.escape(pattern[pos:]) + "$")


def _glob(root: Path, pattern: str) -> list[tuple[dict, Path]]:
    rx = _regex(pattern)
    hits = []
    for p in sorted(root.glob(re.sub(r"\{(participant|run)\}", "*", pattern))):
        m = rx.match(p.relative_to(root).as_posix())
        if m:
            hits.append((m.groupdict(), p))
    return hits


def _root(root: str | Path) -> Path:
    r = Path(root).expanduser()
    if not r.is_dir():
        raise MissingDataError(f"data.source.root {r} is not a folder")
    return r


def list_nifti_participants(root: str | Path, bold: str) -> list[str]:
    """Participant labels of the files matching the ``bold`` pattern, sorted."""
    r = _root(root)
    labels = sorted({g["participant"] for g, _ in _glob(r, bold)})
    if not labels:
        raise MissingDataError(f"data.source.bold: no file under {r} matches {bold!r}")
    return labels


def header_tr(path: Path) -> float:
    """The time step of a 4-D NIfTI header, in seconds (refused when absent)."""
    img = load_header(path)
    zooms = img.header.get_zooms()
    step = float(zooms[3]) if len(zooms) > 3 else 0.0
    unit = img.header.get_xyzt_units()[1] if hasattr(img.header, "get_xyzt_units") else "sec"
    if unit == "msec":
        step /= 1000.0
    elif unit == "usec":
        step /= 1e6
    if not step > 0:
        raise MissingFieldError(f"{path} has no time step in its header: set data.source.tr (seconds)")
    return step


def _runs(r: Path, bold: str, participant: str) -> list[tuple[str, Path]]:
    runs = [(g.get("run", "1"), p) for g, p in _glob(r, bold) if g["participant"] == participant]
    if not runs:
        raise MissingDataError(f"data.source.bold: no file of participant {participant} matches {bold!r} under {r}")
    runs.sort(key=lambda x: x[0].zfill(8))
    labels = [lab for lab, _ in runs]
    if len(set(labels)) != len(labels):
        raise InputError(f"data.source.bold: {bold!r} matches several files per run of participant {participant}: "
                         "put {run} in the pattern")
    return runs


def _words_file(r: Path, words: str, participant: str, run: str) -> Path:
    p = r / words.replace("{participant}", participant).replace("{run}", run)
    if not p.is_file():
        raise MissingDataError(f"data.source.words: no transcript {p} for participant {participant}, run {run}")
    return p


def load_nifti_participant(root: str | Path, bold: str, words: str, participant: str, *, task: str = "task",
                           tr: float | None = None, mask: Any = None, atlas: Any = None, tier: str | None = None,
                           word_column: str | None = None) -> tuple[Any, pd.DataFrame]:
    """One participant of a plain NIfTI study as (Recording, Stimulus).

    Parameters
    ----------
    root : path
        Folder the patterns are relative to.
    bold, words : str
        File patterns (see the module docstring).
    participant : str
    task : str
        Label given to the recording.
    tr : float, optional
        Repetition time in seconds (default: the first run's header).
    mask, atlas : path, optional
        Voxels to keep, or parcels to average.
    tier, word_column : str, optional
        TextGrid tier / transcript column of the words.
    """
    from .bids import check_onsets
    from .func import read_func_runs

    r = _root(root)
    runs = _runs(r, bold, participant)
    t_r = float(tr) if tr else header_tr(runs[0][1])
    found = [FuncRun(run=lab, bold=p, events=None, meta={"RepetitionTime": t_r}) for lab, p in runs]
    rec = read_func_runs(found, participant, task, mask=mask, atlas=atlas, tr=t_r)
    parts, sources = [], {}
    for lab, _ in runs:
        src = _words_file(r, words, participant, lab)
        kw = {"tier": tier} if src.suffix.lower() == ".textgrid" else {"word_column": word_column}
        try:
            parts.append(read_words(src, run=lab, **kw))
        except (MissingFieldError, CorruptFileError) as exc:
            raise type(exc)(f"data.source.words: {exc}") from None
        sources[lab] = str(src)
    stim = concat_stimuli(parts)
    stim["run"] = stim["run"].astype(str)
    stim = check_onsets(stim, rec, sources)
    stim.attrs.update(subject=participant, task=task)
    rec.attrs.update(subject=participant, task=task, session="", datatype="func",
                     sources=list(rec.attrs.get("sources", [])) + list(sources.values()))
    return rec, stim
