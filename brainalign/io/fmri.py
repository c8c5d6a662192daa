"""fMRI runs from a BIDS dataset: raw ``_bold`` images or fMRIPrep derivatives.

Voxels (a mask) are read by streaming the image from disk
(:func:`~brainalign.io.nifti.read_masked`); parcels (an atlas) through nilearn's
maskers. Each run is cleaned with :func:`nilearn.signal.clean` (confounds from
fMRIPrep via :func:`nilearn.interfaces.fmriprep.load_confounds`), in blocks of
voxels so that memory stays near the size of the data.

Timing: RepetitionTime comes from the JSON sidecar (BIDS inheritance), never
silently from the NIfTI header. Frame ``i`` of a run gets time
``(i + frame_time) * TR`` on the run's clock, where BIDS event onsets are measured
from the start of the first volume's acquisition: ``frame_time=0`` ("start") puts a
frame at the start of its acquisition, ``0.5`` ("middle") at its middle, the usual
slice-timing reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import CorruptFileError, InputError, MissingDataError, MissingFieldError, ShapeMismatchError
from .layout import inherited_sidecar, parse_entities
from .surface_runs import surface_hint
from .nifti import load_header

DEFAULT_CLEAN = dict(detrend=True, standardize="zscore_sample", high_pass=0.008, low_pass=None, filter="cosine")


@dataclass
class FuncRun:
    """One fMRI run found on disk."""

    run: str | None
    bold: Path
    events: Path | None
    mask: Path | None = None
    confounds: Path | None = None
    meta: dict = field(default_factory=dict)
    sidecars: list = field(default_factory=list)


def frame_offset(frame_time: str | float) -> float:
    """``"start" -> 0``, ``"middle" -> 0.5``, or a fraction of TR in [0, 1]."""
    if frame_time == "start":
        return 0.0
    if frame_time == "middle":
        return 0.5
    try:
        f = float(frame_time)
    except (TypeError, ValueError):
        f = -1.0
    if not 0.0 <= f <= 1.0:
        raise InputError(f"frame_time must be 'start', 'middle' or a fraction of TR in [0, 1]; got {frame_time!r}")
    return f


def repetition_time(run: FuncRun, tr: float | None) -> float:
    """TR in seconds from the sidecar, or the user's ``tr=``; never the header alone."""
    side = run.meta.get("RepetitionTime")
    if tr is not None:
        tr = float(tr)
        if not tr > 0:
            raise InputError(f"tr must be positive seconds, got {tr}")
        return tr
    if side is None:
        where = ", ".join(str(s) for s in run.sidecars) or f"no JSON sidecar found for {run.bold.name}"
        raise MissingFieldError(
            f"RepetitionTime is missing for {run.bold} (sidecars: {where}); BIDS requires it: add it to the "
            "sidecar or set data.source.tr (seconds; the NIfTI header's time step is not trusted)"
        )
    try:
        val = float(side)
    except (TypeError, ValueError):
        val = -1.0
    if not val > 0:
        raise CorruptFileError(f"RepetitionTime {side!r} in the sidecar of {run.bold} is not a positive number")
    return val


def _bold_candidates(base: Path, sub: str, ses: str | None, task: str, desc: str | None, space: str | None) -> list[Path]:
    d = base / f"sub-{sub}"
    if ses:
        d = d / f"ses-{ses}"
    d = d / "func"
    out = []
    if not d.is_dir():
        return out
    for p in sorted(d.iterdir()):
        if not (p.name.endswith("_bold.nii.gz") or p.name.endswith("_bold.nii")):
            continue  # CIFTI (.dtseries.nii) and GIFTI surfaces are not volumes
        e = parse_entities(p.name)
        if e.get("suffix") != "bold" or e.get("task") != task:
            continue
        if desc is not None and e.get("desc") != desc:
            continue
        if desc is None and "desc" in e:
            continue
        if space is not None and e.get("space") != space:
            continue
        out.append(p)
    return out


def find_func_runs(
    root: Path,
    sub: str,
    task: str,
    session: str | None = None,
    runs: Sequence | None = None,
    derivatives: Path | None = None,
    space: str | None = None,
) -> list[FuncRun]:
    """Locate the BOLD runs (raw, or fMRIPrep's preprocessed ones) and their events files."""
    from .layout import list_tasks

    base = derivatives if derivatives is not None else root
    desc = "preproc" if derivatives is not None else None
    files = _bold_candidates(base, sub, session, task, desc, space)
    if not files:
        if derivatives is not None:
            d = base / f"sub-{sub}" / (f"ses-{session}" if session else "") / "func"
            have = sorted(p.name for p in d.glob("*_bold.nii*")) if d.is_dir() else []
            raise MissingDataError(
                f"no fMRIPrep preprocessed BOLD for sub-{sub} task-{task}"
                f"{' space-' + space if space else ''} in {d} (found: {', '.join(have) or 'nothing'}"
                f"{surface_hint(d)}); "
                "--space (data.source.space) picks the space, --derivatives none (data.source.derivatives) the raw BOLD"
            )
        tasks = list_tasks(root, sub, "func")
        raise MissingDataError(f"sub-{sub} has no BOLD run of task {task!r} in {root} (func tasks: {', '.join(tasks) or 'none'})")
    by_run: dict = {}
    for f in files:
        e = parse_entities(f.name)
        by_run.setdefault(e.get("run"), []).append(f)
    dup = {r: [p.name for p in fs] for r, fs in by_run.items() if len(fs) > 1}
    if dup:
        spaces = sorted({parse_entities(p.name).get("space", "none") for fs in by_run.values() for p in fs})
        raise InputError(f"several BOLD files per run ({', '.join(dup[next(iter(dup))])}): choose the space with "
                         f"--space (data.source.space; spaces found: {', '.join(spaces)})")
    have_runs = sorted(by_run, key=lambda x: (x is None, str(x).zfill(8)))
    if runs is not None:
        want = [str(r) for r in runs]
        norm = {str(r).lstrip("0") or "0": r for r in have_runs if r is not None}
        chosen = []
        for w in want:
            key = w.lstrip("0") or "0"
            if key not in norm:
                raise MissingDataError(f"sub-{sub} task-{task} has no run {w!r} (runs: {have_runs})")
            chosen.append(norm[key])
        have_runs = chosen
    out = []
    for r in have_runs:
        bold = by_run[r][0]
        e = parse_entities(bold.name)
        stem = f"sub-{sub}" + (f"_ses-{session}" if session else "") + f"_task-{task}"
        for key in ("acq", "ce", "rec", "dir"):
            if key in e:
                stem += f"_{key}-{e[key]}"
        if r is not None:
            stem += f"_run-{r}"
        raw_dir = root / f"sub-{sub}" / (f"ses-{session}" if session else "") / "func"
        events = raw_dir / f"{stem}_events.tsv"
        fr = FuncRun(run=r, bold=bold, events=events)
        if derivatives is not None:
            sp = f"_space-{e['space']}" if "space" in e else ""
            res = f"_res-{e['res']}" if "res" in e else ""
            m = bold.with_name(f"{stem}{sp}{res}_desc-brain_mask.nii.gz")
            fr.mask = m if m.is_file() else None
            c = bold.with_name(f"{stem}_desc-confounds_timeseries.tsv")
            fr.confounds = c if c.is_file() else None
            fr.meta, fr.sidecars = inherited_sidecar(bold, derivatives)
            if "RepetitionTime" not in fr.meta:
                raw_bold = raw_dir / f"{stem}_bold.nii.gz"
                meta, used = inherited_sidecar(raw_bold, root)
                fr.meta = {**meta, **fr.meta}
                fr.sidecars += used
        else:
            fr.meta, fr.sidecars = inherited_sidecar(bold, root)
        out.append(fr)
    return out


def resolve_mask(mask: Any, runs: list[FuncRun], ref_img) -> tuple[np.ndarray | None, str | None]:
    """Boolean mask in the BOLD grid: user mask (file or image, resampled if needed), fMRIPrep brain masks, or None."""
    import nibabel as nib

    if mask is None:
        masks = [r.mask for r in runs if r.mask is not None]
        if not masks:
            return None, None
        arr = None
        for m in masks:
            a = np.asarray(_grid_mask(load_header(m), ref_img).dataobj) > 0
            arr = a if arr is None else (arr & a)
        return arr, str(masks[0])
    src = None
    if isinstance(mask, (str, Path)):
        src = str(mask)
        img = load_header(mask)
    elif isinstance(mask, nib.spatialimages.SpatialImage):
        img = mask
    else:
        raise InputError(f"mask must be a NIfTI path or image, got {type(mask).__name__}")
    img = _grid_mask(img, ref_img)
    arr = np.asarray(img.dataobj) > 0
    if not arr.any():
        raise InputError(f"mask {src or ''} has no voxel inside the BOLD field of view".replace("  ", " "))
    return arr, src


def _grid_mask(img, ref_img):
    from nilearn.image import resample_to_img

    if img.shape[:3] == ref_img.shape[:3] and np.allclose(img.affine, ref_img.affine, atol=1e-4):
        return img
    return resample_to_img(img, ref_img, interpolation="nearest", force_resample=True, copy_header=True)


def run_confounds(run: FuncRun, confounds: Any, n_vol: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Confound matrix (n_vol, k) and sample mask for one run.

    ``confounds`` may be None, a nilearn ``load_confounds_strategy`` name
    ("simple", "scrubbing", "compcor", "ica_aroma"), a tuple of
    ``load_confounds`` strategies, a dict of ``load_confounds`` keyword
    arguments, or a mapping run -> array (n_vol, k).
    """
    from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy

    if confounds is None:
        return None, None
    if isinstance(confounds, dict) and "strategy" not in confounds and confounds and all(
        np.ndim(v) >= 1 and not isinstance(v, str) for v in confounds.values()
    ):
        arr = confounds.get(run.run, confounds.get(str(run.run)))
        if arr is None:
            raise MissingDataError(f"confounds has no entry for run {run.run!r} (runs given: {list(confounds)})")
        arr = np.asarray(arr, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.shape[0] != n_vol:
            raise ShapeMismatchError(f"confounds for run {run.run} have {arr.shape[0]} rows but {run.bold} has {n_vol} volumes")
        return arr, None
    if run.confounds is None:
        raise MissingDataError(
            f"no fMRIPrep confounds file (desc-confounds_timeseries.tsv) next to {run.bold}: set --confounds none "
            "(data.preprocess.confounds: none)"
        )
    try:
        if isinstance(confounds, str):
            df, smask = load_confounds_strategy(str(run.bold), denoise_strategy=confounds)
        elif isinstance(confounds, dict):
            df, smask = load_confounds(str(run.bold), **confounds)
        else:
            df, smask = load_confounds(str(run.bold), strategy=tuple(confounds))
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise CorruptFileError(f"confounds {run.confounds} cannot be used with strategy {confounds!r}: {exc}") from None
    arr = None if df is None or df.shape[1] == 0 else df.to_numpy(dtype=float)
    if arr is not None and arr.shape[0] != n_vol:
        raise ShapeMismatchError(f"{run.confounds} has {arr.shape[0]} rows but {run.bold} has {n_vol} volumes")
    return arr, (None if smask is None else np.asarray(smask))


def clean_in_blocks(
    Y: np.ndarray,
    tr: float,
    confounds: np.ndarray | None,
    sample_mask: np.ndarray | None,
    opts: dict,
    block: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nilearn.signal.clean` on column blocks (voxels are independent), in place when nothing is censored.

    Returns
    -------
    cleaned : ndarray, shape (n_kept, n_targets), dtype of ``Y``
    kept : ndarray of int
        Indices of the volumes kept (all unless ``sample_mask`` censors some).
    """
    from nilearn.signal import clean

    n = Y.shape[0]
    if sample_mask is not None:
        sample_mask = np.asarray(sample_mask)
        if sample_mask.dtype == bool:
            sample_mask = np.flatnonzero(sample_mask)
        kept = np.asarray(sample_mask, dtype=int)
    else:
        kept = np.arange(n)
    out = Y if sample_mask is None else np.empty((kept.size, Y.shape[1]), dtype=Y.dtype)
    for a in range(0, Y.shape[1], block):
        b = min(a + block, Y.shape[1])
        try:
            out[:, a:b] = clean(Y[:, a:b], t_r=tr, confounds=confounds, sample_mask=sample_mask, **opts)
        except ValueError as exc:
            raise InputError(
                f"nilearn.signal.clean failed on a run of {n} volumes ({exc}); for short runs pass "
                "clean={'high_pass': None}"
            ) from None
    return out, kept
