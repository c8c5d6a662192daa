"""scoring.rsa.select_gt: the band chosen from the neural RDMs alone (region identification), RSA re-scored."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.spatial.distance import squareform

from brainalign import rsa
from brainalign.align import fmri_design
from brainalign.data import make_recording, make_stimulus
from brainalign.errors import ConfigError
from brainalign.pipeline.config import validate_config
from brainalign.pipeline.group import _summary, _summary_options
from brainalign.pipeline.gt_band import band_table
from brainalign.pipeline.prepare import prepare
from brainalign.pipeline.scoring import blocks, score_prepared
from brainalign.pipeline.specs import AlignSpec, CVSpec, RSASpec, ScoreSpec

REGIONS = {"signal": np.arange(10), "mixed": np.arange(10, 20), "noise": np.arange(20, 30)}


def _acts(n_words, n_layers=3, p=10, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_words, p))
    out = []
    for _ in range(n_layers):
        base = 0.5 * base + rng.standard_normal((n_words, p))
        out.append(base.copy())
    return xr.DataArray(np.stack(out).astype(np.float32), dims=("layer", "word", "feature"),
                        coords={"layer": np.arange(n_layers), "word": np.arange(n_words)})


def _stimulus():
    rng = np.random.default_rng(0)
    words = [{"word": f"w{i}", "onset": o, "duration": 0.3, "run": 1}
             for i, o in enumerate(np.sort(rng.uniform(4, 230, 200)))]
    return make_stimulus(pd.DataFrame(words))


def _participant(seed, stim, acts):
    rng = np.random.default_rng(seed)
    times, runs = np.arange(120) * 2.0, np.ones(120, dtype=int)
    template = make_recording(np.zeros((120, 1)), times, runs, modality="fmri", tr=2.0)
    X = np.asarray(fmri_design(acts.sel(layer=1).values, stim, template, method="hrf", delays=(0,)), float)
    Y = rng.standard_normal((120, 30))
    s = X @ rng.standard_normal((X.shape[1], 20))
    Y[:, :10] += 2.0 * s[:, :10] / s[:, :10].std(0)
    Y[:, 10:20] += 0.7 * s[:, 10:20] / s[:, 10:20].std(0)
    rec = make_recording(Y, times, runs, modality="fmri", tr=2.0)
    return prepare(rec, stim, None, AlignSpec(method="hrf", delays=(0,)), CVSpec(n_folds=3, inner_cv=3),
                   regions=REGIONS)


def _settings(rsa_spec: dict) -> str:
    return json.dumps({"scoring": {"rsa": rsa_spec}})


@pytest.mark.parametrize("transform", ["gt", "geodesic"])
def test_band_is_chosen_on_the_neural_rdms_and_rsa_rescored(transform, tmp_path):
    stim, acts = _stimulus(), _acts(200)
    o = dict(transform=transform, select_gt=True, select_step=0.25, n_items=24)
    spec = ScoreSpec(methods=("rsa",), rsa=RSASpec(**o))
    dsets = []
    for s in range(4):
        P = _participant(10 + s, stim, acts)
        ds = score_prepared(P, acts, spec)
        ds.attrs.update(subject=f"0{s}", task="t", model="toy", settings=_settings(o))
        dsets.append(ds)
    assert dsets[0]["rsa_neural_rdm"].dims == ("region", "pair") and dsets[0]["rsa_model_rdm"].dims == ("layer", "pair")
    opts = dict(test="wilcoxon", ci=0.9, n_boot=50, fdr=True, seed=0)
    table = band_table(dsets, lambda x, shp: _summary(x, shp, **_summary_options(opts)), tmp_path, "t", "toy")
    side = json.loads((tmp_path / "group" / "task-t_desc-toy_gtband.json").read_text())
    # independently: neural RDMs of the RSA items, select_gt on them, the chosen band applied to one cell
    its = blocks(dsets[0].attrs["n_samples"], 24)
    Ps = [_participant(10 + s, stim, acts) for s in range(4)]
    neural = np.stack([[np.asarray(rsa.rdm(np.stack([P.Y[b][:, c].mean(0) for b in its]))) for c in REGIONS.values()]
                       for P in Ps])
    kw = {} if transform == "gt" else {"zero_edges": "drop", "rank": True}
    sel = rsa.select_gt(neural, step=0.25, transform=transform, **kw)
    assert (side["Lower"], side["Upper"], side["Accuracy"]) == (sel.lower, sel.upper, sel.accuracy)
    X = Ps[0].design(acts.sel(layer=2).values)
    model = np.asarray(rsa.rdm(np.stack([X[b].mean(0) for b in its])))
    if transform == "gt":
        t = lambda d: rsa.gt_transform(d, sel.lower, sel.upper)
    else:
        t = lambda d: rsa.geodesic(d, sel.lower, sel.upper, fill="max")
    want = [rsa.compare(np.asarray(t(model if P is Ps[0] else np.asarray(rsa.rdm(np.stack([P.design(acts.sel(layer=2).values)[b].mean(0) for b in its]))))),
                        np.asarray(t(neural[i, 0]))) for i, P in enumerate(Ps)]
    got = table[(table["metric"] == "mean_selected_band") & (table["layer"] == 2) & (table["target"] == "signal")]
    assert float(got["value"].iloc[0]) == pytest.approx(np.mean(want), abs=1e-9)
    surface = pd.read_csv(tmp_path / "group" / "task-t_desc-toy_gtband.tsv", sep="\t")
    assert surface["accuracy"].max() == pytest.approx(sel.accuracy)
    assert 0 <= side["UntransformedAccuracy"] <= 1 and side["Chance"] == pytest.approx(1 / 3)


def test_one_region_is_skipped_with_a_reason(tmp_path):
    stim, acts = _stimulus(), _acts(200)
    o = dict(transform="gt", select_gt=True, n_items=20)
    dsets = []
    for s in range(2):
        P = _participant(s, stim, acts)
        P = prepare(P.recording, stim, None, P.align, CVSpec(n_folds=3, inner_cv=3))
        ds = score_prepared(P, acts, ScoreSpec(methods=("rsa",), rsa=RSASpec(**o)))
        ds.attrs.update(settings=_settings(o))
        dsets.append(ds)
    assert band_table(dsets, None, tmp_path, "t", "toy").empty
    assert "2 or more RSA regions" in json.loads((tmp_path / "group" / "task-t_desc-toy_gtband.json").read_text())["Skipped"]


def test_select_gt_settings_are_checked():
    base = {"data": {"source": {"kind": "bids", "root": "/r"}}}
    with pytest.raises(ConfigError, match="scoring.rsa"):
        validate_config({**base, "scoring": {"rsa": {"select_gt": True}}})
    with pytest.raises(ConfigError, match="twostep"):
        validate_config({**base, "scoring": {"rsa": {"select_gt": True, "transform": "geodesic",
                                                     "geodesic_method": "p_shortest"}}})
    with pytest.raises(ConfigError, match="lower"):
        validate_config({**base, "scoring": {"rsa": {"lower": 0.6, "upper": 0.5}}})


def test_geodesic_variants_reach_the_kernel():
    stim, acts = _stimulus(), _acts(200)
    P = _participant(3, stim, acts)
    o = dict(transform="geodesic", geodesic_method="k_nearest", k=3, zero_edges="drop", rank=False, n_items=30)
    ds = score_prepared(P, acts, ScoreSpec(methods=("rsa",), rsa=RSASpec(**o)))
    its = blocks(P.n_samples, 30)
    X = P.design(acts.sel(layer=0).values)
    g = lambda d: rsa.geodesic(d, method="k_nearest", k=3, rank=False, fill=None)
    m = np.asarray(g(np.asarray(rsa.rdm(np.stack([X[b].mean(0) for b in its])))))
    n = np.asarray(g(np.asarray(rsa.rdm(np.stack([P.Y[b][:, :10].mean(0) for b in its])))))
    assert float(ds["rsa"].sel(layer=0, region="signal")) == pytest.approx(float(rsa.compare(m, n)), abs=1e-12)
