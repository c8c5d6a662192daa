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
from ._bures import ascend, basis, extend, factors, polar, reduce, sqrt_cross
from ._checks import _to_float


_polar = polar


def _responses(x: Any, name: str) -> np.ndarray:
    arr = _to_float(x, name)
    if arr.ndim != 3 or arr.shape[1] < 1:
        raise ShapeMismatchError(f"{name} has shape {arr.shape}; pass (stimuli, repeats, units)")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} holds non-finite values; pass finite responses")
    return arr


def _moments(arr: np.ndarray, n: int):
    """Centred means (M, n) and low-rank covariance factors of responses (M, R, N).

    Returns ``(mu, f, w, trace)`` as :func:`._bures.factors`, units zero-padded to ``n``.
    """
    mu = arr.mean(axis=1)
    f, w, trace = factors(arr - mu[:, None, :], n)
    mu = mu - mu.mean(axis=0, keepdims=True)
    return np.pad(mu, ((0, 0), (0, n - mu.shape[1]))), f, w, trace


def stochastic_shape_distance(A: Any, B: Any, alpha: float = 1.0, *, max_iter: int = 500,
                              tol: float = 1e-12, n_init: int = 3, seed: int = 0,
                              return_rotation: bool = False):
    """Gaussian (2-Wasserstein/Bures) stochastic shape distance between noisy responses.

    The covariances enter through their low-rank factors (rank at most R - 1 from R
    repeats, see :mod:`._bures`): each step costs two (N, N) x (N, M R) products, M
    SVDs of R x R matrices and one (N, N) SVD, exactly the steps of the (N, N) form.

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
        of sum_i S^Y_i^(1/2) S^X_i^(1/2), the identity), ``n_init`` random orthogonal
        starts drawn with ``seed``; the best end point is kept (the problem is not convex).
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
    a, b = _responses(A, "A"), _responses(B, "B")
    if a.shape[0] != b.shape[0]:
        raise ShapeMismatchError(f"A has {a.shape[0]} stimuli but B has {b.shape[0]}; pass the same stimuli")
    n = max(a.shape[2], b.shape[2])
    mx, fx, wx, trx = _moments(a, n)
    my, fy, wy, try_ = _moments(b, n)
    wm, wc = 2.0 - alpha, alpha
    rng = np.random.default_rng(seed)
    starts = [polar(my.T @ mx), polar(sqrt_cross(fx, wx, fy, wy)), np.eye(n)]
    starts += [polar(rng.normal(size=(n, n))) for _ in range(int(n_init))]
    qx, qy = basis(mx, fx), basis(my, fy)
    (rmx, rfx), (rmy, rfy) = reduce(mx, fx, qx), reduce(my, fy, qy)
    mm = rmy.T @ rmx
    best_gain, best_t = -np.inf, None
    for t in starts:
        t, gain = ascend(mm, rfx, rfy, qy.T @ t @ qx, wm, wc, max_iter, tol)
        if gain > best_gain:
            best_gain, best_t = gain, t
    total = wm * (np.sum(mx * mx) + np.sum(my * my)) + wc * (trx + try_)
    d = float(np.sqrt(max(total - 2.0 * best_gain, 0.0) / mx.shape[0]))
    return (d, extend(best_t, qx, qy)) if return_rotation else d


# ------------------------------------------------------------------ energy distance
def _pair_norms(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|x_ir - y_is| for every stimulus i and repeats r, s: (M, R_x, R_y)."""
    d2 = (np.einsum("mri,mri->mr", x, x)[:, :, None] + np.einsum("msi,msi->ms", y, y)[:, None, :]
          - 2.0 * np.einsum("mri,msi->mrs", x, y))
    return np.sqrt(np.maximum(d2, 0.0))


def _within(x: np.ndarray, q: float) -> np.ndarray:
    """Mean over all repeat pairs (r, s), r = s included, of |x_ir - x_is|^q per stimulus: (M,)."""
    return (_pair_norms(x, x) ** q).mean(axis=(1, 2))


def _energy_fit(x, y, t, q, max_iter, tol, eps):
    """Majorise-minimise sum_i mean_rs |x_ir - y_is T|^q over orthogonal T (weighted Procrustes steps)."""
    def cost(t):
        return float((_pair_norms(x, y @ t) ** q).mean(axis=(1, 2)).sum())

    f = cost(t)
    for _ in range(max_iter):
        w = np.maximum(_pair_norms(x, y @ t), eps) ** (q - 2.0)  # |e|^q <= majoriser in |e|^2 for q <= 2
        w /= x.shape[1] * y.shape[1]
        # weighted Procrustes: T = polar(sum_i sum_rs w_irs y_is' x_ir)
        m = np.einsum("mrs,msi,mrj->ij", w, y, x)
        t_new = _polar(m)
        f_new = cost(t_new)
        if f_new > f:  # rounding: never step up
            break
        t, done, f = t_new, f - f_new <= tol * max(abs(f), 1.0), f_new
        if done:
            break
    return t, f


def energy_shape_distance(A: Any, B: Any, q: float = 1.0, *, max_iter: int = 300, tol: float = 1e-10,
                          n_init: int = 3, seed: int = 0, eps: float = 1e-12, return_rotation: bool = False):
    """Energy-distance stochastic shape metric of Duong et al. (2023), minimised over rotations.

    Per stimulus i, the energy distance between the response distributions of the
    two systems after aligning B by an orthogonal T,

        E_q(i) = E|x - y T|^q - 1/2 E|x - x'|^q - 1/2 E|y - y'|^q,

    between the empirical distributions of the repeats (every pair of repeats, the
    V-statistic: itself a metric between empirical distributions for q < 2, never
    negative), and

        d = sqrt( min_T (1/M) sum_i E_q(i) ).

    Responses are centred by the grand mean over stimuli and repeats. With zero
    noise (every repeat equal) d^2 is min_T the mean of |mu^A_i - mu^B_i T|^q; at
    q = 2 the energy distance compares means only, E_2(i) = |mu^A_i - mu^B_i T|^2,
    so d is the Euclidean Procrustes shape distance of the mean patterns over
    sqrt(M) whatever the noise. For q in (0, 2) the energy distance is a metric on
    distributions (q = 1: Szekely & Rizzo's). The minimum over T is found by
    majorise-minimise steps (each a weighted orthogonal Procrustes problem, never
    raising the objective) from several starts, keeping the best.

    Parameters
    ----------
    A, B : arrays, shape (M, R_a, N_a) and (M, R_b, N_b)
        Responses to the same M stimuli, R repeats each; widths zero-padded.
    q : float in (0, 2]
        Exponent of the distances (1 by default).
    max_iter, tol, eps : optimisation limits; eps floors the distances in the weights.
    n_init, seed : random orthogonal starts besides the means' Procrustes and the identity.
    return_rotation : bool
        Also return T (N, N) (rows of B map as ``y @ T``).

    Returns
    -------
    float, in the units of the responses (with ``return_rotation``: (d, T)).
    """
    q = float(q)
    if not 0.0 < q <= 2.0:
        raise InputError(f"q={q} is outside (0, 2]; pass the exponent of the energy distance")
    x, y = _to_float(A, "A"), _to_float(B, "B")
    for name, arr in (("A", x), ("B", y)):
        if arr.ndim != 3:
            raise ShapeMismatchError(f"{name} has shape {arr.shape}; pass (stimuli, repeats, units)")
        if not np.isfinite(arr).all():
            raise InputError(f"{name} holds non-finite values; pass finite responses")
    if x.shape[0] != y.shape[0]:
        raise ShapeMismatchError(f"A has {x.shape[0]} stimuli but B has {y.shape[0]}; pass the same stimuli")
    n = max(x.shape[2], y.shape[2])
    x = np.pad(x - x.mean(axis=(0, 1)), ((0, 0), (0, 0), (0, n - x.shape[2])))
    y = np.pad(y - y.mean(axis=(0, 1)), ((0, 0), (0, 0), (0, n - y.shape[2])))
    rng = np.random.default_rng(seed)
    starts = [_polar(y.mean(1).T @ x.mean(1)), np.eye(n)] + [_polar(rng.normal(size=(n, n))) for _ in range(n_init)]
    best_f, best_t = np.inf, None
    for t in starts:
        t, f = _energy_fit(x, y, t, q, max_iter, tol, eps)
        if f < best_f:
            best_f, best_t = f, t
    m = x.shape[0]
    e = best_f / m - 0.5 * _within(x, q).mean() - 0.5 * _within(y, q).mean()
    d = float(np.sqrt(max(e, 0.0)))
    return (d, best_t) if return_rotation else d
