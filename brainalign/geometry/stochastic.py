"""Stochastic shape distance (Duong, Zhou, Nassar, Berman, Olieslagers & Williams, ICLR 2023).

Each representation is a set of noisy responses, shape (M stimuli, R repeats, N
units), summarised per stimulus by its mean mu_i and covariance S_i over repeats
(the Gaussian approximation). The distance is

    d^2 = min over orthogonal T of (1/M) sum_i [ (2 - alpha) |mu^X_i - T' mu^Y_i|^2
                                                 + alpha B^2(S^X_i, T' S^Y_i T) ],

with B the Bures metric, B^2(A, C) = tr A + tr C - 2 ||A^(1/2) C^(1/2)||_* (the 2-Wasserstein
distance between Gaussians is the alpha = 1 sum). alpha = 0 compares means only
(then d = Euclidean Procrustes shape distance of the mean patterns / sqrt(M) x sqrt(2)),
alpha = 2 noise only. Means are centred over stimuli first, as the deterministic
metric centres its columns.

The minimisation alternates, as Duong et al. do, between the per-stimulus
rotations of the Bures terms and the shared T (each an orthogonal Procrustes
problem, each step never lowering the objective), from several starts (the
Procrustes alignment of the means among them), keeping the best: a local optimum,
checked against a brute-force rotation search in the tests.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, ShapeMismatchError
from ._checks import _to_float


def _polar(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    return u @ vt


def _sqrtm_psd(c: np.ndarray) -> np.ndarray:
    """Symmetric square roots of a stack (M, N, N) of PSD matrices."""
    w, v = np.linalg.eigh(c)
    return np.einsum("mij,mj,mkj->mik", v, np.sqrt(np.clip(w, 0.0, None)), v)


def _moments(x: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    arr = _to_float(x, name)
    if arr.ndim != 3 or arr.shape[1] < 1:
        raise ShapeMismatchError(f"{name} has shape {arr.shape}; pass (stimuli, repeats, units)")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} holds non-finite values; pass finite responses")
    mu = arr.mean(axis=1)
    dev = arr - mu[:, None, :]
    cov = np.einsum("mri,mrj->mij", dev, dev) / arr.shape[1]
    return mu - mu.mean(axis=0, keepdims=True), cov


def _pad(mu: np.ndarray, cov: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    extra = n - mu.shape[1]
    if extra == 0:
        return mu, cov
    return (np.pad(mu, ((0, 0), (0, extra))), np.pad(cov, ((0, 0), (0, extra), (0, extra))))


def stochastic_shape_distance(A: Any, B: Any, alpha: float = 1.0, *, max_iter: int = 500,
                              tol: float = 1e-12, n_init: int = 3, seed: int = 0,
                              return_rotation: bool = False):
    """Gaussian (2-Wasserstein/Bures) stochastic shape distance between noisy responses.

    Parameters
    ----------
    A, B : arrays, shape (M, R_a, N_a) and (M, R_b, N_b)
        Responses of two systems to the same M stimuli (rows in the same order),
        R repeats each (trials, dropout samples...). Different widths are zero-padded.
    alpha : float in [0, 2]
        Weight of the noise (covariance) term against the mean term; 1 is the
        2-Wasserstein distance between the per-stimulus Gaussians.
    max_iter, tol : alternating-optimisation limits (relative change of the objective).
    n_init, seed : int
        Besides three fixed starts (the means' Procrustes alignment, the polar factor
        of sum_i S^Y_i S^X_i, the identity), ``n_init`` random orthogonal starts drawn
        with ``seed``; the best end point is kept (the problem is not convex).
    return_rotation : bool
        Also return T (N, N), mapping B's units onto A's (row patterns: mu_B @ T).

    Returns
    -------
    float
        The distance, in the units of the responses. With ``return_rotation``,
        (distance, T).
    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 2.0:
        raise InputError(f"alpha={alpha} is outside [0, 2]; pass the weight of the noise term")
    mx, cx = _moments(A, "A")
    my, cy = _moments(B, "B")
    if mx.shape[0] != my.shape[0]:
        raise ShapeMismatchError(f"A has {mx.shape[0]} stimuli but B has {my.shape[0]}; pass the same stimuli")
    n = max(mx.shape[1], my.shape[1])
    (mx, cx), (my, cy) = _pad(mx, cx, n), _pad(my, cy, n)
    sx, sy = _sqrtm_psd(cx), _sqrtm_psd(cy)
    wm, wc = 2.0 - alpha, alpha
    rng = np.random.default_rng(seed)
    starts = [_polar(my.T @ mx), _polar(np.einsum("mij,mjk->ik", sy, sx)), np.eye(n)]
    starts += [_polar(rng.normal(size=(n, n))) for _ in range(int(n_init))]
    best_gain, best_t = -np.inf, None
    for t in starts:
        t, gain = _ascend(mx, my, sx, sy, t, wm, wc, max_iter, tol)
        if gain > best_gain:
            best_gain, best_t = gain, t
    total = wm * (np.sum(mx * mx) + np.sum(my * my)) + wc * (np.trace(cx, axis1=1, axis2=2).sum()
                                                              + np.trace(cy, axis1=1, axis2=2).sum())
    d = float(np.sqrt(max(total - 2.0 * best_gain, 0.0) / mx.shape[0]))
    return (d, best_t) if return_rotation else d


def _ascend(mx, my, sx, sy, t, wm, wc, max_iter, tol):
    """Alternating maximisation of wm <Mx, My T> + wc sum_i ||Sx_i T' Sy_i||_* over orthogonal T."""
    gain = wm * np.sum(mx * (my @ t)) + wc * _nuclear_sum(sx, sy, t)
    for _ in range(max_iter):
        # per stimulus: U_i = polar(Sx_i T' Sy_i); then T = polar(wm My'Mx + wc sum_i Sy_i U_i' Sx_i)
        u = np.stack([_polar(a @ t.T @ b) for a, b in zip(sx, sy)])
        t_new = _polar(wm * (my.T @ mx) + wc * np.einsum("mij,mkj,mkl->il", sy, u, sx))
        new = wm * np.sum(mx * (my @ t_new)) + wc * _nuclear_sum(sx, sy, t_new)
        if new < gain:  # rounding: never step down
            break
        t, done, gain = t_new, new - gain <= tol * max(abs(new), 1.0), new
        if done:
            break
    return t, gain


def _nuclear_sum(sx: np.ndarray, sy: np.ndarray, t: np.ndarray) -> float:
    if not sx.any() and not sy.any():
        return 0.0
    return float(sum(np.linalg.svd(a @ t.T @ b, compute_uv=False).sum() for a, b in zip(sx, sy)))
