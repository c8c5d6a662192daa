"""Figures and self-contained HTML reports (matplotlib PNGs embedded as base64).

``sub-<s>.html``: per model, the layer profile (mean r over targets, 95% CI over
targets), a glass brain of the best layer (volumetric fMRI) or bars per target
(ROIs, channels), RSA per layer, the settings and any warnings.
``group.html``: group layer profiles with bootstrap CIs over participants, group
maps or bars, LM-vs-baseline differences and the settings, all read from disk (the
group tables are never recomputed here). Significance marks use the study's
``statistics.q``, read from the sidecars' settings.
"""
from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import MissingDataError
from . import outputs
from .summaries import best_layer, fdr_q, settings_of, warnings_of

_GROUP_NAME = re.compile(r"task-(?P<task>[^_]+)_desc-(?P<model>[^_]+)_scores\.tsv")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _ci_over(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    n = np.sum(np.isfinite(x), axis=axis)
    sem = np.nanstd(x, axis=axis, ddof=1) / np.sqrt(np.maximum(n, 1)) if x.shape[axis] > 1 else np.zeros(x.shape[1 - axis])
    m = np.nanmean(x, axis=axis)
    return m - 1.96 * sem, m + 1.96 * sem


def plot_layers(dsets, ax=None, var: str = "r", label: str | None = None):
    """Layer profile of ``var`` (mean over targets, 95% CI over targets) for each result."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for ds in dsets:
        if var not in ds:
            continue
        da = ds[var]
        other = [d for d in da.dims if d != "layer"]
        x = da.transpose("layer", *other).values.reshape(da.sizes["layer"], -1)
        m = np.nanmean(x, axis=1)
        lo, hi = _ci_over(x, axis=1)
        layers = ds["layer"].values
        ax.plot(layers, m, marker="o", label=label or f"sub-{ds.attrs.get('subject', '?')} {ds.attrs.get('model', '')}")
        ax.fill_between(layers, lo, hi, alpha=0.2)
    ax.set_xlabel("layer")
    ax.set_ylabel(f"{var} (mean over targets)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    return ax


def _glass_brain(img, title: str, vmax: float, ax=None):
    """nilearn glass brain of one image (NaN shown as 0)."""
    from nilearn import plotting

    plt = _plt()
    img = type(img)(np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32)), img.affine)
    fig = ax.figure if ax is not None else plt.figure(figsize=(7, 2.6))
    return plotting.plot_glass_brain(img, figure=fig, axes=ax, colorbar=True, plot_abs=False, title=title,
                                     vmax=float(vmax) if np.isfinite(vmax) and vmax > 0 else 1.0)


def _bars(names, vals, ylabel: str, ax=None):
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 0.35 * len(vals)), 3))
    ax.bar(range(len(vals)), vals)
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels([str(n) for n in names], rotation=90 if len(names) > 8 else 0, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="k", lw=0.5)
    return ax


def plot_map(ds, layer: int | None = None, ax=None, var: str = "r"):
    """Glass brain of one layer (volumetric fMRI) or a bar per target."""
    layer = best_layer(ds, var) if layer is None else int(layer)
    vals = ds[var].sel(layer=layer).values
    geo = outputs.result_geometry(ds)
    if geo is not None:
        img = outputs.to_volume(vals, outputs.flat_index(ds), geo[1], geo[0])
        return _glass_brain(img, f"{var}, layer {layer}", np.nanmax(np.abs(vals)), ax=ax)
    return _bars(ds["target"].values, vals, f"{var}, layer {layer}", ax=ax)


def _figure_of(disp):
    return disp.frame_axes.figure if hasattr(disp, "frame_axes") else disp.figure


def _page(title: str, body: list[str]) -> str:
    css = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
           "pre{background:#f6f6f6;padding:8px;font-size:11px;overflow:auto}.warn{color:#a60}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{css}</style></head><body><h1>{html.escape(title)}</h1>" + "\n".join(body) + "</body></html>\n")


def _img(b64: str, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'/>"


def _settings_block(settings: dict) -> str:
    return ("<details><summary>settings</summary><pre>" + html.escape(json.dumps(settings, indent=1, sort_keys=True))
            + "</pre></details>")


def _warnings_block(warns) -> str:
    if not warns:
        return "<p>No warnings.</p>"
    return "<ul class='warn'>" + "".join(f"<li>{html.escape(w)}</li>" for w in warns) + "</ul>"


def _encoding_section(ds, q: float) -> list[str]:
    """Layer profile, map and a one-line summary of one result's encoding scores."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    plot_layers([ds], ax=ax, label="all targets")
    sig = np.asarray((ds["p_fdr"] < q).any("layer").values) if "p_fdr" in ds else np.zeros(0, bool)
    if 0 < sig.sum() < sig.size:
        plot_layers([ds.isel(target=np.flatnonzero(sig))], ax=ax,
                    label=f"targets with p_fdr < {q:g} at some layer (n={int(sig.sum())})")
    if "baseline_r" in ds:
        ax.axhline(float(np.nanmean(ds["baseline_r"].values)), color="gray", ls="--", label="baseline")
        ax.legend(fontsize=7)
    body = [_img(_png(fig), "layer profile")]
    bl = best_layer(ds)
    body.append(_img(_png(_figure_of(plot_map(ds, bl))), "map"))
    n_sig = int(np.nansum(ds["p_fdr"].sel(layer=bl).values < q)) if "p_fdr" in ds else 0
    body.append(f"<p>Best layer (mean r over targets): {bl}; max r = {float(np.nanmax(ds['r'].values)):.3f}; "
                f"targets with p_fdr &lt; {q:g} at that layer: {n_sig} of {ds.sizes['target']}.</p>")
    return body


def participant_report(dsets, path) -> Path:
    """One participant's HTML report (one section per model); FDR level ``statistics.q``."""
    plt = _plt()
    subj = dsets[0].attrs.get("subject", "?")
    body = []
    for ds in dsets:
        settings = settings_of(ds)
        body.append(f"<h2>model {html.escape(ds.attrs.get('model', ''))}, task {html.escape(ds.attrs.get('task', ''))}</h2>")
        if "r" in ds:
            body += _encoding_section(ds, fdr_q(settings))
        if "rsa" in ds:
            fig, ax = plt.subplots(figsize=(5, 3))
            for reg in ds["region"].values:
                ax.plot(ds["layer"].values, ds["rsa"].sel(region=reg).values, marker="o", label=str(reg))
            ax.set_xlabel("layer")
            ax.set_ylabel("RSA")
            ax.legend(fontsize=7)
            body.append(_img(_png(fig), "rsa"))
        body.append("<h3>Warnings</h3>" + _warnings_block(warnings_of(ds)))
        body.append(_settings_block(settings))
    return outputs.write_report(path, _page(f"brainalign: sub-{subj}", body))


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


def read_group_tables(out_dir) -> dict:
    """(task, model) -> (group table, its sidecar) for every group table on disk."""
    found = {}
    for tsv in sorted((Path(out_dir) / "group").glob("task-*_desc-*_scores.tsv")):
        m = _GROUP_NAME.fullmatch(tsv.name)
        side = tsv.with_suffix(".json")
        if m is None or not side.is_file():
            continue
        table = pd.read_csv(tsv, sep="\t", dtype={"target": str}, keep_default_na=False, na_values=["n/a"])
        found[(m["task"], m["model"])] = (table, json.loads(side.read_text()))
    return found


def _profile_from_table(enc: pd.DataFrame, metric: str) -> pd.Series:
    """Mean over targets of one group metric, per layer."""
    sub = enc[enc.metric == metric]
    return sub.groupby(sub["layer"].astype(int))["value"].mean()


def _group_profile(dsets, enc: pd.DataFrame, q: float) -> str:
    """Layer curves: mean over targets, 95% CI over participants; also for the group's FDR-significant targets."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for metric in ("mean_r", "mean_delta_r"):
        if not len(enc[enc.metric == metric]):
            continue
        name = metric.replace("mean_", "")
        if dsets:
            per_sub = xr.concat([(d["r"] - d["baseline_r"]) if metric == "mean_delta_r" else d["r"] for d in dsets],
                                "subject", join="outer")
            x = per_sub.mean("target", skipna=True).values  # (subject, layer)
            lo, hi = _ci_over(x, 0)
            ax.plot(per_sub["layer"].values, np.nanmean(x, 0), marker="o", label=f"{name}, all targets")
            ax.fill_between(per_sub["layer"].values, lo, hi, alpha=0.2)
        else:
            prof = _profile_from_table(enc, metric)
            ax.plot(prof.index, prof.values, marker="o", label=f"{name}, all targets")
        pf = enc[enc.metric == ("p_fdr" if metric == "mean_r" else "p_fdr_delta_r")]
        sig = sorted(set(pf[pf["value"] < q]["target"]))
        if dsets and 0 < len(sig) < per_sub.sizes["target"]:
            keep = np.isin(per_sub["target"].values.astype(str), sig)
            xs = per_sub.isel(target=np.flatnonzero(keep)).mean("target", skipna=True).values
            lo2, hi2 = _ci_over(xs, 0)
            ax.plot(per_sub["layer"].values, np.nanmean(xs, 0), marker="s",
                    label=f"{name}, group p_fdr < {q:g} targets (n={len(sig)})")
            ax.fill_between(per_sub["layer"].values, lo2, hi2, alpha=0.2)
    ax.set_xlabel("layer")
    ax.set_ylabel("mean over targets, 95% CI over participants")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    return _img(_png(fig), "group layer profile")


def _group_targets(enc: pd.DataFrame, out: Path, task: str, model: str) -> list[str]:
    """The group map of the best layer (from disk) or bars per target, and per-target curves."""
    plt = _plt()
    prof = _profile_from_table(enc, "mean_r")
    if not len(prof) or not np.isfinite(prof.values).any():
        return []
    layer = int(prof.index[int(np.nanargmax(prof.values))])
    mean = enc[(enc.metric == "mean_r") & (enc.layer == layer)]
    gmap = outputs.map_path(out, None, task, model, layer, "r")
    if gmap.is_file():
        vmax = float(np.nanmax(np.abs(mean["value"].to_numpy())))
        return [_img(_png(_figure_of(_glass_brain(nib.load(gmap), f"group mean r, layer {layer}", vmax))), "group map")]
    body = [_img(_png(_bars(mean["target"], mean["value"].to_numpy(), f"group mean r, layer {layer}").figure), "group bars")]
    targets = list(dict.fromkeys(enc["target"]))
    if len(targets) <= 50:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        for tgt in targets:
            rows = {m: enc[(enc.metric == m) & (enc.target == tgt)].sort_values("layer") for m in ("mean_r", "ci_low", "ci_high")}
            v = rows["mean_r"]["value"].to_numpy()
            ax.errorbar(rows["mean_r"]["layer"].astype(float), v, marker="o", capsize=2, label=str(tgt),
                        yerr=[v - rows["ci_low"]["value"].to_numpy(), rows["ci_high"]["value"].to_numpy() - v])
        ax.set_xlabel("layer")
        ax.set_ylabel("group mean r (bootstrap CI)")
        ax.legend(fontsize=6, ncol=2)
        body.append(_img(_png(fig), "layer profiles per target"))
    return body


def group_report(out_dir) -> Path:
    """``group.html`` from what is on disk: the group tables, maps and sidecars, and the participants' results.

    Nothing is recomputed: the tables are read as written by the group level, the
    FDR level is the ``statistics.q`` in the group sidecar's settings.

    Raises
    ------
    MissingDataError
        When ``out_dir`` holds no group table.
    """
    out = Path(out_dir)
    tables = read_group_tables(out)
    if not tables:
        raise MissingDataError(f"no group tables in {out / 'group'}: run the group level first (brainalign ... group)")
    by = _results_by(out, lambda d: (d.attrs["task"], d.attrs["model"]))
    body = []
    for (task, model), (table, side) in sorted(tables.items()):
        settings = side.get("Settings") or {}
        dsets = by.get((task, model), [])
        q = fdr_q(settings)
        n = len(settings.get("participants") or dsets)
        body.append(f"<h2>model {html.escape(model)}, task {html.escape(task)}, {n} participants</h2>")
        enc = table[(table.method == "encoding") & (table.model == model)]
        if len(enc):
            body.append(_group_profile(dsets, enc, q))
            body += _group_targets(enc, out, task, model)
        warns = list(dict.fromkeys(w for d in dsets for w in (f"sub-{d.attrs['subject']}: {x}" for x in warnings_of(d))))
        body.append("<h3>Warnings</h3>" + _warnings_block(warns))
        body.append(_settings_block(settings))
    fails = out / "logs" / "failures.json"
    if fails.is_file():
        body.append("<h3>Failed participants</h3>" + _warnings_block([f"sub-{k}: {v}" for k, v in json.loads(fails.read_text()).items()]))
    return outputs.write_report(out / "group.html", _page("brainalign: group", body))


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
