"""GT transform and geodesics: the authors' definition, and rsatoolbox's four defects."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from scipy.stats import rankdata

from brainalign.errors import InputError
from brainalign.rsa import geodesic, gt_transform, rdm

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.rdm import RDMs  # noqa: E402
from rsatoolbox.rdm.transform import geodesic_transform, geotopological_transform  # noqa: E402


def gt_reference(d: np.ndarray, lower: float, upper: float, rank: bool = True) -> np.ndarray:
    """The definition written out for one square RDM, entry by entry."""
    n = d.shape[0]
    iu = np.triu_indices(n, 1)
    v = d[iu].astype(np.float64)
    if rank:
        v = rankdata(v)
        v = (v - v.min()) / (v.max() - v.min())
    a, b = np.quantile(v, lower), np.quantile(v, upper)
    g = np.array([min(max((x - a) / (b - a), 0.0), 1.0) for x in v])
    return squareform(g)


def floyd_warshall_reference(g: np.ndarray) -> np.ndarray:
    """All-pairs shortest paths on edges g < 1 (zeros are edges), plain numpy."""
    dist = np.where(g < 1, g, np.inf)
    np.fill_diagonal(dist, 0.0)
    for k in range(len(g)):
        dist = np.minimum(dist, dist[:, [k]] + dist[[k], :])
    return dist


def _rdms(*mats):
    return RDMs(np.stack([squareform(m, checks=False) for m in mats]))


@pytest.fixture
def rdm_stack():
    rng = np.random.default_rng(0)
    pats = rng.normal(size=(3, 30, 10)) + 1.5 * rng.normal(size=(3, 1, 10))  # shared component
    return rdm(pats, "correlation")  # correlation distances, mostly below 1


@pytest.mark.parametrize("lower,upper", [(0.2, 0.8), (0.0, 1.0), (0.1, 0.5), (0.35, 0.35)])
def test_gt_matches_definition_per_rdm(rdm_stack, lower, upper):
    stack = rdm_stack * np.array([1.0, 10.0, 0.01])[:, None, None]
    out = gt_transform(stack, lower, upper)
    for k in range(3):
        if lower == upper:  # zero-width band: the binary threshold r > a
            v = rankdata(stack[k][np.triu_indices(30, 1)])
            v = (v - v.min()) / (v.max() - v.min())
            ref = squareform((v > np.quantile(v, lower)).astype(float))
        else:
            ref = gt_reference(stack[k], lower, upper)
        np.testing.assert_allclose(out[k], ref, atol=1e-12)
    assert out.min() == 0.0 and out.max() == 1.0


def test_gt_is_invariant_to_monotone_rescaling(rdm_stack):
    d = rdm_stack[0]
    np.testing.assert_allclose(gt_transform(d), gt_transform(np.exp(3 * d)), atol=1e-12)


def test_gt_rank_false_equals_rsatoolbox_when_upper_quantile_at_least_one():
    rng = np.random.default_rng(1)
    d = rdm(rng.normal(size=(25, 6)), "euclidean") + 0.5  # all > 0; quantiles well above 1
    d[np.diag_indices(25)] = 0
    v = d[np.triu_indices(25, 1)]
    assert np.quantile(v, 0.8) >= 1 and np.quantile(v, 0.2) > 0
    ref = geotopological_transform(_rdms(d), 0.2, 0.8).get_matrices()[0]
    np.testing.assert_allclose(gt_transform(d, 0.2, 0.8, rank=False), ref, atol=1e-12)


def test_defect1_rsatoolbox_tests_upper_on_rescaled_values(rdm_stack):
    """Correlation distances: upper quantile < 1, so rsatoolbox sends in-band values to 1."""
    d = rdm_stack[0]
    v = d[np.triu_indices(30, 1)]
    up = np.quantile(v, 0.8)
    assert up < 1
    theirs = geotopological_transform(_rdms(d), 0.2, 0.8).get_matrices()[0]
    ours = gt_transform(d, 0.2, 0.8, rank=False)
    np.testing.assert_allclose(ours, gt_reference(d, 0.2, 0.8, rank=False), atol=1e-12)
    in_band = (d > np.quantile(v, 0.2)) & (d < up)
    wrong = in_band & (theirs == 1.0)
    assert wrong.any()  # rsatoolbox: values inside the band become 1
    assert np.all(ours[wrong] < 1.0)  # ours: they stay inside (0, 1)


def test_defect2_rsatoolbox_rescales_negative_values_twice():
    rng = np.random.default_rng(2)
    conditions = np.tile(np.arange(20), 2)
    runs = np.repeat([0, 1], 20)
    x = rng.normal(size=(40, 5))  # pure noise: crossnobis centred at 0, many negatives
    d = rdm(x, "crossnobis", conditions=conditions, partition=runs)
    v = d[np.triu_indices(20, 1)]
    lo = np.quantile(v, 0.2)
    assert lo < 0
    theirs = geotopological_transform(_rdms(d), 0.2, 0.8).get_matrices()[0]
    ours = gt_transform(d, 0.2, 0.8, rank=False)
    below = (d < lo) & ~np.eye(20, dtype=bool)
    assert np.all(ours[below] == 0.0)
    assert np.all(theirs[below] > 0.0)  # set to 0, then 0 >= lower quantile is rescaled again
    np.testing.assert_allclose(ours, gt_reference(d, 0.2, 0.8, rank=False), atol=1e-12)


def test_defect3_rsatoolbox_pools_quantiles_across_rdms(rdm_stack):
    small, large = rdm_stack[0] * 0.1, rdm_stack[1] * 10
    theirs = geotopological_transform(_rdms(small, large), 0.2, 0.8).get_matrices()
    ours = gt_transform(np.stack([small, large]), 0.2, 0.8, rank=False)
    np.testing.assert_allclose(ours[0], gt_transform(small, 0.2, 0.8, rank=False), atol=1e-12)
    np.testing.assert_allclose(ours[1], gt_transform(large, 0.2, 0.8, rank=False), atol=1e-12)
    # pooled quantiles: the small-scale RDM never reaches the (pooled) upper quantile
    assert theirs[0].max() < 1.0 and ours[0].max() == 1.0
    assert not np.allclose(theirs[0], ours[0])


def test_defect4_networkx_drops_zero_weight_edges():
    g = np.array([
        [0.0, 0.0, 0.8, 1.0],
        [0.0, 0.0, 0.5, 1.0],
        [0.8, 0.5, 0.0, 0.3],
        [1.0, 1.0, 0.3, 0.0],
    ])
    ours = geodesic(g, pretransformed=True)
    np.testing.assert_allclose(ours, floyd_warshall_reference(g), atol=1e-15)
    assert ours[0, 1] == 0.0 and ours[0, 2] == pytest.approx(0.5)  # through the zero-cost edge
    theirs = geodesic_transform(_rdms(g)).get_matrices()[0]
    assert theirs[0, 1] > 0 and theirs[0, 2] == pytest.approx(0.8)


def test_geodesic_matches_floyd_warshall_with_unreachable_pairs():
    rng = np.random.default_rng(3)
    pats = np.concatenate([rng.normal(size=(12, 4)), rng.normal(size=(12, 4)) + 40])
    d = squareform(pdist(pats))
    out = geodesic(d, 0.1, 0.4)
    ref = floyd_warshall_reference(gt_transform(d, 0.1, 0.4))
    assert np.isinf(ref).any()  # two far clusters: no edge < 1 between them
    np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
    np.testing.assert_allclose(out[np.isfinite(ref)], ref[np.isfinite(ref)], atol=1e-12)
    filled = geodesic(d, 0.1, 0.4, fill="max")
    assert np.isfinite(filled).all() and filled.max() == out[np.isfinite(out)].max()
    assert np.all(geodesic(d, 0.1, 0.4, fill=7.5)[np.isinf(out)] == 7.5)


def test_geodesic_stack_rank_and_torch(rdm_stack):
    out = geodesic(rdm_stack, 0.02, 0.9)
    for k in range(3):
        ref = floyd_warshall_reference(gt_transform(rdm_stack[k], 0.02, 0.9))
        np.testing.assert_allclose(out[k], ref, atol=1e-12)
    assert np.ptp(out[0][np.triu_indices(30, 1)]) > 0
    ranked = geodesic(rdm_stack, 0.02, 0.9, rank=True)
    v = out[0][np.triu_indices(30, 1)]
    r = rankdata(v)
    np.testing.assert_allclose(ranked[0][np.triu_indices(30, 1)], (r - r.min()) / (r.max() - r.min()))
    t = geodesic(torch.from_numpy(rdm_stack), 0.02, 0.9)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), out)
    gt = gt_transform(rdm_stack, 0.02, 0.9)
    assert np.all(out[gt < 1] <= gt[gt < 1] + 1e-12)  # a path is never longer than its edge


def test_bad_levels_and_inputs():
    d = squareform(np.arange(1.0, 11.0))
    with pytest.raises(InputError, match="lower"):
        gt_transform(d, 0.9, 0.1)
    with pytest.raises(InputError, match="outside"):
        gt_transform(d, -0.1, 0.5)
    with pytest.raises(InputError, match="symmetric"):
        gt_transform(d + np.triu(np.ones_like(d)), 0.2, 0.8)
    with pytest.raises(InputError, match="fill"):
        geodesic(d, fill="mean")


def test_inputs_are_not_modified_unlike_rsatoolbox(rdm_stack):
    before = rdm_stack.copy()
    gt_transform(rdm_stack, 0.2, 0.8)
    geodesic(rdm_stack, 0.2, 0.8, rank=True)
    np.testing.assert_array_equal(rdm_stack, before)
    theirs = _rdms(rdm_stack[0])
    vec = theirs.get_vectors().copy()
    geotopological_transform(theirs, 0.2, 0.8)
    assert not np.array_equal(theirs.get_vectors(), vec)  # rsatoolbox edits the caller's RDMs
