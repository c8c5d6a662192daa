"""Energy-distance stochastic shape metric (Duong et al. 2023): written-out estimator, reductions, metric axioms."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import ortho_group

from brainalign.errors import InputError, ShapeMismatchError
from brainalign.geometry import energy_shape_distance, shape_distance


def energy_sq(x, y, t, q):
    """(1/M) sum_i [E|x - yT|^q - E|x - x'|^q / 2 - E|y - y'|^q / 2], loops over repeat pairs (V-statistics)."""
    x = x - x.reshape(-1, x.shape[-1]).mean(0)
    y = y - y.reshape(-1, y.shape[-1]).mean(0)
    total = 0.0
    for i in range(len(x)):
        cross = np.mean([np.linalg.norm(a - b @ t) ** q for a in x[i] for b in y[i]])
        wx = np.mean([np.linalg.norm(a - b) ** q for a in x[i] for b in x[i]])
        wy = np.mean([np.linalg.norm(a - b) ** q for a in y[i] for b in y[i]])
        total += cross - wx / 2 - wy / 2
    return total / len(x)


def brute_force_2d(x, y, q):
    best = np.inf
    for flip in (np.eye(2), np.diag([1.0, -1.0])):
        def f(theta):
            r = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
            return energy_sq(x, y, flip @ r, q)
        grid = np.linspace(0, 2 * np.pi, 241)
        t0 = grid[np.argmin([f(g) for g in grid])]
        res = minimize_scalar(f, bounds=(t0 - 0.03, t0 + 0.03), method="bounded", options={"xatol": 1e-11})
        best = min(best, res.fun)
    return np.sqrt(max(best, 0.0))


def _noisy(rng, m=12, r=4, n=2, noise=0.3, base=None):
    mu = rng.standard_normal((m, n)) if base is None else base
    return mu[:, None, :] + noise * rng.standard_normal((m, r, n))


def test_value_is_the_written_out_estimator_at_the_returned_rotation():
    rng = np.random.default_rng(0)
    x, y = _noisy(rng, n=3), _noisy(rng, n=3, r=5)
    for q in (0.5, 1.0, 1.5):
        d, t = energy_shape_distance(x, y, q=q, return_rotation=True)
        assert np.allclose(t @ t.T, np.eye(3), atol=1e-10)
        assert d ** 2 == pytest.approx(energy_sq(x, y, t, q), abs=1e-10)


@pytest.mark.parametrize("q", [1.0, 0.7])
def test_minimum_over_rotations_matches_a_brute_force_search(q):
    rng = np.random.default_rng(1)
    x = _noisy(rng, m=10, r=3)
    rot = np.array([[0.6, -0.8], [0.8, 0.6]])
    y = _noisy(rng, m=10, r=3, base=x.mean(1) @ rot, noise=0.4)
    assert energy_shape_distance(x, y, q=q) == pytest.approx(brute_force_2d(x, y, q), abs=1e-6)


def test_zero_noise_reduces_to_the_deterministic_metric():
    rng = np.random.default_rng(2)
    mx, my = rng.standard_normal((15, 2)), rng.standard_normal((15, 2))
    x, y = np.repeat(mx[:, None], 3, axis=1), np.repeat(my[:, None], 2, axis=1)
    # q = 2: the Euclidean Procrustes shape distance of the patterns over sqrt(M)
    assert energy_shape_distance(x, y, q=2.0) == pytest.approx(shape_distance(mx, my, kind="euclidean") / np.sqrt(15),
                                                               abs=1e-9)
    # q = 1: the sum-of-norms Procrustes problem, by brute force on the means alone
    assert energy_shape_distance(x, y, q=1.0) == pytest.approx(brute_force_2d(mx[:, None], my[:, None], 1.0), abs=1e-6)


def test_q2_compares_means_only_whatever_the_noise():
    rng = np.random.default_rng(3)
    x, y = _noisy(rng, n=4, noise=0.8), _noisy(rng, n=4, noise=0.1, r=6)
    assert energy_shape_distance(x, y, q=2.0) == pytest.approx(
        shape_distance(x.mean(1), y.mean(1), kind="euclidean") / np.sqrt(len(x)), abs=1e-8)


def test_invariance_symmetry_and_triangle_inequality():
    rng = np.random.default_rng(4)
    x = _noisy(rng, n=3)
    rot = ortho_group.rvs(3, random_state=5)
    assert energy_shape_distance(x, x @ rot + 2.0) ** 2 < 1e-8  # d is the root of an objective at its floor
    # noise matters (unlike q = 2): same means, different noise -> positive distance
    assert energy_shape_distance(x, x.mean(1, keepdims=True) + 3 * (x - x.mean(1, keepdims=True))) > 0.1
    for seed in range(6):
        r = np.random.default_rng(100 + seed)
        a, b, c = (_noisy(r, m=8, r=3, n=2, noise=s) for s in (0.2, 0.5, 0.9))
        ab, bc, ac = (energy_shape_distance(u, v) for u, v in ((a, b), (b, c), (a, c)))
        assert ab == pytest.approx(energy_shape_distance(b, a), abs=1e-6)
        assert ac <= ab + bc + 1e-6


def test_bad_inputs_are_refused():
    x = np.zeros((4, 2, 3))
    with pytest.raises(InputError, match="q="):
        energy_shape_distance(x, x, q=2.5)
    with pytest.raises(ShapeMismatchError, match="stimuli"):
        energy_shape_distance(x, np.zeros((5, 2, 3)))
    with pytest.raises(ShapeMismatchError, match="repeats"):
        energy_shape_distance(x[:, 0], x)
