"""Representational dissimilarity matrices from activity patterns.

Every metric is computed from Gram matrices (one GEMM per set, batched over sets),
never from (n_observations, p, p) arrays. Element-wise work runs in torch (on the
tensor's device for torch input); the GEMMs of numpy input go to numpy's BLAS.
numpy input gives numpy output, torch input gives torch output. float64 input is
computed in float64; float32 stays float32.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, NonFiniteError, ShapeMismatchError
from ._checks import is_torch

METRICS = ("correlation", "euclidean", "sqeuclidean", "cosine", "mahalanobis", "crossnobis")


def _as_tensor(x: Any, name: str):
    import torch

    if is_torch(x):
        t = x.detach()
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "fiub":
            raise InputError(f"{name} has dtype {arr.dtype}; pass a real-valued numeric array")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def _sq_from_gram(gram):
    """Squared distances d_ij = g_ii + g_jj - 2 g_ij for a (..., n, n) Gram stack."""
    d = gram.diagonal(dim1=-2, dim2=-1)
    return d.unsqueeze(-1) + d.unsqueeze(-2) - 2.0 * gram


def _finish(d, clamp_min: float | None = 0.0):
    """Symmetrise, zero the diagonal and clamp rounding below ``clamp_min``."""
    d = 0.5 * (d + d.transpose(-1, -2))
    if clamp_min is not None:
        d = d.clamp_min(clamp_min)
    d.diagonal(dim1=-2, dim2=-1).zero_()
    return d


def _unit_rows(x, what: str, centre: bool):
    if centre:
        x = x - x.mean(dim=-1, keepdim=True)
    norm = x.norm(dim=-1, keepdim=True)
    zero = norm[..., 0] == 0
    if bool(zero.any()):
        idx = tuple(int(i) for i in zero.nonzero()[0])
        raise InputError(
            f"pattern {idx} has zero {'variance' if centre else 'norm'}, so its {what} "
            "distance is undefined; drop constant stimuli or use metric='euclidean'"
        )
    return x / norm


def _precision(precision: Any, p: int, like):
    if precision is None:
        return None
    import torch

    prec = _as_tensor(precision, "precision").to(dtype=like.dtype, device=like.device)
    if prec.ndim == 1 and prec.shape[0] == p:
        return prec
    if prec.shape[-2:] != (p, p):
        raise ShapeMismatchError(
            f"precision has shape {tuple(prec.shape)} but the patterns have {p} channels; "
            f"pass a ({p}, {p}) noise precision matrix or its ({p},) diagonal"
        )
    if not bool(torch.isfinite(prec).all()):
        raise NonFiniteError("precision holds NaN or inf; pass a finite noise precision matrix")
    return 0.5 * (prec + prec.transpose(-1, -2))


def _mm_t(a, b, use_numpy: bool):
    """a @ b^T for stacks (..., n, p). On numpy input the GEMM goes to numpy's BLAS
    (zero-copy views; faster than torch's float64 GEMM on our CPUs)."""
    if use_numpy:
        import torch

        return torch.from_numpy(np.matmul(a.numpy(), np.swapaxes(b.numpy(), -1, -2)))
    return a @ b.transpose(-1, -2)


def _weighted_gram(a, b, prec, use_numpy: bool = False):
    """a @ prec @ b^T for stacks (..., n, p); prec None (identity), (p,) or (p, p)."""
    if prec is None:
        return _mm_t(a, b, use_numpy)
    if prec.ndim == 1:
        return _mm_t(a * prec, b, use_numpy)
    if use_numpy:
        import torch

        ap = torch.from_numpy(np.matmul(a.numpy(), prec.numpy()))
        return _mm_t(ap, b, use_numpy)
    return (a @ prec) @ b.transpose(-1, -2)


_REFINE_TOL = 1e-4  # pairs closer than 1% of their norms are recomputed from differences


def _refined_sq(gram, x, prec):
    """Recompute squared distances that the Gram identity got by cancellation.

    g_ii + g_jj - 2 g_ij loses digits when the pair is close relative to its norms
    (near-duplicate stimuli); those pairs (usually few) are recomputed from the
    explicit difference of the raw patterns ``x``, in chunks, so every entry keeps
    float64/float32 accuracy.
    """
    import torch

    sq = _sq_from_gram(gram)
    norms = gram.diagonal(dim1=-2, dim2=-1).clamp_min(0)
    bad = sq < _REFINE_TOL * (norms.unsqueeze(-1) + norms.unsqueeze(-2))
    bad = torch.triu(bad, diagonal=1)
    if not bool(bad.any()):
        return sq
    sq3 = sq.unsqueeze(0) if sq.ndim == 2 else sq
    x3 = x.unsqueeze(0) if x.ndim == 2 else x
    b, i, j = bad.reshape(sq3.shape).nonzero(as_tuple=True)
    step = max(1, 2**22 // max(x3.shape[-1], 1))
    for s in range(0, b.numel(), step):
        bb, ii, jj = b[s:s + step], i[s:s + step], j[s:s + step]
        diff = x3[bb, ii] - x3[bb, jj]
        if prec is None:
            val = (diff * diff).sum(dim=-1)
        elif prec.ndim == 1:
            val = (diff * diff * prec).sum(dim=-1)
        else:
            pp = prec if prec.ndim == 2 else prec[bb]
            val = ((diff.unsqueeze(-2) @ pp).squeeze(-2) * diff).sum(dim=-1)
        sq3[bb, ii, jj] = val
        sq3[bb, jj, ii] = val
    return sq


def _crossnobis(x, conditions, partition, prec, use_numpy):
    import torch

    n_obs = x.shape[-2]
    conditions = np.asarray(conditions)
    partition = np.asarray(partition)
    if conditions.shape != (n_obs,) or partition.shape != (n_obs,):
        raise ShapeMismatchError(
            f"crossnobis needs conditions and partition of length {n_obs} (one label per "
            f"observation row); got {conditions.shape} and {partition.shape}"
        )
    cond_vals, cond_idx = np.unique(conditions, return_inverse=True)
    part_vals, part_idx = np.unique(partition, return_inverse=True)
    n_cond, n_part = len(cond_vals), len(part_vals)
    if n_part < 2:
        raise InputError(
            f"crossnobis needs at least 2 partitions (runs); got {n_part}: pass partition labels"
        )
    group = part_idx * n_cond + cond_idx
    counts = np.bincount(group, minlength=n_part * n_cond).reshape(n_part, n_cond)
    if (counts == 0).any():
        f, c = np.argwhere(counts == 0)[0]
        raise InputError(
            f"condition {cond_vals[c]!r} has no observation in partition {part_vals[f]!r}; "
            "crossnobis needs every condition measured in every partition"
        )
    idx = torch.from_numpy(group).to(x.device)
    sums = torch.zeros(x.shape[:-2] + (n_part * n_cond, x.shape[-1]), dtype=x.dtype, device=x.device)
    sums.index_add_(x.ndim - 2, idx, x)
    cnt = torch.from_numpy(counts.reshape(-1).astype(np.float64)).to(x)
    means = (sums / cnt[:, None]).reshape(x.shape[:-2] + (n_part, n_cond, x.shape[-1]))
    means = means - means.mean(dim=-2, keepdim=True)  # centring: distances unchanged
    total = means.sum(dim=-3)
    sq_total = _sq_from_gram(_weighted_gram(total, total, prec, use_numpy))
    sq_each = _sq_from_gram(_weighted_gram(means, means, prec, use_numpy)).sum(dim=-3)
    return _finish((sq_total - sq_each) / (n_part * (n_part - 1)), clamp_min=None)


def rdm(
    patterns: Any,
    metric: str = "correlation",
    *,
    precision: Any = None,
    conditions: Any = None,
    partition: Any = None,
):
    """Representational dissimilarity matrices of activity patterns.

    Parameters
    ----------
    patterns : ndarray or torch.Tensor, shape (n_stimuli, n_channels) or (n_sets, n_stimuli, n_channels)
        One pattern per row (stimulus); a leading axis stacks sets (layers,
        participants) that are all computed in one batched call. For
        ``metric="crossnobis"`` rows are observations (n_observations) labelled by
        ``conditions`` and ``partition``.
    metric : str
        ``"correlation"`` (1 - Pearson r across channels), ``"euclidean"`` (plain
        distance, not squared, not divided by channels; rsatoolbox's "euclidean" is
        our ``sqeuclidean / n_channels``), ``"sqeuclidean"`` (squared distance),
        ``"cosine"`` (1 - cosine similarity), ``"mahalanobis"`` (sqrt((x-y)' P (x-y))
        for the noise precision ``P``, as :func:`scipy.spatial.distance.pdist`),
        ``"crossnobis"`` (cross-validated squared Mahalanobis distance: the mean over
        ordered pairs of distinct partitions f != g of (x_f - y_f)' P (x_g - y_g);
        unbiased, so it may be negative; rsatoolbox's crossnobis is ours divided by
        n_channels).
    precision : array, shape (n_channels, n_channels) or (n_channels,), optional
        Noise precision (inverse noise covariance) for mahalanobis (required) and
        crossnobis (identity when omitted); a vector is a diagonal precision.
    conditions, partition : array, shape (n_observations,), crossnobis only
        Condition (stimulus) label and partition (run) label of each row.
        Observations sharing both labels are averaged; every condition must occur in
        every partition. The RDM's rows follow ``numpy.unique(conditions)``.

    Returns
    -------
    ndarray or torch.Tensor, shape (n_stimuli, n_stimuli) or (n_sets, n_stimuli, n_stimuli)
        Symmetric, zero diagonal, same dtype and array type as ``patterns``.

    Notes
    -----
    Euclidean-type distances come from the Gram identity on stimulus-centred
    patterns; pairs closer than 1% of their norms (near-duplicates, where that
    identity cancels) are recomputed from explicit differences, so each entry has
    the relative accuracy of :func:`scipy.spatial.distance.pdist`. Correlation and
    cosine distances are 1 - r, as in pdist (absolute accuracy ~1e-16 in float64).
    """
    if metric not in METRICS:
        raise InputError(f"metric={metric!r} is unknown; choose one of {', '.join(METRICS)}")
    x = _as_tensor(patterns, "patterns")
    if x.ndim not in (2, 3):
        raise ShapeMismatchError(
            f"patterns has shape {tuple(x.shape)}; pass (n_stimuli, n_channels) or "
            "(n_sets, n_stimuli, n_channels)"
        )
    import torch

    if not bool(torch.isfinite(x).all()):
        raise NonFiniteError("patterns hold NaN or inf; remove or impute them before computing RDMs")
    if x.shape[-2] < 2 or x.shape[-1] < 1:
        raise InputError(f"patterns has shape {tuple(x.shape)}; need >= 2 stimuli and >= 1 channel")
    if metric != "crossnobis" and (conditions is not None or partition is not None):
        raise InputError("conditions/partition are only used by metric='crossnobis'")

    np_gemm = not is_torch(patterns)
    if metric in ("correlation", "cosine"):
        u = _unit_rows(x, metric, centre=metric == "correlation")
        out = _finish(1.0 - _mm_t(u, u, np_gemm)).clamp_max(2.0)
    elif metric in ("euclidean", "sqeuclidean"):
        xc = x - x.mean(dim=-2, keepdim=True)  # centring over stimuli limits cancellation
        out = _finish(_refined_sq(_mm_t(xc, xc, np_gemm), x, None))
        if metric == "euclidean":
            out = out.sqrt()
    elif metric == "mahalanobis":
        if precision is None:
            raise InputError("metric='mahalanobis' needs precision= (the inverse noise covariance)")
        prec = _precision(precision, x.shape[-1], x)
        xc = x - x.mean(dim=-2, keepdim=True)
        out = _finish(_refined_sq(_weighted_gram(xc, xc, prec, np_gemm), x, prec)).sqrt()
    else:  # crossnobis
        if conditions is None or partition is None:
            raise InputError(
                "metric='crossnobis' needs conditions= (stimulus of each row) and "
                "partition= (run of each row)"
            )
        prec = _precision(precision, x.shape[-1], x)
        out = _crossnobis(x, conditions, partition, prec, np_gemm)
    if is_torch(patterns):
        return out
    return out.numpy()
