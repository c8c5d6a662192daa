"""What a BIDS dataset holds: subjects, sessions, tasks and runs, via mne-bids.

Every lookup that fails raises :class:`~brainalign.errors.MissingDataError`
listing what does exist, so a typo is fixed in one step.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import CorruptFileError, InputError, MissingDataError, check_safe_label

DATATYPES = ("func", "meg", "eeg", "ieeg")
_ENTITY = re.compile(r"^([a-zA-Z]+)-([a-zA-Z0-9+.]+)$")


def strip_prefix(label: Any, key: str) -> str:
    """``"sub-01" -> "01"``; validates that the label is safe in a path."""
    s = str(label)
    if s.startswith(f"{key}-"):
        s = s[len(key) + 1 :]
    return check_safe_label(s, {"sub": "subject", "ses": "session", "task": "task", "run": "run"}.get(key, key))


def check_root(root: str | Path) -> Path:
    """The dataset root as a Path; refuses a missing folder."""
    r = Path(root).expanduser()
    if not r.is_dir():
        parent = r.parent
        hint = ""
        if parent.is_dir():
            hint = f" ({parent} holds: {', '.join(sorted(p.name for p in parent.iterdir())[:20])})"
        raise MissingDataError(f"BIDS root {r} is not a folder{hint}")
    return r


def parse_entities(name: str) -> dict[str, str]:
    """Key-value entities and the suffix of a BIDS file name (any entity, e.g. ``res``).

    ``"sub-01_task-a_run-2_bold.nii.gz" -> {"sub": "01", "task": "a", "run": "2", "suffix": "bold"}``.
    """
    stem = name.split(".", 1)[0]
    parts = stem.split("_")
    out: dict[str, str] = {}
    for part in parts[:-1]:
        m = _ENTITY.match(part)
        if m:
            out[m.group(1)] = m.group(2)
    if parts and not _ENTITY.match(parts[-1]):
        out["suffix"] = parts[-1]
    return out


def _subject_dirs(root: Path) -> list[str]:
    return sorted(p.name[4:] for p in root.glob("sub-*") if p.is_dir())


def list_subjects(root: str | Path) -> list[str]:
    """Subject labels (without ``sub-``) of a BIDS root, via mne-bids."""
    from mne_bids import get_entity_vals

    r = check_root(root)
    subs = list(get_entity_vals(r, "subject", ignore_subjects=None))
    if not subs:
        subs = _subject_dirs(r)
    return sorted(subs)


def _data_files(root: Path, subject: str | None = None) -> list[Path]:
    base = root / f"sub-{subject}" if subject else root
    exts = (".nii", ".nii.gz", ".fif", ".vhdr", ".edf", ".bdf", ".set", ".con", ".sqd", ".ds", ".mefd", ".nwb", ".snirf")
    out = []
    pattern = "**/*" if subject else "sub-*/**/*"
    for p in base.glob(pattern):
        if "derivatives" in p.relative_to(root).parts or "sourcedata" in p.relative_to(root).parts:
            continue
        if any(p.name.endswith(e) for e in exts):
            out.append(p)
    return out


def list_entities(root: str | Path, subject: str | None = None) -> list[dict[str, str]]:
    """One dict of entities per recording file (``sub``, ``ses``, ``task``, ``run``, ``datatype``, ``suffix``)."""
    r = check_root(root)
    rows = []
    for p in _data_files(r, strip_prefix(subject, "sub") if subject else None):
        ent = parse_entities(p.name)
        ent["datatype"] = p.parent.name if p.parent.name in DATATYPES + ("anat",) else p.parent.parent.name
        ent["path"] = str(p)
        rows.append(ent)
    return rows


def list_tasks(root: str | Path, subject: str | None = None, datatype: str | None = None) -> list[str]:
    """Task labels of a BIDS root (of one subject and datatype when given)."""
    r = check_root(root)
    if subject is not None:
        require_subject(r, subject)
    ents = list_entities(r, subject)
    return sorted({e["task"] for e in ents if "task" in e and (datatype is None or e["datatype"] == datatype)})


def list_sessions(root: str | Path, subject: str) -> list[str]:
    """Session labels of one subject (empty when the dataset has no sessions)."""
    r = check_root(root)
    sub = require_subject(r, subject)
    return sorted(p.name[4:] for p in (r / f"sub-{sub}").glob("ses-*") if p.is_dir())


def list_runs(
    root: str | Path, subject: str, task: str, datatype: str | None = None, session: str | None = None
) -> list[str | None]:
    """Run labels of one subject and task (``[None]`` when the files carry no run entity)."""
    r = check_root(root)
    sub = require_subject(r, subject)
    ents = [
        e
        for e in list_entities(r, sub)
        if e.get("task") == str(task)
        and (datatype is None or e["datatype"] == datatype)
        and (session is None or e.get("ses") == str(session))
    ]
    if not ents:
        tasks = list_tasks(r, sub, datatype)
        raise MissingDataError(
            f"sub-{sub} has no task {task!r}{' in ' + datatype if datatype else ''} under {r} "
            f"(tasks: {', '.join(tasks) or 'none'})"
        )
    runs = sorted({e.get("run") for e in ents}, key=lambda x: (x is None, str(x).zfill(8)))
    return runs


def require_subject(root: Path, subject: str) -> str:
    """Validated subject label; MissingDataError lists the subjects when absent."""
    sub = strip_prefix(subject, "sub")
    if not (root / f"sub-{sub}").is_dir():
        subs = _subject_dirs(root)
        raise MissingDataError(f"subject {sub!r} is not in {root} (subjects: {', '.join(subs) or 'none'})")
    return sub


def read_json(path: str | Path) -> dict:
    """A JSON sidecar as a dict; CorruptFileError names the file when it does not parse."""
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"{p} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{p} does not hold a JSON object")
    return data


def inherited_sidecar(data_file: str | Path, root: str | Path, suffix: str | None = None) -> tuple[dict, list[Path]]:
    """Merge the JSON sidecars that apply to a data file (BIDS inheritance principle).

    Sidecars are looked for from the dataset root down to the file's folder;
    one applies when its entities are a subset of the file's and its suffix
    matches. Deeper files override shallower ones.

    Returns
    -------
    meta : dict
    files : list of Path
        The sidecars used, shallowest first.
    """
    f = Path(data_file)
    r = Path(root)
    ent = parse_entities(f.name)
    suffix = suffix or ent.get("suffix")
    own = {k: v for k, v in ent.items() if k != "suffix"}
    try:
        rel = f.parent.relative_to(r)
        dirs = [r] + [r.joinpath(*rel.parts[: i + 1]) for i in range(len(rel.parts))]
    except ValueError:
        dirs = [f.parent]
    used: list[Path] = []
    meta: dict = {}
    for d in dirs:
        cands = []
        for j in d.glob(f"*_{suffix}.json"):
            je = parse_entities(j.name)
            keys = {k: v for k, v in je.items() if k != "suffix"}
            if all(own.get(k) == v for k, v in keys.items()):
                cands.append((len(keys), j))
        for _, j in sorted(cands):
            meta.update(read_json(j))
            used.append(j)
    return meta, used


def check_datatype(datatype: str) -> str:
    if datatype not in DATATYPES:
        raise InputError(f"datatype {datatype!r} is not one of {DATATYPES}")
    return datatype
