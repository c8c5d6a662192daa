"""The calibrated p-values through the pipeline: score_chunk -> finalize -> sidecar record."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from brainalign.align import fmri_design
from brainalign.data import make_recording, make_stimulus
from brainalign.pipeline import pvalues
from brainalign.pipeline.api import annotate, finalize, score_chunk
from brainalign.pipeline.outputs import write_participant
from brainalign.pipeline.result import merge_chunks
from brainalign.validation.calibration import ar1

N_PLANTED, N_NOISE = 12, 150


@pytest.fixture(scope="module")
def study():
    """Two fMRI runs; 12 targets read out layer 1 plus AR(1) noise, 150 pure AR(1) noise targets."""
    rng = np.random.default_rng(11)
    n_frames, tr = 130, 2.0
    words = []
    for run in (1, 2):
        on = np.sort(rng.uniform(4, n_frames * tr - 10, 160))
        words += [{"word": f"w{i}", "onset": o, "duration": 0.3, "run": run} for i, o in enumerate(on)]
    stim = make_stimulus(pd.DataFrame(words))
    feats = rng.standard_normal((3, len(stim), 8))
    acts = xr.DataArray(feats.astype(np.float32), dims=("layer", "word", "feature"),
                        coords={"layer": [0, 1, 2], "word": np.arange(len(stim))})
    times = np.concatenate([np.arange(n_frames) * tr] * 2)
    runs = np.repeat([1, 2], n_frames)
    template = make_recording(np.zeros((times.size, 1)), times, runs, modality="fmri", tr=tr)
    X = np.asarray(fmri_design(feats[1], stim, template, method="hrf", delays=(0,)), dtype=float)
    Y = ar1(rng, runs, N_PLANTED + N_NOISE, 0.7)
    signal = X @ rng.standard_normal((X.shape[1], N_PLANTED))
    Y[:, :N_PLANTED] += 0.8 * signal / signal.std(0)
    return make_recording(Y, times, runs, modality="fmri", tr=tr), stim, acts


KW = dict(methods=("encoding",), alignment="hrf", delays=(0,), alphas=[1.0, 10.0, 100.0, 1000.0], inner_cv=3,
          n_folds=4)


def test_pipeline_p_values_are_calibrated_and_recorded(study):
    rec, stim, acts = study
    ds = finalize(score_chunk(rec, stim, acts, permutations=100, seed=3, **KW), q=0.05)
    assert ds.attrs["p_method"] == "shift" and ds.attrs["n_permutations"] == 100
    assert ds.attrs["fdr_family"] == "layer x target" and ds.attrs["fdr_q"] == 0.05
    rec_json = json.loads(ds.attrs["statistics"])
    assert rec_json["p_method"] == "shift" and rec_json["n_permutations"] == 100 and rec_json["seed"] == 3
    noise = ds["p"].isel(target=slice(N_PLANTED, None)).values.ravel()  # 3 layers x 150 noise targets
    lo, hi = stats.binom.interval(0.99, noise.size, 0.05)
    assert lo / noise.size <= np.mean(noise < 0.05) <= hi / noise.size
    found = ds["p_fdr"].sel(layer=1).values < 0.05
    assert found[:N_PLANTED].sum() >= N_PLANTED // 2
    assert (ds["p_fdr"].values < 0.05)[:, N_PLANTED:].sum() <= 0.05 * max(1, (ds["p_fdr"].values < 0.05).sum()) + 1
    assert {"p", "p_empirical", "p_fdr"} <= set(ds.data_vars)
    assert "100 shifts" in pvalues.describe(ds.attrs) and "layer x target at q = 0.05" in pvalues.describe(ds.attrs)


def test_permutations_zero_is_the_labelled_fold_ttest(study):
    rec, stim, acts = study
    ds = finalize(score_chunk(rec, stim, acts.sel(layer=[1]), permutations=0, **KW))
    assert ds.attrs["p_method"] == "fold_ttest" and ds.attrs["n_permutations"] == 0
    assert "NOT calibrated" in json.loads(ds.attrs["statistics"])["p_method_description"]
    assert "not calibrated" in pvalues.describe(ds.attrs)
    want = stats.ttest_1samp(ds["r_folds"].values, 0.0, axis=1, alternative="greater").pvalue
    np.testing.assert_allclose(ds["p"].values, np.where(np.isfinite(want), want, 1.0))


def test_layer_chunks_give_the_same_p_as_one_task(study):
    rec, stim, acts = study
    kw = dict(KW, permutations=30, seed=1)
    full = finalize(score_chunk(rec, stim, acts, **kw))
    merged = finalize(merge_chunks([score_chunk(rec, stim, acts.sel(layer=ls), **kw) for ls in ([2], [0, 1])]))
    for v in ("p", "p_empirical", "p_fdr"):
        np.testing.assert_array_equal(full[v].values, merged[v].values)


def test_the_sidecar_states_the_p_method_and_fdr_family(study, tmp_path):
    rec, stim, acts = study
    ds = finalize(score_chunk(rec, stim, acts.sel(layer=[1]), permutations=20, seed=2, **KW), q=0.01)
    ds = annotate(ds, rec, acts, subject="01", task="t", model="toy")
    side = next(p for p in write_participant(ds, tmp_path, maps=False) if p.suffix == ".json")
    got = json.loads(side.read_text())["Statistics"]
    assert got["p_method"] == "shift" and got["n_permutations"] == 20 and got["seed"] == 2
    assert got["fdr_family"] == "layer x target" and got["fdr_q"] == 0.01
