"""``scoring.rsa.select_gt``: the GT band (lower, upper) chosen as the tRSA authors do, without double dipping.

Procedure (Lin & Kriegeskorte's evaluation, applied to the neural data alone):

1. Participant level: each participant's untransformed RDMs on the RSA items are
   kept in the result, one per region (``rsa_neural_rdm`` (region, pair)) and one
   per layer (``rsa_model_rdm`` (layer, pair)); NaN marks pairs of an item left out
   (constant pattern).
2. Group level: items left out anywhere are dropped for everyone; every
   (lower, upper) of the grid (``select_step``) is scored by leave-one-participant-
   out nearest-centroid identification of the **regions** from the participants'
   transformed neural RDMs (:func:`brainalign.rsa.select_gt`); the best band wins.
   The model never enters this choice, so the band carries no information about
   which layer fits: choosing it and then scoring the layers with it is not double
   dipping. (It needs two regions or more: an atlas.)
3. Every participant's RSA is re-scored with the chosen band (same items, metric,
   comparison and transform), and the group rows ``mean_selected_band`` etc. are
   added (method ``rsa``); ``group/task-<t>_desc-<m>_gtband.tsv`` holds the
   accuracy surface, its sidecar the choice, the untransformed accuracy and chance.
"""
from __future__ import annotations

import json
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy.spatial.distance import squareform

from .. import rsa
from . import outputs
from .geometry_scores import items
from .specs import RSASpec


def _vector(patterns: np.ndarray, metric: str) -> np.ndarray:
    """Upper-triangle RDM vector of (n, p) item patterns; NaN for pairs of a constant item."""
    n = patterns.shape[0]
    ok = patterns.std(1) > 0
    full = np.full((n, n), np.nan)
    if ok.sum() >= 2:
        full[np.ix_(ok, ok)] = np.asarray(rsa.rdm(patterns[ok], metric=metric))
    return full[np.triu_indices(n, 1)].astype(np.float32)


def model_rdm(X: np.ndarray, spec: RSASpec) -> np.ndarray:
    """The layer's RDM vector on the RSA items of its design X (n_samples, p)."""
    its = items(X.shape[0], spec.n_items)
    return _vector(np.stack([X[b].mean(0) for b in its]), spec.metric)


def add_rdms(ds: xr.Dataset, model_rdms: list, Y: np.ndarray, regions: Mapping, spec: RSASpec) -> xr.Dataset:
    """Add ``rsa_model_rdm`` (layer, pair) and ``rsa_neural_rdm`` (region, pair) to a raw result."""
    its = items(Y.shape[0], spec.n_items)
    neural = [_vector(np.stack([Y[b][:, cols].mean(0) for b in its]), spec.metric) if len(cols) >= 2
              else np.full(len(model_rdms[0]), np.nan, np.float32) for cols in regions.values()]
    ds = ds.assign_coords(region=list(regions))
    ds["rsa_model_rdm"] = (("layer", "pair"), np.stack(model_rdms))
    ds["rsa_neural_rdm"] = (("region", "pair"), np.stack(neural))
    return ds


def _transform(d: np.ndarray, o: RSASpec, lower: float, upper: float) -> np.ndarray:
    """``o.transform`` with the band (lower, upper); geodesics as select_gt scored them (twostep, fill max)."""
    if o.transform == "gt":
        return np.asarray(rsa.gt_transform(d, lower=lower, upper=upper))
    return np.asarray(rsa.geodesic(d, lower=lower, upper=upper, zero_edges=o.zero_edges, rank=o.rank, fill="max"))


def _squares(dsets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(participants, regions, n, n) neural and (participants, layers, n, n) model RDMs on the common items."""
    neural = np.stack([d["rsa_neural_rdm"].values for d in dsets]).astype(np.float64)
    model = np.stack([d["rsa_model_rdm"].values for d in dsets]).astype(np.float64)
    m = neural.shape[-1]
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    sq_n = np.stack([squareform(v, checks=False) for v in neural.reshape(-1, m)]).reshape(*neural.shape[:2], n, n)
    sq_m = np.stack([squareform(v, checks=False) for v in model.reshape(-1, m)]).reshape(*model.shape[:2], n, n)
    bad = np.isnan(sq_n).any(axis=(0, 1, 2)) | np.isnan(sq_m).any(axis=(0, 1, 2))
    keep = ~bad
    return sq_n[..., keep][..., keep, :], sq_m[..., keep][..., keep, :], keep


def band_table(dsets, summarize: Callable, out_dir, task: str, model: str) -> pd.DataFrame:
    """Choose the band, re-score RSA with it, write the surface; the group rows (empty when not asked)."""
    recorded = (json.loads(dsets[0].attrs.get("settings", "{}")).get("scoring") or {}).get("rsa") or {}
    o = RSASpec(**{k: v for k, v in recorded.items() if k in RSASpec.__dataclass_fields__})
    if not o.select_gt or not all("rsa_neural_rdm" in d for d in dsets):
        return pd.DataFrame()
    regions = [str(r) for r in dsets[0]["region"].values]
    if len(dsets) < 2 or len(regions) < 2:
        outputs.write_json(_path(out_dir, task, model).with_suffix(".json"), {
            "Skipped": f"scoring.rsa.select_gt needs 2 or more participants and 2 or more RSA regions (an atlas); "
                       f"got {len(dsets)} and {len(regions)}"})
        return pd.DataFrame()
    neural, models, keep = _squares(dsets)
    geo = {} if o.transform == "gt" else {"zero_edges": o.zero_edges, "rank": o.rank}
    sel = rsa.select_gt(neural, step=o.select_step, transform=o.transform, **geo)
    tn = _transform(neural.reshape(-1, *neural.shape[-2:]), o, sel.lower, sel.upper).reshape(neural.shape)
    tm = _transform(models.reshape(-1, *models.shape[-2:]), o, sel.lower, sel.upper).reshape(models.shape)
    P, L, R = models.shape[0], models.shape[1], neural.shape[1]
    vals = np.array([[[float(rsa.compare(tm[s, l], tn[s, r], method=o.compare))
                       for r in range(R)] for l in range(L)] for s in range(P)])
    _write_surface(out_dir, task, model, sel, int(keep.sum()), o)
    stats = summarize(vals.reshape(P, -1), (L, R))
    layers = np.asarray(dsets[0]["layer"].values)
    rows = []
    for k in ("mean", "ci_low", "ci_high", "p", "p_fdr"):
        v = np.asarray(stats[k])
        for li in range(L):
            for ri in range(R):
                rows.append((task, model, int(layers[li]), regions[ri], "rsa", f"{k}_selected_band", float(v[li, ri]),
                             int(np.isfinite(vals[:, li, ri]).sum())))
    return pd.DataFrame(rows, columns=["task", "model", "layer", "target", "method", "metric", "value", "n_subjects"])


def _path(out_dir, task: str, model: str):
    return outputs.group_scores_path(out_dir, task, model).with_name(f"task-{task}_desc-{model}_gtband.tsv")


def _write_surface(out_dir, task, model, sel, n_items: int, o: RSASpec) -> None:
    lo, up = np.meshgrid(sel.lowers, sel.uppers, indexing="ij")
    table = pd.DataFrame({"lower": lo.ravel(), "upper": up.ravel(), "accuracy": sel.surface.ravel(),
                          "collapsed": sel.collapsed.ravel()}).dropna(subset=["accuracy"])
    path = _path(out_dir, task, model)
    outputs.write_tsv(path, table)
    outputs.write_json(path.with_suffix(".json"), {
        "Description": "scoring.rsa.select_gt: (lower, upper) by leave-one-participant-out nearest-centroid "
                       "identification of the RSA regions from the neural RDMs alone (brainalign.rsa.select_gt)",
        "Lower": sel.lower, "Upper": sel.upper, "Accuracy": sel.accuracy,
        "UntransformedAccuracy": sel.plain_accuracy, "Chance": sel.chance, "Transform": o.transform,
        "Items": n_items, "Step": o.select_step})
