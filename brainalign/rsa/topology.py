"""Geo-topological (GT) transform and graph geodesics of RDMs.

Lin & Kriegeskorte, "The Topology and Geometry of Neural Representations" (PNAS
2024). Every RDM in a stack is transformed on its own (its own ranks and quantiles).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse.csgraph import connected_components, csgraph_from_dense, shortest_path
from scipy.stats import rankdata

from ..errors import InputError
from ._kernels import weighted_rank
from ._checks import as_rdm_stack, check_unit_interval, from_triu, like_input, triu_vectors


def average_ranks(vectors: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share) of each row of a finite (k, m) array."""
    v = np.asarray(vectors, dtype=np.float64)
    order = np.argsort(v, axis=-1)
    return weighted_rank(v, np.ones((1, v.shape[-1])), order=order)


def _gt_vectors(vectors: np.ndarray, lower: float, upper: float, rank: bool) -> np.ndarray:
    """GT transform of (k, m) dissimilarity vectors, row by row."""
    if rank:
        r = average_ranks(vectors)
        lo = r.min(axis=-1, keepdims=True)
        span = r.max(axis=-1, keepdims=True) - lo
        r = np.divide(r - lo, span, out=np.zeros_like(r), where=span > 0)
    else:
        r = np.asarray(vectors, dtype=np.float64)
    q = np.quantile(r, [lower, upper], axis=-1)  # (2, k)
    a, b = q[0][:, None], q[1][:, None]
    width = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(width > 0, (r - a) / np.where(width > 0, width, 1.0), (r > a).astype(float))
    return np.clip(scaled, 0.0, 1.0)


def gt_transform(rdm: Any, lower: float = 0.2, upper: float = 0.8, rank: bool = True):
    """Geo-topological transform of one RDM or a stack, each RDM on its own.

    For each RDM: take the off-diagonal values; if ``rank``, replace them with
    their average ranks and min-max scale those to [0, 1]; let ``a`` and ``b`` be
    the ``lower`` and ``upper`` quantiles (numpy's linear interpolation) of the
    resulting values ``r``; return ``clip((r - a) / (b - a), 0, 1)``. Values at or
    below the lower quantile become 0 (treated as identical), values at or above
    the upper quantile become 1 (treated as unrelated), the band between is
    rescaled linearly.

    Parameters
    ----------
    rdm : array, shape (n, n) or (k, n, n)
        Symmetric dissimilarities (any sign: crossnobis values may be negative).
    lower, upper : float in [0, 1], lower <= upper
        Quantile levels. With ``lower == upper`` (or a band of zero width) the
        result is the binary threshold ``r > a``.
    rank : bool
        True (the authors' definition): quantiles of the min-max scaled ranks.
        False: the same formula on the raw values and their own quantiles.

    Returns
    -------
    ndarray (or torch.Tensor if given one), same shape as ``rdm``
        Values in [0, 1], zero diagonal. A constant RDM maps to all zeros.
    """
    lower = check_unit_interval(lower, "lower")
    upper = check_unit_interval(upper, "upper")
    if lower > upper:
        raise InputError(f"lower={lower} exceeds upper={upper}; pass lower <= upper")
    stack, single = as_rdm_stack(rdm, "rdm")
    out = from_triu(_gt_vectors(triu_vectors(stack), lower, upper, rank), stack.shape[-1])
    out = out[0] if single else out
    return like_input(out, rdm)


def _all_pairs(g: np.ndarray) -> np.ndarray:
    """Shortest paths on edges g < 1 of one GT matrix (zero-weight edges included).

    Stimuli joined by zero-cost edges are at distance 0 from each other and share
    every other distance, so each such connected component is contracted to one
    node (edge weight: the smallest between the two components), the contracted
    graph is solved with scipy's Floyd-Warshall (dense) or Dijkstra (sparse), and
    the result is expanded back. The answer is exact.
    """
    n = g.shape[0]
    zero = (g == 0)
    np.fill_diagonal(zero, False)
    n_comp, labels = connected_components(csgraph_from_dense(zero.astype(np.int8)), directed=False)
    w = np.where(g < 1.0, g, np.inf)
    if n_comp < n:
        order = np.argsort(labels, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])
        ws = w[np.ix_(order, order)]
        w = np.minimum.reduceat(np.minimum.reduceat(ws, starts, axis=0), starts, axis=1)
    np.fill_diagonal(w, np.inf)
    graph = csgraph_from_dense(w, null_value=np.inf)
    dense = graph.nnz * 8 >= w.shape[0] ** 2
    paths = shortest_path(graph, method="FW" if dense else "D", directed=False)
    if n_comp < n:
        paths = paths[np.ix_(labels, labels)]
    np.fill_diagonal(paths, 0.0)
    return paths


def _fill_unreachable(paths: np.ndarray, fill: Any) -> np.ndarray:
    if fill is None:
        return paths
    bad = ~np.isfinite(paths)
    if not bad.any():
        return paths
    if isinstance(fill, str):
        if fill != "max":
            raise InputError(f"fill={fill!r} is unknown; pass None, a number or 'max'")
        finite = paths[np.isfinite(paths)]
        value = float(finite.max()) if finite.size else 1.0
    else:
        value = float(fill)
    paths = paths.copy()
    paths[bad] = value
    return paths


def geodesic(
    rdm: Any,
    lower: float = 0.2,
    upper: float = 0.8,
    *,
    gt_rank: bool = True,
    pretransformed: bool = False,
    fill: Any = None,
    rank: bool = False,
):
    """Graph-geodesic distances on the GT-transformed RDM (one RDM or a stack).

    The graph has an edge between stimuli i and j wherever the GT value g_ij < 1,
    weighted by g_ij. Edges of weight 0 (pairs at or below the lower quantile) are
    real zero-cost edges: stimuli they join are contracted to one node first (exact,
    and fast at the usual lower quantiles). All-pairs shortest paths come from
    :func:`scipy.sparse.csgraph.shortest_path` (Floyd-Warshall on dense graphs,
    Dijkstra on sparse ones, undirected).

    Parameters
    ----------
    rdm : array, shape (n, n) or (k, n, n)
        Dissimilarities; transformed with :func:`gt_transform` first unless
        ``pretransformed``.
    lower, upper, gt_rank : see :func:`gt_transform` (``gt_rank`` is its ``rank``).
    pretransformed : bool
        True when ``rdm`` already holds GT values in [0, 1] (no transform is applied).
    fill : None, float or "max"
        Unreachable pairs (no path of edges < 1) are ``inf`` when None; a number
        replaces them with that number; ``"max"`` with the largest finite path
        length of that RDM.
    rank : bool
        False (default): raw path lengths. True: replace the off-diagonal path
        lengths by their average ranks min-max scaled to [0, 1] (the authors' code
        does this by default; ``inf`` ranks last).

    Returns
    -------
    ndarray (or torch.Tensor if given one), same shape as ``rdm``
        Symmetric, zero diagonal.
    """
    if isinstance(fill, str) and fill != "max":
        raise InputError(f"fill={fill!r} is unknown; pass None, a number or 'max'")
    stack, single = as_rdm_stack(rdm, "rdm")
    if pretransformed:
        if stack.min() < 0 or stack.max() > 1:
            raise InputError("pretransformed=True needs GT values in [0, 1]; got values outside")
        gt = stack.astype(np.float64)
    else:
        lower = check_unit_interval(lower, "lower")
        upper = check_unit_interval(upper, "upper")
        if lower > upper:
            raise InputError(f"lower={lower} exceeds upper={upper}; pass lower <= upper")
        gt = from_triu(_gt_vectors(triu_vectors(stack), lower, upper, gt_rank), stack.shape[-1])
    n = gt.shape[-1]
    out = np.empty_like(gt)
    for i, g in enumerate(gt):
        paths = _all_pairs(g)
        out[i] = _fill_unreachable(np.minimum(paths, paths.T), fill)
    if rank:
        vec = triu_vectors(out)
        r = rankdata(vec, method="average", axis=-1)  # inf ranks last
        lo = r.min(axis=-1, keepdims=True)
        span = r.max(axis=-1, keepdims=True) - lo
        r = np.divide(r - lo, span, out=np.zeros_like(r), where=span > 0)
        out = from_triu(r, n)
    out = out[0] if single else out
    return like_input(out, rdm)
