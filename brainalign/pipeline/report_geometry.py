"""Report figures of ``scoring.methods: [geometry]``: the intrinsic-dimension profile and the metric profiles.

Participant report: each layer's ID over the words (``geo_id``) with its peak
marked, and, per geometry metric (mutual k-NN, CKA, shape distance...), the layer
profile of every region (the mean over regions with their range when there are
more than :data:`MAX_LINES`). Group report: the same from the group table's
``mean_<metric>`` rows with their bootstrap intervals.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .geometry_scores import PAIR_METRICS
from .report_html import figure, heading, plt

MAX_LINES = 8
LABELS = {"mutual_knn": "mutual k-NN", "cycle_knn": "cycle k-NN", "cknna": "CKNNA", "cka": "CKA",
          "shape": "shape distance", "shape_cv": "shape distance (CV)"}


def _id_axes(ax, layers, values, lo=None, hi=None) -> int:
    layers = np.asarray(layers)
    ax.plot(layers, values, marker="o", color="tab:purple")
    if lo is not None:
        ax.fill_between(layers, lo, hi, color="tab:purple", alpha=0.2)
    peak = int(layers[int(np.nanargmax(values))])
    ax.axvline(peak, color="0.5", ls=":", lw=1)
    ax.set_xlabel("layer")
    ax.set_xticks(layers)
    ax.set_ylabel("intrinsic dimension")
    return peak


def id_figure(ds: xr.Dataset) -> str | None:
    """The participant's ID profile (``geo_id``), or None."""
    if "geo_id" not in ds:
        return None
    fig, ax = plt().subplots(figsize=(5, 3))
    peak = _id_axes(ax, ds["layer"].values, ds["geo_id"].values)
    return figure(fig, f"Intrinsic dimension of each layer over the words of the stimulus "
                       f"({ds.attrs.get('id_method', 'scoring.geometry.id_method')}); peak at layer {peak} "
                       "(dotted). Compare with the encoding and RSA profiles above.", "id-profile")


def _metric_axes(ax, layers, values: np.ndarray, regions, metric: str) -> None:
    """values (layers, regions)."""
    if values.shape[1] <= MAX_LINES:
        for j, reg in enumerate(regions):
            ax.plot(layers, values[:, j], marker="o", label=str(reg))
        ax.legend(fontsize=6)
    else:
        with np.errstate(all="ignore"):
            ax.plot(layers, np.nanmean(values, 1), marker="o", label=f"mean of {values.shape[1]} regions")
            ax.fill_between(layers, np.nanmin(values, 1), np.nanmax(values, 1), alpha=0.2, label="range")
        ax.legend(fontsize=6)
    ax.set_title(LABELS.get(metric, metric), fontsize=9)
    ax.set_xticks(layers)
    ax.set_xlabel("layer")


def metrics_figure(ds: xr.Dataset) -> str | None:
    """One panel per pair metric in ``ds`` (``geo_<metric>``), or None."""
    metrics = [m for m in PAIR_METRICS if f"geo_{m}" in ds]
    if not metrics:
        return None
    fig, axes = plt().subplots(1, len(metrics), figsize=(3.2 * len(metrics), 2.8), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        _metric_axes(ax, ds["layer"].values, ds[f"geo_{m}"].values, ds["region"].values, m)
    return figure(fig, "Geometry between each region's patterns and the layer's, on the RSA items "
                       "(k-NN and CKA: higher is closer; shape: a distance, lower is closer).", "geometry")


def figures(ds: xr.Dataset) -> list[str]:
    """The geometry figures of one participant result ([] without geometry)."""
    out = [f for f in (id_figure(ds), metrics_figure(ds)) if f is not None]
    return [heading("Geometry", 3)] + out if out else []


def group_figures(tab: pd.DataFrame, model: str) -> list[str]:
    """ID profile and metric profiles from the group table's geometry rows ([] without them)."""
    geo = tab[(tab["method"] == "geometry") & (tab["model"] == model)]
    if geo.empty:
        return []
    out = [heading("Geometry", 3)]
    ids = geo[geo["metric"].isin(["mean_id", "ci_low_id", "ci_high_id"])].pivot_table(
        index="layer", columns="metric", values="value")
    if "mean_id" in ids:
        fig, ax = plt().subplots(figsize=(5, 3))
        peak = _id_axes(ax, ids.index.values, ids["mean_id"].values, ids.get("ci_low_id"), ids.get("ci_high_id"))
        out.append(figure(fig, f"Intrinsic dimension per layer, mean over participants [bootstrap CI]; peak at "
                               f"layer {peak}.", "id-profile"))
    metrics = [m for m in PAIR_METRICS if (geo["metric"] == f"mean_{m}").any()]
    if metrics:
        fig, axes = plt().subplots(1, len(metrics), figsize=(3.2 * len(metrics), 2.8), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            t = geo[geo["metric"] == f"mean_{m}"].pivot_table(index="layer", columns="target", values="value")
            _metric_axes(ax, t.index.values, t.values, list(t.columns), m)
        out.append(figure(fig, "Geometry per layer and region, mean over participants.", "geometry"))
    return out
