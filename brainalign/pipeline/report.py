"""Self-contained HTML reports, one module shared by ``brainalign run``/``report`` and the service.

``sub-<s>.html`` (:func:`participant_report_html`): per model, the answer (best
layer, its bootstrap p_best and credible set, :mod:`.uncertainty`), the layer
curve with the best layer starred and the credible set shaded, p(best) per layer,
the ceiling-normalised curve when a ceiling is known, per-ROI / per-channel layer
profiles with intervals, the extra panels of :data:`PROFILE_PANELS`, the r map,
the layer-preference map, an interactive viewer (volume/surface) or the electrode
plots (iEEG/MEG), RSA per layer, the files read, the bad channels dropped, the
warnings and the settings.

``group.html`` (:func:`group_report_html`): the group's layer choice
(participants bootstrapped), the group maps (mean r unthresholded, the nilearn
permutation group test thresholded at FWE p < .05, the group preference map) or
per-target bars and curves, warnings, settings and failed participants, all read
from disk (the group tables are never recomputed). Significance marks use the
study's ``statistics.q`` from the sidecars' settings. Figures are in ``<figure>``
elements with a ``<figcaption>`` naming what is shown and its threshold.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import MissingDataError
from . import ceiling, outputs, report_figures, report_geometry, report_group, report_maps
from .report_html import figure, heading, items, page, para, plt, settings_block, table, viewer, warnings_block
from .summaries import best_layer, fdr_q, settings_of, warnings_of

_GROUP_NAME = re.compile(r"task-(?P<task>[^_]+)_desc-(?P<model>[^_]+)_scores\.tsv")

#: Extra layer-profile panels of the participant report: (title, function(ds, q) -> (figure, caption) or None).
#: Append to it (e.g. an intrinsic-dimension profile) to add a panel after the per-target profiles.
PROFILE_PANELS: list[tuple[str, Callable]] = [
    ("Ceiling-normalised profile", lambda ds, q: report_figures.ceiling_curve(ds)),
]

#: Most targets drawn as one bar each (ROIs, channels).
MAX_BARS = 150

#: Depth-bias caveat printed next to the answer (docs/validation.md, issue 14).
DEPTH_NOTE = ("Arg-max layer identification leans deeper when the analysis' context window or response model "
              "differs from the data's: on simulations with the default HRF alignment, a 32-word window against "
              "10-20-word generators erred deeper 80 times and shallower 51, and its 90% credible set held the planted "
              "layer in 0.84 of regions at the lowest SNR (0.92 with the generator's window). The brain's own window and response are unknown: read the "
              "credible set, not only the best layer, and let the window be chosen with the layer by held-out r "
              "(models' context_words: auto, the fMRI default, or a list of windows). Fitting ROI-mean signals leaned "
              "deeper than averaging voxel-wise r over the ROI in the same simulations (docs/validation.md, sections 3b and 3d).")


# ------------------------------------------------------------- public plot API
def plot_layers(dsets, ax=None, var: str = "r", label: str | None = None):
    """Layer profile of ``var`` (mean over targets, 95% CI over targets) for each result."""
    if ax is None:
        _, ax = plt().subplots(figsize=(5, 3.2))
    for ds in dsets:
        if var not in ds:
            continue
        da = ds[var]
        x = da.transpose("layer", ...).values.reshape(da.sizes["layer"], -1)
        m = np.nanmean(x, axis=1)
        n = np.sum(np.isfinite(x), axis=1)
        sem = np.nanstd(x, axis=1, ddof=1) / np.sqrt(np.maximum(n, 1)) if x.shape[1] > 1 else np.zeros_like(m)
        layers = ds["layer"].values
        ax.plot(layers, m, marker="o", label=label or f"sub-{ds.attrs.get('subject', '?')} {ds.attrs.get('model', '')}")
        ax.fill_between(layers, m - 1.96 * sem, m + 1.96 * sem, alpha=0.2)
    ax.set_xlabel("layer")
    ax.set_ylabel(f"{var} (mean over targets)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    return ax


def plot_map(ds, layer: int | None = None, ax=None, var: str = "r"):
    """Glass brain of one layer (volumetric fMRI) or a bar per target; returns the matplotlib figure's owner."""
    layer = best_layer(ds, var) if layer is None else int(layer)
    vals = ds[var].sel(layer=layer).values
    geo = outputs.result_geometry(ds)
    if geo is not None:
        from nilearn import plotting

        img = outputs.to_volume(vals, outputs.flat_index(ds), geo[1], geo[0])
        img = type(img)(np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32)), img.affine)
        vmax = float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 1.0
        fig = ax.figure if ax is not None else plt().figure(figsize=(7, 2.6))
        return plotting.plot_glass_brain(img, figure=fig, axes=ax, colorbar=True, plot_abs=False,
                                         title=f"{var}, layer {layer}", vmax=vmax if vmax > 0 else 1.0)
    return _bars(ds["target"].values, vals, f"{var}, layer {layer}", ax=ax)


def _bars(names, vals, ylabel: str, ax=None):
    if ax is None:
        _, ax = plt().subplots(figsize=(max(4, 0.35 * len(vals)), 3))
    ax.bar(range(len(vals)), vals)
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels([str(n) for n in names], rotation=90 if len(names) > 8 else 0, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="k", lw=0.5)
    return ax


# ------------------------------------------------------------ participant
def _target_kind(ds: xr.Dataset) -> str:
    if ds.attrs.get("modality", "fmri") in ("meg", "eeg", "ieeg", "erp"):
        return "channel"
    if "surface_geometry" in ds.attrs:
        return "vertex"
    return "voxel" if outputs.result_geometry(ds) is not None else "ROI"


def _window_text(ds: xr.Dataset, a: dict) -> str:
    """", at a context window of W words (chosen with the layer from ...)" for a window grid, else ""."""
    if a.get("window") is None or "window" not in ds.coords:
        return ""
    grid = ", ".join(str(int(w)) for w in ds["window"].values)
    return (f", at a context window of {a['window']} words (chosen with the layer from {grid}; the set and "
            f"p_best count every window)")


def _answer(ds: xr.Dataset, q: float) -> list[str]:
    bl = best_layer(ds)
    n_sig = int(np.nansum(ds["p_fdr"].sel(layer=bl).values < q)) if "p_fdr" in ds else 0
    out = [para(f"Best layer (mean r over targets): {bl}; max r = {float(np.nanmax(ds['r'].values)):.3f}; "
                f"targets with p_fdr < {q:g} at that layer: {n_sig} of {ds.sizes['target']}.", "answer")]
    for name, a in (report_figures.answer(ds) or {}).items():
        what = "all targets" if name == "all" else f"targets with p_fdr < {q:g} at some layer"
        out.append(para(f"Mean r over {what} (n={a['n_targets']}): best layer {a['best']}, p_best = {a['p_best']:.2f}; "
                        f"{int(round(100 * (a['level'] or 0.9)))}% credible set (layers not distinguishable from the "
                        f"best): {{{', '.join(map(str, a['set']))}}}{_window_text(ds, a)}.", "answer"))
    out.append(para(DEPTH_NOTE))
    return out


def _fig(pair, kind: str) -> list[str]:
    return [] if pair is None else [figure(pair[0], pair[1], kind)]


def _encoding_section(ds: xr.Dataset, q: float) -> list[str]:
    """The answer, the layer curves and panels, and the maps of one result's encoding scores."""
    body = _answer(ds, q)
    body += _fig(report_figures.layer_curve(ds, q), "layer-profile")
    body += _fig(report_figures.p_best_figure(ds), "p-best")
    kind = _target_kind(ds)
    if kind != "voxel":
        body += _fig(report_figures.target_profiles(ds, q, kind), "target-profiles")
    for title, fn in PROFILE_PANELS:
        pair = fn(ds, q)
        body += [] if pair is None else [figure(pair[0], f"{title}. {pair[1]}", "panel")]
    if "r_norm" not in ds:
        body.append(para(ceiling.describe(ds.attrs)))  # the reason recorded by the ceiling step
    bl = best_layer(ds)
    maps = report_maps.r_map(ds, bl, q)
    if maps:
        body += _fig(maps, "r-map")
    elif ds.sizes["target"] <= MAX_BARS:
        body.append(figure(_bars(ds["target"].values, ds["r"].sel(layer=bl).values, f"r, layer {bl}").figure,
                           f"r per {kind} at layer {bl}, unthresholded.", "r-bars"))
    body += _fig(report_maps.preference_map(ds, q) if kind == "voxel" or "surface_geometry" in ds.attrs else None,
                 "preference-map")
    view = report_maps.viewer(ds, bl, q) if kind == "voxel" or "surface_geometry" in ds.attrs else None
    body += [] if view is None else [viewer(view[0], view[1])]
    for fig, cap in report_maps.electrode_maps(ds, bl, q):
        body.append(figure(fig, cap, "electrodes"))
    return body


def _rsa_figure(ds: xr.Dataset) -> str:
    fig, ax = plt().subplots(figsize=(5, 3))
    for reg in ds["region"].values:
        ax.plot(ds["layer"].values, ds["rsa"].sel(region=reg).values, marker="o", label=str(reg))
    ax.set_xlabel("layer")
    ax.set_xticks(ds["layer"].values)
    ax.set_ylabel("RSA")
    ax.legend(fontsize=7)
    return figure(fig, f"RSA per layer ({ds.attrs.get('rsa_metric', 'spearman')} between RDMs), per region.", "rsa")


def _data_block(ds: xr.Dataset) -> list[str]:
    """Files read, bad channels dropped, the layer-uncertainty method."""
    sources = json.loads(ds.attrs.get("sources", "[]") or "[]")
    bads = json.loads(ds.attrs.get("bad_channels", "[]") or "[]")
    out = [heading("Data", 3), table([{"alignment": ds.attrs.get("alignment", ""), "modality": ds.attrs.get("modality", ""),
                                       "samples scored": ds.attrs.get("n_samples", ""), "targets": ds.sizes.get("target", 0),
                                       "session": ds.attrs.get("session", "") or "n/a"}], "scored data")]
    out.append("<details><summary>files read</summary>" + items(sources, "No input files recorded.") + "</details>")
    if ds.attrs.get("modality") in ("meg", "eeg", "ieeg"):
        out.append(para("Bad channels dropped: " + (", ".join(bads) if bads else "none") + "."))
    meta = ds.attrs.get("layer_uncertainty")
    if meta:
        out.append("<details><summary>uncertainty of the layer choice</summary><pre>"
                   + json.dumps(json.loads(meta), indent=1) + "</pre></details>")
    return out


def _quiet_plots(fn):
    """Run ``fn`` with nilearn/matplotlib drawing notices (empty masks, NaN as 0) silenced: they are not about the data."""
    def run(*args, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fn(*args, **kw)
    run.__doc__, run.__name__ = fn.__doc__, fn.__name__
    return run


@_quiet_plots
def participant_report_html(dsets) -> str:
    """One participant's report as an HTML string (one section per model); FDR level ``statistics.q``."""
    subj = dsets[0].attrs.get("subject", "?")
    body = []
    for ds in dsets:
        settings = settings_of(ds)
        body.append(heading(f"model {ds.attrs.get('model', '')}, task {ds.attrs.get('task', '')}"))
        if "r" in ds:
            body += _encoding_section(ds, fdr_q(settings))
        if "rsa" in ds:
            body.append(_rsa_figure(ds))
        body += report_geometry.figures(ds)  # scoring.methods geometry: ID and metric profiles
        body += _data_block(ds)
        body.append(warnings_block(warnings_of(ds)))
        body.append(settings_block(settings))
    return page(f"brainalign: sub-{subj}", body)


def participant_report(dsets, path) -> Path:
    """Write one participant's HTML report to ``path``."""
    return outputs.write_report(path, participant_report_html(dsets))


def _results_by(out: Path, key) -> dict:
    by: dict = {}
    for f in outputs.find_results(out):
        ds = outputs.read_result(f)
        by.setdefault(key(ds), []).append(ds)
    return {k: sorted(v, key=lambda d: d.attrs["subject"]) for k, v in by.items()}


def write_participant_reports(out_dir, subjects=None) -> list[Path]:
    """``sub-<s>.html`` for every participant with results in ``out_dir`` (or those in ``subjects``)."""
    out = Path(out_dir)
    by = _results_by(out, lambda d: d.attrs["subject"])
    return [participant_report(by[s], out / f"sub-{s}.html") for s in sorted(by) if subjects is None or s in subjects]


# ------------------------------------------------------------------ group
def read_group_tables(out_dir) -> dict:
    """(task, model) -> (group table, its sidecar) for every group table on disk."""
    found = {}
    for tsv in sorted((Path(out_dir) / "group").glob("task-*_desc-*_scores.tsv")):
        m = _GROUP_NAME.fullmatch(tsv.name)
        side = tsv.with_suffix(".json")
        if m is None or not side.is_file():
            continue
        tab = pd.read_csv(tsv, sep="\t", dtype={"target": str}, keep_default_na=False, na_values=["n/a"])
        found[(m["task"], m["model"])] = (tab, json.loads(side.read_text()))
    return found


def _group_targets(enc: pd.DataFrame, out: Path, task: str, model: str, dsets, q: float) -> list[str]:
    """Group maps (mean r, group test, preference) or bars per target, and per-target curves."""
    prof = report_group._profile_from_table(enc, "mean_r")
    if not len(prof) or not np.isfinite(prof.values).any():
        return []
    layer = int(prof.index[int(np.nanargmax(prof.values))])
    mean = enc[(enc.metric == "mean_r") & (enc.layer == layer)]
    gmap = outputs.map_path(out, None, task, model, layer, "r")
    if gmap.is_file():
        from nilearn import plotting

        img = nib.load(gmap)
        vmax = float(np.nanmax(np.abs(mean["value"].to_numpy())))
        fig = plt().figure(figsize=(7, 2.6))
        plotting.plot_glass_brain(type(img)(np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32)), img.affine),
                                  figure=fig, colorbar=True, plot_abs=False, title=f"group mean r, layer {layer}",
                                  vmax=vmax if vmax > 0 else 1.0)
        body = [figure(fig, f"Group mean r at layer {layer}, unthresholded (colour scale ±{vmax:.3f}).", "group-map")]
        body += report_group.group_test_section(out, task, model, layer)  # written by the group step
        body += _fig(report_group.group_preference_map(dsets, enc, q), "group-preference-map")
        return body
    from . import surface_maps

    if dsets and surface_maps.is_surface(dsets[0]):
        stat = pd.Series(mean["value"].to_numpy(dtype=float), index=mean["target"].to_numpy())
        return [figure(surface_maps.surface_figure(stat, dsets[0].attrs, title=f"group mean r, layer {layer}"),
                       f"Group mean r at layer {layer} on the surface, unthresholded.", "group-map")]
    if len(mean) > MAX_BARS:
        return [para(f"{len(mean)} targets: too many for bars; the group table has every value.")]
    body = [figure(_bars(mean["target"], mean["value"].to_numpy(), f"group mean r, layer {layer}").figure,
                   f"Group mean r per target at layer {layer}, unthresholded.", "group-bars")]
    targets = list(dict.fromkeys(enc["target"]))
    if len(targets) <= 50:
        fig, ax = plt().subplots(figsize=(6, 3.4))
        for tgt in targets:
            rows = {m: enc[(enc.metric == m) & (enc.target == tgt)].sort_values("layer") for m in ("mean_r", "ci_low", "ci_high")}
            v = rows["mean_r"]["value"].to_numpy()
            ax.errorbar(rows["mean_r"]["layer"].astype(float), v, marker="o", capsize=2, label=str(tgt),
                        yerr=[v - rows["ci_low"]["value"].to_numpy(), rows["ci_high"]["value"].to_numpy() - v])
        ax.set_xlabel("layer")
        ax.set_ylabel("group mean r (bootstrap CI)")
        ax.legend(fontsize=6, ncol=2)
        body.append(figure(fig, "Group layer profiles per target: mean r over participants with its bootstrap CI "
                                "(participants resampled, the group table's interval).", "group-target-profiles"))
    return body


@_quiet_plots
def group_report_html(out_dir) -> str:
    """``group.html`` as an HTML string, from what is on disk (see :func:`group_report`)."""
    out = Path(out_dir)
    tables = read_group_tables(out)
    if not tables:
        raise MissingDataError(f"no group tables in {out / 'group'}: run the group level first (brainalign ... group)")
    by = _results_by(out, lambda d: (d.attrs["task"], d.attrs["model"]))
    body = []
    for (task, model), (tab, side) in sorted(tables.items()):
        settings = side.get("Settings") or {}
        dsets = by.get((task, model), [])
        q = fdr_q(settings)
        stats = settings.get("statistics") or {}
        n = len(settings.get("participants") or dsets)
        body.append(heading(f"model {model}, task {task}, {n} participants"))
        body.append(para(f"Group statistics: one-sided {stats.get('group_test', 'wilcoxon')} over participants per layer x target, "
                         f"Benjamini-Hochberg FDR at q = {q:g} over layer x target."))
        enc = tab[(tab.method == "encoding") & (tab.model == model)]
        if len(enc):
            body += report_group.group_curve(out, task, model, enc)  # written by the group step
            body += _group_targets(enc, out, task, model, dsets, q)
        body += report_geometry.group_figures(tab, model)  # scoring.methods geometry
        warns = list(dict.fromkeys(w for d in dsets for w in (f"sub-{d.attrs['subject']}: {x}" for x in warnings_of(d))))
        body.append(warnings_block(warns))
        body.append(settings_block(settings))
    fails = out / "logs" / "failures.json"
    if fails.is_file():
        body.append(heading("Failed participants", 3)
                    + items([f"sub-{k}: {v}" for k, v in json.loads(fails.read_text()).items()], "none", "warn"))
    return page("brainalign: group", body)


def group_report(out_dir) -> Path:
    """``group.html`` from what is on disk: the group tables, maps and sidecars, and the participants' results.

    Nothing is recomputed: the tables are read as written by the group level, the
    FDR level is the ``statistics.q`` in the group sidecar's settings.

    Raises
    ------
    MissingDataError
        When ``out_dir`` holds no group table.
    """
    return outputs.write_report(Path(out_dir) / "group.html", group_report_html(out_dir))


def write_all_reports(out_dir) -> list[Path]:
    """Re-render every participant report and, when group tables exist, the group report, from disk.

    Only HTML is written: the scores and group tables are read, never recomputed.

    Raises
    ------
    MissingDataError
        When ``out_dir`` is not a folder or holds no participant results.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise MissingDataError(f"output folder {out} does not exist: pass the folder a study wrote its outputs to")
    if not outputs.find_results(out):
        raise MissingDataError(f"no participant results (*_result.nc) in {out}: run the participant level first")
    paths = write_participant_reports(out)
    if read_group_tables(out):
        paths.append(group_report(out))
    return paths
