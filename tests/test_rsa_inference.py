"""Bootstrap, noise ceilings and permutation tests against explicit resampling and rsatoolbox."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cosine as cosine_distance

from brainalign.errors import InputError, ShapeMismatchError
from brainalign.rsa import bootstrap, compare, noise_ceiling, permutation_test, rdm

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.inference.noise_ceiling import boot_noise_ceiling  # noqa: E402
from rsatoolbox.rdm import RDMs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Noise ceiling for tau:UserWarning")

RSA_NAMES = {"pearson": "corr", "cosine": "cosine", "spearman": "spearman", "kendall_tau_a": "tau-a"}


def tau_a(x, y):
    s = sum((np.sign(x[i] - x[i + 1:]) * np.sign(y[i] - y[i + 1:])).sum() for i in range(len(x)))
    return s / (len(x) * (len(x) - 1) / 2)


def linear_cka_from_rdms(a, b):
    h = np.eye(len(a)) - 1.0 / len(a)
    ga, gb = -0.5 * h @ a @ h, -0.5 * h @ b @ h
    return (ga * gb).sum() / (np.linalg.norm(ga) * np.linalg.norm(gb))


SIM = {
    "spearman": lambda x, y: stats.spearmanr(x, y).statistic,
    "pearson": lambda x, y: stats.pearsonr(x, y).statistic,
    "cosine": lambda x, y: 1 - cosine_distance(x, y),
    "kendall_tau_a": tau_a,
}


@pytest.fixture(scope="module")
def group():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 6))
    data = rdm(base[None] + 0.8 * rng.normal(size=(5, 10, 6)), "correlation")
    models = rdm(base[None] + 1.5 * rng.normal(size=(3, 10, 6)), "euclidean")
    return data, models


def explicit_pairs(idx):
    i, j = np.triu_indices(len(idx), 1)
    keep = idx[i] != idx[j]  # pairs of a stimulus with its own duplicate are left out
    return idx[i][keep], idx[j][keep]


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine", "kendall_tau_a", "cka"])
def test_bootstrap_samples_equal_explicit_resampling(group, method):
    data, models = group
    res = bootstrap(data, models, method, over="both", n_samples=4, seed=3, noise_ceiling=False)
    assert res.samples.shape == (4, 3) and np.isfinite(res.samples).all()
    for b in range(4):
        idx = res.stimulus_draws[b]
        who = np.repeat(np.arange(5), res.participant_counts[b].astype(int))
        expected = np.zeros(3)
        for m in range(3):
            if method == "cka":
                sims = [linear_cka_from_rdms(data[s][np.ix_(idx, idx)], models[m][np.ix_(idx, idx)]) for s in who]
            else:
                a, c = explicit_pairs(idx)
                sims = [SIM[method](data[s][a, c], models[m][a, c]) for s in who]
            expected[m] = np.mean(sims)
        np.testing.assert_allclose(res.samples[b], expected, atol=1e-10)


@pytest.mark.parametrize("method", ["pearson", "cosine", "spearman", "kendall_tau_a"])
def test_noise_ceiling_matches_rsatoolbox(group, method):
    data, _ = group
    iu = np.triu_indices(10, 1)
    ours = noise_ceiling(data, method)
    theirs = boot_noise_ceiling(RDMs(data[:, iu[0], iu[1]]), method=RSA_NAMES[method])
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert ours.lower < ours.upper
    # each bootstrap sample's ceiling equals rsatoolbox's on the explicitly resampled RDMs
    res = bootstrap(data, data[:1], method, over="stimuli", n_samples=3, seed=1)
    for b in range(3):
        a, c = explicit_pairs(res.stimulus_draws[b])
        ref = boot_noise_ceiling(RDMs(data[:, a, c]), method=RSA_NAMES[method])
        np.testing.assert_allclose(res.noise_ceiling_samples[b], ref, atol=1e-10)


def test_bootstrap_result_summary_and_seeding(group):
    data, models = group
    r1 = bootstrap(data, models, n_samples=60, seed=11)
    r2 = bootstrap(data, models, n_samples=60, seed=11)
    r3 = bootstrap(data, models, n_samples=60, seed=12)
    np.testing.assert_array_equal(r1.samples, r2.samples)
    np.testing.assert_array_equal(r1.noise_ceiling_samples, r2.noise_ceiling_samples)
    assert not np.array_equal(r1.samples, r3.samples)
    np.testing.assert_allclose(r1.scores, compare(data, models).mean(axis=0), atol=1e-12)
    assert r1.ci.shape == (3, 2) and np.all(r1.ci[:, 0] <= r1.ci[:, 1])
    assert r1.p_best.sum() == pytest.approx(1.0)
    assert np.isfinite(r1.noise_ceiling_samples).all()
    # the participants-only bootstrap leaves the stimuli alone
    rp = bootstrap(data, models, over="participants", n_samples=5, seed=0)
    assert rp.stimulus_draws is None and np.all(rp.participant_counts.sum(1) == 5)


def test_bootstrap_with_many_duplicates_never_nan():
    rng = np.random.default_rng(4)
    data = rdm(rng.normal(size=(3, 5, 4)), "euclidean")
    res = bootstrap(data, data[0], "spearman", over="stimuli", n_samples=200, seed=0)
    assert np.isfinite(res.samples).all()
    assert min(len(np.unique(r)) for r in res.stimulus_draws) >= 3


@pytest.mark.parametrize("method", ["spearman", "pearson", "cka", "kendall_tau_a"])
def test_permutation_null_equals_explicit_relabelling(group, method):
    data, models = group
    res = permutation_test(data, models, method, n_permutations=5, seed=2)
    np.testing.assert_allclose(res.observed, compare(data, models, method).mean(0), atol=1e-12)
    for k, perm in enumerate(res.permutations):
        shuffled = models[:, perm][:, :, perm]
        np.testing.assert_allclose(res.null[k], compare(data, shuffled, method).mean(0), atol=1e-10)


def test_permutation_p_values():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(30, 8))
    data = rdm(base[None] + 0.5 * rng.normal(size=(4, 30, 8)), "correlation")
    good = rdm(base, "correlation")
    res = permutation_test(data, good, n_permutations=199, seed=0)
    assert res.p_value == pytest.approx(1 / 200)
    unrelated = rdm(rng.normal(size=(30, 8)), "correlation")
    assert permutation_test(data, unrelated, n_permutations=199, seed=0).p_value > 0.01


def test_bad_inputs(group):
    data, models = group
    with pytest.raises(InputError, match="over"):
        bootstrap(data, models, over="runs")
    with pytest.raises(InputError, match="seed"):
        bootstrap(data, models, seed=None)
    with pytest.raises(ShapeMismatchError):
        bootstrap(data, models[:, :8, :8])
    with pytest.raises(InputError, match="2 participants"):
        noise_ceiling(data[:1])
