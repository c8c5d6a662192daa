"""Load the fMRI runs of one subject and task into a Recording."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data import invalid_targets, make_recording
from ..errors import ConstantSignalError, DataQualityWarning, InputError
from .fmri import DEFAULT_CLEAN, FuncRun, clean_in_blocks, find_func_runs, frame_offset, run_confounds
from .func_read import check_runs, common_tr, read_targets
from .layout import parse_entities


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
    found = find_func_runs(root, sub, task, session=session, runs=runs, derivatives=derivatives, space=space)
    rec = read_func_runs(found, sub, task, space=space, mask=mask, atlas=atlas, atlas_labels=atlas_labels,
                         confounds=confounds, derivatives=derivatives, tr=tr, frame_time=frame_time, clean=clean,
                         chunk_mb=chunk_mb)
    return rec, found


def read_func_runs(
    found: Sequence[FuncRun], sub: str, task: str, *, space: str | None = None, mask: Any = None, atlas: Any = None,
    atlas_labels: Sequence[str] | None = None, confounds: Any = None, derivatives: Path | None = None,
    tr: float | None = None, frame_time: str | float = "start", clean: bool | dict = True, chunk_mb: float = 64.0,
):
    """The Recording of runs already found (BIDS or plain NIfTI); the keywords are :func:`load_func`'s."""
    t_r = common_tr(found, tr)
    off = frame_offset(frame_time)
    opts, confounds = _clean_plan(clean, confounds, derivatives)
    ref, nvols = check_runs(found, t_r)
    Y, target, ijk, extra = read_targets(found, ref, nvols, mask, atlas, atlas_labels, chunk_mb)
    run_labels = np.concatenate([np.full(n, "1" if r.run is None else str(r.run), dtype=object) for r, n in zip(found, nvols)])
    Y, target, ijk, n_bad, load_warnings = _drop_invalid(Y, target, ijk, run_labels, sub, task)
    Y, times, labels = _clean_runs(Y, found, nvols, run_labels, t_r, off, opts, confounds)
    rec = make_recording(
        Y,
        times,
        labels,
        modality="fmri",
        target=target,
        tr=t_r,
        units="z" if opts is not None and opts.get("standardize") else "a.u.",
        sources=_sources(found, atlas if atlas is not None else mask),
        frame_time=off,
        space=space or ("native" if derivatives is None else parse_entities(found[0].bold.name).get("space", "unknown")),
        n_dropped_targets=n_bad,
        run_spans=[f"{'1' if r.run is None else r.run}:{n * t_r:g}" for r, n in zip(found, nvols)],
        run_files=[f"{'1' if r.run is None else r.run}:{r.bold}" for r in found],
        confound_files=[f"{'1' if r.run is None else r.run}:{r.confounds}" for r in found if r.confounds is not None],
        run_volumes=[f"{'1' if r.run is None else r.run}:{n}" for r, n in zip(found, nvols)],
        warnings=load_warnings,
        clean=str(opts),
        confounds=str(confounds),
        **extra,
    )
    if ijk is not None:
        for k, v in dict(voxel_i=ijk[:, 0], voxel_j=ijk[:, 1], voxel_k=ijk[:, 2]).items():
            rec = rec.assign_coords({k: ("target", v)})
    return rec


def _clean_plan(clean: bool | dict, confounds: Any, derivatives: Path | None) -> tuple[dict | None, Any]:
    """Settle the cleaning options and which confounds go with them.

    Parameters
    ----------
    clean : bool or dict
        ``load_func``'s ``clean``.
    confounds : Any
        ``load_func``'s ``confounds``; ``"auto"`` is ``"simple"`` for
        derivatives that are cleaned, None otherwise.
    derivatives : Path or None
        The fMRIPrep folder, if any.

    Returns
    -------
    opts : dict or None
        nilearn.signal.clean options (None: no cleaning). High-pass is off
        when fMRIPrep confounds (their cosine regressors) are regressed out.
    confounds : Any
        The resolved confounds strategy.
    """
    opts = _clean_options(clean)
    if isinstance(confounds, str) and confounds == "auto":
        confounds = "simple" if derivatives is not None and opts is not None else None
    if opts is not None and confounds is not None and opts.get("high_pass") and not isinstance(confounds, dict):
        opts["high_pass"] = None  # fMRIPrep's cosine regressors already remove slow drifts
    if opts is not None:
        _settle_filter(opts)
    return opts, confounds


def _drop_invalid(
    Y: np.ndarray, target: np.ndarray, ijk: np.ndarray | None, run_labels: np.ndarray, sub: str, task: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int, list[str]]:
    """Drop the targets that are constant or non-finite in some run, keeping target identity.

    Parameters
    ----------
    Y : ndarray (time, target)
    target, ijk : ndarray
        Target identities (and voxel grid indices, or None), subset alike.
    run_labels : ndarray
        Run label per row of ``Y``.
    sub, task : str
        For the messages.

    Returns
    -------
    Y, target, ijk
        The kept targets.
    n_dropped : int
    load_warnings : list of str
        The drop message (also warned): it goes on ``rec.attrs['warnings']``.
    """
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
        warnings.warn(load_warnings[-1], DataQualityWarning, stacklevel=4)  # as when inline in load_func
        keep = np.flatnonzero(~bad)
        Y = Y[:, keep]
        target = target[keep]
        if ijk is not None:
            ijk = ijk[keep]
    return Y, target, ijk, int(bad.sum()), load_warnings


def _clean_runs(
    Y: np.ndarray, found: Sequence[FuncRun], nvols: Sequence[int], run_labels: np.ndarray,
    t_r: float, off: float, opts: dict | None, confounds: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean each run (regressing out its confounds, censoring volumes) and time its volumes.

    Parameters
    ----------
    Y : ndarray (time, target)
        The runs stacked in time.
    found, nvols, run_labels
        The runs, their volume counts and the run label per row.
    t_r, off : float
        Repetition time (s) and frame offset (fraction of a TR).
    opts : dict or None
        Cleaning options (None: no cleaning; then ``confounds`` must be None).
    confounds : Any
        The confounds strategy.

    Returns
    -------
    Y : ndarray (time, target)
        Without the censored volumes.
    times : ndarray
        ``(i + off) * t_r`` per kept volume, per run.
    labels : ndarray of str
        Run label per kept volume.
    """
    times, labels, rows = [], [], []
    a = 0
    for r, n, lab in zip(found, nvols, (run_labels[np.cumsum([0] + list(nvols[:-1]))])):
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
    return Y, np.concatenate(times), np.concatenate(labels).astype(str)


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
