"""Maps of a participant result: r map, layer-preference map, interactive viewer, electrodes.

Volumes are drawn with nilearn (glass brain, slices, ``view_img``), surfaces with
:func:`brainalign.pipeline.surface_maps.surface_figure`, iEEG/MEG sensors with
nilearn ``plot_markers`` from the positions the loader read (iEEG: electrodes.tsv).
Every function returns ``(figure or HTML, caption)`` pairs; the captions state the
threshold applied (or that a map is unthresholded).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from . import outputs
from .report_figures import layer_cmap, preference
from .report_html import plt

#: Interactive viewers are embedded only for volumes up to this many voxels.
MAX_VIEWER_VOXELS = 200_000


def _volume(ds: xr.Dataset, values):
    geo = outputs.result_geometry(ds)
    if geo is None:
        return None
    return outputs.to_volume(np.asarray(values, dtype=float), outputs.flat_index(ds), geo[1], geo[0])


def _finite(img):
    return type(img)(np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32)), img.affine)


def significance_threshold(ds: xr.Dataset, layer: int, q: float) -> float | None:
    """Smallest r among the targets with p_fdr < q at ``layer`` (the r a map thresholded at q shows), or None."""
    if "p_fdr" not in ds:
        return None
    r = ds["r"].sel(layer=layer).values
    sig = ds["p_fdr"].sel(layer=layer).values < q
    return float(np.nanmin(r[sig])) if sig.any() else None


def r_map(ds: xr.Dataset, layer: int, q: float):
    """Glass brain (volume) or surface views of r at ``layer``, unthresholded; None for other targets."""
    vals = ds["r"].sel(layer=layer)
    vmax = float(np.nanmax(np.abs(vals.values))) if np.isfinite(vals.values).any() else 1.0
    from . import surface_maps

    if surface_maps.is_surface(ds):
        fig = surface_maps.surface_figure(vals, ds.attrs, title=f"r, layer {layer}")
        return fig, f"r at layer {layer} on the surface, unthresholded (colour scale ±{vmax:.3f})."
    img = _volume(ds, vals.values)
    if img is None:
        return None
    from nilearn import plotting

    fig = plt().figure(figsize=(7, 2.6))
    plotting.plot_glass_brain(_finite(img), figure=fig, colorbar=True, plot_abs=False, title=f"r, layer {layer}",
                              vmax=vmax if vmax > 0 else 1.0)
    return fig, (f"Glass brain of r at layer {layer}, unthresholded (maximum projection, colour scale ±{vmax:.3f}); "
                 f"voxel maps per layer are in the output folder.")


def preference_map(ds: xr.Dataset, q: float):
    """The best layer of each target with p_fdr < q at some layer, colour-coded by layer (volume or surface)."""
    if "r" not in ds:
        return None
    pref = preference(ds, q)
    n = int(np.isfinite(pref).sum())
    layers = [int(l) for l in ds["layer"].values]
    what = (f"Layer-preference map: the best layer (highest r) of each of the {n} targets with p_fdr < {q:g} at some "
            f"layer, one colour per layer ({layers[0]}..{layers[-1]}); other targets are not coloured.")
    from . import surface_maps

    if surface_maps.is_surface(ds):
        stat = xr.DataArray(pref, dims=("target",), coords={"target": ds["target"].values})
        fig = surface_preference(stat, ds.attrs, layers)
        return (fig, what) if fig is not None else (surface_maps.surface_figure(stat, ds.attrs, title="preferred layer"),
                                                    what + " (no mesh for a discrete colour map: the values are drawn)")
    img = _volume(ds, pref)
    if img is None:
        return None
    return preference_figure(img, layers, "preferred layer"), what


def surface_preference(stat, attrs, layers: list[int]):
    """Preferred layer on fsaverage meshes (nilearn ``plot_surf_roi``, one colour per layer), or None without a mesh."""
    from . import surface_maps

    geo = surface_maps.geometry(attrs)
    if geo is None or geo.get("kind") != "gifti" or not str(geo.get("space", "")).startswith("fsaverage"):
        return None
    from nilearn import datasets, plotting

    fs5 = datasets.fetch_surf_fsaverage("fsaverage5")
    maps = surface_maps.hemisphere_maps(stat, attrs)
    cmap, norm = layer_cmap(layers)
    fig, axes = plt().subplots(1, 4, figsize=(12, 3), subplot_kw={"projection": "3d"})
    views = [(h, v) for h in ("L", "R") if h in maps for v in ("lateral", "medial")]
    for ax, (h, view) in zip(axes, views):
        vals = maps[h][:surface_maps.FS5]
        rank = np.where(np.isfinite(vals), np.searchsorted(np.asarray(layers), np.nan_to_num(vals)) + 1, 0)
        side = surface_maps.HEMI_NAMES[h]
        plotting.plot_surf_roi(fs5[f"infl_{side}"], rank.astype(float), hemi=side, view=view, bg_map=fs5[f"sulc_{side}"],
                               axes=ax, figure=fig, cmap=cmap, vmin=0.5, vmax=len(layers) + 0.5, colorbar=False, threshold=0.5, avg_method="max",
                               title=f"{h} {view}")
    cb = fig.colorbar(plt().cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), fraction=0.02, ticks=layers)
    cb.set_label("layer")
    return fig


def preference_figure(img, layers: list[int], title: str):
    """Slices of a preferred-layer volume (NaN: not coloured) over the MNI template, one colour per layer."""
    from nilearn import plotting

    cmap, norm = layer_cmap(layers)
    vals = np.asarray(img.dataobj, dtype=np.float32)
    rank = np.searchsorted(np.asarray(layers), np.nan_to_num(vals, nan=layers[0]))
    shifted = np.where(np.isfinite(vals), rank + 1, 0)  # colour k+1 = k-th layer; 0 = not coloured (background)
    roi = type(img)(shifted.astype(np.float32), img.affine)
    fig = plt().figure(figsize=(9, 2.6))
    n_cuts = int(min(6, max(1, np.isfinite(vals).any(axis=(0, 1)).sum())))
    plotting.plot_roi(roi, display_mode="z", cut_coords=n_cuts, figure=fig, cmap=cmap, vmin=0.5,
                      vmax=len(layers) + 0.5, colorbar=False, title=title, black_bg=False,
                      draw_cross=False)
    cb = fig.colorbar(plt().cm.ScalarMappable(norm=norm, cmap=cmap), ax=fig.axes, fraction=0.03, ticks=layers)
    cb.set_label("layer")
    return fig


def viewer(ds: xr.Dataset, layer: int, q: float):
    """nilearn ``view_img`` (volume) or ``view_surf`` (surface) of r at ``layer``, thresholded at q when targets pass."""
    thr = significance_threshold(ds, layer, q)
    label = (f"threshold |r| >= {thr:.3f}, the smallest r among targets with p_fdr < {q:g} at this layer"
             if thr is not None and thr > 0 else "unthresholded (no target passes p_fdr < {q:g})".format(q=q))
    from . import surface_maps

    vals = ds["r"].sel(layer=layer)
    if surface_maps.is_surface(ds):
        html = surface_maps.surface_view_html(vals, ds.attrs, "left", threshold=thr if thr and thr > 0 else None)
        return html, f"Interactive viewer (nilearn view_surf), r at layer {layer}, left hemisphere, {label}."
    img = _volume(ds, vals.values)
    if img is None or ds.sizes["target"] > MAX_VIEWER_VOXELS:
        return None
    from nilearn import plotting

    view = plotting.view_img(_finite(img), threshold=thr if thr is not None and thr > 0 else 1e-6,
                             title=f"r, layer {layer}", symmetric_cmap=True, bg_img="MNI152", width_view=800)
    return view.get_standalone(), f"Interactive viewer (nilearn view_img), r at layer {layer}, {label}."


def positions_mm(ds: xr.Dataset) -> np.ndarray | None:
    """Sensor positions (n_targets, 3) in mm (electrodes.tsv values in m are scaled), or None."""
    if not all(c in ds.coords for c in ("x", "y", "z")):
        return None
    pos = np.stack([np.asarray(ds[c].values, dtype=float) for c in ("x", "y", "z")], 1)
    if not np.isfinite(pos).any():
        return None
    if np.nanmax(np.abs(pos)) < 1.0:  # metres
        pos = pos * 1000.0
    return pos


def electrode_maps(ds: xr.Dataset, layer: int, q: float) -> list:
    """nilearn ``plot_markers`` of r at ``layer`` and of each channel's preferred layer, at the sensor positions."""
    pos = positions_mm(ds)
    if pos is None or "r" not in ds:
        return []
    from nilearn import plotting

    ok = np.isfinite(pos).all(1)
    frame = ds.attrs.get("coord_frame", "unknown")
    r = ds["r"].sel(layer=layer).values[ok]
    vmax = float(np.nanmax(np.abs(r))) if np.isfinite(r).any() else 1.0
    fig = plt().figure(figsize=(8, 2.8))
    plotting.plot_markers(np.nan_to_num(r), pos[ok], node_cmap="RdBu_r", node_vmin=-vmax, node_vmax=vmax, figure=fig,
                          display_mode="lzry", title=f"r, layer {layer}", node_size=40)
    out = [(fig, f"Electrodes ({int(ok.sum())} with positions, {frame} coordinates from electrodes.tsv): r at layer "
                 f"{layer}, unthresholded.")]
    pref = preference(ds, q)[ok]
    sig = np.isfinite(pref)
    if sig.any():
        layers = [int(l) for l in ds["layer"].values]
        cmap, norm = layer_cmap(layers)
        rank = np.searchsorted(np.asarray(layers), pref[sig]).astype(float)
        fig2 = plt().figure(figsize=(8, 2.8))
        plotting.plot_markers(rank, pos[ok][sig], node_cmap=cmap, node_vmin=-0.5, node_vmax=len(layers) - 0.5,
                              figure=fig2, display_mode="lzry", title="preferred layer", node_size=40, colorbar=False)
        cb = fig2.colorbar(plt().cm.ScalarMappable(norm=norm, cmap=cmap), ax=fig2.axes, fraction=0.03, ticks=layers)
        cb.set_label("layer")
        out.append((fig2, f"Electrodes: the best layer of the {int(sig.sum())} channels with p_fdr < {q:g} at some "
                          "layer, one colour per layer."))
    return out
