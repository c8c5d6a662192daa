"""Centered kernel alignment on patterns (Kornblith et al. 2019).

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for kernels K, L of two
representations of the same n items. ``debiased=False`` uses the biased HSIC
tr(KHLH) (H the centring matrix; the original CKA); ``debiased=True`` uses Song et
al.'s (2012) unbiased HSIC estimator, through the equivalent "unbiased centring"
of the Gram matrices. The RDM-based CKA of :mod:`brainalign.rsa` is unrelated to
this module.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import pdist, squareform

from ..errors import InputError
from . import _torch
from . import _torch_linalg as tl
from ._checks import as_patterns, check_choice, same_items

KERNELS = ("linear", "rbf")


def _center_cols(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0, keepdims=True)


def _linear_pair(a: np.ndarray, b: np.ndarray, debiased: bool) -> float:
    """Linear CKA of two centred (n, p), (n, q) arrays in feature space (no n x n)."""
    n = a.shape[0]
    ab = np.linalg.norm(a.T @ b) ** 2
    aa = np.linalg.norm(a.T @ a) ** 2
    bb = np.linalg.norm(b.T @ b) ** 2
    if not debiased:
        return _ratio(ab, aa, bb)
    da, db = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)  # Gram diagonals
    ra, rb = a @ a.sum(axis=0) - da, b @ b.sum(axis=0) - db  # row sums of zero-diagonal Grams
    sa, sb = ra.sum(), rb.sum()

    def u(tr, d1, d2, r1, r2, s1, s2):
        return tr - d1 @ d2 + s1 * s2 / ((n - 1) * (n - 2)) - 2 * (r1 @ r2) / (n - 2)

    return _ratio(u(ab, da, db, ra, rb, sa, sb), u(aa, da, da, ra, ra, sa, sa),
                  u(bb, db, db, rb, rb, sb, sb))


def _ratio(kl: float, kk: float, ll: float) -> float:
    denom = np.sqrt(kk * ll) if kk > 0 and ll > 0 else 0.0
    return float(kl / denom) if denom > 0 else float("nan")


def _gram(x: np.ndarray, kernel: str, sigma: float | None) -> np.ndarray:
    if kernel == "linear":
        return x @ x.T
    d2 = squareform(pdist(x, "sqeuclidean"))
    s = float(np.sqrt(np.median(d2))) if sigma is None else float(sigma)
    if not s > 0:
        raise InputError(f"sigma={sigma!r} gives an RBF width of {s}; pass sigma > 0 or distinct items")
    return np.exp(-d2 / (2 * s * s))


def center_gram(k: np.ndarray, debiased: bool = False) -> np.ndarray:
    """Centred Gram matrix: HKH, or the unbiased centring whose inner products
    equal n(n-3) times Song et al.'s unbiased HSIC (zero diagonal)."""
    k = np.array(k, dtype=np.float64, copy=True)
    n = k.shape[0]
    if not debiased:
        k -= k.mean(axis=0, keepdims=True)
        k -= k.mean(axis=1, keepdims=True)
        return k
    np.fill_diagonal(k, 0.0)
    means = k.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    k -= means[:, None]
    k -= means[None, :]
    np.fill_diagonal(k, 0.0)
    return k


def cka(A: Any, B: Any, kernel: str = "linear", debiased: bool = False, *,
        sigma: float | None = None):
    """Centered kernel alignment between two sets of patterns.

    Parameters
    ----------
    A, B : array (n, p) / (n, q), or stacks (La, n, p) / sequences of (n, p_l)
        Representations of the same n items (rows in the same order). Columns are
        centred first.
    kernel : {"linear", "rbf"}
        Linear: K = A A'. RBF: K_ij = exp(-|a_i - a_j|^2 / (2 sigma^2)).
    debiased : bool
        False: biased HSIC (Kornblith et al.'s CKA). True: Song et al.'s unbiased
        HSIC (needs n >= 4; values can be slightly negative).
    sigma : float, optional
        RBF width, in the units of the features; default the square root of the
        median of the full (n, n) matrix of squared distances, diagonal included,
        of each representation (Kornblith et al.'s code, threshold 1).

    Returns
    -------
    float (in [0, 1] when biased) for two arrays, else an (La, Lb) matrix. NaN when
    a representation is constant. With a torch tensor among the inputs everything
    runs in torch on its device (float64 for float64 input) and a stack gives a
    tensor there.
    """
    check_choice(kernel, "kernel", KERNELS)
    if _torch.is_torch(A) or _torch.is_torch(B):
        return _cka_torch(A, B, kernel, debiased, sigma)
    sa, single_a = as_patterns(A, "A", min_items=4 if debiased else 2)
    sb, single_b = as_patterns(B, "B", min_items=4 if debiased else 2)
    n = same_items(sa, sb)
    ca = [_center_cols(a) for a in sa]
    cb = [_center_cols(b) for b in sb]
    if single_a and single_b and kernel == "linear":
        p, q = ca[0].shape[1], cb[0].shape[1]
        if p * q + p * p + q * q <= n * (p + q):
            return _linear_pair(ca[0], cb[0], debiased)
    ga = np.stack([center_gram(_gram(x, kernel, sigma), debiased).ravel() for x in ca])
    gb = ga if B is A else np.stack([center_gram(_gram(x, kernel, sigma), debiased).ravel() for x in cb])
    cross = ga @ gb.T
    na = np.einsum("ij,ij->i", ga, ga)
    nb = np.einsum("ij,ij->i", gb, gb)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = cross / np.sqrt(np.outer(na, nb))
    out[~((na[:, None] > 0) & (nb[None, :] > 0))] = np.nan
    return float(out[0, 0]) if single_a and single_b else out


def _cka_torch(A: Any, B: Any, kernel: str, debiased: bool, sigma: float | None):
    sa, single_a, sb, single_b = _torch.pair_inputs(A, B, 4 if debiased else 2)
    n = same_items(sa, sb)
    ca = [a - a.mean(dim=0, keepdim=True) for a in sa]
    cb = [b - b.mean(dim=0, keepdim=True) for b in sb]
    single = single_a and single_b
    if single and kernel == "linear":
        p, q = ca[0].shape[1], cb[0].shape[1]
        if p * q + p * p + q * q <= n * (p + q):
            return tl.linear_pair(ca[0], cb[0], debiased)
    out = tl.cka_stacks(ca, cb, kernel, debiased, sigma, B is A)
    return float(out[0, 0]) if single else out
