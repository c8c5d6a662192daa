"""Scorers: encoding (nested-CV ridge) and RSA of every layer against a :class:`Prepared`.

:func:`score_prepared` is one task's work: the raw per-layer scores (no FDR, no
ceiling) of the layers in an Activations array. It reads only the prepared
participant and a :class:`~brainalign.pipeline.specs.ScoreSpec`.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from .. import rsa
from ..align.design import FRAME_METHODS, resolve_delays
from ..encoding import BandedRidgeCV, cross_validated_scores, folds_to_splits, pearson_r
from . import geometry_scores, gt_band
from .prepare import Prepared
from .pvalues import encoding_pvalues
from .specs import RSASpec, ScoreSpec
from .uncertainty import heldout_blocks, layer_moments, y_moments

#: Candidate (baseline, layer) band weights for ``baseline_penalty="banded"``: the
#: layer's penalty is 1, 9, 99 or 999 times the baseline's (and a ridge alpha grid on top).
BANDED_BASELINE_WEIGHTS = np.array([[0.5, 0.5], [0.9, 0.1], [0.99, 0.01], [0.999, 0.001]])


def fit_scores(X: np.ndarray, Y: np.ndarray, folds: Sequence[np.ndarray], inner_cv: int,
               alphas: Sequence[float], *, predictions: bool = False) -> tuple[np.ndarray, ...]:
    """Nested CV of one ridge; returns r_folds and alpha_folds, both (n_folds, n_targets).

    ``X`` (n, p), ``Y`` (n, t) and ``folds`` (test indices into range(n)) are the
    kept samples (:class:`Prepared`). ``predictions=True`` adds the out-of-fold
    predictions (n, t) as a third value.
    """
    res = cross_validated_scores(X, Y, outer_cv=folds_to_splits(folds, X.shape[0]), inner_cv=inner_cv,
                                 alphas=np.asarray(alphas), return_predictions=predictions)
    out = (np.asarray(res.r_folds, dtype=np.float64), np.asarray(res.alpha_folds, dtype=np.float64))
    return out + (np.asarray(res.predictions, dtype=np.float64),) if predictions else out


def fit_scores_banded(B: np.ndarray, X: np.ndarray, Y: np.ndarray, folds: Sequence[np.ndarray], inner_cv: int,
                      alphas: Sequence[float], *, predictions: bool = False,
                      band_alphas: list | None = None) -> tuple[np.ndarray, ...]:
    """Nested CV of baseline + layer as a two-band ridge (own penalty per band).

    Returns r_folds and the layer band's effective penalty per fold, both
    (n_folds, n_targets), like :func:`fit_scores` (and the out-of-fold predictions
    with ``predictions=True``). ``band_alphas``, a list, receives each fold's
    per-band penalties (2, n_targets), baseline first (for the permutation null).
    """
    r_f, a_f = [], []
    pred = np.full(Y.shape, np.nan) if predictions else None
    for train, test in folds_to_splits(folds, X.shape[0]):
        model = BandedRidgeCV(alphas=np.asarray(alphas), n_iter=BANDED_BASELINE_WEIGHTS, cv=inner_cv)
        model.fit([B[train], X[train]], Y[train])
        pk = model.predict([B[test], X[test]])  # once: the fold's r (as model.score) and the kept predictions
        r_f.append(np.asarray(pearson_r(Y[test], pk), dtype=np.float64))
        a_f.append(np.asarray(model.space_alphas_[1], dtype=np.float64))
        if band_alphas is not None:
            band_alphas.append(np.asarray(model.space_alphas_, dtype=np.float64))
        if predictions:
            pred[test] = np.asarray(pk, dtype=np.float64).reshape(len(test), -1)
    return (np.stack(r_f), np.stack(a_f)) + ((pred,) if predictions else ())


def blocks(n: int, n_items: int) -> list[np.ndarray]:
    """``min(n_items, n)`` contiguous blocks of ``range(n)`` (the RSA items)."""
    return [b for b in np.array_split(np.arange(n), min(n_items, n)) if b.size]


def transform_rdm(d: np.ndarray, spec: RSASpec) -> np.ndarray:
    """The RDM after ``spec.transform``: none, gt (``lower``/``upper``), or geodesic (the tRSA
    authors' graph ``geodesic_method`` with ``lower``/``upper``, ``zero_edges``, ``p``, ``k``, ``rank``)."""
    if spec.transform == "gt":
        return np.asarray(rsa.gt_transform(d, lower=spec.lower, upper=spec.upper))
    if spec.transform == "geodesic":
        return np.asarray(rsa.geodesic(d, lower=spec.lower, upper=spec.upper, method=spec.geodesic_method,
                                       zero_edges=spec.zero_edges, p=spec.p, k=spec.k, rank=spec.rank))
    return d


def rsa_scores(X: np.ndarray, Y: np.ndarray, regions: Mapping[str, np.ndarray], spec: RSASpec) -> np.ndarray:
    """RSA of model patterns X (n, p) against neural patterns Y (n, t) per region -> (n_regions,).

    Items are ``n_items`` contiguous blocks of samples (time points or words), each the
    mean pattern of its block. Items whose model or neural pattern is constant (e.g.
    silent stretches) are left out of that comparison.
    """
    items = blocks(X.shape[0], int(spec.n_items))
    Xi = np.stack([X[b].mean(0) for b in items])
    ok_model = Xi.std(1) > 0
    out = []
    for cols in regions.values():
        if len(cols) < 2:
            out.append(np.nan)
            continue
        Yi = np.stack([Y[b][:, cols].mean(0) for b in items])
        ok = ok_model & (Yi.std(1) > 0)
        if ok.sum() < 4:
            out.append(np.nan)
            continue
        model_rdm = transform_rdm(np.asarray(rsa.rdm(Xi[ok], metric=spec.metric)), spec)
        neural = transform_rdm(np.asarray(rsa.rdm(Yi[ok], metric=spec.metric)), spec)
        out.append(float(rsa.compare(model_rdm, neural, method=spec.compare)))
    return np.asarray(out, dtype=np.float64)


def _encode_layer(P: Prepared, X: np.ndarray, spec: ScoreSpec, with_baseline: bool, band_alphas: list | None = None):
    cv = spec.cv
    if P.B is not None and with_baseline and spec.baseline_penalty == "banded":
        return fit_scores_banded(P.B, X, P.Y, P.folds, cv.inner_cv, spec.alphas, predictions=True,
                                 band_alphas=band_alphas)
    Xf = np.hstack([P.B, X]) if (P.B is not None and with_baseline) else X
    return fit_scores(Xf, P.Y, P.folds, cv.inner_cv, spec.alphas, predictions=True)


def score_prepared(P: Prepared, activations: xr.DataArray, spec: ScoreSpec, *, with_baseline: bool = True,
                   fit_baseline: bool = True) -> xr.Dataset:
    """Raw scores for the layers in ``activations`` (no FDR, no ceiling): one task's work.

    Returns a Dataset with ``r_folds``/``alpha`` (layer, fold, target), ``r``
    (layer, target), ``baseline_r[_folds]`` when a baseline is fitted, and ``rsa``
    (layer, region); attrs ``alignment``, ``modality``, ``n_samples``, ``warnings``.
    """
    n_t = P.Y.shape[1]
    warns: list[str] = []
    r_folds, a_folds, rsa_vals, layers, moments = [], [], [], [], []
    pvals: list = []
    block, block_fold = heldout_blocks(P.folds, P.runs)  # issue 14: held-out blocks for the layer bootstrap
    geo: list[dict] = []  # scoring.methods geometry: per layer {metric: (n_regions,)}
    band: list[np.ndarray] = []  # scoring.rsa.select_gt: each layer's RDM, for the group level
    for layer, X in P.designs(activations):
        layers.append(layer)
        if "encoding" in spec.methods:
            bands: list = []
            rf, af, pred = _encode_layer(P, X, spec, with_baseline, bands)
            r_folds.append(rf)
            a_folds.append(af)
            if spec.permutations:  # per-target p from the refit shift null (pipeline/pvalues.py)
                pvals.append(encoding_pvalues(P, X, af, spec.permutations, spec.seed, with_baseline=with_baseline,
                                              banded=spec.baseline_penalty == "banded", band_alphas=bands))
            moments.append(layer_moments(P.Y, pred, block, block_fold).astype(np.float32))
        if "rsa" in spec.methods:
            if len(P.regions) == 1 and n_t < 3:
                if not warns:
                    warns.append(f"RSA skipped: {n_t} target(s) are too few for a neural RDM")
                rsa_vals.append(np.full(len(P.regions), np.nan))
            else:
                rsa_vals.append(rsa_scores(X, P.Y, P.regions, spec.rsa))
                if spec.rsa.select_gt:
                    band.append(gt_band.model_rdm(X, spec.rsa))
        if "geometry" in spec.methods:
            vals, w = geometry_scores.region_geometry(X, P.Y, P.regions, spec.rsa, spec.geometry)
            geo.append(vals)
            warns += [x for x in w if x not in warns]
    coords: dict[str, Any] = {"layer": layers, "target": P.targets}
    data: dict[str, Any] = {}
    if r_folds:
        rf = np.stack(r_folds)
        coords["fold"] = np.arange(rf.shape[1])
        data["r_folds"] = (("layer", "fold", "target"), rf)
        data["alpha"] = (("layer", "fold", "target"), np.stack(a_folds))
        data["r"] = (("layer", "target"), np.nanmean(rf, axis=1))
        if pvals:
            data["p"] = (("layer", "target"), np.stack([p for p, _ in pvals]))
            data["p_empirical"] = (("layer", "target"), np.stack([pe for _, pe in pvals]))
        coords["block_fold"] = ("block", block_fold)  # block sums, turned into p_best by uncertainty.layer_uncertainty
        data["heldout_moments"] = (("layer", "block", "moment", "target"), np.stack(moments))
        data["heldout_y_moments"] = (("block", "moment", "target"),
                                     y_moments(P.Y, block, block_fold).astype(np.float32))
        if P.B is not None and fit_baseline:
            brf, _ = fit_scores(P.B, P.Y, P.folds, spec.cv.inner_cv, spec.alphas)
            data["baseline_r_folds"] = (("fold", "target"), brf)
            data["baseline_r"] = (("target",), np.nanmean(brf, axis=0))
    if rsa_vals:
        coords["region"] = list(P.regions)
        data["rsa"] = (("layer", "region"), np.stack(rsa_vals))
    ds = xr.Dataset(data, coords=coords)
    delays = list(resolve_delays(P.align.delays, P.method)) if P.method in FRAME_METHODS else []
    ds.attrs.update(alignment=P.method, alignment_delays=json.dumps(delays), modality=P.modality, n_samples=P.n_samples, warnings=json.dumps(warns),
                    uncertainty_seed=int(spec.seed))
    if pvals:
        ds.attrs.update(n_permutations=int(spec.permutations), permutation_seed=int(spec.seed))
    if band:
        ds = gt_band.add_rdms(ds, band, P.Y, P.regions, spec.rsa)
    if "geometry" in spec.methods:
        ds = geometry_scores.add_geometry(ds, geo, activations, P.regions, spec.geometry)
    return ds
