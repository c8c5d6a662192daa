"""Geo-topological (GT) transform and graph geodesics of RDMs.

Lin & Kriegeskorte, "The Topology and Geometry of Neural Representations" (PNAS
2024). Every RDM in a stack is transformed on its own (its own ranks and quantiles).
"""
from __future__ import annotations

from typing import Any

import warnings

import numpy as np
from scipy.sparse.csgraph import connected_components, csgraph_from_dense, shortest_path
from scipy.stats import rankdata

from ..errors import GeodesicCollapseWarning, InputError
from ._kernels import weighted_rank
from ._checks import as_rdm_stack, check_unit_interval, from_triu, like_input, triu_vectors


GT_KINDS = ("lu", "sigmoid")
GEODESIC_METHODS = ("twostep", "p_shortest", "p_nearest", "k_nearest")
ZERO_EDGES = ("drop", "keep")
NEIGHBOURS = ("authors", "union", "mutual")


def average_ranks(vectors: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share) of each row of a finite (k, m) array."""
    v = np.asarray(vectors, dtype=np.float64)
    order = np.argsort(v, axis=-1)
    return weighted_rank(v, np.ones((1, v.shape[-1])), order=order)


def _minmax(v: np.ndarray) -> np.ndarray:
    """Row-wise min-max scaling to [0, 1] of a (k, m) array (constant rows become 0)."""
    lo = v.min(axis=-1, keepdims=True)
    span = v.max(axis=-1, keepdims=True) - lo
    return np.divide(v - lo, span, out=np.zeros_like(v), where=span > 0)


def _gt_vectors(vectors: np.ndarray, lower: float, upper: float, rank: bool,
                kind: str = "lu", alpha: float = 10.0, beta: float = 0.5) -> np.ndarray:
    """GT transform of (k, m) dissimilarity vectors, row by row."""
    r = _minmax(average_ranks(vectors)) if rank else np.asarray(vectors, dtype=np.float64)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-(r - beta) * alpha))
    q = np.quantile(r, [lower, upper], axis=-1)  # (2, k)
    a, b = q[0][:, None], q[1][:, None]
    width = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(width > 0, (r - a) / np.where(width > 0, width, 1.0), (r > a).astype(float))
    return np.clip(scaled, 0.0, 1.0)


def _check_levels(lower: float, upper: float) -> tuple[float, float]:
    lower = check_unit_interval(lower, "lower")
    upper = check_unit_interval(upper, "upper")
    if lower > upper:
        raise InputError(f"lower={lower} exceeds upper={upper}; pass lower <= upper")
    return lower, upper


def gt_transform(rdm: Any, lower: float = 0.2, upper: float = 0.8, rank: bool = True, *,
                 kind: str = "lu", alpha: float = 10.0, beta: float = 0.5):
    """Geo-topological transform of one RDM or a stack, each RDM on its own.

    ``kind="lu"`` (the authors' default): for each RDM take the off-diagonal
    values; if ``rank``, replace them with their average ranks and min-max scale
    those to [0, 1]; let ``a`` and ``b`` be the ``lower`` and ``upper`` quantiles
    (numpy's linear interpolation) of the resulting values ``r``; return
    ``clip((r - a) / (b - a), 0, 1)``. Values at or below the lower quantile
    become 0 (treated as identical), values at or above the upper quantile become
    1 (treated as unrelated), the band between is rescaled linearly.

    ``kind="sigmoid"`` (the authors' variant): ``1 / (1 + exp(-alpha (r - beta)))``
    on the same ``r``; ``lower`` and ``upper`` are not used.

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
    kind : {"lu", "sigmoid"}
    alpha, beta : float
        Sigmoid slope (per unit of r) and midpoint (the authors' 10 and 0.5).

    Returns
    -------
    ndarray (or torch.Tensor if given one), same shape as ``rdm``
        Values in [0, 1], zero diagonal. A constant RDM maps to all zeros ("lu").
    """
    lower, upper = _check_levels(lower, upper)
    if kind not in GT_KINDS:
        raise InputError(f"kind={kind!r} is unknown; choose 'lu' or 'sigmoid'")
    stack, single = as_rdm_stack(rdm, "rdm")
    vec = _gt_vectors(triu_vectors(stack), lower, upper, rank, kind, float(alpha), float(beta))
    out = from_triu(vec, stack.shape[-1])
    out = out[0] if single else out
    return like_input(out, rdm)


def _neighbour_edges(w: np.ndarray, cand: np.ndarray, kk: int, rule: str) -> np.ndarray:
    """Edges of a k-nearest-neighbour graph on square weights ``w`` among candidates.

    Each stimulus's ``kk`` candidates of smallest weight (ties by index) are its
    neighbours M[i, j]. "authors": the pair i < j is an edge iff j is among i's
    neighbours (the tRSA code's rule, which depends on the stimulus order);
    "union": either way round; "mutual": both ways.
    """
    n = w.shape[0]
    masked = np.where(cand, w, np.inf)
    order = np.argsort(masked, axis=1, kind="stable")[:, :kk]
    m = np.zeros((n, n), dtype=bool)
    rows = np.repeat(np.arange(n), order.shape[1])
    m[rows, order.ravel()] = True
    m &= cand
    if rule == "authors":
        upper = np.triu(m, 1)
        return upper | upper.T
    return (m | m.T) if rule == "union" else (m & m.T)


def _graph(v: np.ndarray, n: int, o: dict) -> tuple[np.ndarray, np.ndarray]:
    """Square edge weights (inf: no edge) and the zero-cost edge mask of one RDM vector."""
    if o["method"] == "twostep":
        g = v if o["pretransformed"] else _gt_vectors(v[None], o["lower"], o["upper"], o["gt_rank"])[0]
        w = _minmax(g[None])[0]
    else:
        w = _minmax(average_ranks(v[None]))[0]
    sq = from_triu(w[None], n, diag=np.inf)[0]
    cand = np.isfinite(sq)
    if o["zero_edges"] == "drop":
        cand &= sq != 0  # networkx (the authors' code) makes no edge where the value is 0
    if o["method"] == "twostep":
        edge = cand & (sq < 1)
    elif o["method"] == "p_shortest":
        edge = cand & (sq <= np.quantile(w, o["p"]))
    else:
        kk = int(o["p"] * n) if o["method"] == "p_nearest" else o["k"]
        edge = _neighbour_edges(sq, cand, kk, o["neighbours"])
    return np.where(edge, sq, np.inf), edge & (sq == 0)


def _all_pairs(w: np.ndarray, zero: np.ndarray) -> tuple[np.ndarray, int]:
    """Undirected shortest paths on weights ``w`` (inf: no edge) with zero-cost edges ``zero``.

    Stimuli joined by zero-cost edges are at distance 0 from each other and share
    every other distance, so each such connected component is contracted to one
    node (edge weight: the smallest between the two components), the contracted
    graph is solved with scipy's Floyd-Warshall (dense) or Dijkstra (sparse), and
    the result is expanded back: exact. Returns the paths and the size of the
    largest zero-cost component.
    """
    n = w.shape[0]
    n_comp, labels = connected_components(csgraph_from_dense(zero.astype(np.int8)), directed=False)
    if n_comp < n:
        order = np.argsort(labels, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])
        ws = w[np.ix_(order, order)]
        w = np.minimum.reduceat(np.minimum.reduceat(ws, starts, axis=0), starts, axis=1)
    w = w.copy()
    np.fill_diagonal(w, np.inf)
    graph = csgraph_from_dense(w, null_value=np.inf)
    dense = graph.nnz * 8 >= w.shape[0] ** 2
    paths = shortest_path(graph, method="FW" if dense else "D", directed=False)
    if n_comp < n:
        paths = paths[np.ix_(labels, labels)]
    np.fill_diagonal(paths, 0.0)
    return paths, int(np.bincount(labels).max())


def _collapse_reason(paths: np.ndarray, largest: int) -> str | None:
    n = paths.shape[0]
    if largest > n / 2:
        return f"one zero-cost component joins {largest} of {n} stimuli"
    off = paths[np.triu_indices(n, 1)]
    finite = off[np.isfinite(off)]
    if finite.size == 0:
        return "no two stimuli are connected"
    if np.ptp(finite) == 0:
        return f"all {finite.size} finite geodesic distances equal {finite[0]:g}"
    return None


def _fill_unreachable(paths: np.ndarray, fill: Any) -> np.ndarray:
    if fill is None:
        return paths
    bad = ~np.isfinite(paths)
    if not bad.any():
        return paths
    if isinstance(fill, str):
        finite = paths[np.isfinite(paths)]
        value = float(finite.max()) if finite.size else 1.0
    else:
        value = float(fill)
    paths = paths.copy()
    paths[bad] = value
    return paths


def _geodesic_options(method, zero_edges, p, k, neighbours, fill, lower, upper,
                      pretransformed) -> None:
    for value, name, choices in ((method, "method", GEODESIC_METHODS), (zero_edges, "zero_edges", ZERO_EDGES),
                                 (neighbours, "neighbours", NEIGHBOURS)):
        if value not in choices:
            raise InputError(f"{name}={value!r} is unknown; choose one of {', '.join(map(repr, choices))}")
    if isinstance(fill, str) and fill != "max":
        raise InputError(f"fill={fill!r} is unknown; pass None, a number or 'max'")
    check_unit_interval(p, "p")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k={k!r} is not a positive integer; pass the neighbours per stimulus")
    if method == "twostep" and not pretransformed:
        _check_levels(lower, upper)


def _settings_text(o: dict) -> str:
    parts = [f"method={o['method']!r}"]
    if o["method"] == "twostep":
        parts += ["pretransformed=True"] if o["pretransformed"] else [f"lower={o['lower']}", f"upper={o['upper']}"]
    elif o["method"] in ("p_shortest", "p_nearest"):
        parts.append(f"p={o['p']}")
    else:
        parts.append(f"k={o['k']}")
    return ", ".join(parts + [f"zero_edges={o['zero_edges']!r}"])


def geodesic(
    rdm: Any,
    lower: float = 0.0,
    upper: float = 0.075,
    *,
    method: str = "twostep",
    zero_edges: str = "drop",
    p: float = 0.05,
    k: int = 1,
    rank: bool = True,
    neighbours: str = "authors",
    gt_rank: bool = True,
    pretransformed: bool = False,
    fill: Any = None,
):
    """Graph-geodesic distances of one RDM or a stack, as the tRSA authors define them.

    Lin & Kriegeskorte's code (TopologicalRSA, ``geodesic_transform``) builds a
    weighted graph on the stimuli and replaces every dissimilarity with the
    length of the shortest path. The graph, per ``method``:

    - ``"twostep"``: weights are the GT values (:func:`gt_transform` with
      ``lower``, ``upper``, ``gt_rank``; min-max scaled as the authors do), edges
      where the weight is < 1;
    - ``"p_shortest"``: weights are the min-max scaled ranks of the
      dissimilarities, edges among the shortest fraction ``p`` of pairs;
    - ``"p_nearest"``, ``"k_nearest"``: the same weights, each stimulus joined to
      its ``int(p * n)`` or ``k`` nearest others (see ``neighbours``).

    Pairs of weight 0 (at or below the lower quantile for ``twostep``; the
    smallest pair for the others) are **no edge** with ``zero_edges="drop"``, as in
    the authors' code (networkx makes no edge of a zero); ``"keep"`` makes them
    zero-cost edges (brainalign's behaviour before 0.x), which at lower quantiles
    above a few percent joins most stimuli into one component at distance 0. When
    an RDM collapses like that, or all its finite distances are equal, a
    :class:`~brainalign.errors.GeodesicCollapseWarning` names the settings.
    Shortest paths: :func:`scipy.sparse.csgraph.shortest_path`, undirected.

    Parameters
    ----------
    rdm : array, shape (n, n) or (k, n, n)
        Dissimilarities (GT values in [0, 1] when ``pretransformed``).
    lower, upper, gt_rank : GT settings of ``twostep`` (see :func:`gt_transform`);
        the defaults are the authors' geodesic examples (0 and 0.075).
    method : {"twostep", "p_shortest", "p_nearest", "k_nearest"}
    zero_edges : {"drop", "keep"}
    p : float in [0, 1]
        Fraction of pairs (``p_shortest``) or of stimuli (``p_nearest``); default 0.05.
    k : int
        Neighbours per stimulus for ``k_nearest``; default 1.
    rank : bool
        True (the authors' default): replace the off-diagonal path lengths by their
        average ranks, min-max scaled to [0, 1] (unreachable pairs rank last, tied;
        lengths are rounded to 12 decimals first, so equal sums tie).
        False: raw path lengths (GT units).
    neighbours : {"authors", "union", "mutual"}
        How ``p_nearest``/``k_nearest`` make undirected edges from each stimulus's
        neighbours: "authors" keeps the pair i < j iff j is among i's neighbours
        (their code's rule, order-dependent); "union" either way; "mutual" both.
    pretransformed : bool
        ``twostep`` only: ``rdm`` already holds GT values in [0, 1].
    fill : None, float or "max"
        Unreachable pairs are ``inf`` when None; a number replaces them with that
        number; "max" with the largest finite path length of that RDM. Applied
        before ``rank``.

    Returns
    -------
    ndarray (or torch.Tensor if given one), same shape as ``rdm``
        Symmetric, zero diagonal.
    """
    _geodesic_options(method, zero_edges, p, k, neighbours, fill, lower, upper, pretransformed)
    stack, single = as_rdm_stack(rdm, "rdm")
    if pretransformed and method == "twostep" and (stack.min() < 0 or stack.max() > 1):
        raise InputError("pretransformed=True needs GT values in [0, 1]; got values outside")
    o = dict(method=method, zero_edges=zero_edges, p=float(p), k=int(k), neighbours=neighbours,
             lower=float(lower), upper=float(upper), gt_rank=gt_rank, pretransformed=pretransformed)
    n = stack.shape[-1]
    out = np.empty(stack.shape, dtype=np.float64)
    reasons = []
    for i, v in enumerate(triu_vectors(stack.astype(np.float64))):
        paths, largest = _all_pairs(*_graph(v, n, o))
        paths = np.minimum(paths, paths.T)
        reason = _collapse_reason(paths, largest)
        if reason:
            reasons.append((i, reason))
        out[i] = _fill_unreachable(paths, fill)
    if reasons:
        i, why = reasons[0]
        warnings.warn(
            f"geodesic collapsed for {len(reasons)} of {len(out)} RDMs (RDM {i}: {why}) with "
            f"{_settings_text(o)}; use zero_edges='drop', a smaller lower or upper, or method='p_shortest'",
            GeodesicCollapseWarning, stacklevel=2)
    if rank:
        # round first: path sums equal in exact arithmetic must tie, whatever the summation order
        vec = np.round(triu_vectors(out), 12)
        out = from_triu(_minmax(rankdata(vec, method="average", axis=-1)), n)
    out = out[0] if single else out
    return like_input(out, rdm)
