"""Figures and self-contained HTML reports (matplotlib PNGs embedded as base64).

``sub-<s>.html``: per model, the layer profile (mean r over targets, 95% CI over
targets), a glass brain of the best layer (volumetric fMRI) or bars per target
(ROIs, channels), RSA per layer, the settings and any warnings.
``group.html``: group layer profiles with bootstrap CIs over participants, group
maps or bars, LM-vs-baseline differences and the settings.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import xarray as xr

from . import outputs


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


def plot_map(ds, layer: int | None = None, ax=None, var: str = "r"):
    """Glass brain of one layer (volumetric fMRI) or a bar per target."""
    plt = _plt()
    from .result import best_layer

    layer = best_layer(ds, var) if layer is None else int(layer)
    vals = ds[var].sel(layer=layer).values
    geo = outputs.result_geometry(ds)
    if geo is not None:
        from nilearn import plotting

        img = outputs.to_volume(np.nan_to_num(vals), outputs.flat_index(ds), geo[1], geo[0])
        img = type(img)(np.nan_to_num(np.asarray(img.dataobj)), img.affine)
        fig = ax.figure if ax is not None else plt.figure(figsize=(7, 2.6))
        disp = plotting.plot_glass_brain(img, figure=fig, axes=ax, colorbar=True, plot_abs=False,
                                         title=f"{var}, layer {layer}", vmax=float(np.nanmax(np.abs(vals)) or 1))
        return disp
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 0.35 * len(vals)), 3))
    names = [str(t) for t in ds["target"].values]
    ax.bar(range(len(vals)), vals)
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(names, rotation=90 if len(names) > 8 else 0, fontsize=7)
    ax.set_ylabel(f"{var}, layer {layer}")
    ax.axhline(0, color="k", lw=0.5)
    return ax


def _page(title: str, body: list[str]) -> str:
    css = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
           "pre{background:#f6f6f6;padding:8px;font-size:11px;overflow:auto}.warn{color:#a60}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{css}</style></head><body><h1>{html.escape(title)}</h1>" + "\n".join(body) + "</body></html>\n")


def _img(b64: str, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'/>"


def _settings_block(ds) -> str:
    s = json.loads(ds.attrs.get("settings", "{}"))
    return "<details><summary>settings</summary><pre>" + html.escape(json.dumps(s, indent=1, sort_keys=True)) + "</pre></details>"


def _warnings_block(warns) -> str:
    if not warns:
        return "<p>No warnings.</p>"
    return "<ul class='warn'>" + "".join(f"<li>{html.escape(w)}</li>" for w in warns) + "</ul>"


def participant_report(dsets, path) -> Path:
    """One participant's HTML report (one section per model)."""
    plt = _plt()
    from .result import best_layer

    subj = dsets[0].attrs.get("subject", "?")
    body = []
    for ds in dsets:
        body.append(f"<h2>model {html.escape(ds.attrs.get('model', ''))}, task {html.escape(ds.attrs.get('task', ''))}</h2>")
        if "r" in ds:
            fig, ax = plt.subplots(figsize=(5, 3.2))
            plot_layers([ds], ax=ax, label="all targets")
            sig = np.asarray((ds["p_fdr"] < 0.05).any("layer").values)
            if 0 < sig.sum() < sig.size:
                plot_layers([ds.isel(target=np.flatnonzero(sig))], ax=ax,
                            label=f"targets with p_fdr < 0.05 at some layer (n={int(sig.sum())})")
            if "baseline_r" in ds:
                ax.axhline(float(np.nanmean(ds["baseline_r"].values)), color="gray", ls="--", label="baseline")
                ax.legend(fontsize=7)
            body.append(_img(_png(fig), "layer profile"))
            bl = best_layer(ds)
            disp = plot_map(ds, bl)
            fig = disp.frame_axes.figure if hasattr(disp, "frame_axes") else disp.figure
            body.append(_img(_png(fig), "map"))
            body.append(f"<p>Best layer (mean r over targets): {bl}; max r = {float(np.nanmax(ds['r'].values)):.3f}; "
                        f"targets with p_fdr &lt; 0.05 at that layer: {int(np.nansum(ds['p_fdr'].sel(layer=bl).values < 0.05))}"
                        f" of {ds.sizes['target']}.</p>")
        if "rsa" in ds:
            fig, ax = plt.subplots(figsize=(5, 3))
            for reg in ds["region"].values:
                ax.plot(ds["layer"].values, ds["rsa"].sel(region=reg).values, marker="o", label=str(reg))
            ax.set_xlabel("layer")
            ax.set_ylabel("RSA")
            ax.legend(fontsize=7)
            body.append(_img(_png(fig), "rsa"))
        body.append("<h3>Warnings</h3>" + _warnings_block(json.loads(ds.attrs.get("warnings", "[]"))))
        body.append(_settings_block(ds))
    return outputs.write_report(path, _page(f"brainalign: sub-{subj}", body))


def write_participant_reports(out_dir, subjects=None) -> list[Path]:
    out = Path(out_dir)
    by: dict[str, list] = {}
    for f in outputs.find_results(out):
        ds = outputs.read_result(f)
        by.setdefault(ds.attrs["subject"], []).append(ds)
    paths = []
    for s in sorted(by):
        if subjects is not None and s not in subjects:
            continue
        paths.append(participant_report(by[s], out / f"sub-{s}.html"))
    return paths


def group_report(out_dir, by: dict, tables: dict) -> Path:
    """``group.html``: layer curves with CIs over participants, maps or bars, baseline comparison."""
    plt = _plt()
    body = []
    for (task, model), dsets in sorted(by.items()):
        t = tables[(task, model)]
        body.append(f"<h2>model {html.escape(model)}, task {html.escape(task)}, {len(dsets)} participants</h2>")
        enc = t[(t.method == "encoding") & (t.model == model)]
        if len(enc):
            fig, ax = plt.subplots(figsize=(5.5, 3.4))
            prof = []
            for metric in ("mean_r", "mean_delta_r"):
                sub = enc[enc.metric == metric]
                if not len(sub):
                    continue
                per_sub = xr.concat([(d["r"] - d["baseline_r"]) if metric == "mean_delta_r" else d["r"] for d in dsets], "subject", join="outer")
                x = per_sub.mean("target", skipna=True).values  # (subject, layer)
                m = np.nanmean(x, 0)
                lo, hi = _ci_over(x, 0)
                ax.plot(per_sub["layer"].values, m, marker="o", label=metric.replace("mean_", "") + ", all targets")
                ax.fill_between(per_sub["layer"].values, lo, hi, alpha=0.2)
                prof.append(metric)
                pf = enc[enc.metric == ("p_fdr" if metric == "mean_r" else "p_fdr_delta_r")]
                sig = sorted(set(pf[pf["value"] < 0.05]["target"]))
                if 0 < len(sig) < per_sub.sizes["target"]:
                    keep = np.isin(per_sub["target"].values.astype(str), sig)
                    xs = per_sub.isel(target=np.flatnonzero(keep)).mean("target", skipna=True).values
                    lo2, hi2 = _ci_over(xs, 0)
                    ax.plot(per_sub["layer"].values, np.nanmean(xs, 0), marker="s",
                            label=f"{metric.replace('mean_', '')}, group p_fdr < 0.05 targets (n={len(sig)})")
                    ax.fill_between(per_sub["layer"].values, lo2, hi2, alpha=0.2)
            ax.set_xlabel("layer")
            ax.set_ylabel("mean over targets, 95% CI over participants")
            ax.axhline(0, color="k", lw=0.5)
            ax.legend(fontsize=7)
            body.append(_img(_png(fig), "group layer profile"))
            mean = xr.concat([d["r"] for d in dsets], "subject", join="outer").mean("subject")
            gds = xr.Dataset({"r": mean}, attrs=dsets[0].attrs)
            if "voxel_flat" in dsets[0].coords:
                gds = gds.assign_coords(voxel_flat=("target", outputs.flat_index(dsets[0])))
            disp = plot_map(gds)
            fig = disp.frame_axes.figure if hasattr(disp, "frame_axes") else disp.figure
            body.append(_img(_png(fig), "group map"))
            if outputs.result_geometry(dsets[0]) is None and gds.sizes["target"] <= 50:
                fig, ax = plt.subplots(figsize=(6, 3.4))
                for tgt in gds["target"].values:
                    sub = enc[(enc.metric == "mean_r") & (enc.target == str(tgt))]
                    lo = enc[(enc.metric == "ci_low") & (enc.target == str(tgt))]["value"].to_numpy()
                    hi = enc[(enc.metric == "ci_high") & (enc.target == str(tgt))]["value"].to_numpy()
                    ax.errorbar(sub["layer"].astype(float), sub["value"], yerr=[sub["value"] - lo, hi - sub["value"]],
                                marker="o", capsize=2, label=str(tgt))
                ax.set_xlabel("layer")
                ax.set_ylabel("group mean r (bootstrap CI)")
                ax.legend(fontsize=6, ncol=2)
                body.append(_img(_png(fig), "layer profiles per target"))
        warns = sorted({w for d in dsets for w in json.loads(d.attrs.get("warnings", "[]"))})
        body.append("<h3>Warnings</h3>" + _warnings_block(warns))
        body.append(_settings_block(dsets[0]))
    fails = Path(out_dir) / "logs" / "failures.json"
    if fails.is_file():
        body.append("<h3>Failed participants</h3>" + _warnings_block([f"sub-{k}: {v}" for k, v in json.loads(fails.read_text()).items()]))
    return outputs.write_report(Path(out_dir) / "group.html", _page("brainalign: group", body))


def write_all_reports(out_dir) -> list[Path]:
    """Rewrite every participant report and, when group tables exist, the group report."""
    from .group import run_group

    paths = write_participant_reports(out_dir)
    if (Path(out_dir) / "group").is_dir():
        res = run_group(out_dir)
        if res.report:
            paths.append(res.report)
    return paths
