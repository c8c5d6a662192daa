"""Choosing the GT band (lower, upper) the way the tRSA authors evaluate it.

Lin & Kriegeskorte (PNAS 2024) pick (l, u) on a grid by leave-one-participant-out
nearest-centroid identification: each participant's RDM vectors (one or more per
class: region, layer, model...) are classified to the nearest (Euclidean)
centroid of the other participants' transformed vectors of each class, and the
setting with the highest accuracy wins.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GeodesicCollapseWarning, InputError, ShapeMismatchError
from ._checks import as_rdm_stack, triu_vectors
from .topology import _gt_vectors, _minmax, average_ranks, geodesic


@dataclass(frozen=True)
class GTSelection:
    """Result of :func:`select_gt`.

    Attributes
    ----------
    lower, upper : float
        The chosen band (highest accuracy; ties go to the smallest lower, then upper).
    accuracy : float
        Its leave-one-participant-out identification accuracy, in [0, 1].
    lowers, uppers : ndarray
        The grid axes.
    surface : ndarray, shape (len(lowers), len(uppers))
        Accuracy of every setting; NaN where upper <= lower.
    collapsed : ndarray of bool, same shape
        Settings whose geodesics collapsed for some RDM (geodesic transform only).
    plain_accuracy : float
        The same identification on the untransformed RDMs.
    chance : float
        1 / n_classes.
    transform : str
    """

    lower: float
    upper: float
    accuracy: float
    lowers: np.ndarray
    uppers: np.ndarray
    surface: np.ndarray
    collapsed: np.ndarray
    plain_accuracy: float
    chance: float
    transform: str


def identification_accuracy(vectors: np.ndarray) -> float:
    """Leave-one-participant-out nearest-centroid accuracy.

    Parameters
    ----------
    vectors : array, shape (n_participants, n_classes, n_readouts, m)
        RDM vectors; the class of ``vectors[s, c, r]`` is ``c``.

    Returns
    -------
    float
        Fraction of held-out vectors whose nearest (Euclidean) class centroid,
        computed from the other participants, is their own class (ties: the
        lowest class index).
    """
    x = np.asarray(vectors, dtype=np.float64)
    n_sub, n_cls, n_rep, _ = x.shape
    total = x.sum(axis=(0, 2))  # (C, m)
    correct = 0
    for s in range(n_sub):
        cent = (total - x[s].sum(axis=1)) / ((n_sub - 1) * n_rep)
        q = x[s].reshape(n_cls * n_rep, -1)
        d2 = (cent * cent).sum(axis=1)[None, :] - 2.0 * q @ cent.T
        pred = np.argmin(d2, axis=1)
        correct += int(np.sum(pred == np.repeat(np.arange(n_cls), n_rep)))
    return correct / (n_sub * n_cls * n_rep)


def _grid(step: float, lowers: Any, uppers: Any) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < float(step) <= 0.5:
        raise InputError(f"step={step} is outside (0, 0.5]; the paper uses 0.025 or 0.05")
    n = int(round(1 / float(step)))
    lo = np.round(np.arange(n) * step, 10) if lowers is None else np.asarray(lowers, float)
    up = np.round(np.arange(1, n + 1) * step, 10) if uppers is None else np.asarray(uppers, float)
    if lo.ndim != 1 or up.ndim != 1 or lo.size == 0 or up.size == 0:
        raise InputError("lowers and uppers must be non-empty 1-D sequences of quantile levels")
    if lo.min() < 0 or up.max() > 1:
        raise InputError("lowers and uppers must lie in [0, 1]")
    return lo, up


def select_gt(rdms: Any, *, step: float = 0.05, lowers: Any = None, uppers: Any = None,
              transform: str = "gt", **geodesic_options) -> GTSelection:
    """Choose the GT band (lower, upper) by cross-validated identification.

    Parameters
    ----------
    rdms : array, shape (n_participants, n_classes, n, n) or
           (n_participants, n_classes, n_readouts, n, n)
        Each participant's RDM(s) of each class (e.g. brain regions, or a model's
        layers read out with noise). At least 2 participants and 2 classes.
    step : float
        Grid step for both levels (lower in 0, step, ..., 1 - step; upper in
        step, ..., 1); the paper uses 0.025 or 0.05.
    lowers, uppers : sequences of float, optional
        Explicit grid axes instead of ``step``.
    transform : {"gt", "geodesic"}
        Identify on GT-transformed RDMs (:func:`gt_transform`, ranks) or on their
        twostep geodesics (:func:`geodesic`, with ``geodesic_options``; unreachable
        pairs take the largest finite length unless ``fill`` is given).

    Returns
    -------
    GTSelection
    """
    if transform not in ("gt", "geodesic"):
        raise InputError(f"transform={transform!r} is unknown; choose 'gt' or 'geodesic'")
    if {"method", "lower", "upper"} & set(geodesic_options):
        raise InputError("select_gt scores twostep geodesics over its own (lower, upper) grid; "
                         "drop method, lower and upper from the geodesic options")
    arr = np.asarray(rdms, dtype=np.float64)
    if arr.ndim == 4:
        arr = arr[:, :, None]
    if arr.ndim != 5 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ShapeMismatchError(
            f"rdms has shape {np.shape(rdms)}; pass (participants >= 2, classes >= 2, [readouts,] n, n)")
    lo, up = _grid(step, lowers, uppers)
    p, c, r, n, _ = arr.shape
    flat, _ = as_rdm_stack(arr.reshape(p * c * r, n, n), "rdms")
    vec = triu_vectors(flat)
    plain = identification_accuracy(vec.reshape(p, c, r, -1))
    ranks = _minmax(average_ranks(vec))
    surface = np.full((lo.size, up.size), np.nan)
    collapsed = np.zeros((lo.size, up.size), dtype=bool)
    options = {"fill": "max", **geodesic_options}
    for i, a in enumerate(lo):
        for j, b in enumerate(up):
            if b <= a:
                continue
            if transform == "gt":
                t = _gt_vectors(ranks, a, b, rank=False)
            else:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", GeodesicCollapseWarning)
                    t = triu_vectors(geodesic(flat, a, b, method="twostep", **options))
                collapsed[i, j] = any(issubclass(w.category, GeodesicCollapseWarning) for w in caught)
            surface[i, j] = identification_accuracy(t.reshape(p, c, r, -1))
    best = np.unravel_index(np.nanargmax(surface), surface.shape)
    return GTSelection(lower=float(lo[best[0]]), upper=float(up[best[1]]), accuracy=float(surface[best]),
                       lowers=lo, uppers=up, surface=surface, collapsed=collapsed,
                       plain_accuracy=plain, chance=1.0 / c, transform=transform)
