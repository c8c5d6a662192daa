"""Target identity and geometry carried from a recording onto a result.

The one place that copies the voxel grid (affine, volume shape, flat C-order voxel
index ``voxel_flat``) and the source files from a :class:`~brainalign.data.Recording`
onto a result Dataset (and, for surfaces, the mesh / brain models geometry and the
vertex identity: :func:`copy_surface`), and that reads the recording's regions
(``region``/``roi`` target coordinates) for RSA.
"""
from __future__ import annotations

import json

import numpy as np
import xarray as xr


def copy_geometry(ds: xr.Dataset, recording) -> None:
    """Copy source files and the voxel grid of ``recording`` onto ``ds`` (in place).

    Sets attrs ``sources`` (JSON list), ``affine`` (4 x 4, JSON) and ``grid_shape``
    (JSON), and the target coordinate ``voxel_flat`` (flat C-order index into the
    grid), when the recording has them.
    """
    attrs = getattr(recording, "attrs", {})
    if "sources" in attrs:
        ds.attrs["sources"] = json.dumps([str(s) for s in attrs["sources"]])
    for key, name in (("session", "session"), ("preprocessing", "preprocessing"), ("mask", "data_mask"),
                      ("space", "data_space")):  # the data's provenance, for names and the sidecar
        if attrs.get(key):
            ds.attrs[name] = str(attrs[key])
    coords = getattr(recording, "coords", {})
    copy_surface(ds, recording)
    copy_channels(ds, recording)
    shape = attrs.get("volume_shape")
    if shape is None or "affine" not in attrs or "voxel_i" not in coords:
        return
    shape = tuple(int(s) for s in np.asarray(shape).ravel()[:3])
    ijk = np.stack([np.asarray(recording[c].values, dtype=np.int64) for c in ("voxel_i", "voxel_j", "voxel_k")])
    ds.attrs["affine"] = json.dumps(np.asarray(attrs["affine"], dtype=float).reshape(4, 4).tolist())
    ds.attrs["grid_shape"] = json.dumps(list(shape))
    ds.coords["voxel_flat"] = ("target", np.ravel_multi_index(tuple(ijk), shape))


def regions(recording) -> dict[str, np.ndarray] | None:
    """Region name -> target indices from a ``region`` or ``roi`` target coordinate, or None."""
    for name in ("region", "roi"):
        if name in recording.coords and recording[name].dims == ("target",):
            labels = np.asarray(recording[name].values).astype(str)
            return {lab: np.flatnonzero(labels == lab) for lab in dict.fromkeys(labels.tolist())}
    return None


SURFACE_COORDS = ("hemi", "vertex", "structure", "cifti_voxel")


def copy_surface(ds: xr.Dataset, recording) -> None:
    """Copy a surface recording's geometry onto ``ds`` (in place).

    Sets the ``surface_geometry`` attr (JSON: space, vertices per hemisphere or the
    CIFTI brain models axis), ``space``, and the target coordinates ``hemi``/``vertex``
    (GIFTI) or ``structure``/``vertex``/``cifti_voxel`` (CIFTI), matched on target identity.
    Nothing happens for a recording that is not on a surface.
    """
    attrs = getattr(recording, "attrs", {})
    if "surface_geometry" not in attrs or "target" not in ds.coords:
        return
    ds.attrs["surface_geometry"] = attrs["surface_geometry"]
    ds.attrs["space"] = str(attrs.get("space", ""))
    rec_t = np.asarray(recording["target"].values)
    pos = {t: i for i, t in enumerate(rec_t.tolist())}
    idx = np.asarray([pos[t] for t in np.asarray(ds["target"].values).tolist()], dtype=np.int64)
    for c in SURFACE_COORDS:
        if c in recording.coords and recording[c].dims == ("target",):
            ds.coords[c] = ("target", np.asarray(recording[c].values)[idx])


CHANNEL_COORDS = ("x", "y", "z", "ch_type")


def copy_channels(ds: xr.Dataset, recording) -> None:
    """Copy MEG/EEG/iEEG sensor positions and the bad channels dropped onto ``ds`` (in place), for the report.

    Sets the target coordinates ``x``, ``y``, ``z`` (as the recording has them:
    iEEG electrodes.tsv values in their declared space) and ``ch_type``, matched on
    target identity, and attrs ``bad_channels`` (JSON list) and ``coord_frame``.
    """
    attrs = getattr(recording, "attrs", {})
    if "bad_channels" in attrs:
        ds.attrs["bad_channels"] = json.dumps([str(b) for b in np.ravel(attrs["bad_channels"]).tolist()])
    if attrs.get("coord_frame"):
        ds.attrs["coord_frame"] = str(attrs["coord_frame"])
    coords = getattr(recording, "coords", {})
    if "target" not in ds.coords or not all(c in coords for c in ("x", "y", "z")):
        return
    pos = {t: i for i, t in enumerate(np.asarray(recording["target"].values).tolist())}
    want = np.asarray(ds["target"].values).tolist()
    if not all(t in pos for t in want):
        return
    idx = np.asarray([pos[t] for t in want], dtype=np.int64)
    for c in CHANNEL_COORDS:
        if c in coords and recording[c].dims == ("target",):
            ds.coords[c] = ("target", np.asarray(recording[c].values)[idx])
