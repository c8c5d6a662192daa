"""Surface fMRI: fMRIPrep GIFTI time series per hemisphere as one Recording (time x vertex).

Targets are the vertices of both hemispheres, left first; a target's identity is the
string ``"<hemi>_<vertex>"`` (e.g. ``"L_1024"``: vertex 1024 of the left mesh), with the
target coordinates ``hemi`` (``"L"``/``"R"``) and ``vertex`` (index in that hemisphere's
mesh). Vertices with no data in any run (all NaN or all exactly 0: fMRIPrep's medial
wall) are left out quietly and counted in ``attrs['n_empty_targets']``; other bad
vertices go through the loaders' usual drop with one ``DataQualityWarning``. The
recording's ``surface_geometry`` attr (JSON) records the space and the vertices per
hemisphere, so that maps can be written back on the full meshes
(:mod:`brainalign.pipeline.surface_maps`). :func:`finish_recording` is shared with the
CIFTI reader (:mod:`brainalign.io.cifti`).
"""
from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data import make_recording
from ..errors import CorruptFileError, InputError, ShapeMismatchError
from .fmri import frame_offset
from .run_clean import clean_plan, clean_runs, drop_invalid
from .surface_runs import FSAVERAGE_VERTICES, SurfaceRun, find_surface_runs, surface_tr

HEMIS = ("L", "R")


def _gifti_series(path: Path) -> tuple[np.ndarray, float | None]:
    """(n_vertices, n_time) float32 data of one GIFTI time series and its TimeStep in s (or None)."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for a damaged XML
        raise CorruptFileError(f"{path} is not a readable GIFTI file ({type(exc).__name__}: {exc})") from None
    arrays = [np.asarray(d.data) for d in img.darrays]
    if not arrays:
        raise CorruptFileError(f"{path} holds no data array")
    if len(arrays) == 1 and arrays[0].ndim == 2:
        data = arrays[0]
    elif all(a.ndim == 1 and a.shape == arrays[0].shape for a in arrays):
        data = np.stack(arrays, axis=1)
    else:
        raise CorruptFileError(f"{path}: data arrays of shapes {[a.shape for a in arrays]} are not one time series")
    return np.asarray(data, dtype=np.float32), _time_step(img)


def _time_step(img) -> float | None:
    """A GIFTI ``TimeStep`` (file or first array metadata) in seconds; values above 50 are read as ms."""
    metas = [getattr(img, "meta", None)] + [getattr(d, "meta", None) for d in img.darrays[:1]]
    for m in metas:
        if m is None or "TimeStep" not in m:
            continue
        try:
            v = float(m["TimeStep"])
        except (TypeError, ValueError):
            return None
        return v / 1000.0 if v > 50 else v
    return None


def read_gifti_run(run: SurfaceRun, space: str) -> tuple[np.ndarray, dict, float | None]:
    """Both hemispheres of one run.

    Returns
    -------
    Y : ndarray, float32 (time, n_L + n_R)
        Left vertices first.
    n_vertices : dict
        ``{"L": n_L, "R": n_R}``.
    file_tr : float or None
        The files' TimeStep (s), if they record one.
    """
    parts, nv, steps = [], {}, []
    for h in HEMIS:
        data, step = _gifti_series(run.files[h])
        want = FSAVERAGE_VERTICES.get(space)
        if want is not None and data.shape[0] != want:
            raise ShapeMismatchError(f"{run.files[h]} has {data.shape[0]} vertices but {space} has {want} per hemisphere")
        parts.append(data.T)
        nv[h] = int(data.shape[0])
        steps.append(step)
    if parts[0].shape[0] != parts[1].shape[0]:
        raise ShapeMismatchError(f"{run.files['L'].name} has {parts[0].shape[0]} time points but "
                                 f"{run.files['R'].name} has {parts[1].shape[0]}")
    if parts[0].shape[0] < 2:
        raise CorruptFileError(f"{run.files['L']} holds {parts[0].shape[0]} time point: a BOLD run is a time series")
    return np.concatenate(parts, axis=1), nv, next((s for s in steps if s is not None), None)


def _confound_proxy(run: SurfaceRun, space: str):
    """What nilearn's confounds reader is given: the run with its GIFTI named in fMRIPrep >= 21 order."""
    bold = run.bold
    if run.files.keys() == {"L", "R"}:
        stem = bold.name.split("_hemi-")[0].split("_space-")[0]
        bold = bold.with_name(f"{stem}_hemi-L_space-{space}_bold.func.gii")
    return types.SimpleNamespace(run=run.run, bold=bold, confounds=run.confounds)


def load_surface(root: Path, sub: str, task: str, *, space: str, session: str | None = None,
                 runs: Sequence | None = None, derivatives: Path | None = None, tr: float | None = None,
                 frame_time: str | float = "start", clean: bool | dict = True,
                 confounds: Any = "auto") -> tuple[Any, list[SurfaceRun]]:
    """Read, clean and stack every GIFTI run of one subject and task; see :func:`brainalign.io.load_bids`.

    Returns
    -------
    recording : Recording
        float32 (time, vertex); time ``(i + frame_time) * TR`` per run.
    runs : list of SurfaceRun
        What was read (for the word tables: ``.run`` and ``.events``).
    """
    found = find_surface_runs(root, sub, task, space=space, session=session, runs=runs, derivatives=derivatives)
    blocks, nvols, nv0, trs = [], [], None, []
    for r in found:
        Y, nv, step = read_gifti_run(r, space)
        if nv0 is not None and nv != nv0:
            raise ShapeMismatchError(f"{r.bold} has {nv} vertices but {found[0].bold} has {nv0}")
        nv0 = nv
        blocks.append(Y)
        nvols.append(Y.shape[0])
        trs.append(surface_tr(r, tr, step))
    if len({round(t, 6) for t in trs}) > 1:
        raise ShapeMismatchError(f"runs have different repetition times {trs}: load them separately")
    hemi = np.concatenate([np.full(nv0[h], h) for h in HEMIS])
    vertex = np.concatenate([np.arange(nv0[h]) for h in HEMIS])
    target = np.asarray([f"{h}_{v}" for h, v in zip(hemi, vertex)])
    geometry = {"kind": "gifti", "space": space, "n_vertices": nv0}
    rec = finish_recording(np.concatenate(blocks), target, {"hemi": hemi, "vertex": vertex}, found, nvols, trs[0],
                           sub=sub, task=task, frame_time=frame_time, clean=clean, confounds=confounds,
                           proxies=[_confound_proxy(r, space) for r in found], geometry=geometry, kind="vertex")
    return rec, found


def _empty_targets(Y: np.ndarray) -> np.ndarray:
    """Targets with no data in any run: all non-finite, or all exactly zero (the medial wall)."""
    finite = np.isfinite(Y)
    return ~finite.any(0) | np.all(np.where(finite, Y, 0.0) == 0.0, axis=0)


def finish_recording(Y: np.ndarray, target: np.ndarray, coords: dict, found: Sequence[SurfaceRun],
                     nvols: Sequence[int], t_r: float, *, sub: str, task: str, frame_time: str | float,
                     clean: bool | dict, confounds: Any, proxies: Sequence, geometry: dict, kind: str) -> Any:
    """Drop empty and bad targets, clean each run and build the Recording (shared by GIFTI and CIFTI).

    Parameters
    ----------
    Y : ndarray, float32 (time, target)
        All runs stacked in time.
    target : ndarray
        Target identities; ``coords`` are more per-target arrays (kept alike).
    found, nvols, t_r
        The runs, their time points and the repetition time (s).
    proxies : sequence
        Per run, what the confounds reader gets (``run``, ``bold``, ``confounds``).
    geometry : dict
        Written as the ``surface_geometry`` attr (JSON).
    kind : str
        ``target_kind`` attr: ``"vertex"`` or ``"grayordinate"``.
    """
    empty = _empty_targets(Y)
    if empty.all():
        raise InputError(f"sub-{sub} task-{task}: every target of {found[0].bold} is empty (all NaN or 0)")
    keep = np.flatnonzero(~empty)
    Y, target = Y[:, keep], target[keep]
    run_labels = np.concatenate([np.full(n, "1" if r.run is None else str(r.run), dtype=object)
                                 for r, n in zip(found, nvols)])
    Y, target, kept, n_bad, load_warnings = drop_invalid(Y, target, keep, run_labels, sub, task)
    derivs = found[0].bold.parent if any(r.confounds is not None for r in found) else None
    opts, conf = clean_plan(clean, confounds, derivs)
    off = frame_offset(frame_time)
    Y, times, labels = clean_runs(Y, proxies, nvols, run_labels, t_r, off, opts, conf)
    rec = make_recording(
        Y, times, labels, modality="fmri", target=target, tr=t_r,
        units="z" if opts is not None and opts.get("standardize") else "a.u.",
        sources=_sources(found), frame_time=off, space=geometry["space"], n_dropped_targets=n_bad,
        n_empty_targets=int(empty.sum()), run_spans=[f"{'1' if r.run is None else r.run}:{n * t_r:g}"
                                                     for r, n in zip(found, nvols)],
        warnings=load_warnings, clean=str(opts), confounds=str(conf), target_kind=kind,
        mask=f"{int(empty.sum())} empty targets (no data in any run) left out",
        surface_geometry=json.dumps(geometry), **_run_attrs(found, proxies, nvols),
    )
    return rec.assign_coords({k: ("target", np.asarray(v)[kept]) for k, v in coords.items()})


def _run_attrs(found: Sequence[SurfaceRun], proxies: Sequence, nvols: Sequence[int]) -> dict:
    """``run_files`` (the name nilearn's confounds reader is given), ``confound_files``, ``run_volumes``:
    what :func:`brainalign.io.confounds.from_recording` reads to clean the runs later."""
    lab = ["1" if r.run is None else str(r.run) for r in found]
    return dict(run_files=[f"{a}:{p.bold}" for a, p in zip(lab, proxies)],
                confound_files=[f"{a}:{r.confounds}" for a, r in zip(lab, found) if r.confounds is not None],
                run_volumes=[f"{a}:{n}" for a, n in zip(lab, nvols)])


def _sources(found: Sequence[SurfaceRun]) -> list[str]:
    """Every file read: the surface BOLD files first, then events, sidecars, confounds (+ JSON)."""
    files: list = [f for r in found for f in r.files.values()]
    for r in found:
        files += [r.events, *r.sidecars, r.confounds]
        if r.confounds is not None:
            files.append(Path(r.confounds).with_suffix(".json"))
    return list(dict.fromkeys(str(f) for f in files if f is not None and Path(f).is_file()))
