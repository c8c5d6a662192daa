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
