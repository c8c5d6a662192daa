"""align_model and AlignmentResult on small synthetic data (no language model needed)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import brainalign
from brainalign.align import fmri_design
from brainalign.data import make_recording, make_stimulus
from brainalign.errors import InputError
from brainalign.pipeline.api import finalize, score_chunk
from brainalign.pipeline.result import merge_chunks


def _acts(n_words, n_layers=4, p=12, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_words, p))
    layers = []
    for _ in range(n_layers):  # each layer: the previous one mixed with fresh variation
        base = 0.5 * base + rng.standard_normal((n_words, p))
        layers.append(base.copy())
    return xr.DataArray(np.stack(layers).astype(np.float32), dims=("layer", "word", "feature"),
                        coords={"layer": np.arange(n_layers), "word": np.arange(n_words)})


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
    acts = _acts(len(stim))
    X = np.asarray(fmri_design(acts.sel(layer=2).values, stim, template, method="hrf", delays=(0,)), dtype=float)
    Y = rng.standard_normal((times.size, 30))
    signal = X @ rng.standard_normal((X.shape[1], 10))
    Y[:, :10] += 1.5 * signal / signal.std(0)
    rec = make_recording(Y, times, runs, modality="fmri", tr=tr)
    return rec, stim, acts


def test_align_model_finds_the_planted_layer(fmri):
    rec, stim, acts = fmri
    res = brainalign.align_model(rec, stim, acts, methods=("encoding", "rsa"), alphas=[1, 10, 100, 1000],
                                 inner_cv=3, subject="01", task="t", model_label="toy")
    assert isinstance(res, brainalign.AlignmentResult)
    assert res["r"].dims == ("layer", "target") and res["r_folds"].dims == ("layer", "fold", "target")
    assert {"alpha", "p", "p_fdr", "rsa"} <= set(res.data_vars)
    prof = res["r"].isel(target=slice(0, 10)).mean("target")
    assert int(prof.idxmax()) == 2 and float(prof.max()) > 0.3
    assert abs(float(res["r"].isel(target=slice(10, None)).mean())) < 0.05
    assert (res["p_fdr"] >= res["p"] - 1e-12).all()
    assert json.loads(res.attrs["settings"])["alphas"] == [1, 10, 100, 1000]
    assert res.brainalign.best_layer() == 2


def test_layer_chunks_merge_to_the_full_result(fmri):
    rec, stim, acts = fmri
    kw = dict(methods=("encoding",), alphas=[1, 10, 100], inner_cv=3)
    full = finalize(score_chunk(rec, stim, acts, **kw))
    parts = [score_chunk(rec, stim, acts.sel(layer=ls), **kw) for ls in ([2, 3], [0, 1])]
    merged = finalize(merge_chunks(parts))
    for v in ("r", "r_folds", "alpha", "p_fdr"):
        np.testing.assert_array_equal(full[v].values, merged[v].values)


def test_word_level_erp_with_baseline_and_group_cv():
    rng = np.random.default_rng(2)
    n = 300
    stim = make_stimulus(pd.DataFrame({"word": [f"w{i}" for i in range(n)], "onset": np.arange(n, dtype=float),
                                       "run": 1, "sentence": np.repeat(np.arange(30), 10)}))
    acts = _acts(n, seed=3)
    base = pd.DataFrame({"freq": rng.standard_normal(n), "length": rng.standard_normal(n)})
    y = base["freq"].to_numpy() + acts.sel(layer=1).values[:, :3].sum(1) + rng.standard_normal(n)
    y[::17] = np.nan  # rejected words
    rec = make_recording(y[:, None], np.arange(n, dtype=float), np.ones(n), modality="erp", target=["N400"])
    res = brainalign.align_model(rec, stim, acts, methods=("encoding",), baseline=base, cv="group",
                                 cv_column="sentence", n_folds=5, alphas=[1, 10, 100], inner_cv=3)
    assert {"baseline_r", "delta_r"} <= set(res.data_vars)
    assert float(res["delta_r"].sel(layer=1).item()) > 0.05
    assert float(res["baseline_r"].item()) > 0.1


def test_bad_methods_and_layers_are_refused(fmri):
    rec, stim, acts = fmri
    with pytest.raises(InputError, match="methods"):
        brainalign.align_model(rec, stim, acts, methods=("magic",))
    with pytest.raises(InputError, match="layers"):
        brainalign.align_model(rec, stim, acts, layers=[9])


def test_result_methods_write_and_plot(fmri, tmp_path):
    rec, stim, acts = fmri
    res = brainalign.align_model(rec, stim, acts, layers=[1, 2], alphas=[10, 100], inner_cv=3, subject="01",
                                 task="t", model_label="toy")
    files = res.to_bids(tmp_path)
    assert any(f.name.endswith("_scores.tsv") for f in files)
    ax = res.plot_layers()
    assert ax.get_xlabel() == "layer"
    res.plot_map(layer=2)
    html = res.report(tmp_path / "r.html").read_text()
    assert "data:image/png;base64" in html


def _prepared(rec, stim, trim=(0, 0)):
    from brainalign.pipeline.prepare import prepare
    from brainalign.pipeline.specs import AlignSpec, CVSpec

    return prepare(rec, stim, None, AlignSpec(method="lanczos", trim=trim), CVSpec(kind="contiguous", n_folds=5))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["unique", "rsa"])
def test_layer_selection_calls_the_identification_methods(fmri, how):
    from brainalign.pipeline.selection import layer_selection
    from brainalign.pipeline.specs import RSASpec, ScoreSpec

    rec, stim, acts = fmri
    spec = ScoreSpec(layer_selection=how, alphas=(1, 10, 100, 1000), rsa=RSASpec(n_items=60))
    ds = finalize(score_chunk(rec, stim, acts, methods=("encoding",), alphas=[1, 10, 100], inner_cv=3))
    ds = layer_selection(ds, _prepared(rec, stim), acts, spec)
    if how == "unique":
        chosen = ds["layer_id"].isel(target=slice(0, 10)).values
        assert np.mean(chosen == 2) >= 0.7
    else:
        assert int(ds["rsa_layer_id"]) in acts["layer"].values
        assert ds["rsa_layer_p_best"].sum() == pytest.approx(1.0, abs=1e-6)


def test_layer_selection_leaves_out_the_trimmed_samples(fmri):
    """Regression: layer selection rebuilt its designs without the trim mask, so the
    frames that scoring leaves out (here: huge, driven by layer 0) chose the layer."""
    from brainalign.align import layer_design, trim_mask
    from brainalign.pipeline.selection import layer_selection
    from brainalign.pipeline.specs import ScoreSpec

    rec, stim, acts = fmri
    runs = rec["run"].values
    edge = ~np.asarray(trim_mask(runs, 10, 10))
    X0 = layer_design(acts.sel(layer=0).values, stim, rec, "lanczos", delays=(1, 2, 3, 4))
    rng = np.random.default_rng(7)
    Y = rec.values.copy()
    Y[edge] = 50 * (X0 @ rng.standard_normal((X0.shape[1], Y.shape[1])))[edge]
    spiked = rec.copy(data=Y)
    ds = finalize(score_chunk(spiked, stim, acts, methods=("encoding",), alphas=[1, 10, 100], inner_cv=3,
                              alignment="lanczos", trim=(10, 10)))
    P = _prepared(spiked, stim, trim=(10, 10))
    assert P.n_samples == int((~edge).sum()) and P.Y.shape[0] == P.n_samples
    ds = layer_selection(ds, P, acts, ScoreSpec(layer_selection="single", alphas=(1, 10, 100, 1000)))
    chosen = ds["layer_id"].isel(target=slice(0, 10)).values
    assert np.mean(chosen == 2) >= 0.7, chosen


def test_a_trim_that_empties_a_run_is_refused_naming_alignment_trim(fmri):
    rec, stim, _ = fmri  # two runs of 120 frames
    with pytest.raises(InputError, match=r"alignment.trim \[60, 60\] removes every sample of run 1 \(120 samples"):
        _prepared(rec, stim, trim=(60, 60))
    assert _prepared(rec, stim, trim=(60, 59)).n_samples == 2
