"""The cleaning steps shared by the volumetric and the surface fMRI loaders.

:func:`clean_plan` settles the ``nilearn.signal.clean`` options and the confounds
strategy, :func:`drop_invalid` drops the targets that are constant or non-finite in
some run, :func:`clean_runs` cleans each run and times its volumes. Used by
:func:`brainalign.io.func.read_func_runs` and :func:`brainalign.io.surface.finish_recording`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data import invalid_targets
from ..errors import ConstantSignalError, DataQualityWarning, InputError
from .fmri import DEFAULT_CLEAN, FuncRun, clean_in_blocks, run_confounds


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


def clean_plan(clean: bool | dict, confounds: Any, derivatives: Path | None) -> tuple[dict | None, Any]:
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


def drop_invalid(
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
        warnings.warn(load_warnings[-1], DataQualityWarning, stacklevel=4)  # the caller of load_func's caller, as when inline
        keep = np.flatnonzero(~bad)
        Y = Y[:, keep]
        target = target[keep]
        if ijk is not None:
            ijk = ijk[keep]
    return Y, target, ijk, int(bad.sum()), load_warnings


def clean_runs(
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
