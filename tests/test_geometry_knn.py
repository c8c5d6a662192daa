"""Mutual k-NN, cycle k-NN and CKNNA against plainly written definitions."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.errors import InputError, ShapeMismatchError
from brainalign.geometry import cknna, cycle_knn, knn_indices, mutual_knn


def knn_reference(x: np.ndarray, k: int, exclude_self: bool = True) -> np.ndarray:
    """Full similarity matrix, argsorted (platonic-rep's construction)."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    if exclude_self:
        np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def mutual_reference(a, b, k):
    ia, ib = knn_reference(a, k), knn_reference(b, k)
    return np.mean([len(set(ia[i]) & set(ib[i])) / k for i in range(len(a))])


def cycle_reference(a, b, k):
    ia, ib = knn_reference(a, k), knn_reference(b, k)
    return np.mean([any(i in ia[j] for j in ib[i]) for i in range(len(a))])


def hsic_unbiased_reference(K, L):
    m = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0)
    np.fill_diagonal(Lt, 0)
    val = np.sum(Kt * Lt.T) + Kt.sum() * Lt.sum() / ((m - 1) * (m - 2)) - 2 * np.sum(Kt @ Lt) / (m - 2)
    return val / (m * (m - 3))


def hsic_biased_reference(K, L):
    H = np.eye(len(K)) - 1 / len(K)
    return np.trace(K @ H @ L @ H)


def cknna_reference(a, b, k, unbiased=True):
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    K, L = an @ an.T, bn @ bn.T
    hsic = hsic_unbiased_reference if unbiased else hsic_biased_reference

    def sim(K, L):
        mk = np.zeros_like(K)
        ml = np.zeros_like(L)
        rows = np.arange(len(K))[:, None]
        mk[rows, knn_reference(a if K is Kref else b, k, unbiased)] = 1
        ml[rows, knn_reference(b if L is Lref else a, k, unbiased)] = 1
        m = mk * ml
        return hsic(m * K, m * L)

    Kref, Lref = K, L
    return sim(K, L) / np.sqrt(sim(K, K) * sim(L, L))


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 20))
    b = a @ rng.normal(size=(20, 12)) + 0.8 * rng.normal(size=(300, 12))
    return a, b


@pytest.mark.parametrize("certified", [True, False])
@pytest.mark.parametrize("block", [None, 7, 64, 300])
@pytest.mark.parametrize("k", [1, 5, 20])
def test_knn_indices_equal_full_argsort(pair, block, k, certified):
    a = pair[0] / np.linalg.norm(pair[0], axis=1, keepdims=True)
    ours = np.sort(knn_indices(a, k, block=block, certified=certified), axis=1)
    np.testing.assert_array_equal(ours, np.sort(knn_reference(a, k), axis=1))
    with_self = np.sort(knn_indices(a, k, exclude_self=False, block=block, certified=certified), axis=1)
    np.testing.assert_array_equal(with_self, np.sort(knn_reference(a, k, exclude_self=False), axis=1))


@pytest.mark.parametrize("size,k", [(12, 10), (12, 15), (40, 10)])
def test_certified_search_on_near_ties_float32_cannot_resolve(size, k):
    """Clusters of near-copies: similarities differ by ~1e-10, below float32's resolution.

    (12, 10): the boundary falls inside a cluster, ranked by exact values; (12, 15):
    between clusters; (40, 10): more near-ties than candidates, the float64 fallback.
    """
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(30, 64))
    x = np.repeat(centres, size, axis=0) + 1e-5 * rng.normal(size=(30 * size, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ref = np.sort(knn_reference(x, k), axis=1)
    ours, vals = knn_indices(x, k, return_values=True)
    np.testing.assert_array_equal(np.sort(ours, axis=1), ref)
    np.testing.assert_allclose(vals, np.einsum("ij,ikj->ik", x, x[ours]), rtol=0, atol=1e-15)


@pytest.mark.parametrize("k", [1, 3, 10, 40])
def test_mutual_and_cycle_knn_match_definition(pair, k):
    a, b = pair
    assert mutual_knn(a, b, k) == pytest.approx(mutual_reference(a, b, k), abs=1e-12)
    assert cycle_knn(a, b, k) == pytest.approx(cycle_reference(a, b, k), abs=1e-12)
    assert cycle_knn(b, a, k) == pytest.approx(cycle_reference(b, a, k), abs=1e-12)


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("k", [2, 10, 50])
def test_cknna_matches_definition(pair, k, unbiased):
    a, b = pair[0][:120], pair[1][:120]
    assert cknna(a, b, k, unbiased=unbiased) == pytest.approx(cknna_reference(a, b, k, unbiased), abs=1e-9)


def test_knn_invariances_and_extremes(pair):
    a, b = pair
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    scale = rng.uniform(0.5, 3.0, size=(300, 1))  # per-row scaling: cosine neighbours unchanged
    assert mutual_knn(a, a @ q * scale, 10) == 1.0
    assert cycle_knn(a, a @ q, 10) == cycle_knn(a, a, 10) > 0.9  # k-NN is not symmetric: not always 1
    assert cknna(a, a @ q, 10) == pytest.approx(1.0, abs=1e-12)
    assert mutual_knn(a, b, 10) == mutual_knn(b, a, 10)
    noise = rng.normal(size=(300, 20))
    assert mutual_knn(a, noise, 10) < 0.15  # chance is k / (n - 1)


def test_stacks_give_matrices(pair):
    a, b = pair
    rng = np.random.default_rng(2)
    stack = np.stack([a, a + rng.normal(size=a.shape), rng.normal(size=a.shape)])
    m = mutual_knn(stack, [b, a], 5)
    assert m.shape == (3, 2)
    for i in range(3):
        assert m[i, 0] == pytest.approx(mutual_reference(stack[i], b, 5), abs=1e-12)
        assert m[i, 1] == pytest.approx(mutual_reference(stack[i], a, 5), abs=1e-12)
    assert m[0, 1] == 1.0
    assert cycle_knn(stack, b, 5).shape == (3, 1)


def test_bad_inputs(pair):
    a, b = pair
    with pytest.raises(InputError, match="k=300"):
        mutual_knn(a, b, 300)
    with pytest.raises(ShapeMismatchError, match="items"):
        mutual_knn(a, b[:-1], 5)
    z = a.copy()
    z[4] = 0
    with pytest.raises(InputError, match="row 4"):
        mutual_knn(z, b, 5)
    with pytest.raises(InputError, match="k=1"):
        cknna(a, b, 1)
    with pytest.raises(ShapeMismatchError, match="shape"):
        mutual_knn(a[0], b, 5)


def test_geometry_imports_no_other_area():
    """Kernels only: geometry pulls in neither io, pipeline, encoding nor rsa."""
    import subprocess
    import sys

    code = ("import sys, brainalign.geometry; "
            "bad = [m for m in sys.modules if m.split('.')[:2] in "
            "(['brainalign', 'io'], ['brainalign', 'pipeline'], ['brainalign', 'encoding'], ['brainalign', 'rsa'])]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
