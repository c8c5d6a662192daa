"""Geometry scorer (``scoring.methods: [geometry]``): brain-layer alignment and each layer's ID.

Per layer and region, the metrics of ``scoring.geometry.metrics`` between the
neural patterns of the region and the layer's design features **on the RSA
items** (``scoring.rsa.n_items`` contiguous blocks of kept samples, each the mean
pattern of its block; the same items :func:`brainalign.pipeline.scoring.rsa_scores`
compares, constant items left out the same way), from :mod:`brainalign.geometry`:

- ``mutual_knn``, ``cycle_knn``, ``cknna`` (Huh et al. 2024; ``k`` neighbours);
- ``cka`` (``cka_kernel``, ``debiased``);
- ``shape`` (generalized shape distance, ``alpha``, ``shape_kind``; a distance:
  lower is more similar), ``shape_cv`` (its cross-validated estimate over
  ``shape_folds`` contiguous folds of items);
- ``id``: the layer's intrinsic dimension (``id_method``, ``id_scale``) over the
  word-level activations (one point per word: the model's own representation, the
  same for every participant who heard the same words).

Result variables: ``geo_<metric>`` (layer, region) and ``geo_id`` (layer). The
model-to-model matrices of a study with two models are :mod:`.convergence`'s.
"""
from __future__ import annotations

import json
import warnings
from typing import Mapping, Sequence

import numpy as np
import xarray as xr

from .. import geometry
from ..errors import DataQualityWarning
from .specs import GeometrySpec, RSASpec

#: ``scoring.geometry.metrics`` (choices.GEOMETRY_METRICS).
METRICS = ("mutual_knn", "cycle_knn", "cknna", "cka", "shape", "shape_cv", "id")
#: The metrics that compare two representations (all but ``id``).
PAIR_METRICS = METRICS[:-1]
#: Fewest items a comparison needs (shape_cv needs 2 per fold).
MIN_ITEMS = 4


def items(n: int, n_items: int) -> list[np.ndarray]:
    """The RSA items: ``min(n_items, n)`` contiguous blocks of ``range(n)`` (as ``scoring.blocks``)."""
    return [b for b in np.array_split(np.arange(n), min(int(n_items), n)) if b.size]


def pair_metric(a: np.ndarray, b: np.ndarray, metric: str, spec: GeometrySpec) -> float:
    """One metric between patterns ``a`` (n, p) and ``b`` (n, q) of the same n items."""
    if metric in ("mutual_knn", "cycle_knn", "cknna"):
        return float(getattr(geometry, metric)(a, b, k=spec.k))
    if metric == "cka":
        return float(geometry.cka(a, b, kernel=spec.cka_kernel, debiased=spec.debiased))
    if metric == "shape":
        return float(geometry.shape_distance(a, b, alpha=spec.alpha, kind=spec.shape_kind))
    if metric == "shape_cv":
        return float(geometry.shape_distance_cv(a, b, alpha=spec.alpha, kind=spec.shape_kind, cv=spec.shape_folds))
    raise ValueError(f"unknown geometry metric {metric!r}")


def _usable(metric: str, n: int, spec: GeometrySpec) -> bool:
    if metric in ("mutual_knn", "cycle_knn", "cknna"):
        return spec.k <= n - 1
    if metric == "shape_cv":
        return 2 * spec.shape_folds <= n
    if metric == "cka" and spec.debiased:
        return n >= MIN_ITEMS
    return n >= 2


def region_geometry(X: np.ndarray, Y: np.ndarray, regions: Mapping[str, np.ndarray], rsa_spec: RSASpec,
                    spec: GeometrySpec) -> tuple[dict[str, np.ndarray], list[str]]:
    """The pair metrics of one layer's design X (n, p) against each region of Y (n, t).

    Returns ``{metric: (n_regions,)}`` (NaN where a region has fewer than 2 targets
    or too few non-constant items for the metric) and warnings (one line each).
    """
    blocks = items(X.shape[0], rsa_spec.n_items)
    Xi = np.stack([X[b].mean(0) for b in blocks])
    ok_model = Xi.std(1) > 0
    wanted = [m for m in spec.metrics if m != "id"]
    out = {m: np.full(len(regions), np.nan) for m in wanted}
    warns: list[str] = []
    for r, cols in enumerate(regions.values()):
        if len(cols) < 2:
            continue
        Yi = np.stack([Y[b][:, cols].mean(0) for b in blocks])
        ok = ok_model & (Yi.std(1) > 0)
        n = int(ok.sum())
        if n < MIN_ITEMS:
            continue
        for m in wanted:
            if not _usable(m, n, spec):
                warns.append(f"geometry {m} skipped: {n} items are too few for scoring.geometry "
                             f"(k={spec.k}, shape_folds={spec.shape_folds})")
                continue
            out[m][r] = pair_metric(Xi[ok], Yi[ok], m, spec)
    return out, list(dict.fromkeys(warns))


def layer_id(features: np.ndarray, spec: GeometrySpec) -> tuple[float, list[str]]:
    """Intrinsic dimension of one layer's word-level activations (n_words, p); NaN when too few points."""
    x = np.asarray(features, dtype=np.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataQualityWarning)
        try:
            d = geometry.intrinsic_dimension(x, method=spec.id_method, n1=spec.id_scale)
        except ValueError as exc:  # InputError: too few distinct points for the estimator
            return float("nan"), [f"geometry id skipped: {str(exc).splitlines()[0]}"]
    return float(d), [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, DataQualityWarning)]


def add_geometry(ds: xr.Dataset, per_layer: Sequence[dict], activations: xr.DataArray, regions: Mapping,
                 spec: GeometrySpec) -> xr.Dataset:
    """Add ``geo_<metric>`` (layer, region) and ``geo_id`` (layer) to one task's raw Dataset.

    ``per_layer`` holds :func:`region_geometry`'s dict of each layer of ``ds`` (in
    order); ``activations`` (layer, word, feature) the same layers.
    """
    warns = json.loads(ds.attrs.get("warnings", "[]"))
    if per_layer and per_layer[0]:
        ds = ds.assign_coords(region=list(regions))
        for m in per_layer[0]:
            ds[f"geo_{m}"] = (("layer", "region"), np.stack([d[m] for d in per_layer]))
    if "id" in spec.metrics:
        ids = []
        for layer in ds["layer"].values:
            d, w = layer_id(activations.sel(layer=int(layer)).values, spec)
            ids.append(d)
            warns += w
        ds["geo_id"] = (("layer",), np.asarray(ids, dtype=np.float64))
    ds.attrs["warnings"] = json.dumps(list(dict.fromkeys(warns)))
    return ds


def geometry_var(ds: xr.Dataset, metric: str) -> xr.DataArray:
    """The (layer, region) values of one geometry metric (``id``: one region, "all")."""
    if metric == "id":
        return ds["geo_id"].expand_dims(region=["all"]).transpose("layer", "region")
    return ds[f"geo_{metric}"]


def geometry_rows(ds: xr.Dataset) -> list[tuple[xr.DataArray, str]]:
    """(variable (layer, region), metric name) of every geometry result in ``ds``, for the scores table."""
    return [(geometry_var(ds, m), m) for m in METRICS if f"geo_{m}" in ds]
