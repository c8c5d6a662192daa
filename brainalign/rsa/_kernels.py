"""Vectorised comparison kernels on RDM vectors (private).

Every kernel works on stacks of upper-triangle vectors and accepts non-negative
weights per entry: a stimulus bootstrap sample is exactly a weight c_a * c_b on the
original pair (a, b) (c = how often each stimulus was drawn), with pairs of a
duplicated stimulus left out, so weighted statistics equal those of the resampled
RDM without ever building it.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

SIMPLE_METHODS = ("pearson", "spearman", "cosine")
METHODS = ("spearman", "pearson", "cosine", "kendall_tau_a", "cka")


def ranks_from_sorted(vs: np.ndarray, ws: np.ndarray) -> np.ndarray:
    """Weighted average ranks of rows already sorted ascending (values vs, weights ws)."""
    b, m = vs.shape
    cs = np.cumsum(ws, axis=-1)
    cs_ex = cs - ws
    new = np.ones(vs.shape, dtype=bool)
    np.not_equal(vs[:, 1:], vs[:, :-1], out=new[:, 1:])
    if new.all():  # no ties: each entry's copies take the next ranks
        return cs_ex + 0.5 * (ws + 1.0)
    pos = np.broadcast_to(np.arange(m), vs.shape)
    last = np.ones(vs.shape, dtype=bool)
    last[:, :-1] = new[:, 1:]
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=-1)
    end = np.minimum.accumulate(np.where(last, pos, m - 1)[:, ::-1], axis=-1)[:, ::-1]
    less = np.take_along_axis(cs_ex, start, axis=-1)
    total = np.take_along_axis(cs, end, axis=-1) - less
    return less + 0.5 * (total + 1.0)


def weighted_rank(values: np.ndarray, weights: np.ndarray | None = None,
                  order: np.ndarray | None = None) -> np.ndarray:
    """Average ranks (1-based) of each row, an entry counting ``weight`` times.

    With integer weights this is the rank each entry would have in the vector in
    which entry e is repeated weights[e] times (ties share their average rank).

    Parameters
    ----------
    values : ndarray, shape (..., m)
    weights : ndarray broadcastable to ``values``, or None (all ones)
    order : ndarray of int, shape like ``values``, optional
        A known ascending argsort of each row (skips the sort).
    """
    if weights is None and order is None:
        return rankdata(values, method="average", axis=-1)
    values = np.asarray(values, dtype=np.float64)
    shape = values.shape
    v = values.reshape(-1, shape[-1])
    if order is None:
        order = np.argsort(v, axis=-1)
    else:
        order = order.reshape(-1, shape[-1])
    vs = np.take_along_axis(v, order, axis=-1)
    w = np.ones(shape[-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.ndim == 1 or (w.ndim == 2 and w.shape[0] == 1):
        ws = w.reshape(-1)[order]  # one weight vector shared by all rows
    else:
        w = np.broadcast_to(w, shape).reshape(-1, shape[-1])
        ws = np.take_along_axis(w, order, axis=-1)
    ranks = np.empty_like(vs)
    np.put_along_axis(ranks, order, ranks_from_sorted(vs, ws), axis=-1)
    return ranks.reshape(shape)


def unit_vectors(v: np.ndarray, method: str, weights: np.ndarray | None = None) -> np.ndarray:
    """Rows transformed so that the method's similarity is a weighted dot product.

    pearson: weighted centring and unit weighted norm; spearman: the same on
    (weighted) average ranks; cosine: unit weighted norm. Rows of zero norm become
    zeros (their similarity with anything is 0, as rsatoolbox's cosine).
    """
    v = np.asarray(v, dtype=np.float64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if method == "spearman":
        v = weighted_rank(v, w)
    if method in ("pearson", "spearman"):
        if w is None:
            v = v - v.mean(axis=-1, keepdims=True)
        else:
            v = v - (v * w).sum(axis=-1, keepdims=True) / w.sum(axis=-1, keepdims=True)
    sq = (v * v).sum(axis=-1, keepdims=True) if w is None else (w * v * v).sum(axis=-1, keepdims=True)
    norm = np.sqrt(sq)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


def simple_similarity(va: np.ndarray, vb: np.ndarray, method: str,
                      weights: np.ndarray | None = None) -> np.ndarray:
    """(ka, kb) similarities for pearson / spearman / cosine (optionally weighted)."""
    ua = unit_vectors(va, method, weights)
    ub = unit_vectors(vb, method, weights)
    if weights is not None:
        ua = ua * weights
    return np.clip(ua @ ub.T, -1.0, 1.0)


# --- Kendall tau-a ------------------------------------------------------------------
def _dense_ranks(v: np.ndarray) -> np.ndarray:
    """0-based dense ranks of each row (ties share a rank), int64."""
    order = np.argsort(v, axis=-1, kind="stable")
    vs = np.take_along_axis(v, order, axis=-1)
    new = np.zeros(vs.shape, dtype=np.int64)
    new[:, 1:] = vs[:, 1:] != vs[:, :-1]
    dense_sorted = np.cumsum(new, axis=-1)
    out = np.empty_like(dense_sorted)
    np.put_along_axis(out, order, dense_sorted, axis=-1)
    return out


def _tied_pairs(sorted_rows: np.ndarray) -> np.ndarray:
    """Number of tied pairs sum t(t-1)/2 in each sorted row."""
    b, m = sorted_rows.shape
    starts = np.ones((b, m), dtype=bool)
    starts[:, 1:] = sorted_rows[:, 1:] != sorted_rows[:, :-1]
    run_id = np.cumsum(starts.ravel()) - 1
    counts = np.bincount(run_id).astype(np.int64)
    row_of_run = np.nonzero(starts.ravel())[0] // m
    return np.bincount(row_of_run, weights=counts * (counts - 1) // 2, minlength=b).astype(np.int64)


def _strict_inversions(y: np.ndarray) -> np.ndarray:
    """Number of pairs i < j with y_i > y_j in each row (non-negative ints), O(m log^2 m)."""
    b, m = y.shape
    size = 1 << max(int(np.ceil(np.log2(max(m, 2)))), 1)
    big = int(y.max(initial=0)) + 1
    arr = np.full((b, size), big, dtype=np.int64)
    arr[:, :m] = y
    scale = big + 1
    inv = np.zeros(b, dtype=np.int64)
    w = 1
    while w < size:
        blocks = arr.reshape(b, size // (2 * w), 2, w)
        left, right = blocks[:, :, 0, :], blocks[:, :, 1, :]
        n_pairs = b * (size // (2 * w))
        offs = (np.arange(n_pairs, dtype=np.int64) * scale).reshape(b, -1, 1)
        lkeys = (left + offs).ravel()
        pos = np.searchsorted(lkeys, (right + offs).ravel(), side="right").reshape(b, -1, w)
        block_start = (np.arange(n_pairs, dtype=np.int64) * w).reshape(b, -1, 1)
        greater = w - (pos - block_start)
        inv += greater.reshape(b, -1).sum(axis=-1)
        arr = np.sort(blocks.reshape(b, -1, 2 * w), axis=-1).reshape(b, size)
        w *= 2
    return inv


def kendall_tau_a_pairs(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-a between row i of x and row i of y, shape (b,).

    tau_a = (concordant - discordant) / (m (m - 1) / 2), ties counting as neither.
    Computed exactly in integers from sorting and merge-based inversion counts.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    b, m = x.shape
    n0 = m * (m - 1) // 2
    xd, yd = _dense_ranks(x), _dense_ranks(y)
    key = xd * (m + 1) + yd
    order = np.argsort(key, axis=-1, kind="stable")
    ys = np.take_along_axis(yd, order, axis=-1)
    keys_sorted = np.take_along_axis(key, order, axis=-1)
    dis = _strict_inversions(ys)
    n1 = _tied_pairs(np.sort(xd, axis=-1))
    n2 = _tied_pairs(np.sort(yd, axis=-1))
    n3 = _tied_pairs(keys_sorted)
    s = n0 - n1 - n2 + n3 - 2 * dis
    return s / n0


def kendall_tau_a(va: np.ndarray, vb: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(ka, kb) Kendall tau-a for every pair of rows."""
    ka, kb = va.shape[0], vb.shape[0]
    ia, ib = np.meshgrid(np.arange(ka), np.arange(kb), indexing="ij")
    ia, ib = ia.ravel(), ib.ravel()
    out = np.empty(ia.size)
    for s in range(0, ia.size, chunk):
        out[s:s + chunk] = kendall_tau_a_pairs(va[ia[s:s + chunk]], vb[ib[s:s + chunk]])
    return out.reshape(ka, kb)


# --- linear CKA from RDMs ------------------------------------------------------------
def centred_gram(stack: np.ndarray) -> np.ndarray:
    """Double-centred Gram matrices -H D H / 2 of a (k, n, n) stack of RDMs."""
    d = np.asarray(stack, dtype=np.float64)
    d = d - d.mean(axis=-1, keepdims=True)
    d = d - d.mean(axis=-2, keepdims=True)
    return -0.5 * d


def cka(sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """(ka, kb) linear CKA between the Gram matrices implied by square RDM stacks."""
    ga = centred_gram(sa).reshape(sa.shape[0], -1)
    gb = centred_gram(sb).reshape(sb.shape[0], -1)
    return simple_similarity(ga, gb, "cosine")

