"""Nearest-neighbour alignment of two representations of the same items.

Huh, Cheung, Wang & Isola, "The Platonic Representation Hypothesis" (ICML 2024):
mutual k-NN, cycle k-NN and CKNNA. Rows are L2-normalised and neighbours are the
largest inner products (cosine similarity), each item itself excluded.

Neighbours come from :func:`knn_indices`, which never builds or sorts the full
(n, n) similarity matrix: it walks the upper triangle of the similarity GEMM in
square blocks (half the flops of the full product, memory bounded by one block)
and keeps a running top-k per row with :func:`numpy.argpartition`. The blocks are
float32; the candidates they give are recomputed in float64 and certified against
a rounding-error bound, rows without the margin are redone in float64, so the
answer is the float64 one.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from . import _torch
from ._checks import as_patterns, check_k, pairwise, same_items

BLOCK_BYTES = 1 << 25  # 32 MiB per similarity block


def normalize_rows(x: np.ndarray, name: str = "A") -> np.ndarray:
    """Rows of ``x`` (n, p) scaled to unit Euclidean norm; all-zero rows are refused."""
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
        i = int(np.flatnonzero(norms == 0)[0])
        raise InputError(f"{name} row {i} is all zeros (shape {x.shape}); cosine neighbours are undefined")
    return x / norms[:, None]


def _top_rows(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Values and column positions of the k largest entries of each row of ``s``."""
    kk = min(k, s.shape[1])
    pos = np.argpartition(s, s.shape[1] - kk, axis=1)[:, s.shape[1] - kk:]
    return np.take_along_axis(s, pos, axis=1), pos


def _merge(vals, idx, rows, new_v, new_i, k):
    v = np.concatenate([vals[rows], new_v], axis=1)
    i = np.concatenate([idx[rows], new_i], axis=1)
    pos = np.argpartition(v, v.shape[1] - k, axis=1)[:, v.shape[1] - k:]
    vals[rows] = np.take_along_axis(v, pos, axis=1)
    idx[rows] = np.take_along_axis(i, pos, axis=1)


def _update(vals, idx, rows: slice, s: np.ndarray, offset: int, k: int) -> None:
    """Merge block ``s`` (rows x cols) into the running top-k of ``rows``.

    Rows that already hold k values only look at entries above their current k-th
    value (a comparison, not a partition); others partition the block.
    """
    tau = vals[rows].min(axis=1)
    if not np.isfinite(tau).all():
        v, p = _top_rows(s, k)
        _merge(vals, idx, rows, v, p + offset, k)
        return
    r, c = np.nonzero(s > tau[:, None])
    if r.size == 0:
        return
    nr = s.shape[0]
    all_r = np.concatenate([np.repeat(np.arange(nr), k), r])
    all_v = np.concatenate([vals[rows].ravel(), s[r, c]])
    all_i = np.concatenate([idx[rows].ravel(), c + offset])
    order = np.lexsort((-all_v, all_r))  # by row, then value descending
    rank = np.arange(order.size) - np.searchsorted(all_r[order], all_r[order])
    keep = order[rank < k]
    vals[rows] = all_v[keep].reshape(nr, k)
    idx[rows] = all_i[keep].reshape(nr, k)


def _blocked_topk(x: np.ndarray, k: int, exclude_self: bool, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Running top-k of the upper-triangle similarity blocks (x's dtype throughout)."""
    n = x.shape[0]
    starts = list(range(0, n, b))
    vals = np.full((n, k), -np.inf, dtype=x.dtype)
    idx = np.full((n, k), -1, dtype=np.int64)
    for bi, s0 in enumerate(starts):
        r = slice(s0, min(s0 + b, n))
        xr = x[r]
        for s1 in starts[bi:]:
            c = slice(s1, min(s1 + b, n))
            s = xr @ x[c].T
            if s1 == s0 and exclude_self:
                np.fill_diagonal(s, -np.inf)
            _update(vals, idx, r, s, s1, k)
            if s1 != s0:
                _update(vals, idx, c, np.ascontiguousarray(s.T), s0, k)
    return vals, idx


def _exact_pairs(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float64 inner products x_rows[t] . x_cols[t], in chunks of bounded memory."""
    out = np.empty(rows.size)
    step = max(1, (1 << 24) // x.shape[1])
    for s in range(0, rows.size, step):
        out[s:s + step] = np.einsum("ij,ij->i", x[rows[s:s + step]], x[cols[s:s + step]])
    return out


def _exact_rows(x: np.ndarray, rows: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    """Top-k columns of full float64 similarity rows (the fallback of the certified search)."""
    idx = []
    step = max(1, (1 << 22) // x.shape[0])
    for s in range(0, rows.size, step):
        r = rows[s:s + step]
        sim = x[r] @ x.T
        if exclude_self:
            sim[np.arange(r.size), r] = -np.inf
        idx.append(_top_rows(sim, k)[1])
    return np.concatenate(idx)


def _certified(x: np.ndarray, k: int, exclude_self: bool, b: int) -> np.ndarray:
    """Exact top-k columns from a float32 candidate search with a rounding-error certificate.

    float32 blocks give m > k candidates per row with values f, sorted. A float32
    dot product of length p is within eps_i = gamma_(p+2) |x_i| max_j |x_j| of the
    exact one (casts included); non-candidates have f <= f_(m). With the band
    [f_(k) - 2 eps, f_(k+1) + 2 eps] around the boundary: candidates above it are
    certainly in the top k, those below (and all non-candidates, when
    f_(k) - f_(m) > 2 eps) certainly out; the few inside are ranked by their exact
    float64 values. Rows where the band reaches the last candidate are recomputed
    from full float64 rows.
    """
    n, p = x.shape
    m = min(2 * k + 8, n - 1 if exclude_self else n)
    norms = np.linalg.norm(x, axis=1)
    u = float(np.finfo(np.float32).eps) / 2
    eps = (1.01 * (p + 2) * u / (1 - (p + 2) * u) * norms * norms.max())[:, None]
    f32, cand = _blocked_topk(x.astype(np.float32), m, exclude_self, b)
    order = np.argsort(-f32, axis=1, kind="stable")
    f = np.take_along_axis(f32, order, axis=1).astype(np.float64)
    cand = np.take_along_axis(cand, order, axis=1)
    sure_in = f - eps > f[:, k:k + 1] + eps
    band = ~sure_in & (f + eps >= f[:, k - 1:k] - eps)
    need = k - sure_in.sum(axis=1)
    r, c = np.nonzero(band)
    exact = _exact_pairs(x, r, cand[r, c])
    pick = np.lexsort((-exact, r))
    r, c = r[pick], c[pick]
    rank = np.arange(r.size) - np.searchsorted(r, r)
    chosen = np.zeros_like(sure_in)
    chosen[r[rank < need[r]], c[rank < need[r]]] = True
    idx = cand[sure_in | chosen].reshape(n, k)
    full = m == (n - 1 if exclude_self else n)
    bad = np.flatnonzero(band[:, -1]) if not full else np.empty(0, dtype=int)
    if bad.size:
        idx[bad] = _exact_rows(x, bad, k, exclude_self)
    return idx


def knn_indices(x: Any, k: int, *, exclude_self: bool = True, block: int | None = None,
                return_values: bool = False, certified: bool = True):
    """Indices of each row's k largest inner products with the other rows.

    Parameters
    ----------
    x : array, shape (n, p)
        Rows to compare (normalise them first for cosine neighbours).
    k : int
        Neighbours per row, 1 <= k <= n - 1.
    exclude_self : bool
        True: a row is never its own neighbour.
    block : int, optional
        Rows per block (default: blocks of at most 32 MiB).
    return_values : bool
        Also return the (float64) inner products of the neighbours.
    certified : bool
        True (default): candidates from float32 blocks, settled by a rounding-error
        bound, the uncertain ones ranked by exact float64 values (rows without the
        margin redone in float64). False: float64 blocks throughout. Both give the
        float64 answer.

    Returns
    -------
    idx : ndarray of int64, shape (n, k)
        Neighbours of each row, in no particular order. Among exactly tied
        similarities (to about 1e-13) the choice is arbitrary.
    values : ndarray, shape (n, k)
        Only with ``return_values``.

    A torch tensor ``x`` is searched in torch on its device, in its dtype, and gives
    torch tensors.
    """
    if _torch.is_torch(x):  # row blocks + torch.topk on the tensor's device; torch indices
        t = x.detach()
        k = check_k(k, t.shape[0] + (0 if exclude_self else 1))
        idx = _torch.knn_indices(t, k, exclude_self)
        return (idx, (t[:, None, :] * t[idx]).sum(dim=-1)) if return_values else idx
    x = np.asarray(x, dtype=np.float64)
    n, p = x.shape
    k = check_k(k, n + (0 if exclude_self else 1))
    b = int(block) if block else max(1, min(n, int(np.sqrt(BLOCK_BYTES / 8))))
    small = n <= 2 * k + 8 or (p + 2) * np.finfo(np.float32).eps > 0.1
    if certified and not small and np.abs(x).max() < 1e18:
        idx = _certified(x, k, exclude_self, b)
        if not return_values:
            return idx
        rows = np.repeat(np.arange(n), k)
        return idx, _exact_pairs(x, rows, idx.ravel()).reshape(n, k)
    vals, idx = _blocked_topk(x, k, exclude_self, b)
    return (idx, vals) if return_values else idx


def _overlap(ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Per row, the number of entries the two (n, k) index sets share."""
    n, k = ia.shape
    out = np.empty(n)
    step = max(1, (1 << 22) // (k * k))
    for s in range(0, n, step):
        a, b = ia[s:s + step], ib[s:s + step]
        out[s:s + step] = (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2))
    return out


def _neighbours(stack: list, k: int, name: str) -> list:
    return [knn_indices(normalize_rows(a, name), k) for a in stack]


def mutual_knn(A: Any, B: Any, k: int = 10):
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024).

    For each item, take its k nearest neighbours in A and in B (cosine similarity
    of L2-normalised rows, the item itself excluded); the score is the mean over
    items of the fraction of neighbours the two sets share.

    Parameters
    ----------
    A, B : array (n, p) / (n, q), or stacks (La, n, p) / sequences of (n, p_l)
        Two representations of the same n items, rows in the same order.
    k : int
        Neighbours per item, 1 <= k <= n - 1.

    Returns
    -------
    float in [0, 1] for two arrays, else an (La, Lb) matrix (a torch tensor on the
    inputs' device when either is a tensor: the similarity GEMM and
    :func:`torch.topk` then run there, in float64 for float64 input).
    """
    if _torch.is_torch(A) or _torch.is_torch(B):
        return _mutual_knn_torch(A, B, k)
    sa, single_a = as_patterns(A, "A", min_items=3)
    sb, single_b = as_patterns(B, "B", min_items=3)
    n = same_items(sa, sb)
    k = check_k(k, n)
    na, nb = _neighbours(sa, k, "A"), _neighbours(sb, k, "B")
    return pairwise(na, nb, single_a and single_b,
                    lambda i, j: float(_overlap(na[i], nb[j]).mean() / k))


def _torch_neighbours(A: Any, B: Any, k: int, min_items: int) -> tuple[list, list, bool, int]:
    sa, single_a, sb, single_b = _torch.pair_inputs(A, B, min_items)
    n = same_items(sa, sb)
    k = check_k(k, n)
    na = [_torch.knn_indices(_torch.normalize_rows(a, "A"), k) for a in sa]
    nb = [_torch.knn_indices(_torch.normalize_rows(b, "B"), k) for b in sb]
    return na, nb, single_a and single_b, k


def _mutual_knn_torch(A: Any, B: Any, k: int):
    na, nb, single, k = _torch_neighbours(A, B, k, 3)
    dtype = _torch.placement(A, B)[1]
    return _torch.pairwise(na, nb, single, lambda i, j: _torch.overlap_mean(na[i], nb[j]) / k, dtype)


def _cycle(ia: np.ndarray, ib: np.ndarray) -> float:
    n, k = ia.shape
    keys = np.sort((np.arange(n)[:, None] * n + ia).ravel())  # pairs (j, neighbour of j in A)
    query = ib * n + np.arange(n)[:, None]  # (j in knn_B(i), i)
    pos = np.clip(np.searchsorted(keys, query), 0, keys.size - 1)
    return float((keys[pos] == query).any(axis=1).mean())


def cycle_knn(A: Any, B: Any, k: int = 10):
    """Cycle k-NN (Huh et al. 2024): the fraction of items i for which some
    neighbour j of i in B has i among its own neighbours in A.

    Parameters and returns as :func:`mutual_knn` (with tensors, the neighbours are
    found in torch and the (n, k) index sets compared on the CPU).
    """
    if _torch.is_torch(A) or _torch.is_torch(B):
        na, nb, single, k = _torch_neighbours(A, B, k, 3)
        na, nb = [i.cpu().numpy() for i in na], [i.cpu().numpy() for i in nb]
        return _torch.as_result(pairwise(na, nb, single, lambda i, j: _cycle(na[i], nb[j])), single, A, B)
    sa, single_a = as_patterns(A, "A", min_items=3)
    sb, single_b = as_patterns(B, "B", min_items=3)
    n = same_items(sa, sb)
    k = check_k(k, n)
    na, nb = _neighbours(sa, k, "A"), _neighbours(sb, k, "B")
    return pairwise(na, nb, single_a and single_b, lambda i, j: _cycle(na[i], nb[j]))


def _masked_gram(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_matrix:
    vals = np.einsum("ij,ij->i", x[rows], x[cols])
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))


def _hsic_sparse(K: sp.csr_matrix, L: sp.csr_matrix, unbiased: bool) -> float:
    """HSIC of two (n, n) sparse kernels: Song et al.'s unbiased form or tr(KHLH)."""
    n = K.shape[0]
    if unbiased:
        K = K - sp.diags(K.diagonal())
        L = L - sp.diags(L.diagonal())
    tr = float(K.multiply(L.T).sum())
    sk, sl = float(K.sum()), float(L.sum())
    if unbiased:
        cross = float(np.asarray(K.sum(axis=0)).ravel() @ np.asarray(L.sum(axis=1)).ravel())
        return (tr + sk * sl / ((n - 1) * (n - 2)) - 2 * cross / (n - 2)) / (n * (n - 3))
    kl = float(np.asarray(K.sum(axis=0)).ravel() @ np.asarray(L.sum(axis=1)).ravel())  # 1'KL1
    lk = float(np.asarray(L.sum(axis=0)).ravel() @ np.asarray(K.sum(axis=1)).ravel())  # 1'LK1
    return tr - (kl + lk) / n + sk * sl / n ** 2


def _cknna_pair(xa, xb, ia, ib, unbiased: bool) -> float:
    n = xa.shape[0]

    def sim(x1, i1, x2, i2):
        rows = np.repeat(np.arange(n), i1.shape[1])
        m1 = sp.csr_matrix((np.ones(rows.size), (rows, i1.ravel())), shape=(n, n))
        m2 = sp.csr_matrix((np.ones(rows.size), (rows, i2.ravel())), shape=(n, n))
        r, c = m1.multiply(m2).nonzero()
        return _hsic_sparse(_masked_gram(x1, r, c, n), _masked_gram(x2, r, c, n), unbiased)

    kl, kk, ll = sim(xa, ia, xb, ib), sim(xa, ia, xa, ia), sim(xb, ib, xb, ib)
    denom = np.sqrt(kk * ll)
    return float(kl / denom) if denom > 0 else float("nan")


def cknna(A: Any, B: Any, k: int = 10, *, unbiased: bool = True):
    """Centered kernel nearest-neighbour alignment, CKNNA (Huh et al. 2024).

    Linear kernels K = Â Â', L = B̂ B̂' of the L2-normalised rows, kept only on
    the pairs (i, j) where j is among i's k nearest neighbours in both (self
    excluded when ``unbiased``, included otherwise); then
    HSIC(K_m, L_m) / sqrt(HSIC(K_m', K_m') HSIC(L_m'', L_m'')), each self-term
    masked by its own neighbours. HSIC is Song et al.'s unbiased estimator when
    ``unbiased`` (the paper's default), else the biased tr(KHLH). Unlike
    platonic-rep no 1e-6 is added to the denominator; a zero denominator gives NaN.

    Parameters and returns as :func:`mutual_knn` (``k >= 2``).
    """
    sa, single_a = as_patterns(A, "A", min_items=5)
    sb, single_b = as_patterns(B, "B", min_items=5)
    n = same_items(sa, sb)
    k = check_k(k, n + (0 if unbiased else 1), low=2)
    xa = [normalize_rows(a, "A") for a in sa]
    xb = [normalize_rows(b, "B") for b in sb]
    ia = [knn_indices(x, k, exclude_self=unbiased) for x in xa]
    ib = [knn_indices(x, k, exclude_self=unbiased) for x in xb]
    return pairwise(xa, xb, single_a and single_b,
                    lambda i, j: _cknna_pair(xa[i], xb[j], ia[i], ib[j], unbiased))
