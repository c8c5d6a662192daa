"""Stochastic (Gaussian/Bures) shape distance: brute-force rotation search, zero-noise reduction."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.optimize import minimize_scalar

from brainalign.errors import InputError, ShapeMismatchError
from brainalign.geometry import shape_distance, stochastic_shape_distance


def bures_sq(a, c):
    ra = np.real(sqrtm(a))
    return np.trace(a) + np.trace(c) - 2 * np.trace(np.real(sqrtm(ra @ c @ ra)))


def objective(x, y, t, alpha):
    """(1/M) sum_i (2 - alpha)|mu_x - T' mu_y|^2 + alpha B^2(Sx, T' Sy T), written out."""
    mx, my = x.mean(1), y.mean(1)
    mx, my = mx - mx.mean(0), my - my.mean(0)
    total = 0.0
    for i in range(len(x)):
        cx = np.cov(x[i].T, bias=True)
        cy = np.cov(y[i].T, bias=True)
        total += (2 - alpha) * np.sum((mx[i] - my[i] @ t) ** 2) + alpha * bures_sq(cx, t.T @ cy @ t)
    return total / len(x)


def brute_force_2d(x, y, alpha):
    best = np.inf
    for flip in (np.eye(2), np.diag([1.0, -1.0])):
        def f(theta):
            r = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
            return objective(x, y, flip @ r, alpha)
        grid = np.linspace(0, 2 * np.pi, 181)
        t0 = grid[np.argmin([f(g) for g in grid])]
        res = minimize_scalar(f, bounds=(t0 - 0.05, t0 + 0.05), method="bounded", options={"xatol": 1e-10})
        best = min(best, res.fun)
    return np.sqrt(best)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.7, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_brute_force_rotation_search_in_2d(alpha, seed):
    rng = np.random.default_rng(seed)
    m, r = 12, 30
    x = rng.normal(size=(m, 1, 2)) + rng.normal(size=(m, r, 2)) * rng.uniform(0.2, 1.0, size=(m, 1, 2))
    y = rng.normal(size=(m, 1, 2)) + rng.normal(size=(m, r, 2)) @ rng.normal(size=(2, 2)) * 0.5
    assert stochastic_shape_distance(x, y, alpha) == pytest.approx(brute_force_2d(x, y, alpha), abs=1e-6)


def test_zero_noise_reduces_to_the_deterministic_metric():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    det = shape_distance(a, b, alpha=1.0, kind="euclidean")
    ours = stochastic_shape_distance(np.repeat(a[:, None], 5, 1), np.repeat(b[:, None], 3, 1), alpha=1.0)
    assert ours == pytest.approx(det / np.sqrt(40), abs=1e-9)
    assert stochastic_shape_distance(a[:, None], b[:, None], alpha=0.0) == pytest.approx(
        np.sqrt(2) * det / np.sqrt(40), abs=1e-9)


def test_identity_rotation_symmetry_and_noise_sensitivity():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(25, 1, 5)) + 0.4 * rng.normal(size=(25, 50, 5))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert stochastic_shape_distance(x, x @ q + 3.0) == pytest.approx(0.0, abs=1e-7)
    y = rng.normal(size=(25, 1, 5)) + rng.normal(size=(25, 50, 5))
    assert stochastic_shape_distance(x, y) == pytest.approx(stochastic_shape_distance(y, x), abs=1e-7)
    louder = x.mean(1, keepdims=True) + 3.0 * (x - x.mean(1, keepdims=True))  # same means, more noise
    assert stochastic_shape_distance(x, louder, alpha=0.0) == pytest.approx(0.0, abs=1e-7)
    assert stochastic_shape_distance(x, louder, alpha=1.0) > 0.5
    d, t = stochastic_shape_distance(x, x @ q, return_rotation=True)
    np.testing.assert_allclose(q @ t, np.eye(5), atol=1e-6)  # T undoes the rotation


def test_bad_inputs():
    x = np.zeros((5, 3, 2))
    with pytest.raises(ShapeMismatchError, match="stimuli, repeats, units"):
        stochastic_shape_distance(x[0], x)
    with pytest.raises(ShapeMismatchError, match="stimuli"):
        stochastic_shape_distance(x, x[:4])
    with pytest.raises(InputError, match="alpha"):
        stochastic_shape_distance(x, x, alpha=3.0)


# ---------------------------------------------------------------- the low-rank form against the (N, N) one
def psd_sqrt(c):
    """Square root of a PSD matrix, eigenvalues at rounding level set to zero."""
    w, v = np.linalg.eigh(c)
    w = np.where(w > w.max() * len(c) * 1e-15, w, 0.0)
    return (v * np.sqrt(w)) @ v.T


def full_path(x, y, alpha, n_init=3, seed=0, max_iter=500, tol=1e-12):
    """Duong et al.'s alternating method on the (N, N) square roots of every covariance."""
    n = max(x.shape[2], y.shape[2])
    x = np.pad(x, ((0, 0), (0, 0), (0, n - x.shape[2])))
    y = np.pad(y, ((0, 0), (0, 0), (0, n - y.shape[2])))
    mx, my = x.mean(1) - x.mean((0, 1)), y.mean(1) - y.mean((0, 1))
    cx = [np.cov(s.T, bias=True) for s in x]
    cy = [np.cov(s.T, bias=True) for s in y]
    sx, sy = [psd_sqrt(c) for c in cx], [psd_sqrt(c) for c in cy]
    wm, wc = 2 - alpha, alpha

    def polar(m):
        u, _, vt = np.linalg.svd(m)
        return u @ vt

    def gain(t):
        return wm * np.sum(mx * (my @ t)) + wc * sum(np.linalg.svd(a @ t.T @ b, compute_uv=False).sum()
                                                     for a, b in zip(sx, sy))

    rng = np.random.default_rng(seed)
    starts = [polar(my.T @ mx), polar(sum(b @ a for a, b in zip(sx, sy))), np.eye(n)]
    best = -np.inf
    for t in starts + [polar(rng.normal(size=(n, n))) for _ in range(n_init)]:
        g = gain(t)
        for _ in range(max_iter):
            u = [polar(a @ t.T @ b) for a, b in zip(sx, sy)]
            t_new = polar(wm * my.T @ mx + wc * sum(b @ ui.T @ a for a, b, ui in zip(sx, sy, u)))
            g_new = gain(t_new)
            if g_new < g:
                break
            t, g, done = t_new, g_new, g_new - g <= tol * max(abs(g_new), 1.0)
            if done:
                break
        best = max(best, g)
    total = wm * (np.sum(mx ** 2) + np.sum(my ** 2)) + wc * sum(np.trace(c) for c in cx + cy)
    return np.sqrt(max(total - 2 * best, 0.0) / len(x))


def test_low_rank_fidelity_and_update_equal_the_square_root_forms():
    from brainalign.geometry import _bures

    rng = np.random.default_rng(7)
    m, n = 6, 9
    x = rng.normal(size=(m, 4, n))  # rank 3 covariances from 4 repeats
    y = rng.normal(size=(m, 5, n)) * rng.uniform(0.2, 2.0, size=(1, 1, n))
    fx, wx, trx = _bures.factors(x - x.mean(1, keepdims=True), n)
    fy, wy, _ = _bures.factors(y - y.mean(1, keepdims=True), n)
    assert fx.shape == (m, n, 3) and fy.shape == (m, n, 4)
    cx = [np.cov(s.T, bias=True) for s in x]
    cy = [np.cov(s.T, bias=True) for s in y]
    np.testing.assert_allclose(np.matmul(fx, np.swapaxes(fx, 1, 2)), cx, atol=1e-12)
    assert trx == pytest.approx(sum(np.trace(c) for c in cx), rel=1e-12)
    t, _ = np.linalg.qr(rng.normal(size=(n, n)))
    nuc, pol = _bures.fidelity(fx, fy, _bures.flat(fy), t)
    # sum_i tr (Sx^1/2 T'SyT Sx^1/2)^1/2 (scipy's sqrtm is off by ~1e-7 on these rank-deficient matrices)
    ref = sum(np.trace(psd_sqrt(psd_sqrt(a) @ t.T @ b @ t @ psd_sqrt(a))) for a, b in zip(cx, cy))
    assert nuc == pytest.approx(ref, abs=1e-10)
    assert nuc == pytest.approx(sum(np.trace(np.real(sqrtm(np.real(sqrtm(a)) @ t.T @ b @ t @ np.real(sqrtm(a)))))
                                    for a, b in zip(cx, cy)), abs=1e-5)
    # the rotation update sum_i Sy^1/2 U_i' Sx^1/2, U_i the (N, N) polar factor of Sx^1/2 T' Sy^1/2
    upd = 0
    for a, b in zip(cx, cy):
        u, _, vt = np.linalg.svd(psd_sqrt(a) @ t.T @ psd_sqrt(b))
        upd = upd + psd_sqrt(b) @ (u @ vt).T @ psd_sqrt(a)
    np.testing.assert_allclose(_bures.pull(_bures.flat(fx), fy, pol), upd, atol=1e-10)
    cross = sum(psd_sqrt(b) @ psd_sqrt(a) for a, b in zip(cx, cy))
    np.testing.assert_allclose(_bures.sqrt_cross(fx, wx, fy, wy), cross, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_distance_equals_the_full_square_root_path(seed, alpha):
    rng = np.random.default_rng(seed)
    m, ra, na, nb = 10, 4 + seed, 7, 5 + seed
    x = rng.normal(size=(m, 1, na)) + 0.5 * rng.normal(size=(m, ra, na))
    y = rng.normal(size=(m, 1, nb)) + 0.7 * rng.normal(size=(m, 3, nb))
    assert stochastic_shape_distance(x, y, alpha) == pytest.approx(full_path(x, y, alpha), abs=1e-8)


def test_few_stimuli_and_repeats_in_many_units_the_reduced_problem():
    # 4 stimuli x 3 repeats span at most 3 + 8 = 11 of 30 units: the optimisation runs on that block
    rng = np.random.default_rng(11)
    x = rng.normal(size=(4, 1, 30)) + 0.6 * rng.normal(size=(4, 3, 30))
    y = rng.normal(size=(4, 1, 24)) + 0.4 * rng.normal(size=(4, 3, 24))
    d, t = stochastic_shape_distance(x, y, 1.0, return_rotation=True)
    assert d == pytest.approx(full_path(x, y, 1.0), abs=1e-8)
    np.testing.assert_allclose(t @ t.T, np.eye(30), atol=1e-10)
    yp = np.pad(y, ((0, 0), (0, 0), (0, 6)))
    mx, my = x.mean(1) - x.mean((0, 1)), yp.mean(1) - yp.mean((0, 1))
    value = 0.0
    for i in range(len(x)):  # the objective at the returned T, square roots of rank-2 covariances
        cx, cy = np.cov(x[i].T, bias=True), t.T @ np.cov(yp[i].T, bias=True) @ t
        value += np.sum((mx[i] - my[i] @ t) ** 2) + np.trace(cx) + np.trace(cy) \
            - 2 * np.trace(psd_sqrt(psd_sqrt(cx) @ cy @ psd_sqrt(cx)))
    assert d ** 2 == pytest.approx(value / len(x), abs=1e-8)
