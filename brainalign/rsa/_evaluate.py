"""Batched evaluation of models against participants' RDMs (private).

For a batch of bootstrap samples, described by stimulus pair weights ``W`` (b, m)
and participant counts ``c`` (b, N), compute every participant-by-model similarity
and the leave-one-participant-out noise ceiling of each sample, without building
resampled RDMs (pearson, cosine, spearman) or in a plain loop (kendall_tau_a, cka).

Pooling for the noise ceiling follows rsatoolbox's ``pool_rdm``: the mean of unit
(z-scored) vectors for pearson and cosine, of ranks for spearman and Kendall's tau,
of unit-norm centred Gram matrices for CKA.
"""
from __future__ import annotations

import numpy as np

from . import _kernels as K

_MEM_BUDGET = 192 * 2**20  # bytes of float64 temporaries per chunk


def pair_weights(stim_counts: np.ndarray, n: int) -> np.ndarray:
    """(b, m) weights c_i * c_j of the upper-triangle pairs (i < j)."""
    iu, ju = np.triu_indices(n, k=1)
    return stim_counts[:, iu] * stim_counts[:, ju]


def _ceiling_from_gram(G: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(b, 2) lower/upper noise ceilings from the (b, N, N) Gram of unit vectors.

    Upper: each participant vs the c-weighted mean of all; lower: vs the mean of
    the others; both averaged over participants with weights c.
    """
    g = np.einsum("bst,bt->bs", G, c)
    q = np.einsum("bs,bs->b", c, g)[:, None]
    diag = np.einsum("bss->bs", G)
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = g / np.sqrt(q)
        g_lo = g - diag * c
        q_lo = q - 2 * c * g + c * c * diag
        # the others' pool is empty when only participant s was drawn: no lower bound
        defined = q_lo > 1e-12 * np.maximum(q, 1e-300)
        lower = np.where(defined, g_lo / np.sqrt(np.clip(q_lo, 1e-300, None)), np.nan)
    up = (c * upper).sum(axis=1) / c.sum(axis=1)
    wl = np.where(np.isfinite(lower), c, 0.0)
    wsum = wl.sum(axis=1)
    lo = np.where(wsum > 0, (wl * np.nan_to_num(lower)).sum(axis=1) / np.maximum(wsum, 1e-300), np.nan)
    return np.stack([np.clip(lo, -1, 1), np.clip(up, -1, 1)], axis=1)


def _chunk(n_rows: int, per_row_bytes: int) -> int:
    return int(max(1, min(n_rows, _MEM_BUDGET // max(per_row_bytes, 1))))


def _gram_linear(X: np.ndarray, W: np.ndarray, method: str, n_data: int, want_nc: bool):
    """Weighted correlation/cosine matrices among rows of X for each weight row.

    Uses H[b, (k, l)] = sum_e W[b, e] X[k, e] X[l, e], one GEMM for all samples,
    over only the row pairs needed (data x data for the ceiling, data x model,
    and the diagonal).
    """
    Kn, m = X.shape
    b = W.shape[0]
    if method == "pearson":
        X = X - X.mean(axis=1, keepdims=True)  # limits cancellation; correlations unchanged
    idx_d = np.arange(n_data)
    idx_m = np.arange(n_data, Kn)
    pk, pl = [np.arange(Kn)], [np.arange(Kn)]  # the diagonal
    dm_k, dm_l = np.meshgrid(idx_d, idx_m, indexing="ij")
    pk.append(dm_k.ravel()); pl.append(dm_l.ravel())
    if want_nc:
        dk, dl = np.triu_indices(n_data, k=1)
        pk.append(dk); pl.append(dl)
    pk, pl = np.concatenate(pk), np.concatenate(pl)
    H = np.empty((b, pk.size))
    step = _chunk(pk.size, m * 8)
    for s in range(0, pk.size, step):
        Z = X[pk[s:s + step]] * X[pl[s:s + step]]
        H[:, s:s + step] = W @ Z.T
    if method == "pearson":
        S1 = W @ X.T
        wsum = W.sum(axis=1, keepdims=True)
        H = H - S1[:, pk] * S1[:, pl] / wsum
    cov = np.zeros((b, Kn, Kn))
    cov[:, pk, pl] = H
    cov[:, pl, pk] = H
    norm = np.sqrt(np.clip(np.einsum("bkk->bk", cov), 0, None))
    denom = norm[:, :, None] * norm[:, None, :]
    corr = np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)
    return np.clip(corr, -1.0, 1.0)


def _unit_weighted(R: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted-centred rows of unit weighted norm (zero rows stay zero)."""
    Rc = R - (R @ w)[:, None] / w.sum()
    norm = np.sqrt((Rc * Rc) @ w)[:, None]
    return np.divide(Rc, norm, out=np.zeros_like(Rc), where=norm > 0)


def _spearman(X: np.ndarray, order: np.ndarray, W: np.ndarray, c: np.ndarray, n_data: int,
              want_nc: bool):
    """Spearman, one sample at a time on the pairs it actually contains.

    ``order`` (K, m) sorts each row of X once; a sample keeps the pairs of weight
    > 0 (about 40% of them in a stimulus bootstrap), and its weighted ranks come
    from the restricted order without sorting. The pooled ranks of the noise
    ceiling are re-ranked, as rsatoolbox does.
    """
    b = W.shape[0]
    Kn = X.shape[0]
    scores = np.empty((b, n_data, Kn - n_data))
    nc = np.full((b, 2), np.nan) if want_nc else None
    for i in range(b):
        w = W[i]
        keep = w > 0
        mk = int(keep.sum())
        col = np.cumsum(keep) - 1
        o = order[keep[order]].reshape(Kn, mk)
        ws = w[o]
        vs = np.take_along_axis(X, o, axis=1)
        R = np.empty((Kn, mk))
        np.put_along_axis(R, col[o], K.ranks_from_sorted(vs, ws), axis=1)
        wk = w[keep]
        U = _unit_weighted(R, wk)
        Ud = U[:n_data] * wk
        scores[i] = np.clip(Ud @ U[n_data:].T, -1, 1)
        if not want_nc:
            continue
        ci = c[i]
        Rd = R[:n_data]
        total = ci @ Rd
        csum = ci.sum()
        p_all = (total / csum)[None]
        up = Ud @ _unit_weighted(K.weighted_rank(p_all, wk, order=np.argsort(p_all, axis=-1)), wk)[0]
        drawn = np.flatnonzero((ci > 0) & (csum - ci > 0))
        upper = (ci * up).sum() / csum
        if drawn.size:
            p_lo = (total[None] - ci[drawn, None] * Rd[drawn]) / (csum - ci[drawn])[:, None]
            lo_u = _unit_weighted(K.weighted_rank(p_lo, wk, order=np.argsort(p_lo, axis=-1)), wk)
            lo = np.einsum("sm,sm->s", Ud[drawn], lo_u)
            lower = (ci[drawn] * lo).sum() / ci[drawn].sum()
        else:
            lower = np.nan
        nc[i] = (np.clip(lower, -1, 1), np.clip(upper, -1, 1))
    return scores, nc


def _loop(sd: np.ndarray, sm: np.ndarray, stim_idx: np.ndarray, c: np.ndarray, method: str, want_nc: bool):
    """Kendall tau-a and CKA: one sample at a time on the explicitly resampled RDMs."""
    b = stim_idx.shape[0]
    N, M = sd.shape[0], sm.shape[0]
    scores = np.empty((b, N, M))
    nc = np.full((b, 2), np.nan) if want_nc else None
    n = sd.shape[-1]
    iu, ju = np.triu_indices(n, k=1)
    for i in range(b):
        idx = stim_idx[i]
        if method == "cka":
            d = sd[:, idx][:, :, idx]
            mo = sm[:, idx][:, :, idx]
            scores[i] = K.cka(d, mo)
            if want_nc:
                Ud = K.unit_vectors(K.centred_gram(d).reshape(N, -1), "cosine")
                nc[i] = _ceiling_from_gram((Ud @ Ud.T)[None], c[i][None])[0]
            continue
        keep = idx[iu] != idx[ju]
        a, bb = idx[iu][keep], idx[ju][keep]
        vd, vm = sd[:, a, bb], sm[:, a, bb]
        scores[i] = K.kendall_tau_a(vd, vm)
        if want_nc:
            ranks = K.weighted_rank(vd)
            ci = c[i]
            total = (ci[:, None] * ranks).sum(0)
            rest = ci.sum() - ci
            pooled = [total / ci.sum()] + [
                (total - ci[s] * ranks[s]) / rest[s] if rest[s] > 0 else total for s in range(N)
            ]
            tau_up = K.kendall_tau_a_pairs(np.repeat(np.array(pooled[:1]), N, axis=0), vd)
            tau_lo = K.kendall_tau_a_pairs(np.array(pooled[1:]), vd)
            ok = rest > 0
            nc[i, 1] = (ci * tau_up).sum() / ci.sum()
            nc[i, 0] = (ci[ok] * tau_lo[ok]).sum() / ci[ok].sum() if ok.any() else np.nan
    return scores, nc


def evaluate(sd: np.ndarray, sm: np.ndarray, method: str, stim_idx: np.ndarray | None,
             c: np.ndarray, want_nc: bool):
    """Participant x model similarities (b, N, M) and ceilings (b, 2) for each sample.

    Parameters
    ----------
    sd : (N, n, n) participants' RDMs; sm : (M, n, n) model RDMs.
    stim_idx : (b, n) int stimulus draws, or None for the full stimulus set.
    c : (b, N) participant counts (weights).
    """
    N, n = sd.shape[0], sd.shape[-1]
    b = c.shape[0]
    if stim_idx is None and not want_nc and b > 1:
        # stimuli fixed and no ceiling: similarities do not depend on the sample
        once, _ = evaluate(sd, sm, method, None, c[:1], False)
        return np.broadcast_to(once, (b,) + once.shape[1:]), None
    if stim_idx is None:
        stim_idx = np.broadcast_to(np.arange(n), (b, n))
    if method in ("kendall_tau_a", "cka"):
        return _loop(sd, sm, stim_idx, c, method, want_nc)
    counts = np.zeros((b, n))
    np.add.at(counts, (np.arange(b)[:, None], stim_idx), 1.0)
    iu, ju = np.triu_indices(n, k=1)
    X = np.concatenate([sd[:, iu, ju], sm[:, iu, ju]])
    Kn, m = X.shape
    scores = np.empty((b, N, sm.shape[0]))
    nc = np.full((b, 2), np.nan) if want_nc else None
    if method == "spearman":
        order = np.argsort(X, axis=1)
        step = _chunk(b, m * 8 * 2)
    else:
        step = _chunk(b, m * 8 * 4)
    for s in range(0, b, step):
        W = pair_weights(counts[s:s + step], n)
        cs = c[s:s + step]
        if method == "spearman":
            scores[s:s + step], part_nc = _spearman(X, order, W, cs, N, want_nc)
            if want_nc:
                nc[s:s + step] = part_nc
        else:
            corr = _gram_linear(X, W, method, N, want_nc)
            scores[s:s + step] = corr[:, :N, N:]
            if want_nc:
                nc[s:s + step] = _ceiling_from_gram(corr[:, :N, :N], cs)
    return scores, nc
