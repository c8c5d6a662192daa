"""Find the BOLD runs' common repetition time, check their headers and read their targets (voxels or parcels)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import CorruptFileError, DataQualityWarning, InputError, ShapeMismatchError
from .fmri import FuncRun, repetition_time, resolve_mask
from .nifti import load_header, n_volumes, read_masked


def common_tr(found: Sequence[FuncRun], tr: float | None) -> float:
    """The one repetition time of all runs.

    Parameters
    ----------
    found : sequence of FuncRun
        The runs to load.
    tr : float or None
        Override of the sidecars' RepetitionTime, in seconds.

    Returns
    -------
    float
        The first run's repetition time, in seconds.

    Raises
    ------
    ShapeMismatchError
        When the runs disagree (to 1e-6 s).
    """
    trs = [repetition_time(r, tr) for r in found]
    if len({round(t, 6) for t in trs}) > 1:
        raise ShapeMismatchError(f"runs have different RepetitionTime values {trs}: load them separately")
    return trs[0]


def check_runs(found: Sequence[FuncRun], t_r: float) -> tuple[Any, list[int]]:
    """Check that every BOLD run is a 4-D series on one grid.

    Warns (DataQualityWarning) where a header's time step differs from ``t_r``.

    Parameters
    ----------
    found : sequence of FuncRun
        The runs to load.
    t_r : float
        The repetition time in use, in seconds.

    Returns
    -------
    ref : nibabel image
        The first run's header (its grid and affine are the reference).
    nvols : list of int
        Volumes per run.
    """
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
                stacklevel=4,  # the caller of load_func's caller, as when this was inline
            )
    return ref, nvols


def read_targets(
    found: Sequence[FuncRun], ref: Any, nvols: Sequence[int], mask: Any, atlas: Any,
    atlas_labels: Sequence[str] | None, chunk_mb: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """Read every run's targets: atlas parcels when ``atlas`` is given, else in-mask voxels.

    Parameters
    ----------
    found, ref, nvols
        The runs, the first run's header and the volumes per run.
    mask, atlas, atlas_labels, chunk_mb
        ``load_func``'s arguments.

    Returns
    -------
    Y : ndarray, float32 (time, target)
    target : ndarray
        Region names, or voxels' flat C-order indices in the grid.
    ijk : ndarray of int (voxel, 3) or None
        Voxels' grid indices (None for parcels).
    extra : dict
        Recording attrs.
    """
    if atlas is not None:
        Y, target, extra = read_parcels(found, atlas, atlas_labels)
        return Y, target, None, extra
    return read_voxels(found, ref, nvols, mask, chunk_mb)


def read_parcels(
    found: Sequence[FuncRun], atlas: Any, atlas_labels: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Average every run within the atlas regions.

    Parameters
    ----------
    found : sequence of FuncRun
        The runs to read, in order.
    atlas : path or image
        Label image (3-D) or probabilistic maps (4-D).
    atlas_labels : sequence of str or None
        Region names for a label image.

    Returns
    -------
    Y : ndarray, float32 (time, region)
        The runs stacked in time.
    target : ndarray
        Region names.
    extra : dict
        Recording attrs: ``atlas``, ``target_kind``.
    """
    masker, kind = _atlas_masker(atlas, atlas_labels)
    parts = []
    for r in found:
        parts.append(np.asarray(masker.fit_transform(str(r.bold)), dtype=np.float32))
    Y = np.concatenate(parts)
    del parts
    names = _region_names(masker, kind, Y.shape[1])
    extra = dict(atlas=str(atlas) if isinstance(atlas, (str, Path)) else "image", target_kind="parcel")
    return Y, np.asarray(names), extra


def read_voxels(
    found: Sequence[FuncRun], ref: Any, nvols: Sequence[int], mask: Any, chunk_mb: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Read every run's in-mask voxels (nilearn's EPI mask when none is given).

    Parameters
    ----------
    found : sequence of FuncRun
        The runs to read, in order.
    ref : nibabel image
        The first run's header.
    nvols : sequence of int
        Volumes per run.
    mask : Any
        ``load_func``'s ``mask``.
    chunk_mb : float
        Read size per block.

    Returns
    -------
    Y : ndarray, float32 (time, voxel)
    target : ndarray of int
        Identity: flat C-order index of each voxel in the volume grid.
    ijk : ndarray of int (voxel, 3)
        Grid indices.
    extra : dict
        Recording attrs: ``affine``, ``volume_shape``, ``mask``, ``target_kind``.
    """
    vox_mask, mask_src = resolve_mask(mask, found, ref)
    if vox_mask is None:
        from nilearn.masking import compute_epi_mask

        vox_mask = np.asarray(compute_epi_mask(str(found[0].bold)).dataobj) > 0
        mask_src = f"compute_epi_mask({found[0].bold.name})"
        if not vox_mask.any():
            raise InputError(f"nilearn computed an empty brain mask from {found[0].bold}: give one with --mask "
                             "(data.source.mask) or parcels with --atlas (data.source.atlas)")
    ijk = np.argwhere(vox_mask)
    Y = np.empty((sum(nvols), ijk.shape[0]), dtype=np.float32)
    a = 0
    for r, n in zip(found, nvols):
        read_masked(r.bold, vox_mask, chunk_mb=chunk_mb, out=Y[a : a + n])
        a += n
    target = np.ravel_multi_index(tuple(ijk.T), vox_mask.shape)  # identity: flat C-order index in the grid
    extra = dict(
        affine=[float(v) for v in ref.affine.ravel()],
        volume_shape=[int(s) for s in ref.shape[:3]],
        mask=str(mask_src),
        target_kind="voxel",
    )
    return Y, target, ijk, extra


def _atlas_masker(atlas: Any, atlas_labels: Sequence[str] | None):
    from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker

    img = load_header(atlas) if isinstance(atlas, (str, Path)) else atlas
    if len(img.shape) == 4 and img.shape[3] > 1:
        return NiftiMapsMasker(maps_img=img, standardize=None, resampling_target="data"), "maps"
    return (
        NiftiLabelsMasker(labels_img=img, labels=atlas_labels, strategy="mean", standardize=None, resampling_target="data"),
        "labels",
    )


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
