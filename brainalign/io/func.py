"""Load the fMRI runs of one subject and task into a Recording."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data import invalid_targets, make_recording
from ..errors import ConstantSignalError, CorruptFileError, DataQualityWarning, InputError, ShapeMismatchError
from .fmri import (
    DEFAULT_CLEAN,
    FuncRun,
    clean_in_blocks,
    find_func_runs,
    frame_offset,
    repetition_time,
    resolve_mask,
    run_confounds,
)
from .nifti import load_header, n_volumes, read_masked


def _clean_options(clean: bool | dict) -> dict | None:
    if clean is False or clean is None:
        return None
    opts = dict(DEFAULT_CLEAN)
    if isinstance(clean, dict):
        unknown = set(clean) - {"detrend", "standardize", "high_pass", "low_pass", "filter", "standardize_confounds"}
        if unknown:
            raise InputError(f"unknown clean options {sorted(unknown)}: use detrend, standardize, high_pass, low_pass, filter")
        opts.update(clean)
        if clean.get("low_pass") and "filter" not in clean:
            opts["filter"] = "butterworth"  # cosine regressors only high-pass (butterworth is slow: per voxel)
    elif clean is not True:
        raise InputError(f"clean must be True, False or a dict of nilearn.signal.clean options, got {clean!r}")
    return opts


def _settle_filter(opts: dict) -> dict:
    if not opts.get("high_pass") and not opts.get("low_pass"):
        opts["filter"] = False
    return opts


def _atlas_masker(atlas: Any, atlas_labels: Sequence[str] | None):
    from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker

    img = load_header(atlas) if isinstance(atlas, (str, Path)) else atlas
    if len(img.shape) == 4 and img.shape[3] > 1:
        return NiftiMapsMasker(maps_img=img, standardize=None, resampling_target="data"), "maps"
    return (
        NiftiLabelsMasker(labels_img=img, labels=atlas_labels, strategy="mean", standardize=None, resampling_target="data"),
        "labels",
    )


def load_func(
    root: Path,
    sub: str,
    task: str,
    *,
    session: str | None = None,
    runs: Sequence | None = None,
    space: str | None = None,
    mask: Any = None,
    atlas: Any = None,
    atlas_labels: Sequence[str] | None = None,
    confounds: Any = "auto",
    derivatives: Path | None = None,
    tr: float | None = None,
    frame_time: str | float = "start",
    clean: bool | dict = True,
    chunk_mb: float = 64.0,
) -> tuple[Any, list[FuncRun]]:
    """Read, mask (or parcellate) and clean every run; see :func:`brainalign.io.load_bids`.

    Returns
    -------
    recording : Recording
        float32 (time, target); time ``(i + frame_time) * TR`` per run.
    runs : list of FuncRun
        What was read, for the word tables.
    """
    import warnings

    found = find_func_runs(root, sub, task, session=session, runs=runs, derivatives=derivatives, space=space)
    trs = [repetition_time(r, tr) for r in found]
    if len({round(t, 6) for t in trs}) > 1:
        raise ShapeMismatchError(f"runs have different RepetitionTime values {trs}: load them separately")
    t_r = trs[0]
    off = frame_offset(frame_time)
    opts = _clean_options(clean)
    if isinstance(confounds, str) and confounds == "auto":
        confounds = "simple" if derivatives is not None and opts is not None else None
    if opts is not None and confounds is not None and opts.get("high_pass") and not isinstance(confounds, dict):
        opts["high_pass"] = None  # fMRIPrep's cosine regressors already remove slow drifts
    if opts is not None:
        _settle_filter(opts)
    imgs = [load_header(r.bold) for r in found]
    nvols = [n_volumes(i) for i in imgs]
    for r, img, n in zip(found, imgs, nvols):
        if len(img.shape) != 4 or n < 2:
            raise CorruptFileError(f"{r.bold} holds {n} volume (shape {tuple(img.shape)}): a BOLD run is a 4-D "
                                   "time series of several volumes")
    ref = imgs[0]
    for r, img in zip(found, imgs):
        if img.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-4):
            raise ShapeMismatchError(
                f"{r.bold} has grid {img.shape[:3]} but {found[0].bold} has {ref.shape[:3]} (or different affines)"
            )
        zoom = img.header.get_zooms()
        if len(zoom) > 3 and zoom[3] and abs(float(zoom[3]) - t_r) > 1e-3 and float(zoom[3]) != 1.0:
            warnings.warn(
                f"{r.bold}: header time step {zoom[3]} s differs from RepetitionTime {t_r} s; using {t_r} s",
                DataQualityWarning,
                stacklevel=3,
            )
    extra: dict = {}
    if atlas is not None:
        masker, kind = _atlas_masker(atlas, atlas_labels)
        parts = []
        for r in found:
            parts.append(np.asarray(masker.fit_transform(str(r.bold)), dtype=np.float32))
        Y = np.concatenate(parts)
        del parts
        names = _region_names(masker, kind, Y.shape[1])
        target = np.asarray(names)
        extra.update(atlas=str(atlas) if isinstance(atlas, (str, Path)) else "image", target_kind="parcel")
        ijk = None
    else:
        vox_mask, mask_src = resolve_mask(mask, found, ref)
        if vox_mask is None:
            from nilearn.masking import compute_epi_mask

            vox_mask = np.asarray(compute_epi_mask(str(found[0].bold)).dataobj) > 0
            mask_src = f"compute_epi_mask({found[0].bold.name})"
            if not vox_mask.any():
                raise InputError(f"nilearn computed an empty brain mask from {found[0].bold}: pass mask= or atlas=")
        ijk = np.argwhere(vox_mask)
        Y = np.empty((sum(nvols), ijk.shape[0]), dtype=np.float32)
        a = 0
        for r, n in zip(found, nvols):
            read_masked(r.bold, vox_mask, chunk_mb=chunk_mb, out=Y[a : a + n])
            a += n
        target = np.ravel_multi_index(tuple(ijk.T), vox_mask.shape)  # identity: flat C-order index in the grid
        extra.update(
            affine=[float(v) for v in ref.affine.ravel()],
            volume_shape=[int(s) for s in ref.shape[:3]],
            mask=str(mask_src),
            target_kind="voxel",
        )
    run_labels = np.concatenate([np.full(n, "1" if r.run is None else str(r.run), dtype=object) for r, n in zip(found, nvols)])
    nonfinite, constant = invalid_targets(Y, run_labels)
    bad = nonfinite | constant
    if bad.all():
        raise ConstantSignalError(
            f"sub-{sub} task-{task}: all {bad.size} targets are constant or non-finite in some run; skip it"
        )
    load_warnings: list[str] = []  # recorded on the recording too: they reach the sidecar once
    if bad.any():
        load_warnings.append(
            f"sub-{sub} task-{task}: dropped {int(bad.sum())} of {bad.size} targets "
            f"({int(constant.sum())} constant within a run, {int(nonfinite.sum())} with NaN/inf values)"
        )
        warnings.warn(load_warnings[-1], DataQualityWarning, stacklevel=3)
        keep = np.flatnonzero(~bad)
        Y = Y[:, keep]
        target = target[keep]
        if ijk is not None:
            ijk = ijk[keep]
    times, labels, rows = [], [], []
    a = 0
    for r, n, lab in zip(found, nvols, (run_labels[np.cumsum([0] + nvols[:-1])])):
        block = Y[a : a + n]
        kept = np.arange(n)
        if opts is not None:
            conf, smask = run_confounds(r, confounds, n)
            block, kept = clean_in_blocks(block, t_r, conf, smask, opts)
        elif confounds is not None:
            raise InputError("confounds are only regressed out when clean is on: pass clean=True or confounds=None")
        rows.append(block if kept.size != n else None)
        times.append((kept + off) * t_r)
        labels.append(np.full(kept.size, lab, dtype=object))
        a += n
    if any(b is not None for b in rows):  # some volumes were censored: rebuild
        parts, a = [], 0
        for r, n, b in zip(found, nvols, rows):
            parts.append(Y[a : a + n] if b is None else b)
            a += n
        Y = np.concatenate(parts)
    coords = {}
    if ijk is not None:
        coords = dict(voxel_i=ijk[:, 0], voxel_j=ijk[:, 1], voxel_k=ijk[:, 2])
    rec = make_recording(
        Y,
        np.concatenate(times),
        np.concatenate(labels).astype(str),
        modality="fmri",
        target=target,
        tr=t_r,
        units="z" if opts is not None and opts.get("standardize") else "a.u.",
        sources=_sources(found, atlas if atlas is not None else mask),
        frame_time=off,
        space=space or ("native" if derivatives is None else "unknown"),
        n_dropped_targets=int(bad.sum()),
        run_spans=[f"{'1' if r.run is None else r.run}:{n * t_r:g}" for r, n in zip(found, nvols)],
        warnings=load_warnings,
        clean=str(opts),
        confounds=str(confounds),
        **extra,
    )
    for k, v in coords.items():
        rec = rec.assign_coords({k: ("target", v)})
    return rec, found


def _sources(found: Sequence[FuncRun], image: Any) -> list[str]:
    """Every file a load reads, BOLD first: events, sidecars, brain masks, confounds (+ JSON), the mask/atlas file."""
    files: list = [r.bold for r in found]
    for r in found:
        files += [r.events, *r.sidecars, r.mask, r.confounds]
        if r.confounds is not None:
            files.append(Path(r.confounds).with_suffix(".json"))
    if isinstance(image, (str, Path)):
        files.append(image)
    return list(dict.fromkeys(str(f) for f in files if f is not None and Path(f).is_file()))


def _region_names(masker, kind: str, n: int) -> list:
    names = getattr(masker, "region_names_", None)
    if isinstance(names, dict) and len(names) == n:
        return [str(names[k]) for k in sorted(names)]
    ids = getattr(masker, "region_ids_", None)
    if isinstance(ids, dict):
        vals = [ids[k] for k in sorted(ids, key=str) if k != "background"]
        if len(vals) == n:
            return [str(v) for v in vals]
    return [str(i) for i in range(n)]
