"""Figures of a participant result: layer curves with the answer's uncertainty, maps, electrodes.

Each function returns ``(matplotlib figure, caption)`` or None when the result has
nothing to show for it; the caption names what is plotted, the interval and the
threshold. The layer curves mark the best layer and its credible set
(:mod:`.uncertainty`); maps are nilearn's (glass brain and slices for volumes,
``surface_maps.surface_figure`` for surfaces, ``plot_markers`` for electrodes).
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import xarray as xr

from . import ceiling, outputs
from .report_html import plt
from .summaries import best_layer, settings_of

#: Most targets drawn as separate per-target layer profiles (ROIs, channels).
MAX_PROFILES = 48


def _set_text(layers, mask) -> str:
    return "{" + ", ".join(str(int(l)) for l, m in zip(layers, mask) if m) + "}"


def answer(ds: xr.Dataset) -> dict | None:
    """The layer choice for the mean r over targets: best layer, its p_best, the credible set, per summary."""
    if "summary_r" not in ds:
        return None
    meta = json.loads(ds.attrs.get("layer_uncertainty", "{}") or "{}")
    out = {}
    layers = ds["layer"].values
    for s in ds["summary"].values.tolist():
        r = ds["summary_r"].sel(summary=s).values
        if not np.isfinite(r).any():
            continue
        i = int(np.nanargmax(r))
        cs = ds["summary_in_credible_set"].sel(summary=s).values.astype(bool)
        out[s] = {"best": int(layers[i]), "p_best": float(ds["summary_p_best"].sel(summary=s).values[i]),
                  "set": [int(l) for l, m in zip(layers, cs) if m], "level": meta.get("level"),
                  "n_targets": int(ds["summary_n_targets"].sel(summary=s)) if "summary_n_targets" in ds else None,
                  "window": int(ds["summary_context_words"].sel(summary=s)) if "summary_context_words" in ds else None}
    return out


def _mark_answer(ax, layers, r, cs, color) -> None:
    i = int(np.nanargmax(r))
    ax.plot([layers[i]], [r[i]], marker="*", ms=16, color=color, mec="k", zorder=5, ls="none")
    for l, m in zip(layers, cs):
        if m:
            ax.axvspan(l - 0.5, l + 0.5, color=color, alpha=0.12, lw=0)


def layer_curve(ds: xr.Dataset, q: float):
    """Mean r over all (and significant) targets per layer, bootstrap CI, best layer starred, credible set shaded."""
    if "r" not in ds:
        return None
    fig, ax = plt().subplots(figsize=(6, 3.6))
    layers = ds["layer"].values.astype(float)
    meta = json.loads(ds.attrs.get("layer_uncertainty", "{}") or "{}")
    parts = []
    if "summary_r" in ds:
        names = {"all": "all targets", "significant": f"targets with p_fdr < {q:g} at some layer"}
        for k, s in enumerate(ds["summary"].values.tolist()):
            r = ds["summary_r"].sel(summary=s).values
            lo, hi = ds["summary_r_ci_low"].sel(summary=s).values, ds["summary_r_ci_high"].sel(summary=s).values
            n = int(ds["summary_n_targets"].sel(summary=s)) if "summary_n_targets" in ds else ds.sizes["target"]
            color = f"C{k}"
            ax.plot(layers, r, marker="o", color=color, label=f"{names.get(s, s)} (n={n})")
            ax.fill_between(layers, lo, hi, color=color, alpha=0.2)
            if np.isfinite(r).any():
                cs = ds["summary_in_credible_set"].sel(summary=s).values.astype(bool)
                _mark_answer(ax, layers, r, cs, color)
                parts.append(f"{names.get(s, s)}: best layer {int(layers[int(np.nanargmax(r))])}, "
                             f"{int(round(100 * meta.get('level', 0.9)))}% credible set {_set_text(layers, cs)}")
        interval = (f"{int(round(100 * meta.get('ci', 0.95)))}% bootstrap interval ({meta.get('n_bootstrap')} "
                    "block-bootstrap draws of the held-out predictions)")
    else:
        x = ds["r"].transpose("layer", ...).values.reshape(ds.sizes["layer"], -1)
        m = np.nanmean(x, 1)
        sem = np.nanstd(x, 1, ddof=1) / np.sqrt(max(1, x.shape[1]))
        ax.plot(layers, m, marker="o", label="all targets")
        ax.fill_between(layers, m - 1.96 * sem, m + 1.96 * sem, alpha=0.2)
        interval = "95% CI over targets (no bootstrap of the layer choice in this result)"
    if "baseline_r" in ds:
        ax.axhline(float(np.nanmean(ds["baseline_r"].values)), color="gray", ls="--", label="baseline only")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("layer")
    ax.set_xticks(layers)
    ax.set_ylabel("mean r over targets")
    ax.legend(fontsize=7)
    caption = f"Layer profile: mean held-out r per layer, {interval}."
    if parts:
        caption += (" Star: best layer; shaded: the layers not distinguishable from the best (credible set). "
                    + "; ".join(parts) + ".")
    return fig, caption


def p_best_figure(ds: xr.Dataset):
    """Bootstrap probability that each layer is the best, per summary."""
    if "summary_p_best" not in ds:
        return None
    fig, ax = plt().subplots(figsize=(6, 2.6))
    layers = ds["layer"].values.astype(float)
    sums = ds["summary"].values.tolist()
    width = 0.8 / max(1, len(sums))
    for k, s in enumerate(sums):
        ax.bar(layers + (k - (len(sums) - 1) / 2) * width, ds["summary_p_best"].sel(summary=s).values, width=width,
               label=str(s), color=f"C{k}")
    ax.set_xlabel("layer")
    ax.set_xticks(layers)
    ax.set_ylabel("p(best)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return fig, "Probability that each layer is the best (share of bootstrap draws), for the mean r over all and over significant targets."


def target_profiles(ds: xr.Dataset, q: float, kind: str):
    """One small layer profile per ROI / channel (at most :data:`MAX_PROFILES`), bootstrap CI, best and set marked."""
    if "r" not in ds or ds.sizes["target"] > MAX_PROFILES or ds.sizes["target"] < 1:
        return None
    n = ds.sizes["target"]
    cols = min(6, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt().subplots(rows, cols, figsize=(2.1 * cols, 1.7 * rows), sharex=True, sharey=True, squeeze=False)
    layers = ds["layer"].values.astype(float)
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        t = ds.isel(target=k)
        r = t["r"].values
        ax.plot(layers, r, marker="o", ms=3)
        if "r_ci_low" in t:
            ax.fill_between(layers, t["r_ci_low"].values, t["r_ci_high"].values, alpha=0.25)
        if "in_credible_set" in t and np.isfinite(r).any():
            _mark_answer(ax, layers, r, t["in_credible_set"].values.astype(bool), "C1")
        sig = "p_fdr" in t and bool((t["p_fdr"].values < q).any())
        ax.set_title(f"{t['target'].values}{' *' if sig else ''}", fontsize=7)
        ax.axhline(0, color="k", lw=0.4)
        ax.set_xticks(layers)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    caption = (f"Per-{kind} layer profiles: held-out r with its 95% bootstrap interval; star: the {kind}'s best layer, "
               f"shaded: its credible set; * after the name: p_fdr < {q:g} at some layer.")
    return fig, caption


def ceiling_curve(ds: xr.Dataset):
    """Ceiling-normalised layer profile (r / noise ceiling), mean over targets with a positive ceiling."""
    if "r_norm" not in ds:
        return None
    fig, ax = plt().subplots(figsize=(6, 3.2))
    x = ds["r_norm"].transpose("layer", "target").values
    m = np.nanmean(x, 1)
    n = np.sum(np.isfinite(x), 1)
    with warnings.catch_warnings():  # one target: no spread, the band is left out (NaN)
        warnings.simplefilter("ignore", RuntimeWarning)
        sem = np.nanstd(x, 1, ddof=1) / np.sqrt(np.maximum(n, 1))
    layers = ds["layer"].values.astype(float)
    ax.plot(layers, m, marker="o")
    ax.fill_between(layers, m - 1.96 * sem, m + 1.96 * sem, alpha=0.2)
    ax.set_xlabel("layer")
    ax.set_xticks(layers)
    ax.set_ylabel("r / ceiling")
    names = {"loo_isc": "leave-one-out inter-subject correlation", "split_half": "split-half across runs"}
    named = ds.attrs.get("ceiling_kind") or ((settings_of(ds).get("statistics") or {}).get("ceiling"))
    kind = f"noise ceiling ({names.get(named, named)})" if named else "noise ceiling"
    c = ds["ceiling"].values
    caption = (f"Ceiling-normalised layer profile: r / {kind} per target (targets with a positive ceiling, "
               f"n={int(np.sum(c > 0))}; median ceiling {np.nanmedian(c):.3f}), mean and 95% CI over targets. "
               + (ceiling.describe(ds.attrs) if ds.attrs.get("ceiling_kind") in ceiling.CEILINGS else ""))
    return fig, caption


def preference(ds: xr.Dataset, q: float) -> np.ndarray:
    """Best layer (by r) of each target with p_fdr < q at some layer; NaN for the others. (n_targets,)"""
    r = ds["r"].transpose("layer", "target").values
    sig = (ds["p_fdr"].transpose("layer", "target").values < q).any(0) if "p_fdr" in ds else np.ones(r.shape[1], bool)
    best = np.asarray(ds["layer"].values)[np.argmax(np.where(np.isfinite(r), r, -np.inf), 0)].astype(float)
    return np.where(sig & np.isfinite(r).any(0), best, np.nan)


def layer_cmap(layers):
    """A discrete colour map with one colour per layer."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    cm = plt().get_cmap("viridis", max(2, len(layers)))
    cmap = ListedColormap([cm(i) for i in range(len(layers))])
    bounds = np.concatenate([[layers[0] - 0.5], np.asarray(layers[:-1]) + 0.5, [layers[-1] + 0.5]]) if len(layers) else [0, 1]
    return cmap, BoundaryNorm(bounds, cmap.N)
