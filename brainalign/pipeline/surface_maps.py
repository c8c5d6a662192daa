"""Maps and figures of results on surfaces: GIFTI per hemisphere, CIFTI dscalar with the input's brain models.

A surface result (read by :mod:`brainalign.io.surface` or :mod:`brainalign.io.cifti`)
carries the ``surface_geometry`` attr (JSON): ``{"kind": "gifti", "space", "n_vertices":
{"L": n, "R": n}}`` or ``{"kind": "cifti", "space", "den", "axis"}`` (the compressed brain
models axis). Target identities are ``"<hemi>_<vertex>"`` (GIFTI) or grayordinate indices
(CIFTI), so maps are rebuilt from the identities alone: NaN where a vertex or grayordinate
was not scored. This module builds images, names and figures; :mod:`.outputs` writes
the files (``..._hemi-L_space-fsaverage5_desc-<model>L<NN>_stat-r_statmap.func.gii``,
``..._space-fsLR_den-91k_desc-<model>L<NN>_stat-r_statmap.dscalar.nii``).

Figures use the fsaverage5 meshes nilearn ships (offline). fsaverage6 and fsaverage
results are shown on fsaverage5 through the icosahedral nesting (the first 10,242
vertices of fsaverageN are fsaverage5's). fsLR and fsnative have no mesh shipped: pass
``mesh={"left": path, "right": path}`` (GIFTI surfaces); without one, the figure shows
the distribution of the values per structure and says so.
"""
from __future__ import annotations

import json
import warnings
from typing import Any, Mapping

import numpy as np
import xarray as xr

from ..errors import DataQualityWarning, InputError

HEMI_NAMES = {"L": "left", "R": "right"}
STRUCTURE = {"L": "CortexLeft", "R": "CortexRight"}
FS5 = 10242


def geometry(meta: Mapping) -> dict | None:
    """The ``surface_geometry`` of a result's attrs (parsed), or None when it is not a surface result."""
    g = meta.get("surface_geometry") if meta is not None else None
    if not g:
        return None
    return json.loads(g) if isinstance(g, str) else dict(g)


def is_surface(ds) -> bool:
    """Whether a result (Dataset) is on a surface (GIFTI or CIFTI)."""
    return geometry(getattr(ds, "attrs", {})) is not None


def hemi_values(values: np.ndarray, targets, geo: dict) -> dict[str, np.ndarray]:
    """GIFTI: values at ``"<hemi>_<vertex>"`` targets -> full per-hemisphere float32 arrays (NaN elsewhere)."""
    out = {h: np.full(int(n), np.nan, dtype=np.float32) for h, n in geo["n_vertices"].items()}
    for t, v in zip(np.asarray(targets).astype(str).tolist(), np.asarray(values, dtype=np.float32).tolist()):
        h, _, vert = t.partition("_")
        if h not in out or not vert.isdigit():
            raise InputError(f"target {t!r} is not a surface vertex identity ('L_<vertex>' or 'R_<vertex>')")
        out[h][int(vert)] = v
    return out


def cifti_values(values: np.ndarray, targets, n: int) -> np.ndarray:
    """CIFTI: values at grayordinate-index targets -> a float32 array over the whole axis (NaN elsewhere)."""
    out = np.full(n, np.nan, dtype=np.float32)
    out[np.asarray([int(t) for t in np.asarray(targets).tolist()], dtype=np.int64)] = np.asarray(values, dtype=np.float32)
    return out


def gifti_image(values: np.ndarray, hemi: str, name: str):
    """One-map GIFTI (float32, NaN where not scored) for a hemisphere ``"L"``/``"R"``."""
    import nibabel as nib

    meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": STRUCTURE[hemi], "Name": name})
    arr = nib.gifti.GiftiDataArray(np.asarray(values, dtype=np.float32), intent="NIFTI_INTENT_NONE",
                                   datatype="NIFTI_TYPE_FLOAT32", meta=nib.gifti.GiftiMetaData({"Name": name}))
    return nib.gifti.GiftiImage(darrays=[arr], meta=meta)


def cifti_image(values: np.ndarray, axis, name: str):
    """One-map CIFTI-2 dense scalar image on brain models ``axis``."""
    import nibabel as nib
    from nibabel.cifti2 import cifti2_axes

    img = nib.Cifti2Image(np.asarray(values, dtype=np.float32)[None, :],
                          header=(cifti2_axes.ScalarAxis([name]), axis))
    img.nifti_header.set_intent("ConnDenseScalar")
    return img


def _den(geo: dict, n: int) -> str | None:
    return geo.get("den") or ("91k" if n == 91282 else None)


def surface_images(ds: xr.Dataset, var: str = "r") -> list[tuple[int, str, str, Any]]:
    """Per layer of ``ds[var]`` (layer x target): ``(layer, entities, extension, image)``.

    GIFTI gives two per layer (``"hemi-L_space-<space>"``, ``"hemi-R_..."``, ``".func.gii"``),
    CIFTI one (``"space-fsLR_den-91k"``, ``".dscalar.nii"``). [] when ``ds`` is not a surface result.
    """
    geo = geometry(ds.attrs)
    if geo is None or var not in ds:
        return []
    targets = ds["target"].values
    out = []
    if geo["kind"] == "cifti":
        from ..io.cifti import decode_axis

        axis = decode_axis(geo["axis"])
        den = _den(geo, len(axis))
        ent = f"space-{geo['space']}" + (f"_den-{den}" if den else "")
    for layer in ds["layer"].values:
        vals = ds[var].sel(layer=layer).values
        name = f"{var} layer {int(layer)}"
        if geo["kind"] == "cifti":
            out.append((int(layer), ent, ".dscalar.nii", cifti_image(cifti_values(vals, targets, len(axis)), axis, name)))
            continue
        for h, full in hemi_values(vals, targets, geo).items():
            out.append((int(layer), f"hemi-{h}_space-{geo['space']}", ".func.gii", gifti_image(full, h, name)))
    return out


def surface_map_name(volume_name: str, entities: str, ext: str) -> str:
    """The surface map's file name from the volumetric one: entities go before ``desc-``, the extension changes.

    ``"sub-01_task-a_desc-ML01_stat-r_statmap.nii.gz"`` with ``"hemi-L_space-fsaverage5"``, ``".func.gii"`` ->
    ``"sub-01_task-a_hemi-L_space-fsaverage5_desc-ML01_stat-r_statmap.func.gii"``.
    """
    base = volume_name[: -len(".nii.gz")] if volume_name.endswith(".nii.gz") else volume_name
    head, sep, tail = base.rpartition("_desc-")
    if not sep:
        raise InputError(f"map name {volume_name!r} has no desc- entity")
    return f"{head}_{entities}{sep}{tail}{ext}"


def group_mean(dsets: list[xr.Dataset], var: str = "r") -> xr.Dataset | None:
    """Mean of ``var`` over participants on the union of their surface targets (joined on identity).

    Returns a Dataset (layer x target) with the first participant's attrs, or None when the
    results are not all on the same surface geometry (warned) or lack ``var``.
    """
    if not dsets or not all(is_surface(d) and var in d for d in dsets):
        return None
    if len({d.attrs["surface_geometry"] for d in dsets}) > 1:
        warnings.warn("participants' surface results are on different meshes / brain models: no group surface map",
                      DataQualityWarning, stacklevel=2)
        return None
    stack = xr.concat([d[var].reset_coords(drop=True) for d in dsets], dim="subject", join="outer", fill_value=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # targets no participant has
        mean = stack.mean("subject", skipna=True)
    return xr.Dataset({var: mean.transpose("layer", "target")}, attrs=dict(dsets[0].attrs))


# ------------------------------------------------------------------------ figures
def _values_of(stat) -> tuple[np.ndarray, np.ndarray]:
    """(values, target identities) of a DataArray over ``target`` or a pandas Series indexed by target."""
    if isinstance(stat, xr.DataArray):
        if stat.dims != ("target",):
            raise InputError(f"surface_figure: stat must be one value per target (dims ('target',)), got {stat.dims}")
        return np.asarray(stat.values, dtype=float), np.asarray(stat["target"].values)
    return np.asarray(stat.values, dtype=float), np.asarray(stat.index)


def _meshes(geo: dict, mesh: Mapping | None) -> tuple[dict | None, int | None, str]:
    """(hemisphere -> (surface, background or None), vertices used, note) for plotting, or (None, None, why not)."""
    if mesh:
        return {h: (mesh[HEMI_NAMES[h]], mesh.get(f"bg_{HEMI_NAMES[h]}")) for h in ("L", "R")}, None, ""
    space = geo.get("space", "")
    if geo["kind"] == "gifti" and space.startswith("fsaverage"):
        from nilearn import datasets

        fs5 = datasets.fetch_surf_fsaverage("fsaverage5")
        note = "" if space == "fsaverage5" else f" (on fsaverage5: the first {FS5} vertices of {space})"
        return {h: (fs5[f"infl_{HEMI_NAMES[h]}"], fs5[f"sulc_{HEMI_NAMES[h]}"]) for h in ("L", "R")}, FS5, note
    return None, None, (f"no {space or 'surface'} mesh is available offline (nilearn ships fsaverage5 only); "
                        "pass mesh={'left': ..., 'right': ...}")


def hemisphere_maps(stat, meta: Mapping) -> dict[str, np.ndarray]:
    """Full per-hemisphere cortex arrays (NaN where not scored) of a surface stat, GIFTI or CIFTI."""
    geo = geometry(meta)
    if geo is None:
        raise InputError("surface_figure: the result has no surface_geometry attr (not a surface result)")
    vals, targets = _values_of(stat)
    if geo["kind"] == "gifti":
        return hemi_values(vals, targets, geo)
    from ..io.cifti import decode_axis

    axis = decode_axis(geo["axis"])
    full = cifti_values(vals, targets, len(axis))
    out = {}
    for h, key in (("L", "CIFTI_STRUCTURE_CORTEX_LEFT"), ("R", "CIFTI_STRUCTURE_CORTEX_RIGHT")):
        sel = np.asarray(axis.name) == key
        if sel.any():
            out[h] = np.full(int(axis.nvertices[key]), np.nan, dtype=np.float32)
            out[h][np.asarray(axis.vertex)[sel]] = full[sel]
    return out


def surface_figure(stat, meta: Mapping, *, mesh: Mapping | None = None, title: str | None = None,
                   threshold: float | None = None, cmap: Any = None, symmetric: bool = True,
                   vmax: float | None = None):
    """Lateral and medial views of both hemispheres of one surface map (nilearn ``plot_surf_stat_map``).

    Parameters
    ----------
    stat : xarray.DataArray (target,) or pandas.Series indexed by target
        One value per target, e.g. ``ds["r"].sel(layer=3)``.
    meta : mapping
        The result's attrs (its ``surface_geometry``).
    mesh : mapping, optional
        ``{"left": surf, "right": surf}`` (+ ``"bg_left"``/``"bg_right"``) GIFTI meshes; needed for fsLR and fsnative.
    title : str, optional
    threshold : float, optional
        |value| below it is not coloured (default: only unscored vertices are left uncoloured); named in the title.
    cmap, symmetric, vmax
        Colour map (nilearn's default when None), a colour scale symmetric about 0 (False for
        e.g. preferred layers, scaled from the smallest value), and its top (default max |value|).

    Returns
    -------
    matplotlib.figure.Figure
        Without a mesh, histograms of the values per hemisphere and a note saying why.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    maps = hemisphere_maps(stat, meta)
    meshes, n_used, note = _meshes(geometry(meta), mesh)
    vals = np.concatenate([m[np.isfinite(m)] for m in maps.values()]) if maps else np.array([])
    if vmax is None:
        vmax = float(np.nanmax(np.abs(vals))) if vals.size and np.nanmax(np.abs(vals)) > 0 else 1.0
    scale = dict(vmax=vmax, symmetric_cbar=True) if symmetric else dict(
        vmin=float(np.nanmin(vals)) if vals.size else 0.0, vmax=vmax, symmetric_cbar=False)
    if cmap is not None:
        scale["cmap"] = cmap
    label = (title or "") + (f", |value| < {threshold:g} not shown" if threshold else "")
    if meshes is None:
        return _no_mesh_figure(plt, maps, label, note)
    from nilearn import plotting

    fig, axes = plt.subplots(1, 4, figsize=(12, 3), subplot_kw={"projection": "3d"})
    for k, (h, view) in enumerate([(h, v) for h in ("L", "R") if h in maps for v in ("lateral", "medial")]):
        data = maps[h][:n_used] if n_used else maps[h]
        surf, bg = meshes[h]
        plotting.plot_surf_stat_map(surf, np.nan_to_num(data, nan=0.0), hemi=HEMI_NAMES[h], view=view, bg_map=bg,
                                    axes=axes[k], figure=fig, colorbar=k == 3, **scale,
                                    threshold=threshold if threshold else 1e-12, title=f"{h} {view}")
    fig.suptitle((label + note).strip(", ") or None, fontsize=9)
    return fig


def _no_mesh_figure(plt, maps: dict, label: str, note: str):
    fig, ax = plt.subplots(figsize=(7, 3))
    for h, m in maps.items():
        ax.hist(m[np.isfinite(m)], bins=40, alpha=0.6, label=f"{HEMI_NAMES[h]} cortex ({int(np.isfinite(m).sum())} vertices)")
    ax.set_xlabel("value")
    ax.set_ylabel("vertices")
    if maps:
        ax.legend(fontsize=8)
    ax.set_title(((label + "\n") if label else "") + note, fontsize=8)
    fig.tight_layout()
    return fig


def surface_view_html(stat, meta: Mapping, hemi: str = "left", *, mesh: Mapping | None = None,
                      threshold: float | None = None, title: str | None = None) -> str:
    """An interactive viewer (nilearn ``view_surf``) of one hemisphere of a surface map, as standalone HTML.

    Without a mesh for the space (fsLR, fsnative), a short HTML paragraph saying so.
    """
    from nilearn import plotting

    h = {"left": "L", "right": "R", "L": "L", "R": "R"}.get(hemi)
    if h is None:
        raise InputError(f"hemi must be 'left' or 'right', got {hemi!r}")
    maps = hemisphere_maps(stat, meta)
    meshes, n_used, note = _meshes(geometry(meta), mesh)
    if meshes is None or h not in maps:
        import html

        return f"<p>{html.escape(note or 'no ' + HEMI_NAMES[h] + ' cortex in this map')}</p>"
    data = maps[h][:n_used] if n_used else maps[h]
    surf, bg = meshes[h]
    view = plotting.view_surf(surf, np.nan_to_num(data, nan=0.0), bg_map=bg, threshold=threshold,
                              symmetric_cmap=True, title=title)
    return view.get_standalone()


def view_img_on_surf_html(img, *, threshold: float | None = None, title: str | None = None) -> str:
    """nilearn ``view_img_on_surf`` of a volumetric (MNI) map on fsaverage5, as standalone HTML (offline)."""
    from nilearn import plotting

    clean = type(img)(np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32)), img.affine)
    return plotting.view_img_on_surf(clean, surf_mesh="fsaverage5", threshold=threshold, title=title).get_standalone()


def map_file_view_html(path, *, threshold: float | None = None, title: str | None = None) -> str:
    """:func:`surface_view_html` of a written map file: a ``.func.gii`` (its hemisphere) or a ``.dscalar.nii`` (left).

    The space (and hemisphere) come from the file name's entities, the CIFTI brain models from the file.
    """
    from pathlib import Path

    import nibabel as nib

    from ..io.cifti import encode_axis
    from ..io.layout import parse_entities

    p = Path(path)
    ent = parse_entities(p.name)
    if p.name.endswith(".func.gii"):
        h = ent.get("hemi")
        if h not in HEMI_NAMES:
            raise InputError(f"{p.name}: no hemi-L/hemi-R entity in the name")
        vals = np.asarray(nib.load(str(p)).darrays[0].data, dtype=float)
        geo = {"kind": "gifti", "space": ent.get("space", ""), "n_vertices": {h: int(vals.size)}}
        targets, hemi = [f"{h}_{i}" for i in range(vals.size)], HEMI_NAMES[h]
    elif p.name.endswith(".dscalar.nii"):
        img = nib.load(str(p))
        vals = np.asarray(img.get_fdata(), dtype=float)[0]
        geo = {"kind": "cifti", "space": ent.get("space", "fsLR"), "axis": encode_axis(img.header.get_axis(1))}
        targets, hemi = list(range(vals.size)), "left"
    else:
        raise InputError(f"{p.name} is not a .func.gii or .dscalar.nii surface map")
    stat = xr.DataArray(vals, dims=("target",), coords={"target": targets})
    return surface_view_html(stat, {"surface_geometry": json.dumps(geo)}, hemi, threshold=threshold, title=title)
