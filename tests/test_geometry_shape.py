"""Generalized shape metrics: Procrustes by SVD, partial whitening written out, metric axioms."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes

from brainalign.errors import InputError
from brainalign.geometry import shape_distance, shape_distance_cv


def whiten_reference(x, alpha, tol=1e-7):
    """phi_alpha(X) = X (alpha I + (1 - alpha) C^(-1/2)), C = X'X, total variance preserved."""
    lam, v = np.linalg.eigh(x.T @ x)
    lam = np.maximum(lam, tol)
    z = alpha * np.eye(x.shape[1]) + (1 - alpha) * v @ np.diag(lam ** -0.5) @ v.T
    xw = x @ z
    return xw * np.sqrt(np.trace(x.T @ x) / np.trace(xw.T @ xw))


def prepare(x, width, alpha):
    x = x - x.mean(0)
    x = np.hstack([x, np.zeros((len(x), width - x.shape[1]))])
    return x if alpha == 1 else whiten_reference(x, alpha)


def reference(a, b, alpha=1.0, kind="angular"):
    width = max(a.shape[1], b.shape[1])
    x, y = prepare(a, width, alpha), prepare(b, width, alpha)
    r, _ = orthogonal_procrustes(y, x)  # rotation taking y closest to x
    if kind == "euclidean":
        return np.linalg.norm(x - y @ r)
    c = np.sum(x * (y @ r)) / (np.linalg.norm(x) * np.linalg.norm(y))
    return np.arccos(np.clip(c, -1, 1))


@pytest.fixture
def reps():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 8))
    return [base @ rng.normal(size=(8, p)) + 0.5 * rng.normal(size=(60, p)) for p in (8, 8, 12, 5)]


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.1])
@pytest.mark.parametrize("kind", ["angular", "euclidean"])
def test_matches_procrustes_reference(reps, alpha, kind):
    for a, b in [(reps[0], reps[1]), (reps[0], reps[2]), (reps[3], reps[2])]:
        assert shape_distance(a, b, alpha, kind) == pytest.approx(reference(a, b, alpha, kind), abs=1e-8)


def test_alpha_one_angular_is_arccos_nuclear_norm(reps):
    a, b = reps[0] - reps[0].mean(0), reps[1] - reps[1].mean(0)
    nuc = np.linalg.svd(a.T @ b, compute_uv=False).sum()
    expected = np.arccos(nuc / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert shape_distance(reps[0], reps[1]) == pytest.approx(expected, abs=1e-12)


def test_wide_patterns_use_same_value(reps):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(20, 50)), rng.normal(size=(20, 70))
    assert shape_distance(a, b) == pytest.approx(reference(a, b), abs=1e-10)
    assert shape_distance(a, b, kind="euclidean") == pytest.approx(reference(a, b, kind="euclidean"), abs=1e-8)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
@pytest.mark.parametrize("kind", ["angular", "euclidean"])
def test_metric_axioms_on_random_triples(alpha, kind):
    rng = np.random.default_rng(4)
    for _ in range(20):
        x, y, z = (rng.normal(size=(30, 6)) * rng.uniform(0.2, 3) for _ in range(3))
        dxy, dyz, dxz = (shape_distance(p, q, alpha, kind) for p, q in [(x, y), (y, z), (x, z)])
        assert dxz <= dxy + dyz + 1e-10
        assert shape_distance(y, x, alpha, kind) == pytest.approx(dxy, abs=1e-12)
        assert dxy >= 0


def test_identity_and_invariances(reps):
    a = reps[0]
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert shape_distance(a, a @ q + 4.0) == pytest.approx(0.0, abs=1e-7)
    assert shape_distance(a, 3.0 * a @ q) == pytest.approx(0.0, abs=1e-7)  # angular: scale-free
    # sqrt(|A|^2 + |B|^2 - 2 nuc) of equal shapes is the square root of rounding in |A|^2 (~3e3 here)
    tol = np.sqrt(64 * np.finfo(float).eps * np.sum((a - a.mean(0)) ** 2))
    assert shape_distance(a, a @ q, kind="euclidean") == pytest.approx(0.0, abs=tol)
    g = rng.normal(size=(8, 8))  # any invertible map: distance 0 only under full whitening
    assert shape_distance(a, a @ g, alpha=0.0) == pytest.approx(0.0, abs=1e-6)
    assert shape_distance(a, a @ g, alpha=1.0) > 0.05


def test_stacks(reps):
    m = shape_distance(reps, reps[:2], 0.5)
    assert m.shape == (4, 2)
    assert m[0, 0] == pytest.approx(0.0, abs=1e-7)
    assert m[2, 1] == pytest.approx(reference(reps[2], reps[1], 0.5), abs=1e-8)


def test_cross_validated_form():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(100, 10))
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    assert shape_distance_cv(a, a @ q + 1.0, cv=5) == pytest.approx(0.0, abs=1e-7)
    noise = rng.normal(size=(100, 10))
    assert shape_distance_cv(a, noise) > shape_distance(a, noise)  # in-sample fit is optimistic
    # one fold written out: fit on the first 80 items, score the last 20
    train, test = np.arange(80), np.arange(80, 100)
    b = a @ rng.normal(size=(10, 10)) + rng.normal(size=(100, 10))
    ma, mb = a[train].mean(0), b[train].mean(0)
    r, _ = orthogonal_procrustes(b[train] - mb, a[train] - ma)
    x, y = a[test] - ma, (b[test] - mb) @ r
    expected = np.arccos(np.sum(x * y) / (np.linalg.norm(x) * np.linalg.norm(y)))
    assert shape_distance_cv(a, b, cv=[(train, test)]) == pytest.approx(expected, abs=1e-10)
    assert shape_distance_cv(a, b, kind="euclidean", cv=[(train, test)]) == pytest.approx(np.linalg.norm(x - y), abs=1e-9)


def test_bad_inputs(reps):
    with pytest.raises(InputError, match="kind"):
        shape_distance(reps[0], reps[1], kind="cosine")
    with pytest.raises(InputError, match="alpha"):
        shape_distance(reps[0], reps[1], alpha=1.5)
    with pytest.raises(InputError, match="alpha=0"):
        shape_distance(reps[0], reps[2], alpha=0.0)
    with pytest.raises(InputError, match="cv"):
        shape_distance_cv(reps[0], reps[1], cv=100)
