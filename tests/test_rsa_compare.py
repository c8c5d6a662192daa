"""compare() against scipy.stats, brute-force Kendall tau-a, linear CKA and rsatoolbox."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cosine as cosine_distance
from scipy.spatial.distance import squareform

from brainalign.errors import InputError, NonFiniteError, ShapeMismatchError
from brainalign.rsa import compare, rdm

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.rdm import RDMs  # noqa: E402
from rsatoolbox.rdm import compare as rsa_compare  # noqa: E402


def tri(d):
    return d[np.triu_indices(d.shape[0], 1)]


def tau_a_brute(x, y):
    s = 0.0
    for i in range(len(x)):
        s += (np.sign(x[i] - x[i + 1:]) * np.sign(y[i] - y[i + 1:])).sum()
    return s / (len(x) * (len(x) - 1) / 2)


@pytest.fixture
def stacks():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 15))
    data = rdm(base[None] + rng.normal(size=(4, 20, 15)), "correlation")
    models = rdm(base[None] + 2 * rng.normal(size=(3, 20, 15)), "euclidean")
    return data, models


def test_against_scipy_definitions(stacks):
    data, models = stacks
    a, b = data[0], models[1]
    assert compare(a, b, "spearman") == pytest.approx(stats.spearmanr(tri(a), tri(b)).statistic, abs=1e-12)
    assert compare(a, b, "pearson") == pytest.approx(stats.pearsonr(tri(a), tri(b)).statistic, abs=1e-12)
    assert compare(a, b, "cosine") == pytest.approx(1 - cosine_distance(tri(a), tri(b)), abs=1e-12)
    # no ties: tau-a equals scipy's tau-b
    assert compare(a, b, "kendall_tau_a") == pytest.approx(stats.kendalltau(tri(a), tri(b)).statistic, abs=1e-12)


def test_kendall_tau_a_with_ties_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(3):
        a = squareform(rng.integers(0, 4, size=45).astype(float))
        b = squareform(rng.integers(0, 3, size=45).astype(float))
        assert compare(a, b, "kendall_tau_a") == pytest.approx(tau_a_brute(tri(a), tri(b)), abs=1e-14)
        # tau-b differs under ties; tau-a is never larger in magnitude
        assert abs(compare(a, b, "kendall_tau_a")) <= abs(stats.kendalltau(tri(a), tri(b)).statistic) + 1e-12


def test_cka_equals_linear_cka_of_patterns():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 8))
    y = x @ rng.normal(size=(8, 12)) + rng.normal(size=(30, 12))
    xc, yc = x - x.mean(0), y - y.mean(0)
    ref = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert compare(rdm(x, "sqeuclidean"), rdm(y, "sqeuclidean"), "cka") == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("ours,theirs", [("spearman", "spearman"), ("pearson", "corr"),
                                         ("cosine", "cosine"), ("kendall_tau_a", "tau-a")])
def test_against_rsatoolbox(stacks, ours, theirs):
    data, models = stacks
    r = lambda s: RDMs(np.stack([tri(m) for m in s]))  # noqa: E731
    np.testing.assert_allclose(compare(data, models, ours), rsa_compare(r(data), r(models), theirs), atol=1e-12)


def test_output_shapes(stacks):
    data, models = stacks
    assert isinstance(compare(data[0], models[0]), float)
    assert compare(data, models[0]).shape == (4,)
    assert compare(data[0], models).shape == (3,)
    full = compare(data, models, "pearson")
    assert full.shape == (4, 3)
    np.testing.assert_allclose(full[2, 1], compare(data[2], models[1], "pearson"), atol=1e-14)
    import torch

    np.testing.assert_allclose(compare(torch.from_numpy(data), torch.from_numpy(models), "pearson"), full)


def test_nan_entries_are_left_out(stacks):
    data, models = stacks
    a = data[0].copy()
    a[2, 5] = a[5, 2] = np.nan
    keep = ~np.isnan(tri(a))
    ref = stats.spearmanr(tri(a)[keep], tri(models[0])[keep]).statistic
    assert compare(a, models[0]) == pytest.approx(ref, abs=1e-12)
    with pytest.raises(NonFiniteError):
        compare(a, models[0], "cka")


def test_bad_inputs(stacks):
    data, models = stacks
    with pytest.raises(InputError, match="method"):
        compare(data, models, "bures")
    with pytest.raises(ShapeMismatchError):
        compare(data, models[:, :10, :10])
    with pytest.raises(ShapeMismatchError):
        compare(np.zeros((4, 5)), models)
