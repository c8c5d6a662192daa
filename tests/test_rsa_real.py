"""RSA on real RDMs: human IT, 4 participants x 2 sessions, 92 images (Kriegeskorte 2008)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from brainalign.rsa import compare, geodesic, gt_transform, identify_layer, noise_ceiling, permutation_test

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.inference.noise_ceiling import boot_noise_ceiling  # noqa: E402
from rsatoolbox.rdm import RDMs  # noqa: E402
from rsatoolbox.rdm import compare as rsa_compare  # noqa: E402
from rsatoolbox.rdm.transform import geotopological_transform  # noqa: E402

IU = np.triu_indices(92, 1)


@pytest.fixture(scope="module")
def hit(shared_data):
    mat = scipy.io.loadmat(shared_data / "rsa92" / "92_brainRDMs.mat")["RDMs"]
    assert mat.shape == (1, 4, 2)
    names = [[str(mat["name"][0, p, s][0]) for s in range(2)] for p in range(4)]
    assert names[0][1].endswith("Session: 2")
    rdms = np.stack([[mat["RDM"][0, p, s] for s in range(2)] for p in range(4)]).astype(np.float64)
    return rdms  # (participant, session, 92, 92)


def test_read_and_transform(hit):
    assert hit.shape == (4, 2, 92, 92)
    flat = hit.reshape(8, 92, 92)
    assert np.all(flat == np.swapaxes(flat, 1, 2)) and np.all(np.diagonal(flat, axis1=1, axis2=2) == 0)
    g = gt_transform(flat, 0.2, 0.8)
    v = g[:, IU[0], IU[1]]
    # per RDM, about a fifth of the pairs at or below the lower quantile and above the upper
    np.testing.assert_allclose((v == 0).mean(axis=1), 0.2, atol=0.005)
    np.testing.assert_allclose((v == 1).mean(axis=1), 0.2, atol=0.005)
    geo = geodesic(flat, 0.2, 0.8, rank=False, fill="max")  # zero GT values are no edge (the authors')
    edge = (g > 0) & (g < 1)
    assert np.isfinite(geo).all() and np.all(geo[edge] <= g[edge] + 1e-12)


def test_sessions_replicate_and_averaging_helps(hit):
    for p in range(4):
        res = permutation_test(hit[p, 0], hit[p, 1], n_permutations=499, seed=p)
        assert res.observed > 0 and res.p_value < 0.05
    single = [noise_ceiling(hit[:, s]) for s in range(2)]
    averaged = noise_ceiling(hit.mean(axis=1))
    assert all(nc.lower < nc.upper for nc in single + [averaged])
    assert averaged.lower > max(nc.lower for nc in single)
    across = compare(hit[:, 0], hit[:, 1])  # participants x participants, session 1 vs 2
    assert across.shape == (4, 4) and np.all(across > 0)


@pytest.mark.filterwarnings("ignore:Noise ceiling for tau:UserWarning")
def test_agrees_with_rsatoolbox_on_real_rdms(hit):
    flat = hit.reshape(8, 92, 92)
    vec = RDMs(flat[:, IU[0], IU[1]])
    for ours, theirs in [("spearman", "spearman"), ("pearson", "corr"), ("kendall_tau_a", "tau-a")]:
        np.testing.assert_allclose(compare(flat, flat, ours), rsa_compare(vec, vec, theirs), atol=1e-10)
        np.testing.assert_allclose(noise_ceiling(flat, ours), boot_noise_ceiling(vec, method=theirs), atol=1e-10)


def test_rsatoolbox_gt_defects_on_real_rdms(hit):
    flat = hit.reshape(8, 92, 92)
    q = np.quantile(flat[:, IU[0], IU[1]], [0.2, 0.8], axis=1)
    ok = int(np.flatnonzero((q[1] >= 1) & (q[0] > 0))[0])
    bad = int(np.flatnonzero(q[1] < 1)[0])
    one = lambda d: RDMs(d[IU][None])  # noqa: E731
    # where rsatoolbox is right (upper quantile >= 1, lower > 0) we agree with it
    ref_ok = geotopological_transform(one(flat[ok]), 0.2, 0.8).get_matrices()[0]
    np.testing.assert_allclose(gt_transform(flat[ok], rank=False), ref_ok, atol=1e-12)
    # upper quantile < 1: rsatoolbox sends in-band pairs to 1
    ref_bad = geotopological_transform(one(flat[bad]), 0.2, 0.8).get_matrices()[0]
    ours = gt_transform(flat[bad], rank=False)
    in_band = (flat[bad] > q[0, bad]) & (flat[bad] < q[1, bad])
    assert (ref_bad[in_band] == 1).sum() > 0 and np.all(ours[in_band] < 1)
    # pooled quantiles across the 8 RDMs differ from per-RDM quantiles
    pooled = geotopological_transform(RDMs(flat[:, IU[0], IU[1]]), 0.2, 0.8).get_matrices()
    per_rdm = gt_transform(flat, rank=False)
    assert not np.allclose(pooled, per_rdm)


def test_identify_layer_on_real_rdms(hit):
    brain = hit.mean(axis=1)  # session-averaged, 4 participants
    rng = np.random.default_rng(0)
    perm = rng.permutation(92)
    shuffled = brain.mean(0)[perm][:, perm]
    candidates = np.stack([shuffled, brain.mean(0)])  # only "layer" 1 carries the geometry
    res = identify_layer(brain, candidates, gt=[(0.2, 0.8)], n_bootstrap=50, seed=0)
    assert all(s.best_index == 1 for s in res.settings)
    assert all(s.p_best[1] > 0.9 for s in res.settings)
