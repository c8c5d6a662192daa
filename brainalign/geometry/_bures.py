"""Low-rank Bures kernel of the Gaussian stochastic shape distance (private).

Per stimulus i the covariance over R repeats is S_i = dev_i' dev_i / R (dev_i the
(R, N) centred repeats). Its thin SVD factor, dev_i' / sqrt(R) = W_i diag(s_i) V_i',
gives S_i = F_i F_i' with F_i = W_i diag(s_i) (N, r), r = min(R - 1, N) (centring
removes one dimension), W_i with orthonormal columns, and S_i^(1/2) = W_i diag(s_i) W_i'
= F_i W_i'. For an orthogonal T,

    Sx_i^(1/2) T' Sy_i^(1/2) = Wx_i (Fx_i' T' Fy_i) Wy_i',

and since Wx_i, Wy_i have orthonormal columns the two matrices have the same nonzero
singular values: the Bures fidelity term ||Sx_i^(1/2) T' Sy_i^(1/2)||_* is the nuclear
norm of the (r_x, r_y) matrix Z_i = Fx_i' T' Fy_i. With Z_i = P Σ Q' (thin SVD, full rank)
the polar factor of the (N, N) matrix is Wx_i P Q' Wy_i' plus a completion acting on the
orthogonal complements of range(Wx_i) and range(Wy_i), which Sy_i^(1/2) and Sx_i^(1/2)
annihilate, so the term the rotation update sums,

    Sy_i^(1/2) U_i' Sx_i^(1/2) = Fy_i (P Q')' Fx_i',

is the same in both forms: the alternating steps of the (N, N) algorithm are taken
exactly, at O(N^2 M r) per step (two GEMMs) and M SVDs of r x r matrices instead of M
SVDs of N x N matrices.
"""
from __future__ import annotations

import numpy as np


def polar(m: np.ndarray) -> np.ndarray:
    """Polar factor U V' of a matrix (U S V' its thin SVD): the nearest (partial) isometry."""
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    return u @ vt


def factors(dev: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low-rank covariance factors of centred repeats.

    Parameters
    ----------
    dev : ndarray, shape (M, R, N0)
        Repeats minus their per-stimulus mean.
    n : int
        Width to zero-pad the units to (n >= N0).

    Returns
    -------
    f : ndarray, shape (M, n, r)
        F_i = W_i diag(s_i): S_i = F_i F_i'.
    w : ndarray, shape (M, n, r)
        W_i, orthonormal columns: S_i^(1/2) = F_i W_i'.
    trace : float
        sum_i tr S_i.
    """
    m, reps, n0 = dev.shape
    r = min(reps - 1, n0)
    if r <= 0:
        z = np.zeros((m, n, 0))
        return z, z.copy(), 0.0
    w, s, _ = np.linalg.svd(np.swapaxes(dev, 1, 2) / np.sqrt(reps), full_matrices=False)
    w, s = w[:, :, :r], s[:, :r]
    if n > n0:
        w = np.pad(w, ((0, 0), (0, n - n0), (0, 0)))
    return w * s[:, None, :], w, float(np.sum(s * s))


def flat(f: np.ndarray) -> np.ndarray:
    """(M, n, r) factors as one (n, M r) matrix (stimulus blocks side by side)."""
    m, n, r = f.shape
    return np.ascontiguousarray(np.swapaxes(f, 0, 1)).reshape(n, m * r)


def fidelity(fx: np.ndarray, fy: np.ndarray, fy_flat: np.ndarray, t: np.ndarray):
    """sum_i ||Fx_i' T' Fy_i||_* and the polar factors P_i Q_i' of each Z_i.

    Returns
    -------
    total : float
    pol : ndarray, shape (M, r_x, r_y), or None when either side has no noise
    """
    m, n, rx = fx.shape
    ry = fy.shape[2]
    if rx == 0 or ry == 0:
        return 0.0, None
    tfy = np.swapaxes((t.T @ fy_flat).reshape(n, m, ry), 0, 1)  # (M, n, r_y): T' Fy_i
    z = np.matmul(np.swapaxes(fx, 1, 2), tfy)  # (M, r_x, r_y)
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    return float(s.sum()), np.matmul(u, vt)


def pull(fx_flat: np.ndarray, fy: np.ndarray, pol: np.ndarray | None) -> np.ndarray:
    """sum_i Fy_i (P_i Q_i')' Fx_i', the (n_y, n_x) term of the rotation update."""
    if pol is None:
        return np.zeros((fy.shape[1], fx_flat.shape[0]))
    g = np.matmul(fy, np.swapaxes(pol, 1, 2))  # (M, n, r_x)
    return flat(g) @ fx_flat.T


def sqrt_cross(fx: np.ndarray, wx: np.ndarray, fy: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """sum_i Sy_i^(1/2) Sx_i^(1/2) = sum_i Fy_i (Wy_i' Wx_i) Fx_i', (n, n)."""
    n = fx.shape[1]
    if fx.shape[2] == 0 or fy.shape[2] == 0:
        return np.zeros((n, n))
    g = np.matmul(fy, np.matmul(np.swapaxes(wy, 1, 2), wx))  # (M, n, r_x)
    return flat(g) @ flat(fx).T


def basis(mu: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Orthonormal basis (n, k) of the unit-space span of a system's means and factors.

    The objective depends on T only through Qy' T Qx; when k < n the optimisation
    runs on that (k_y, k_x) block. The identity when the span is the whole space.
    """
    n = mu.shape[1]
    a = np.concatenate([mu.T, flat(f)], axis=1)
    if a.shape[1] >= n:
        return np.eye(n)
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    keep = s > (s[0] if s.size else 0.0) * max(a.shape) * np.finfo(float).eps
    keep[:1] = True
    return np.eye(n) if keep.sum() >= n else u[:, keep]


#: Past iterates mixed by the Anderson extrapolation of :func:`ascend`.
ANDERSON_DEPTH = 5
#: Extrapolation starts once a plain step gains less than this fraction of the
#: objective: in the slow linear tail of one basin, not while the iterates still travel.
ANDERSON_FROM = 1e-6


def _anderson(xs: list, gs: list) -> np.ndarray:
    """Anderson (type II) combination of the last fixed-point evaluations g(x_j)."""
    x, g = np.array(xs), np.array(gs)
    r = g - x
    dr, dg = np.diff(r, axis=0), np.diff(g, axis=0)
    gamma = np.linalg.lstsq(dr @ dr.T, dr @ r[-1], rcond=None)[0]
    return g[-1] - gamma @ dg


def ascend(mm, fx, fy, t, wm, wc, max_iter, tol):
    """Maximise wm <My'Mx, T> + wc sum_i ||Fx_i' T' Fy_i||_* over (partial) isometries T.

    The step of Duong et al.'s alternating method: P_i Q_i' = polar(Z_i(T)) for every
    stimulus, then T <- polar(wm My'Mx + wc sum_i Fy_i (P_i Q_i')' Fx_i') (a minorise-
    maximise step, never lowering the objective). It converges linearly and slowly
    (hundreds of steps at 384 units), so once in the linear tail (a step gaining less
    than :data:`ANDERSON_FROM` of the objective) each step is also extrapolated by
    Anderson mixing of the last :data:`ANDERSON_DEPTH` steps, retracted by a polar
    factor and kept only when its objective beats the plain step's: the objective
    still never decreases, and the end point is a fixed point of the plain step.
    ``mm`` is My'Mx. Returns (T, objective).
    """
    fx_flat, fy_flat = flat(fx), flat(fy)

    def evaluate(t):
        nuc, pol = fidelity(fx, fy, fy_flat, t) if wc != 0.0 else (0.0, None)
        return wm * float(np.sum(mm * t)) + wc * nuc, pol

    gain, pol = evaluate(t)
    xs, gs, tail = [], [], False
    for _ in range(max_iter):
        step = polar(wm * mm + wc * pull(fx_flat, fy, pol))
        cand = (step, *evaluate(step))
        tail = tail or cand[1] - gain <= ANDERSON_FROM * max(abs(cand[1]), 1.0)
        xs, gs = (xs + [t.ravel()])[-ANDERSON_DEPTH - 1:], (gs + [step.ravel()])[-ANDERSON_DEPTH - 1:]
        if tail and len(xs) > 1:
            mixed = polar(_anderson(xs, gs).reshape(t.shape))
            alt = (mixed, *evaluate(mixed))
            cand = alt if alt[1] > cand[1] else cand
        if cand[1] < gain:  # rounding: never step down
            break
        done = cand[1] - gain <= tol * max(abs(cand[1]), 1.0)
        t, gain, pol = cand
        if done:
            break
    return t, gain


def reduce(mu: np.ndarray, f: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means (M, k) and factors (M, k, r) in the coordinates of the basis ``q`` (n, k)."""
    if q.shape[1] == q.shape[0]:
        return mu, f
    return mu @ q, np.matmul(q.T, f)


def extend(k: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """An orthogonal (n, n) T with Qy' T Qx = K, for a partial isometry K (k_y, k_x)."""
    if qx.shape[1] == qx.shape[0] and qy.shape[1] == qy.shape[0]:
        return qy @ k @ qx.T
    u, _, vt = np.linalg.svd(qy @ k @ qx.T)
    return u @ vt
