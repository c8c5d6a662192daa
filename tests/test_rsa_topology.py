"""GT transform and geodesics: the authors' definition, and rsatoolbox's three defects.

Geodesic variants against a plain-numpy reading of the authors' semantics
and networkx, the collapse warning, and select_gt against scikit-learn's NearestCentroid)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from scipy.stats import rankdata

from brainalign.errors import GeodesicCollapseWarning, InputError, ShapeMismatchError
from brainalign.rsa import geodesic, gt_transform, rdm, select_gt

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


def floyd_warshall_reference(g: np.ndarray, zero_edges: bool = True) -> np.ndarray:
    """All-pairs shortest paths on edges g < 1 (zeros are edges unless zero_edges=False), plain numpy."""
    dist = np.where((g < 1) & ((g != 0) | zero_edges), g, np.inf)
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


def test_default_drops_zero_edges_as_the_authors_networkx_does():
    g = np.array([
        [0.0, 0.0, 0.8, 1.0],
        [0.0, 0.0, 0.5, 1.0],
        [0.8, 0.5, 0.0, 0.3],
        [1.0, 1.0, 0.3, 0.0],
    ])
    dropped = geodesic(g, pretransformed=True, rank=False)
    np.testing.assert_allclose(dropped, floyd_warshall_reference(g, zero_edges=False), atol=1e-15)
    theirs = geodesic_transform(_rdms(g)).get_matrices()[0]  # networkx: a 0 is no edge
    np.testing.assert_allclose(dropped, theirs, atol=1e-15)
    assert dropped[0, 1] == pytest.approx(1.3) and dropped[0, 2] == pytest.approx(0.8)
    kept = geodesic(g, pretransformed=True, rank=False, zero_edges="keep")  # the old behaviour
    np.testing.assert_allclose(kept, floyd_warshall_reference(g), atol=1e-15)
    assert kept[0, 1] == 0.0 and kept[0, 2] == pytest.approx(0.5)  # through the zero-cost edge


@pytest.mark.parametrize("zero_edges", ["drop", "keep"])
def test_geodesic_matches_floyd_warshall_with_unreachable_pairs(zero_edges):
    rng = np.random.default_rng(3)
    pats = np.concatenate([rng.normal(size=(12, 4)), rng.normal(size=(12, 4)) + 40])
    d = squareform(pdist(pats))
    out = geodesic(d, 0.1, 0.4, zero_edges=zero_edges, rank=False)
    ref = floyd_warshall_reference(gt_transform(d, 0.1, 0.4), zero_edges=zero_edges == "keep")
    assert np.isinf(ref).any()  # two far clusters: no edge < 1 between them
    np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
    np.testing.assert_allclose(out[np.isfinite(ref)], ref[np.isfinite(ref)], atol=1e-12)
    filled = geodesic(d, 0.1, 0.4, zero_edges=zero_edges, rank=False, fill="max")
    assert np.isfinite(filled).all() and filled.max() == out[np.isfinite(out)].max()
    assert np.all(geodesic(d, 0.1, 0.4, zero_edges=zero_edges, rank=False, fill=7.5)[np.isinf(out)] == 7.5)
    ranked = geodesic(d, 0.1, 0.4, zero_edges=zero_edges)  # default: ranks, unreachable last
    assert np.isfinite(ranked).all() and np.all(ranked[np.isinf(ref)] == 1.0)


def test_geodesic_stack_rank_and_torch(rdm_stack):
    out = geodesic(rdm_stack, 0.02, 0.9, rank=False)
    for k in range(3):
        ref = floyd_warshall_reference(gt_transform(rdm_stack[k], 0.02, 0.9), zero_edges=False)
        np.testing.assert_allclose(out[k], ref, atol=1e-12)
    assert np.ptp(out[0][np.triu_indices(30, 1)]) > 0
    ranked = geodesic(rdm_stack, 0.02, 0.9)
    v = out[0][np.triu_indices(30, 1)]
    r = rankdata(np.round(v, 12))
    np.testing.assert_allclose(ranked[0][np.triu_indices(30, 1)], (r - r.min()) / (r.max() - r.min()))
    t = geodesic(torch.from_numpy(rdm_stack), 0.02, 0.9)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), ranked)
    gt = gt_transform(rdm_stack, 0.02, 0.9)
    edge = (gt > 0) & (gt < 1)
    assert np.all(out[edge] <= gt[edge] + 1e-12)  # a path is never longer than its edge


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
    with pytest.raises(InputError, match="method"):
        geodesic(d, method="shortest")
    with pytest.raises(InputError, match="zero_edges"):
        geodesic(d, zero_edges="contract")
    with pytest.raises(InputError, match="k="):
        geodesic(d, method="k_nearest", k=0)
    with pytest.raises(InputError, match="kind"):
        gt_transform(d, kind="tanh")


def test_inputs_are_not_modified_unlike_rsatoolbox(rdm_stack):
    before = rdm_stack.copy()
    gt_transform(rdm_stack, 0.2, 0.8)
    geodesic(rdm_stack, 0.2, 0.8, rank=True)
    np.testing.assert_array_equal(rdm_stack, before)
    theirs = _rdms(rdm_stack[0])
    vec = theirs.get_vectors().copy()
    geotopological_transform(theirs, 0.2, 0.8)
    assert not np.array_equal(theirs.get_vectors(), vec)  # rsatoolbox edits the caller's RDMs


# --- the authors' graph constructions -------------------------------------------------
def minmax(v):
    return (v - v.min()) / (v.max() - v.min())


def authors_reference(d, method, lower=0.0, upper=0.075, p=0.05, k=1, zero_edges="drop",
                      neighbours="authors", rank=True):
    """Their semantics read plainly: weights, edge rule, Floyd-Warshall, ranks."""
    n = len(d)
    v = d[np.triu_indices(n, 1)]
    w = squareform(minmax(squareform(gt_reference(d, lower, upper), checks=False))
                   if method == "twostep" else minmax(rankdata(v)))
    allowed = np.ones((n, n), bool) if zero_edges == "keep" else (w != 0)
    np.fill_diagonal(allowed, False)
    edge = np.zeros((n, n), bool)
    if method == "twostep":
        edge = allowed & (w < 1)
    elif method == "p_shortest":
        edge = allowed & (w <= np.quantile(minmax(rankdata(v)), p))
    else:
        kk = int(p * n) if method == "p_nearest" else k
        near = np.zeros((n, n), bool)
        for i in range(n):
            cands = sorted((w[i, j], j) for j in range(n) if allowed[i, j])
            for _, j in cands[:kk]:
                near[i, j] = True
        for i in range(n):
            for j in range(i + 1, n):
                if neighbours == "authors":
                    edge[i, j] = edge[j, i] = near[i, j]
                elif neighbours == "union":
                    edge[i, j] = edge[j, i] = near[i, j] or near[j, i]
                else:
                    edge[i, j] = edge[j, i] = near[i, j] and near[j, i]
    dist = np.where(edge, w, np.inf)
    np.fill_diagonal(dist, 0.0)
    for m in range(n):
        dist = np.minimum(dist, dist[:, [m]] + dist[[m], :])
    if not rank:
        return dist
    r = rankdata(np.round(dist[np.triu_indices(n, 1)], 12))  # equal sums tie
    return squareform(minmax(r))


@pytest.fixture
def small_rdm():
    rng = np.random.default_rng(7)
    return squareform(pdist(rng.normal(size=(25, 3))))


@pytest.mark.filterwarnings("ignore::brainalign.errors.GeodesicCollapseWarning")
@pytest.mark.parametrize("zero_edges", ["drop", "keep"])
@pytest.mark.parametrize("method,kw", [
    ("twostep", {}), ("twostep", {"lower": 0.1, "upper": 0.3}), ("twostep", {"lower": 0.0, "upper": 1.0}),
    ("p_shortest", {}), ("p_shortest", {"p": 0.2}),
    ("p_nearest", {"p": 0.12}), ("p_nearest", {"p": 0.2, "neighbours": "union"}),
    ("k_nearest", {}), ("k_nearest", {"k": 3}), ("k_nearest", {"k": 2, "neighbours": "mutual"}),
])
def test_methods_match_plain_reference(small_rdm, method, kw, zero_edges):
    for rank in (True, False):
        ours = geodesic(small_rdm, method=method, zero_edges=zero_edges, rank=rank, **kw)
        ref = authors_reference(small_rdm, method, zero_edges=zero_edges, rank=rank, **kw)
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref))
        fin = np.isfinite(ref)
        np.testing.assert_allclose(ours[fin], ref[fin], atol=1e-12)


@pytest.mark.parametrize("method,kw", [("twostep", {}), ("twostep", {"lower": 0.05, "upper": 0.4}),
                                       ("p_shortest", {}), ("p_nearest", {"p": 0.12}), ("k_nearest", {"k": 2})])
def test_methods_match_networkx_graphs(small_rdm, method, kw):
    """networkx as the authors use it: a zero is no edge; remove the rejected edges; FW."""
    nx = pytest.importorskip("networkx")
    n = len(small_rdm)
    v = small_rdm[np.triu_indices(n, 1)]
    if method == "twostep":
        w = squareform(minmax(squareform(gt_reference(small_rdm, kw.get("lower", 0.0), kw.get("upper", 0.075)),
                                         checks=False)))
    else:
        w = squareform(minmax(rankdata(v)))
    graph = nx.from_numpy_array(w)
    if method == "twostep":
        drop = [(i, j) for i, j, x in graph.edges.data("weight") if x == 1]
    elif method == "p_shortest":
        drop = [(i, j) for i, j, x in graph.edges.data("weight") if x > np.quantile(w[np.triu_indices(n, 1)], 0.05)]
    else:
        kk = int(kw["p"] * n) if method == "p_nearest" else kw["k"]
        near = {i: [j for _, j in sorted((d["weight"], j) for _, j, d in graph.edges(i, data=True))[:kk]]
                for i in graph.nodes}
        drop = [(i, j) for i, j in graph.edges() if j not in near[i]]
    graph.remove_edges_from(drop)
    fw = np.asarray(nx.floyd_warshall_numpy(graph))
    ours = geodesic(small_rdm, method=method, rank=False, **kw)
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(fw))
    np.testing.assert_allclose(ours[np.isfinite(fw)], fw[np.isfinite(fw)], atol=1e-12)


def test_collapse_warning_on_100_stimuli_at_lower_half():
    rng = np.random.default_rng(8)
    d = rdm(rng.normal(size=(100, 12)), "correlation")
    with pytest.warns(GeodesicCollapseWarning, match=r"100 of 100 stimuli.*lower=0.5.*zero_edges='keep'"):
        kept = geodesic(d, 0.5, 0.8, zero_edges="keep")
    assert np.ptp(kept) == 0  # the collapse the warning is about
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeodesicCollapseWarning)
        dropped = geodesic(d, 0.5, 0.8)  # the authors' semantics: no collapse
    assert len(np.unique(dropped[np.triu_indices(100, 1)])) > 100
    with pytest.warns(GeodesicCollapseWarning, match="no two stimuli are connected.*p=0.0"):
        geodesic(d, method="p_shortest", p=0.0)  # only the zero-weight pair: no edge at all


def test_sigmoid_gt_variant(rdm_stack):
    d = rdm_stack[0]
    v = rankdata(d[np.triu_indices(30, 1)])
    r = (v - v.min()) / (v.max() - v.min())
    out = gt_transform(d, kind="sigmoid", alpha=10.0, beta=0.5)
    np.testing.assert_allclose(out[np.triu_indices(30, 1)], 1 / (1 + np.exp(-(r - 0.5) * 10)), atol=1e-14)
    assert np.all(np.diag(out) == 0)


# --- select_gt: leave-one-participant-out nearest-centroid identification ---------------
def _participants(seed, n_sub=4, n_cls=3, n=14, noise=0.6):
    rng = np.random.default_rng(seed)
    bases = [rng.normal(size=(n, 5)) for _ in range(n_cls)]
    return np.stack([[rdm(b + noise * rng.normal(size=b.shape), "euclidean") for b in bases]
                     for _ in range(n_sub)])


@pytest.mark.filterwarnings("ignore:self.within_class_std_dev_")
def test_select_gt_surface_equals_nearest_centroid_reference():
    from sklearn.neighbors import NearestCentroid

    rdms = _participants(9)
    res = select_gt(rdms, step=0.25)
    n_sub, n_cls, n = rdms.shape[0], rdms.shape[1], rdms.shape[-1]
    assert res.surface.shape == (4, 4) and np.isnan(res.surface[3, 0])

    def accuracy(transform):
        x = np.array([[transform(rdms[s, c])[np.triu_indices(n, 1)] for c in range(n_cls)]
                      for s in range(n_sub)])
        hits = []
        for s in range(n_sub):
            train = np.concatenate([x[t] for t in range(n_sub) if t != s])
            labels = np.tile(np.arange(n_cls), n_sub - 1)
            hits.extend(NearestCentroid().fit(train, labels).predict(x[s]) == np.arange(n_cls))
        return np.mean(hits)

    for i, lo in enumerate(res.lowers):
        for j, up in enumerate(res.uppers):
            if up > lo:
                assert res.surface[i, j] == pytest.approx(accuracy(lambda m: gt_transform(m, lo, up)))
    assert res.plain_accuracy == pytest.approx(accuracy(lambda m: m))
    best = np.nanmax(res.surface)
    assert res.accuracy == best and res.surface[list(res.lowers).index(res.lower),
                                                list(res.uppers).index(res.upper)] == best
    assert res.chance == pytest.approx(1 / 3)


def test_select_gt_geodesic_and_readouts():
    rdms = _participants(10, n_sub=3, n_cls=2, n=10)
    readouts = np.stack([rdms, rdms + 0.01 * np.abs(np.random.default_rng(0).normal(size=rdms.shape))], axis=2)
    readouts = (readouts + np.swapaxes(readouts, -1, -2)) / 2
    readouts[..., np.arange(10), np.arange(10)] = 0
    res = select_gt(readouts, lowers=[0.0, 0.1], uppers=[0.3, 0.6], transform="geodesic")
    assert res.surface.shape == (2, 2) and np.isfinite(res.surface).all()
    assert res.collapsed.dtype == bool
    with pytest.raises(ShapeMismatchError, match="participants"):
        select_gt(rdms[:1])
    with pytest.raises(InputError, match="step"):
        select_gt(rdms, step=0.0)
    with pytest.raises(InputError, match="method"):
        select_gt(rdms, transform="geodesic", method="p_shortest")


def test_pipeline_call_form_stays_finite(rdm_stack):
    """pipeline/api.py calls rsa.geodesic(d, lower=, upper=) and compares the result."""
    out = geodesic(rdm_stack[0], lower=0.2, upper=0.8)
    assert np.isfinite(out).all() and np.ptp(out) > 0
