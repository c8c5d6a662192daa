"""Load the fMRI runs of one subject and task into a Recording."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data import make_recording
from .fmri import FuncRun, find_func_runs, frame_offset
from .func_read import check_runs, common_tr, read_targets
from .layout import parse_entities
from .run_clean import clean_plan, clean_runs, drop_invalid


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
    opts, confounds = clean_plan(clean, confounds, derivatives)
    ref, nvols = check_runs(found, t_r)
    Y, target, ijk, extra = read_targets(found, ref, nvols, mask, atlas, atlas_labels, chunk_mb)
    run_labels = np.concatenate([np.full(n, "1" if r.run is None else str(r.run), dtype=object) for r, n in zip(found, nvols)])
    Y, target, ijk, n_bad, load_warnings = drop_invalid(Y, target, ijk, run_labels, sub, task)
    Y, times, labels = clean_runs(Y, found, nvols, run_labels, t_r, off, opts, confounds)
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
