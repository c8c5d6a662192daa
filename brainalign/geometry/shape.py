"""Generalized shape metrics (Williams, Kunz, Kornblith & Linderman, NeurIPS 2021).

Each representation X (n items, p units) is centred (column means removed) and
partially whitened, phi_alpha(X) = X Z with Z = V diag(d) V', where X'X = V diag(lam) V',
d = alpha + (1 - alpha) lam^(-1/2) (eigenvalues clipped below at ``eigval_tol``),
rescaled so that the total variance trace(X'X) is preserved. (netrep computes that
variance from the clipped eigenvalues, which for zero-padded or rank-deficient
patterns does not preserve it; here the variance is the true one. For full-rank
patterns the two agree.) alpha = 1 leaves X
as it is (Procrustes shape metric); alpha = 0 whitens it fully (a CCA-like metric).
Different widths are zero-padded to the larger one before whitening, as netrep does.

With Xw, Yw the transformed arrays and ||.||_* the nuclear norm,

- angular distance = arccos(||Xw'Yw||_* / (||Xw||_F ||Yw||_F)), in radians, in [0, pi/2];
- Euclidean distance = min over orthogonal Q of ||Xw - Yw Q||_F
  = sqrt(||Xw||_F^2 + ||Yw||_F^2 - 2 ||Xw'Yw||_*), in the units of the patterns.

Both are metrics (symmetric, triangle inequality) on representations modulo
rotations (and, for alpha < 1, the invertible maps allowed by the whitening).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..errors import InputError
from . import _torch
from . import _torch_linalg as tl
from ._checks import as_patterns, check_choice, check_fraction, pairwise, same_items

KINDS = ("angular", "euclidean")


def _pad(x: np.ndarray, width: int) -> np.ndarray:
    if x.shape[1] == width:
        return x
    return np.concatenate([x, np.zeros((x.shape[0], width - x.shape[1]))], axis=1)


def whitening(x: np.ndarray, alpha: float, eigval_tol: float = 1e-7) -> np.ndarray:
    """The (p, p) partial whitening matrix Z of centred ``x`` (identity at alpha = 1)."""
    p = x.shape[1]
    if alpha >= 1.0:
        return np.eye(p)
    lam, v = np.linalg.eigh(x.T @ x)
    var = np.maximum(lam, 0.0)
    d = alpha + (1.0 - alpha) / np.sqrt(np.maximum(lam, eigval_tol))
    d *= np.sqrt(var.sum() / np.sum((d * d) * var))  # preserve trace(X'X) exactly
    return (v * d) @ v.T


def _nuclear(a: np.ndarray, b: np.ndarray) -> float:
    """Nuclear norm of a'b for (n, p), (n, q) arrays; through (n, n) QR factors when wide."""
    n = a.shape[0]
    if min(a.shape[1], b.shape[1]) <= n:
        return float(np.linalg.svd(a.T @ b, compute_uv=False).sum())
    ra = np.linalg.qr(a.T, mode="r")  # a' = Qa Ra, so a'b = Qa Ra Rb' Qb'
    rb = np.linalg.qr(b.T, mode="r")
    return float(np.linalg.svd(ra @ rb.T, compute_uv=False).sum())


def _score(xw: np.ndarray, yw: np.ndarray, kind: str) -> float:
    nuc = _nuclear(xw, yw)
    nx, ny = float(np.sum(xw * xw)), float(np.sum(yw * yw))
    if kind == "angular":
        if nx == 0 or ny == 0:
            return float("nan")
        return float(np.arccos(np.clip(nuc / np.sqrt(nx * ny), -1.0, 1.0)))
    return float(np.sqrt(max(nx + ny - 2.0 * nuc, 0.0)))


def _prepare(x: np.ndarray, width: int, alpha: float, tol: float) -> np.ndarray:
    xc = _pad(x - x.mean(axis=0, keepdims=True), width)
    return xc @ whitening(xc, alpha, tol)


def shape_distance(A: Any, B: Any, alpha: float = 1.0, kind: str = "angular", *,
                   eigval_tol: float = 1e-7):
    """Generalized shape distance between two representations of the same items.

    Parameters
    ----------
    A, B : array (n, p) / (n, q), or stacks (La, n, p) / sequences of (n, p_l)
        Patterns of the same n items, rows in the same order.
    alpha : float in [0, 1]
        Partial whitening: 1 Procrustes (rotations only), 0 full whitening.
    kind : {"angular", "euclidean"}
        Angular distance (radians) or Euclidean Procrustes distance.
    eigval_tol : float
        Covariance eigenvalues are clipped below at this value before whitening.

    Returns
    -------
    float for two arrays, else an (La, Lb) matrix (with a torch tensor among the
    inputs: computed in torch on its device, float64 for float64 input, and a
    stack gives a tensor there).
    """
    check_choice(kind, "kind", KINDS)
    alpha = check_fraction(alpha, "alpha")
    if _torch.is_torch(A) or _torch.is_torch(B):
        sa, single_a, sb, single_b = _torch.pair_inputs(A, B, 2)
        prepare, score, wide = tl.prepare, tl.score, _torch.pairwise
    else:
        sa, single_a = as_patterns(A, "A")
        sb, single_b = as_patterns(B, "B")
        prepare, score, wide = _prepare, _score, pairwise
    same_items(sa, sb)
    width = max(x.shape[1] for x in sa + sb)
    if alpha == 0 and min(x.shape[1] for x in sa + sb) < width:
        raise InputError("alpha=0 cannot align zero-padded representations of different widths; "
                         "pass alpha > 0")
    wa = [prepare(x, width, alpha, eigval_tol) for x in sa]
    wb = [prepare(x, width, alpha, eigval_tol) for x in sb]
    return wide(wa, wb, single_a and single_b, lambda i, j: score(wa[i], wb[j], kind))


def _folds(n: int, cv: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        if not 2 <= int(cv) <= n // 2:
            raise InputError(f"cv={cv} folds for {n} items; pass 2 <= cv <= {n // 2}")
        bounds = np.linspace(0, n, int(cv) + 1).astype(int)
        idx = np.arange(n)
        return [(np.r_[idx[:s], idx[e:]], idx[s:e]) for s, e in zip(bounds[:-1], bounds[1:])]
    folds = [(np.asarray(tr, dtype=int), np.asarray(te, dtype=int)) for tr, te in cv]
    if not folds:
        raise InputError("cv is an empty sequence of (train, test) index arrays")
    return folds


def shape_distance_cv(A: Any, B: Any, alpha: float = 1.0, kind: str = "angular", *,
                      cv: int | Iterable = 5, eigval_tol: float = 1e-7) -> float:
    """Cross-validated shape distance: alignment fitted on some items, scored on others.

    For each fold, the column means, the partial whitening matrices and the
    rotations are estimated from the training items only; the held-out items are
    mapped through them and scored with the angular (arccos of the Frobenius
    cosine) or Euclidean (Frobenius norm of the difference) distance. The result
    is the mean over folds. It estimates the distance without the optimism of
    fitting the rotation on the scored items; it is not itself a metric.

    Parameters
    ----------
    A, B : arrays (n, p), (n, q)
    alpha, kind, eigval_tol : as :func:`shape_distance`.
    cv : int or iterable of (train, test) index arrays
        An int makes that many contiguous blocks of items (no shuffling).

    Returns
    -------
    float
    """
    check_choice(kind, "kind", KINDS)
    alpha = check_fraction(alpha, "alpha")
    (a,), _ = as_patterns(A, "A", min_items=4)
    (b,), _ = as_patterns(B, "B", min_items=4)
    n = same_items([a], [b])
    width = max(a.shape[1], b.shape[1])
    a, b = _pad(a, width), _pad(b, width)
    scores = []
    for train, test in _folds(n, cv):
        ma, mb = a[train].mean(axis=0), b[train].mean(axis=0)
        za = whitening(a[train] - ma, alpha, eigval_tol)
        zb = whitening(b[train] - mb, alpha, eigval_tol)
        u, _, vt = np.linalg.svd(((a[train] - ma) @ za).T @ ((b[train] - mb) @ zb))
        xt = (a[test] - ma) @ za @ u
        yt = (b[test] - mb) @ zb @ vt.T
        if kind == "angular":
            c = np.sum(xt * yt) / (np.linalg.norm(xt) * np.linalg.norm(yt))
            scores.append(float(np.arccos(np.clip(c, -1.0, 1.0))))
        else:
            scores.append(float(np.linalg.norm(xt - yt)))
    return float(np.mean(scores))
