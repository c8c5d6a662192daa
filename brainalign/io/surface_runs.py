"""Find surface BOLD runs (fMRIPrep GIFTI per hemisphere, CIFTI-2 dense time series) and their timing.

fMRIPrep names its surface outputs in two entity orders: ``..._hemi-L_space-fsaverage5_bold.func.gii``
(fMRIPrep >= 21) and ``..._space-fsaverage5_hemi-L[_bold].func.gii`` (older releases);
CIFTI: ``..._space-fsLR_den-91k_bold.dtseries.nii``. Entities are parsed by name, so the
order does not matter. Surfaces exist only in derivatives: the folders searched are the
``derivatives`` given, else ``<root>/derivatives/fmriprep``, then the dataset root itself.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import CorruptFileError, DataQualityWarning, InputError, MissingDataError, MissingFieldError
from .layout import inherited_sidecar, parse_entities

#: Vertices per hemisphere of FreeSurfer's icosahedral fsaverage meshes.
FSAVERAGE_VERTICES = {"fsaverage3": 642, "fsaverage4": 2562, "fsaverage5": 10242, "fsaverage6": 40962,
                      "fsaverage": 163842, "fsaverage7": 163842}
_GIFTI_SPACE = re.compile(r"^(fsaverage[3-7]?|fsnative)$")
_CIFTI_SPACE = re.compile(r"^fsLR$")
GIFTI_EXT = ".func.gii"
CIFTI_EXT = ".dtseries.nii"


def surface_kind(space: str | None) -> str | None:
    """``"gifti"`` for fsaverage*/fsnative, ``"cifti"`` for fsLR, None for a volumetric (or no) space."""
    if space is None:
        return None
    if _GIFTI_SPACE.match(str(space)):
        return "gifti"
    if _CIFTI_SPACE.match(str(space)):
        return "cifti"
    return None


@dataclass
class SurfaceRun:
    """One surface run found on disk.

    ``files`` maps hemisphere (``"L"``, ``"R"``) to its GIFTI, or ``""`` to the CIFTI file;
    ``bold`` is the first of them (the file named in messages and given to nilearn's confounds reader).
    """

    run: str | None
    files: dict
    events: Path | None
    confounds: Path | None = None
    meta: dict = field(default_factory=dict)
    sidecars: list = field(default_factory=list)
    entities: dict = field(default_factory=dict)

    @property
    def bold(self) -> Path:
        return next(iter(self.files.values()))


def _func_dirs(root: Path, sub: str, session: str | None, derivatives: Path | None) -> list[tuple[Path, Path]]:
    """(dataset folder, func folder) pairs to search, in order, that exist."""
    bases = [derivatives] if derivatives is not None else [root / "derivatives" / "fmriprep", root]
    out = []
    for b in bases:
        d = b / f"sub-{sub}" / (f"ses-{session}" if session else "") / "func"
        if d.is_dir():
            out.append((b, d))
    return out


def _with_suffix(p: Path) -> Path:
    """``p`` named with the ``_bold`` suffix (old fMRIPrep GIFTI names end in ``_hemi-L.func.gii``)."""
    for ext in (GIFTI_EXT, CIFTI_EXT):
        if p.name.endswith(ext) and "suffix" not in parse_entities(p.name):
            return p.with_name(p.name[: -len(ext)] + "_bold" + ext)
    return p


def _matches(p: Path, kind: str, task: str, space: str) -> dict | None:
    ext = GIFTI_EXT if kind == "gifti" else CIFTI_EXT
    if not p.name.endswith(ext):
        return None
    e = parse_entities(_with_suffix(p).name)
    if e.get("task") != task or e.get("space") != space or e.get("suffix", "bold") != "bold":
        return None
    if e.get("desc", "preproc") != "preproc":
        return None
    if kind == "gifti" and e.get("hemi") not in ("L", "R"):
        return None
    return e


def surface_files_present(func_dir: Path) -> list[str]:
    """Names of the GIFTI / CIFTI BOLD files in a folder (for messages), sorted."""
    if not func_dir.is_dir():
        return []
    return sorted(p.name for p in func_dir.iterdir() if p.name.endswith((GIFTI_EXT, CIFTI_EXT)))


def surface_hint(func_dir: Path) -> str:
    """A sentence naming the surface spaces a folder has (``""`` when none), to append to a 'not found' message."""
    names = surface_files_present(func_dir)
    spaces = sorted({parse_entities(n).get("space", "?") for n in names})
    if not spaces:
        return ""
    return (f" volumetric; {len(names)} surface BOLD files ({names[0]}...) in space {', '.join(spaces)}: "
            f"pass --space {spaces[0]} (data.source.space: {spaces[0]})")


def _not_found(root: Path, sub: str, task: str, session: str | None, space: str, kind: str,
               dirs: list[tuple[Path, Path]], derivatives: Path | None) -> MissingDataError:
    looked = [d for _, d in dirs] or [b / f"sub-{sub}" / (f"ses-{session}" if session else "") / "func"
                                      for b in ([derivatives] if derivatives else [root / "derivatives" / "fmriprep", root])]
    pattern = (f"sub-{sub}_task-{task}[_run-N]_hemi-{{L,R}}_space-{space}_bold.func.gii (either entity order)"
               if kind == "gifti" else f"sub-{sub}_task-{task}[_run-N]_space-{space}[_den-91k]_bold.dtseries.nii")
    have = [n for _, d in dirs for n in surface_files_present(d)]
    return MissingDataError(f"no surface BOLD {pattern} in {', '.join(map(str, looked))} "
                            f"(surface files there: {', '.join(have) or 'none'}); check --space (data.source.space) "
                            "and --derivatives")


def _group_runs(files: list[tuple[Path, dict]], kind: str) -> dict:
    """Run label -> {hemi or "": path}; refuses duplicates and a missing hemisphere."""
    by_run: dict = {}
    for p, e in files:
        key = e.get("hemi", "") if kind == "gifti" else ""
        slot = by_run.setdefault(e.get("run"), {})
        if key in slot:
            raise InputError(f"several surface BOLD files for run {e.get('run')} {('hemi-' + key) if key else ''}: "
                             f"{slot[key].name}, {p.name} (pass --space, or remove the extras)")
        slot[key] = p
    for r, slot in by_run.items():
        if kind == "gifti" and set(slot) != {"L", "R"}:
            miss = ({"L", "R"} - set(slot)).pop()
            raise MissingDataError(f"{next(iter(slot.values()))} has no hemi-{miss} partner: both hemispheres are needed")
    return by_run


def _pick_runs(by_run: dict, runs: Sequence | None, sub: str, task: str) -> list:
    have = sorted(by_run, key=lambda x: (x is None, str(x).zfill(8)))
    if runs is None:
        return have
    norm = {str(r).lstrip("0") or "0": r for r in have if r is not None}
    chosen = []
    for w in (str(r) for r in runs):
        key = w.lstrip("0") or "0"
        if key not in norm:
            raise MissingDataError(f"sub-{sub} task-{task} has no surface run {w!r} (runs: {have})")
        chosen.append(norm[key])
    return chosen


def find_surface_runs(root: Path, sub: str, task: str, *, space: str, session: str | None = None,
                      runs: Sequence | None = None, derivatives: Path | None = None) -> list[SurfaceRun]:
    """Locate one subject's surface BOLD runs of a task in ``space``, with events, confounds and sidecars.

    Parameters
    ----------
    root : Path
        The raw BIDS dataset (events files).
    sub, task : str
        Labels without prefixes.
    space : str
        ``fsaverage*``/``fsnative`` (GIFTI pairs) or ``fsLR`` (CIFTI).
    session : str, optional
    runs : sequence, optional
        Run labels to keep (default all).
    derivatives : Path, optional
        The fMRIPrep folder; default ``root/derivatives/fmriprep``, then ``root``.

    Returns
    -------
    list of SurfaceRun
        In run order.
    """
    kind = surface_kind(space)
    if kind is None:
        raise InputError(f"space {space!r} is not a surface space (fsaverage, fsaverage5, fsaverage6, fsnative, fsLR)")
    dirs = _func_dirs(root, sub, session, derivatives)
    for base, d in dirs:
        files = [(p, e) for p in sorted(d.iterdir()) if (e := _matches(p, kind, task, space)) is not None]
        if files:
            by_run = _group_runs(files, kind)
            return [_describe(root, base, sub, session, task, r, by_run[r]) for r in _pick_runs(by_run, runs, sub, task)]
    raise _not_found(root, sub, task, session, space, kind, dirs, derivatives)


def _describe(root: Path, base: Path, sub: str, session: str | None, task: str, run, files: dict) -> SurfaceRun:
    first = next(iter(files.values()))
    e = parse_entities(_with_suffix(first).name)
    stem = f"sub-{sub}" + (f"_ses-{session}" if session else "") + f"_task-{task}"
    for key in ("acq", "ce", "rec", "dir"):
        if key in e:
            stem += f"_{key}-{e[key]}"
    if run is not None:
        stem += f"_run-{run}"
    raw_dir = root / f"sub-{sub}" / (f"ses-{session}" if session else "") / "func"
    conf = [first.with_name(f"{stem}_desc-confounds_{s}.tsv") for s in ("timeseries", "regressors")]
    sr = SurfaceRun(run=run, files=dict(files), events=raw_dir / f"{stem}_events.tsv",
                    confounds=next((c for c in conf if c.is_file()), None), entities=e)
    meta: dict = {}
    used: list = []
    for f in files.values():
        m, u = inherited_sidecar(_with_suffix(f), base, suffix="bold")
        meta.update(m)
        used += [x for x in u if x not in used]
    if "RepetitionTime" not in meta:
        m, u = inherited_sidecar(raw_dir / f"{stem}_bold.nii.gz", root)
        meta = {**m, **meta}
        used += u
    sr.meta, sr.sidecars = meta, used
    return sr


def surface_tr(run: SurfaceRun, tr: float | None, file_tr: float | None) -> float:
    """Repetition time (s): ``tr=`` if given, else the sidecar's RepetitionTime, else the file's own time step.

    Warns (DataQualityWarning) when the sidecar and the file's time step disagree.
    """
    if tr is not None:
        if not float(tr) > 0:
            raise InputError(f"tr must be positive seconds, got {tr} (data.source.tr)")
        return float(tr)
    side = run.meta.get("RepetitionTime")
    if side is not None:
        try:
            val = float(side)
        except (TypeError, ValueError):
            val = -1.0
        if not val > 0:
            raise CorruptFileError(f"RepetitionTime {side!r} in the sidecar of {run.bold} is not a positive number")
        if file_tr is not None and abs(file_tr - val) > 1e-3:
            warnings.warn(f"{run.bold}: the file's time step {file_tr:g} s differs from the sidecar's RepetitionTime "
                          f"{val:g} s; using {val:g} s", DataQualityWarning, stacklevel=4)
        return val
    if file_tr is not None and file_tr > 0:
        return float(file_tr)
    raise MissingFieldError(f"RepetitionTime is missing for {run.bold}: neither a JSON sidecar nor the file's "
                            "metadata gives it; add it to the sidecar or set data.source.tr (seconds)")
