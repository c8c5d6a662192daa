"""CIFTI-2 dense time series (fMRIPrep's ``space-fsLR_den-91k_bold.dtseries.nii``) as one Recording.

Targets are grayordinates: a target's identity is its index along the file's brain
models axis (0..n-1), with target coordinates ``structure`` (e.g.
``CIFTI_STRUCTURE_CORTEX_LEFT``), ``vertex`` (index in that structure's mesh; -1 in
volume structures) and ``cifti_voxel`` (flat C-order index in the CIFTI volume grid; -1
on surfaces). The whole brain models axis is kept, compressed, in the recording's
``surface_geometry`` attr (:func:`encode_axis` / :func:`decode_axis`), so that maps are
written back as dscalar files with the input's axis (:mod:`brainalign.pipeline.surface_maps`).
TR: ``tr=``, else the sidecar's RepetitionTime, else the series axis step.
"""
from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import CorruptFileError, ShapeMismatchError
from .surface import finish_recording
from .surface_runs import SurfaceRun, find_surface_runs, surface_tr


def encode_axis(bm) -> str:
    """A nibabel ``BrainModelAxis`` as a compact text (base64 of zlib-compressed JSON)."""
    vol = bm.volume_mask
    doc = {"name": [[str(n), int(sl.start or 0), int(sl.stop if sl.stop is not None else len(bm))]
                    for n, sl, _ in bm.iter_structures()],
           "vertex": np.asarray(bm.vertex, dtype=np.int64).tolist(),
           "voxel": np.asarray(bm.voxel, dtype=np.int64)[vol].tolist(),
           "nvertices": {str(k): int(v) for k, v in bm.nvertices.items()},
           "affine": None if bm.affine is None else np.asarray(bm.affine, dtype=float).tolist(),
           "volume_shape": None if bm.volume_shape is None else [int(s) for s in bm.volume_shape]}
    return base64.b64encode(zlib.compress(json.dumps(doc).encode(), 9)).decode("ascii")


def decode_axis(text: str):
    """The ``BrainModelAxis`` written by :func:`encode_axis`."""
    from nibabel.cifti2 import cifti2_axes

    doc = json.loads(zlib.decompress(base64.b64decode(text)).decode())
    n = len(doc["vertex"])
    names = np.empty(n, dtype=object)
    for name, a, b in doc["name"]:
        names[a:b] = name
    vertex = np.asarray(doc["vertex"], dtype=np.int64)
    voxel = np.full((n, 3), -1, dtype=np.int64)
    if doc["voxel"]:
        voxel[vertex < 0] = np.asarray(doc["voxel"], dtype=np.int64)
    return cifti2_axes.BrainModelAxis(
        names.astype(str), voxel=voxel, vertex=vertex,
        affine=None if doc["affine"] is None else np.asarray(doc["affine"]),
        volume_shape=None if doc["volume_shape"] is None else tuple(doc["volume_shape"]),
        nvertices=doc["nvertices"])


def read_cifti_run(path: Path) -> tuple[np.ndarray, Any, float | None]:
    """One dense time series.

    Returns
    -------
    Y : ndarray, float32 (time, grayordinate)
    axis : nibabel BrainModelAxis
        The file's brain models.
    file_tr : float or None
        The series axis step in seconds (None when the axis is not in seconds).
    """
    import nibabel as nib
    from nibabel.cifti2 import cifti2_axes

    try:
        img = nib.load(str(path))
        ax0, ax1 = img.header.get_axis(0), img.header.get_axis(1)
    except Exception as exc:  # nibabel raises many types for a damaged header
        raise CorruptFileError(f"{path} is not a readable CIFTI-2 file ({type(exc).__name__}: {exc})") from None
    if not isinstance(ax0, cifti2_axes.SeriesAxis) or not isinstance(ax1, cifti2_axes.BrainModelAxis):
        raise CorruptFileError(f"{path} is not a dense time series (axes {type(ax0).__name__} x "
                               f"{type(ax1).__name__}; expected SeriesAxis x BrainModelAxis)")
    if len(ax0) < 2:
        raise CorruptFileError(f"{path} holds {len(ax0)} time point: a BOLD run is a time series")
    unit = str(ax0.unit).upper()
    step = float(ax0.step) if unit == "SECOND" else (float(ax0.step) / 1000.0 if unit == "MSEC" else None)
    return np.asarray(img.get_fdata(dtype=np.float32)), ax1, step


def load_cifti(root: Path, sub: str, task: str, *, space: str = "fsLR", session: str | None = None,
               runs: Sequence | None = None, derivatives: Path | None = None, tr: float | None = None,
               frame_time: str | float = "start", clean: bool | dict = True,
               confounds: Any = "auto") -> tuple[Any, list[SurfaceRun]]:
    """Read, clean and stack every CIFTI run of one subject and task; see :func:`brainalign.io.load_bids`.

    Returns
    -------
    recording : Recording
        float32 (time, grayordinate).
    runs : list of SurfaceRun
        What was read (``.run``, ``.events``).
    """
    found = find_surface_runs(root, sub, task, space=space, session=session, runs=runs, derivatives=derivatives)
    blocks, nvols, axis, trs = [], [], None, []
    for r in found:
        Y, ax, step = read_cifti_run(r.bold)
        if axis is not None and ax != axis:
            raise ShapeMismatchError(f"{r.bold} has other brain models than {found[0].bold} "
                                     f"({len(ax)} vs {len(axis)} grayordinates)")
        axis = ax
        blocks.append(Y)
        nvols.append(Y.shape[0])
        trs.append(surface_tr(r, tr, step))
    if len({round(t, 6) for t in trs}) > 1:
        raise ShapeMismatchError(f"runs have different repetition times {trs}: load them separately")
    vertex = np.asarray(axis.vertex, dtype=np.int64)
    voxel = np.full(len(axis), -1, dtype=np.int64)
    vol = axis.volume_mask
    if vol.any():
        voxel[vol] = np.ravel_multi_index(tuple(np.asarray(axis.voxel)[vol].T), tuple(axis.volume_shape))
    den = found[0].entities.get("den")
    geometry = {"kind": "cifti", "space": space, "den": den, "axis": encode_axis(axis)}
    coords = {"structure": np.asarray(axis.name).astype(str), "vertex": vertex, "cifti_voxel": voxel}
    rec = finish_recording(np.concatenate(blocks), np.arange(len(axis)), coords, found, nvols, trs[0],
                           sub=sub, task=task, frame_time=frame_time, clean=clean, confounds=confounds,
                           proxies=found, geometry=geometry, kind="grayordinate")
    return rec, found
