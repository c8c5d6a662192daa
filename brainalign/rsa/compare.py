"""Compare RDMs: rank and linear correlations, cosine, Kendall tau-a, linear CKA."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, ShapeMismatchError
from . import _kernels as K
from ._checks import as_rdm_stack, triu_vectors

METHODS = K.METHODS


def check_method(method: str) -> str:
    if method not in METHODS:
        raise InputError(f"method={method!r} is unknown; choose one of {', '.join(METHODS)}")
    return method


def similarity_matrix(sa: np.ndarray, sb: np.ndarray, method: str) -> np.ndarray:
    """(ka, kb) similarities between two validated (k, n, n) stacks (no NaN)."""
    if method == "cka":
        return K.cka(sa, sb)
    va, vb = triu_vectors(sa), triu_vectors(sb)
    if method == "kendall_tau_a":
        return K.kendall_tau_a(va, vb)
    return K.simple_similarity(va, vb, method)


def compare(a: Any, b: Any, method: str = "spearman"):
    """Similarity between RDMs on their off-diagonal upper triangles.

    Parameters
    ----------
    a, b : array, shape (n, n) or (k, n, n)
        Square symmetric RDMs over the same n stimuli (numpy or torch).
    method : str
        ``"spearman"`` (Pearson r of average ranks), ``"pearson"``, ``"cosine"``
        (uncentred), ``"kendall_tau_a"`` (concordant minus discordant pairs over all
        pairs; ties count as neither, so tied model RDMs are not favoured), or
        ``"cka"`` (linear CKA of the double-centred Gram matrices -H D H / 2 implied
        by the RDMs read as squared Euclidean distances; for ``sqeuclidean`` RDMs it
        equals linear CKA of the patterns; uses the whole matrix, not a triangle).
        Entries that are NaN in any of the RDMs are left out of every comparison
        (not allowed for ``cka``).

    Returns
    -------
    float or ndarray
        A float when both are single RDMs; otherwise shape ``(k_a,)``, ``(k_b,)``
        or ``(k_a, k_b)``: the leading (stack) axes of ``a`` then of ``b``.
    """
    check_method(method)
    sa, single_a = as_rdm_stack(a, "a", allow_nan=method != "cka")
    sb, single_b = as_rdm_stack(b, "b", allow_nan=method != "cka")
    if sa.shape[-1] != sb.shape[-1]:
        raise ShapeMismatchError(
            f"a has {sa.shape[-1]} stimuli but b has {sb.shape[-1]}; compare RDMs of the same stimuli"
        )
    if method == "cka":
        sim = K.cka(sa, sb)
    else:
        va, vb = triu_vectors(sa), triu_vectors(sb)
        keep = ~(np.isnan(va).any(axis=0) | np.isnan(vb).any(axis=0))
        if keep.sum() < 2:
            raise InputError("fewer than 2 entries are finite in all RDMs; nothing to compare")
        if not keep.all():
            va, vb = va[:, keep], vb[:, keep]
        if method == "kendall_tau_a":
            sim = K.kendall_tau_a(va, vb)
        else:
            sim = K.simple_similarity(va, vb, method)
    if single_a and single_b:
        return float(sim[0, 0])
    if single_a:
        return sim[0]
    if single_b:
        return sim[:, 0]
    return sim
