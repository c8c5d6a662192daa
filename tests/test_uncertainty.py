"""The bootstrap of the layer choice (issue 14): blocks, exactness, determinism, coverage, outputs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import brainalign
from brainalign.align import fmri_design
from brainalign.data import make_recording, make_stimulus
from brainalign.encoding import make_folds
from brainalign.pipeline import outputs
from brainalign.pipeline import uncertainty as U
from brainalign.pipeline.api import finalize, score_chunk
from brainalign.pipeline.result import merge_chunks

RUNS = np.repeat(["1", "2"], 200)
FOLDS = make_folds("contiguous", 400, runs=RUNS, n_folds=5)


def _ar1(rng, n, k, phi):
    e = rng.standard_normal((n, k))
    out = np.empty_like(e)
    out[0] = e[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + np.sqrt(1 - phi ** 2) * e[i]
    return out


def _predictions(rng, gains, phi=0.2, n=400):
    """Data y and one held-out prediction per 'layer': layer l correlates with y through gains[l]."""
    s = _ar1(rng, n, 1, phi)
    y = s + _ar1(rng, n, 1, phi)
    return y, [g * s + _ar1(rng, n, 1, phi) for g in gains]


def _moments(y, preds):
    block, bf = U.heldout_blocks(FOLDS, RUNS)
    return np.stack([U.layer_moments(y, p, block, bf) for p in preds]), U.y_moments(y, block, bf), bf


def test_blocks_partition_each_fold_and_never_cross_a_run():
    block, bf = U.heldout_blocks(FOLDS, RUNS)
    assert (block >= 0).all()
    for b in range(bf.size):
        rows = np.flatnonzero(block == b)
        assert np.all(np.diff(rows) == 1)  # contiguous
        assert len(set(RUNS[rows])) == 1  # one run
        assert all(np.isin(rows, FOLDS[bf[b]]))  # inside its fold
        assert rows.size >= U.MIN_BLOCK_SAMPLES
    assert np.all(np.bincount(bf) >= 2)


def test_all_blocks_once_give_back_the_mean_of_the_fold_r():
    rng = np.random.default_rng(0)
    y, preds = _predictions(rng, (0.2, 0.5, 0.3))
    M, Ym, bf = _moments(y, preds)
    got = U.resampled_r(M, Ym, np.ones((1, bf.size)), bf)[0, :, 0]
    want = [np.mean([stats.pearsonr(p[f, 0], y[f, 0])[0] for f in FOLDS]) for p in preds]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_weights_resample_within_folds_and_are_seeded():
    _, bf = U.heldout_blocks(FOLDS, RUNS)
    w = U.bootstrap_weights(bf, 50, seed=3)
    for f in np.unique(bf):
        np.testing.assert_array_equal(w[:, bf == f].sum(1), (bf == f).sum())
    np.testing.assert_array_equal(w, U.bootstrap_weights(bf, 50, seed=3))
    assert not np.array_equal(w, U.bootstrap_weights(bf, 50, seed=4))


def _coverage(gains, true, n_sets, seed0):
    hits, sizes = [], []
    for d in range(n_sets):
        y, preds = _predictions(np.random.default_rng(seed0 + d), gains)
        M, Ym, bf = _moments(y, preds)
        cs = U.bootstrap_layers(M, Ym, bf, {}, n_boot=200, seed=d)["in_credible_set"][:, 0]
        hits.append(bool(cs[true]))
        sizes.append(int(cs.sum()))
    return np.mean(hits), np.mean(sizes)


def test_credible_set_has_its_nominal_coverage_when_the_best_is_tied():
    """Two layers equally good: the set must hold layer 0 at the nominal rate, not more, not less.

    (A too narrow bootstrap spread drops it too often, a too wide one keeps it always.)
    """
    n = 300
    cov, size = _coverage((0.3, 0.3), 0, n, 1000)
    lo, hi = stats.binom.ppf([0.005, 0.995], n, U.LEVEL) / n
    assert lo <= cov <= hi, (cov, lo, hi)
    assert size < 2  # informative: not always both


def test_credible_set_covers_a_planted_best_layer_and_excludes_clearly_worse_ones():
    n = 200
    cov, size = _coverage((0.05, 0.3, 0.45, 0.4), 2, n, 5000)
    lo = stats.binom.ppf(0.005, n, U.LEVEL) / n
    assert cov >= lo, (cov, lo)
    assert size < 3.5  # layer 0 (far below the best) is almost never in the set


def test_credible_set_edge_cases():
    r_obs = np.array([[0.1, np.nan], [0.3, np.nan]])
    r_boot = np.broadcast_to(r_obs, (20, 2, 2)).copy()  # no spread at all
    cs = U.credible_set(r_obs, r_boot, 0.9)
    np.testing.assert_array_equal(cs, [[False, False], [True, False]])


def test_fold_spread_widens_only_when_folds_disagree_more_than_the_draws():
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((500, 3, 2)) * 0.01
    folds = np.stack([np.zeros((3, 2)) + 0.001 * rng.standard_normal((3, 2)) for _ in range(5)])
    folds[:, 0, 1] += np.array([0.3, -0.3, 0.2, -0.2, 0.0])  # target 1: layer 0 swings from fold to fold
    g = U.fold_spread(folds, draws)
    assert g[0] == 1.0 and g[1] > 3.0


def test_participant_bootstrap_of_the_group_layer():
    rng = np.random.default_rng(1)
    clear = np.array([0.1, 0.2, 0.4, 0.2]) + 0.02 * rng.standard_normal((8, 4))
    b = U.participant_bootstrap(clear, seed=0)
    assert b["p_best"][2] > 0.95 and b["in_credible_set"].tolist() == [False, False, True, False]
    np.testing.assert_array_equal(b["p_best"], U.participant_bootstrap(clear, seed=0)["p_best"])
    flat = 0.2 + 0.05 * rng.standard_normal((8, 4))
    assert U.participant_bootstrap(flat, seed=0)["in_credible_set"].sum() >= 2


# ------------------------------------------------------------------ pipeline
@pytest.fixture(scope="module")
def fmri():
    rng = np.random.default_rng(1)
    n_frames, tr = 120, 2.0
    words = []
    for run in (1, 2):
        on = np.sort(rng.uniform(4, n_frames * tr - 10, 150))
        words += [{"word": f"w{i}", "onset": o, "duration": 0.3, "run": run} for i, o in enumerate(on)]
    stim = make_stimulus(pd.DataFrame(words))
    times = np.concatenate([np.arange(n_frames) * tr] * 2)
    runs = np.repeat([1, 2], n_frames)
    template = make_recording(np.zeros((times.size, 1)), times, runs, modality="fmri", tr=tr)
    feats = rng.standard_normal((3, len(stim), 8))
    acts = xr.DataArray(feats.astype(np.float32), dims=("layer", "word", "feature"),
                        coords={"layer": [0, 1, 2], "word": np.arange(len(stim))})
    X = np.asarray(fmri_design(feats[1], stim, template, method="hrf", delays=(0,)), dtype=float)
    Y = rng.standard_normal((times.size, 12))
    sig = X @ rng.standard_normal((X.shape[1], 6))
    Y[:, :6] += 1.5 * sig / sig.std(0)
    return make_recording(Y, times, runs, modality="fmri", tr=tr), stim, acts


KW = dict(methods=("encoding",), alphas=[1, 100, 10000], inner_cv=3)


def test_the_pipeline_reports_p_best_and_the_set_bit_identically(fmri, tmp_path):
    rec, stim, acts = fmri
    res = brainalign.align_model(rec, stim, acts, subject="01", task="t", model_label="toy", **KW)
    again = brainalign.align_model(rec, stim, acts, subject="01", task="t", model_label="toy", **KW)
    for v in ("p_best", "in_credible_set", "r_ci_low", "summary_p_best", "summary_in_credible_set"):
        np.testing.assert_array_equal(res[v].values, again[v].values)
    assert not any(v in res for v in U.MOMENT_VARS)
    np.testing.assert_allclose(res["p_best"].sum("layer"), 1.0)
    planted = res.isel(target=slice(0, 6))
    assert (planted["p_best"].argmax("layer") == 1).all()
    assert planted["in_credible_set"].sel(layer=1).all()
    assert not planted["in_credible_set"].sel(layer=[0, 2]).any()
    np.testing.assert_allclose(res["summary_r"].sel(summary="all"), res["r"].mean("target"), rtol=1e-5)
    assert (res["r_ci_low"] <= res["r"] + 1e-6).all() and (res["r"] <= res["r_ci_high"] + 1e-6).all()
    meta = json.loads(res.attrs["layer_uncertainty"])
    assert meta["level"] == U.LEVEL and meta["n_bootstrap"] == U.N_BOOTSTRAP

    files = outputs.write_participant(res, tmp_path)
    table = pd.read_csv([f for f in files if f.suffix == ".tsv"][0], sep="\t", dtype={"target": str})
    pb = table[(table.metric == "p_best") & (table.method == "encoding")]
    assert len(pb) == res.sizes["layer"] * res.sizes["target"]
    got = pb.pivot(index="layer", columns="target", values="value")
    want = res["p_best"].to_pandas()
    want.columns = want.columns.astype(str)
    np.testing.assert_allclose(got[want.columns].values, want.values, rtol=1e-6)
    summ = table[table.metric == "mean_in_credible_set"]
    assert set(summ.target) == set(res["summary"].values.tolist())
    side = json.loads([f for f in files if f.suffix == ".json"][0].read_text())
    assert side["LayerUncertainty"]["seed"] == 0


def test_layer_chunks_merge_to_the_same_uncertainty(fmri):
    rec, stim, acts = fmri
    full = finalize(score_chunk(rec, stim, acts, **KW))
    merged = finalize(merge_chunks([score_chunk(rec, stim, acts.sel(layer=ls), **KW) for ls in ([2], [0, 1])]))
    for v in ("p_best", "in_credible_set", "summary_p_best"):
        np.testing.assert_array_equal(full[v].values, merged[v].values)


@pytest.mark.slow
def test_credible_set_coverage_with_ridge_refits_per_dataset():
    """The same tied case with real nested-CV ridge fits: the fit's own variation is in the spread too."""
    from brainalign.encoding import cross_validated_scores, folds_to_splits

    splits = folds_to_splits(FOLDS, 400)
    block, bf = U.heldout_blocks(FOLDS, RUNS)
    hits, n = [], 200
    for d in range(n):
        rng = np.random.default_rng(20_000 + d)
        X = [_ar1(rng, 400, 20, 0.3) for _ in range(2)]
        b = [v / np.linalg.norm(v) for v in (rng.standard_normal((20, 1)) for _ in range(2))]
        y = 0.5 * X[0] @ b[0] + 0.5 * X[1] @ b[1] + _ar1(rng, 400, 1, 0.3)
        M = [U.layer_moments(y, np.asarray(cross_validated_scores(x, y, outer_cv=splits, inner_cv=3,
                                                                  alphas=np.array([1.0, 100.0, 1e4])).predictions),
                             block, bf) for x in X]
        cs = U.bootstrap_layers(np.stack(M), U.y_moments(y, block, bf), bf, {}, n_boot=200, seed=d)["in_credible_set"]
        hits.append(bool(cs[0, 0]))
    lo, hi = stats.binom.ppf([0.005, 0.995], n, U.LEVEL) / n
    assert lo <= np.mean(hits) <= hi, (np.mean(hits), lo, hi)
