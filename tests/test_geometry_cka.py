"""CKA on patterns against the HSIC formulas written with centring matrices."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from brainalign.errors import InputError
from brainalign.geometry import center_gram, cka


def hsic_biased(K, L):
    H = np.eye(len(K)) - np.ones((len(K), len(K))) / len(K)
    return np.trace(K @ H @ L @ H)


def hsic_unbiased(K, L):
    """Song et al. (2012), Eq. 5."""
    n = len(K)
    Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    val = np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2)) \
        - 2 / (n - 2) * (one @ Kt @ Lt @ one)
    return val / (n * (n - 3))


def cka_reference(a, b, kernel="linear", debiased=False, sigma=None):
    a = a - a.mean(0)
    b = b - b.mean(0)
    if kernel == "linear":
        K, L = a @ a.T, b @ b.T
    else:
        def rbf(x):
            d2 = cdist(x, x, "sqeuclidean")
            s2 = np.median(d2) if sigma is None else sigma ** 2  # Kornblith et al.: full matrix
            return np.exp(-d2 / (2 * s2))
        K, L = rbf(a), rbf(b)
    h = hsic_unbiased if debiased else hsic_biased
    return h(K, L) / np.sqrt(h(K, K) * h(L, L))


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(80, 15)) + 2.0
    b = np.tanh(a @ rng.normal(size=(15, 9))) + 0.5 * rng.normal(size=(80, 9))
    return a, b


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matches_hsic_definition(pair, kernel, debiased):
    a, b = pair
    assert cka(a, b, kernel, debiased) == pytest.approx(cka_reference(a, b, kernel, debiased), abs=1e-10)
    wide = np.random.default_rng(5).normal(size=(80, 200))  # wide: the Gram route
    assert cka(a, wide, kernel, debiased) == pytest.approx(cka_reference(a, wide, kernel, debiased), abs=1e-10)


def test_rbf_sigma_explicit(pair):
    a, b = pair
    assert cka(a, b, "rbf", sigma=2.5) == pytest.approx(cka_reference(a, b, "rbf", sigma=2.5), abs=1e-10)


def test_unbiased_centring_equals_song_hsic(pair):
    a, b = pair
    K, L = a @ a.T, b @ b.T
    n = len(K)
    inner = np.sum(center_gram(K, True) * center_gram(L, True))
    assert inner / (n * (n - 3)) == pytest.approx(hsic_unbiased(K, L), rel=1e-10)
    assert np.sum(center_gram(K) * center_gram(L)) == pytest.approx(hsic_biased(K, L), rel=1e-10)


def test_invariances(pair):
    a, b = pair
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(15, 15)))
    assert cka(a, a @ q * 7.0 + 3.0) == pytest.approx(1.0, abs=1e-12)
    assert cka(a, a @ q, debiased=True) == pytest.approx(1.0, abs=1e-12)
    assert cka(a, b) == pytest.approx(cka(b, a), abs=1e-14)
    assert 0 <= cka(a, b) <= 1


def test_stacks(pair):
    a, b = pair
    rng = np.random.default_rng(2)
    stack = [a, b, rng.normal(size=(80, 4))]
    for debiased in (False, True):
        m = cka(stack, stack, debiased=debiased)
        assert m.shape == (3, 3)
        np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-12)
        for i in range(3):
            for j in range(3):
                assert m[i, j] == pytest.approx(cka_reference(stack[i], stack[j], debiased=debiased), abs=1e-10)


def test_bad_inputs(pair):
    a, b = pair
    with pytest.raises(InputError, match="kernel"):
        cka(a, b, "poly")
    with pytest.raises(InputError, match="items"):
        cka(a[:3], b[:3], debiased=True)
    assert np.isnan(cka(np.ones((10, 3)), b[:10]))
