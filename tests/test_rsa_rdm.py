"""brainalign.rsa.rdm against scipy's pdist, rsatoolbox and the crossnobis definition."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

from brainalign.errors import InputError, NonFiniteError, ShapeMismatchError
from brainalign.rsa import rdm

rsatoolbox = pytest.importorskip("rsatoolbox")


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 25, 40)) + rng.normal(size=(3, 1, 40)) * 3


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "sqeuclidean", "cosine"])
def test_metrics_match_pdist_float64(stack, metric):
    out = rdm(stack, metric)
    assert out.shape == (3, 25, 25) and out.dtype == np.float64
    for k in range(3):
        ref = squareform(pdist(stack[k], metric))
        np.testing.assert_allclose(out[k], ref, rtol=1e-11, atol=1e-12)
        assert np.array_equal(out[k], out[k].T)
        assert np.all(np.diag(out[k]) == 0)


def test_single_set_matches_stack(stack):
    np.testing.assert_array_equal(rdm(stack[1], "correlation"), rdm(stack, "correlation")[1])


def test_mahalanobis_matches_pdist_and_diagonal_precision(stack):
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(200, 40))
    prec = np.linalg.inv(np.cov(noise.T))
    out = rdm(stack[0], "mahalanobis", precision=prec)
    np.testing.assert_allclose(out, squareform(pdist(stack[0], "mahalanobis", VI=prec)), rtol=1e-10, atol=1e-11)
    diag = rng.uniform(0.5, 2.0, size=40)
    np.testing.assert_allclose(
        rdm(stack, "mahalanobis", precision=diag), rdm(stack, "mahalanobis", precision=np.diag(diag)),
        rtol=1e-12, atol=1e-12,
    )


def test_float32_and_torch_keep_their_type(stack):
    out32 = rdm(stack.astype(np.float32), "correlation")
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, rdm(stack, "correlation"), atol=1e-5)
    t = torch.from_numpy(stack)
    out_t = rdm(t, "euclidean")
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.numpy(), rdm(stack, "euclidean"), rtol=1e-14)


def _rsa_dataset(x, conditions=None, runs=None):
    from rsatoolbox.data import Dataset

    obs = {"conds": np.arange(len(x)) if conditions is None else conditions}
    if runs is not None:
        obs["runs"] = runs
    return Dataset(x, obs_descriptors=obs)


def test_rsatoolbox_euclidean_is_squared_per_channel_and_correlation_agrees(stack):
    from rsatoolbox.rdm import calc_rdm

    x = stack[0]
    p = x.shape[1]
    ref_e = calc_rdm(_rsa_dataset(x), method="euclidean").get_matrices()[0]
    np.testing.assert_allclose(rdm(x, "sqeuclidean") / p, ref_e, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rdm(x, "euclidean") ** 2 / p, ref_e, rtol=1e-9, atol=1e-12)
    ref_c = calc_rdm(_rsa_dataset(x), method="correlation").get_matrices()[0]
    np.testing.assert_allclose(rdm(x, "correlation"), ref_c, rtol=1e-9, atol=1e-12)


def _crossnobis_by_definition(x, conditions, runs, prec):
    """Mean over ordered pairs f != g of (x_f - y_f)' P (x_g - y_g), run means per condition."""
    conds, parts = np.unique(conditions), np.unique(runs)
    means = np.stack([[x[(conditions == c) & (runs == f)].mean(0) for c in conds] for f in parts])
    n = len(conds)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            acc, cnt = 0.0, 0
            for f in range(len(parts)):
                for g in range(len(parts)):
                    if f != g:
                        acc += (means[f, i] - means[f, j]) @ prec @ (means[g, i] - means[g, j])
                        cnt += 1
            out[i, j] = acc / cnt
    return out


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # inside rsatoolbox
def test_crossnobis_matches_definition_and_rsatoolbox():
    from rsatoolbox.rdm import calc_rdm

    rng = np.random.default_rng(2)
    n_cond, n_runs, p = 6, 4, 12
    signal = rng.normal(size=(n_cond, p))
    conditions = np.tile(np.arange(n_cond), n_runs)
    runs = np.repeat(np.arange(n_runs), n_cond)
    x = signal[conditions] + rng.normal(size=(n_cond * n_runs, p))
    prec = np.linalg.inv(np.cov(rng.normal(size=(100, p)).T))
    ours = rdm(x, "crossnobis", precision=prec, conditions=conditions, partition=runs)
    np.testing.assert_allclose(ours, _crossnobis_by_definition(x, conditions, runs, prec), rtol=1e-10, atol=1e-10)
    ref = calc_rdm(_rsa_dataset(x, conditions, runs), method="crossnobis", descriptor="conds",
                   cv_descriptor="runs", noise=prec).get_matrices()[0]
    np.testing.assert_allclose(ours / p, ref, rtol=1e-9, atol=1e-10)
    # batched over sets: each set equals its own call
    both = rdm(np.stack([x, 2 * x]), "crossnobis", precision=prec, conditions=conditions, partition=runs)
    np.testing.assert_allclose(both[1], 4 * ours, rtol=1e-12, atol=1e-12)


def test_crossnobis_is_unbiased_and_can_be_negative():
    rng = np.random.default_rng(3)
    n_cond, n_runs, p = 5, 3, 20
    conditions = np.tile(np.arange(n_cond), n_runs)
    runs = np.repeat(np.arange(n_runs), n_cond)
    signal = rng.normal(size=(n_cond, p)) * 0.3
    true = squareform(pdist(signal, "sqeuclidean"))
    noisy = signal[conditions][None] + rng.normal(size=(400, n_cond * n_runs, p))
    sims = rdm(noisy, "crossnobis", conditions=conditions, partition=runs)  # 400 sets, one call
    iu = np.triu_indices(n_cond, 1)
    assert (sims[:, iu[0], iu[1]] < 0).any()
    # plain squared distances of the means are biased upward by ~ 2 p / n_runs; crossnobis is not
    err = sims.mean(0)[iu] - true[iu]
    se = sims[:, iu[0], iu[1]].std(0) / np.sqrt(len(sims))
    assert np.all(np.abs(err) < 4 * se)


def test_bad_inputs_raise_one_line_errors(stack):
    with pytest.raises(InputError, match="metric"):
        rdm(stack, "manhattan")
    with pytest.raises(ShapeMismatchError):
        rdm(stack[0, 0], "euclidean")
    bad = stack.copy()
    bad[0, 3, 2] = np.nan
    with pytest.raises(NonFiniteError):
        rdm(bad, "correlation")
    const = stack[0].copy()
    const[4] = 1.0
    with pytest.raises(InputError, match=r"\(4,\)|4"):
        rdm(const, "correlation")
    with pytest.raises(InputError, match="precision"):
        rdm(stack, "mahalanobis")
    with pytest.raises(ShapeMismatchError):
        rdm(stack, "mahalanobis", precision=np.eye(3))
    conditions = np.array([0, 1, 2, 0, 1])
    with pytest.raises(InputError, match="partition"):
        rdm(stack[0, :5], "crossnobis", conditions=conditions, partition=np.array([0, 0, 0, 1, 1]))


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "mahalanobis"])
def test_near_duplicate_stimuli_keep_relative_accuracy(metric):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 12, 30)) * 100 + 1000
    x[:, 1] = x[:, 0] + 1e-6 * rng.normal(size=(2, 30))  # Gram identity alone loses ~all digits here
    x[1, 5] = x[1, 4] + 1e-9
    prec = np.linalg.inv(np.cov(rng.normal(size=(30, 90)))) if metric == "mahalanobis" else None
    kw = {"precision": prec} if prec is not None else {}
    out = rdm(x, metric, **kw)
    for k in range(2):
        ref = squareform(pdist(x[k], metric, **({"VI": prec} if prec is not None else {})))
        np.testing.assert_allclose(out[k], ref, rtol=1e-9, atol=0)
