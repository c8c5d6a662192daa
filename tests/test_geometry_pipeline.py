"""scoring.methods: [geometry]: brain-layer geometry rows, layer IDs, group rows, model x model matrices."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from brainalign import geometry
from brainalign.align import fmri_design
from brainalign.data import make_recording, make_stimulus
from brainalign.pipeline import geometry_scores
from brainalign.pipeline.config import validate_config
from brainalign.pipeline.convergence import convergence_table
from brainalign.pipeline.group import group_stats
from brainalign.pipeline.outputs import scores_table
from brainalign.pipeline.prepare import prepare
from brainalign.pipeline.scoring import blocks, score_prepared
from brainalign.pipeline.specs import AlignSpec, CVSpec, GeometrySpec, RSASpec, ScoreSpec, specs_from_config

ALL = ("mutual_knn", "cycle_knn", "cknna", "cka", "shape", "shape_cv", "id")


def _acts(n_words, n_layers=4, p=12, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_words, p))
    layers = []
    for _ in range(n_layers):  # each layer: the previous one mixed with fresh variation
        base = 0.5 * base + rng.standard_normal((n_words, p))
        layers.append(base.copy())
    return xr.DataArray(np.stack(layers).astype(np.float32), dims=("layer", "word", "feature"),
                        coords={"layer": np.arange(n_layers), "word": np.arange(n_words)})


def _participant(seed: int, planted: int = 2):
    rng = np.random.default_rng(seed)
    n_frames, tr = 150, 2.0
    words = []
    for run in (1, 2):
        on = np.sort(rng.uniform(4, n_frames * tr - 10, 200))
        words += [{"word": f"w{i}", "onset": o, "duration": 0.3, "run": run} for i, o in enumerate(on)]
    stim = make_stimulus(pd.DataFrame(words))
    times = np.concatenate([np.arange(n_frames) * tr] * 2)
    runs = np.repeat([1, 2], n_frames)
    template = make_recording(np.zeros((times.size, 1)), times, runs, modality="fmri", tr=tr)
    acts = _acts(len(stim))
    X = np.asarray(fmri_design(acts.sel(layer=planted).values, stim, template, method="hrf", delays=(0,)), float)
    Y = rng.standard_normal((times.size, 30))
    signal = X @ rng.standard_normal((X.shape[1], 10))
    Y[:, :10] += 2.0 * signal / signal.std(0)
    rec = make_recording(Y, times, runs, modality="fmri", tr=tr)
    P = prepare(rec, stim, None, AlignSpec(method="hrf", delays=(0,)), CVSpec(n_folds=3, inner_cv=3),
                regions={"signal": np.arange(10), "noise": np.arange(10, 30)})
    return P, acts


@pytest.fixture(scope="module")
def scored():
    P, acts = _participant(1)
    spec = ScoreSpec(methods=("geometry",), rsa=RSASpec(n_items=60), geometry=GeometrySpec(metrics=ALL, k=5))
    return P, acts, spec, score_prepared(P, acts, spec)


def test_rows_equal_the_kernels_on_the_rsa_items(scored):
    P, acts, spec, ds = scored
    layer = 1
    X = P.design(acts.sel(layer=layer).values)
    its = blocks(P.n_samples, 60)  # the RSA scorer's own items
    Xi = np.stack([X[b].mean(0) for b in its])
    Yi = np.stack([P.Y[b][:, :10].mean(0) for b in its])
    want = {"mutual_knn": geometry.mutual_knn(Xi, Yi, k=5), "cycle_knn": geometry.cycle_knn(Xi, Yi, k=5),
            "cknna": geometry.cknna(Xi, Yi, k=5), "cka": geometry.cka(Xi, Yi),
            "shape": geometry.shape_distance(Xi, Yi), "shape_cv": geometry.shape_distance_cv(Xi, Yi, cv=5)}
    for m, v in want.items():
        assert float(ds[f"geo_{m}"].sel(layer=layer, region="signal")) == pytest.approx(v, abs=1e-12), m
    ids = [geometry.intrinsic_dimension(acts.sel(layer=l).values.astype(np.float64)) for l in range(4)]
    np.testing.assert_allclose(ds["geo_id"].values, ids, rtol=1e-12)
    assert "r" not in ds and "rsa" not in ds


def test_the_planted_layer_is_the_most_similar_in_the_signal_region(scored):
    _, _, _, ds = scored
    sig = ds.sel(region="signal")
    for m in ("cka", "mutual_knn", "cknna"):
        assert int(np.argmax(sig[f"geo_{m}"].values)) == 2, (m, sig[f"geo_{m}"].values)
    assert int(np.argmin(sig["geo_shape"].values)) == 2, sig["geo_shape"].values
    # the noise region is further from the planted layer than the signal region
    assert float(ds["geo_cka"].sel(layer=2, region="noise")) < float(sig["geo_cka"].sel(layer=2))


def test_too_few_items_for_k_gives_nan_and_a_warning():
    P, acts = _participant(2)
    spec = ScoreSpec(methods=("geometry",), rsa=RSASpec(n_items=8), geometry=GeometrySpec(metrics=("mutual_knn", "cka"), k=10))
    ds = score_prepared(P, acts, spec)
    assert np.isnan(ds["geo_mutual_knn"].values).all() and np.isfinite(ds["geo_cka"].values).all()
    assert "geometry mutual_knn skipped" in ds.attrs["warnings"]
    assert "geo_id" not in ds


def _finished(ds, subject):
    ds = ds.copy()
    ds.attrs.update(subject=subject, task="t", model="toy")
    return ds


def test_scores_table_and_group_rows(scored):
    P, acts, spec, ds = scored
    P2, acts2 = _participant(3)
    ds2 = score_prepared(P2, acts2, spec)
    table = scores_table(_finished(ds, "01"))
    geo = table[table["method"] == "geometry"]
    assert set(geo["metric"]) == set(ALL)
    row = geo[(geo["metric"] == "cka") & (geo["layer"] == 2) & (geo["target"] == "signal")]
    assert float(row["value"].iloc[0]) == pytest.approx(float(ds["geo_cka"].sel(layer=2, region="signal")))
    assert set(geo.loc[geo["metric"] == "id", "target"]) == {"all"}
    g = group_stats([_finished(ds, "01"), _finished(ds2, "02")], n_boot=50)
    gg = g[g["method"] == "geometry"]
    assert {"mean_cka", "ci_low_cka", "ci_high_cka", "mean_id"} <= set(gg["metric"])
    mean = gg[(gg["metric"] == "mean_cka") & (gg["layer"] == 2) & (gg["target"] == "signal")]["value"].iloc[0]
    want = (float(ds["geo_cka"].sel(layer=2, region="signal")) + float(ds2["geo_cka"].sel(layer=2, region="signal"))) / 2
    assert mean == pytest.approx(want)
    assert (gg["n_subjects"] == 2).all()


def test_convergence_table_equals_the_kernels():
    a, b = _acts(80, 3, seed=4), _acts(80, 2, p=7, seed=5)
    spec = GeometrySpec(metrics=("mutual_knn", "cka", "shape", "id"), k=5)
    t = convergence_table({"A": a, "B": b}, spec)
    assert len(t) == 3 * 2 * 3 and set(t["metric"]) == {"mutual_knn", "cka", "shape"}
    one = t[(t["layer_a"] == 2) & (t["layer_b"] == 0) & (t["metric"] == "cka")]["value"].iloc[0]
    assert one == pytest.approx(geometry.cka(a.sel(layer=2).values.astype(float), b.sel(layer=0).values.astype(float)))
    same = convergence_table({"A": a, "A2": a}, spec)
    diag = same[(same["layer_a"] == same["layer_b"]) & (same["metric"] == "mutual_knn")]["value"]
    assert np.allclose(diag, 1.0)


def test_config_reaches_the_geometry_spec():
    cfg = validate_config({"data": {"source": {"kind": "bids", "root": "/r"}},
                           "scoring": {"methods": ["geometry"], "geometry": {"metrics": ["cknna", "id"], "k": 3,
                                                                             "alpha": 0.5}}})
    g = specs_from_config(cfg).score.geometry
    assert (g.metrics, g.k, g.alpha) == (("cknna", "id"), 3, 0.5)
    from brainalign.errors import ConfigError

    with pytest.raises(ConfigError, match="scoring.geometry.metrics"):
        validate_config({"data": {"source": {"kind": "bids", "root": "/r"}},
                         "scoring": {"geometry": {"metrics": ["procrustes"]}}})


def test_geometry_items_are_the_rsa_items():
    for n, k in ((300, 200), (50, 200), (1000, 7)):
        assert [list(x) for x in geometry_scores.items(n, k)] == [list(x) for x in blocks(n, k)]


def test_a_two_model_study_writes_geometry_rows_and_the_model_matrix(tmp_path):
    from brainalign.pipeline.simulate import simulate_bids
    from brainalign.pipeline.study import run_config

    cache = tmp_path / "cache"
    root = tmp_path / "bids"
    truth = simulate_bids(root, "fmri", n_subjects=2, n_runs=2, n_volumes=60, grid=(6, 6, 5), layers=(1, 5),
                          targets_per_layer=20, snr=1.5, n_words=200, seed=3, cache_dir=str(cache))
    cfg = tmp_path / "study.yaml"
    cfg.write_text(
        f"data: {{source: {{kind: bids, root: {root}, mask: {root / truth['mask']}}}}}\n"
        "models: [{label: long, path: 'packaged:minilm', layers: [1, 5], context_words: 20},\n"
        "         {label: short, path: 'packaged:minilm', layers: [0, 5], context_words: 3}]\n"
        "alignment: {trim: [3, 3]}\n"
        "scoring: {methods: [geometry], rsa: {n_items: 40}, geometry: {metrics: [mutual_knn, cka, shape, id], k: 5}}\n"
        "statistics: {n_bootstrap: 20}\n"
        f"outputs: {{dir: {tmp_path / 'out'}, maps: false, report: true}}\n"
        f"execution: {{cache_dir: {cache}}}\n")
    assert run_config(cfg, progress=False) == 0
    out = tmp_path / "out"
    scores = pd.read_csv(next(out.glob("sub-*/func/*desc-long_scores.tsv")), sep="\t")
    assert set(scores["method"]) == {"geometry"} and set(scores["metric"]) == {"mutual_knn", "cka", "shape", "id"}
    group = pd.read_csv(out / "group" / "task-story_desc-short_scores.tsv", sep="\t")
    assert {"mean_cka", "mean_id"} <= set(group["metric"])
    conv = pd.read_csv(out / "group" / "task-story_desc-long_vs-short_convergence.tsv", sep="\t")
    assert len(conv) == 2 * 2 * 3
    # the matrix is the kernel on both models' activations of the first participant's words
    from brainalign.pipeline.encoder_factory import make_encoder
    from brainalign.pipeline.sources import load_participant

    specs = specs_from_config(validate_config(__import__("yaml").safe_load(cfg.read_text())))
    stim = load_participant(specs.load, "01", "story").stimulus
    a, b = (make_encoder(m, specs.execution).encode(stim) for m in specs.models)
    cka = conv[conv["metric"] == "cka"].set_index(["layer_a", "layer_b"])["value"]
    want = geometry.cka(a.sel(layer=5).values.astype(float), b.sel(layer=0).values.astype(float))
    assert cka[(5, 0)] == pytest.approx(want, rel=1e-9)
    assert json.loads((out / "group" / "task-story_desc-long_vs-short_convergence.json").read_text())["Words"] == len(stim)
    # the reports show the ID profile (participant and group)
    from brainalign.pipeline.report import group_report

    assert 'id-profile' in next(out.glob("sub-01*.html")).read_text()
    assert 'id-profile' in group_report(out).read_text()


def test_report_figures_show_the_id_peak(scored):
    from brainalign.pipeline import report_geometry

    _, _, _, ds = scored
    html = "".join(report_geometry.figures(ds))
    peak = int(ds["layer"].values[int(np.nanargmax(ds["geo_id"].values))])
    assert "id-profile" in html and f"peak at layer {peak}" in html and "geometry" in html
    assert report_geometry.figures(ds.drop_vars([v for v in ds.data_vars if v.startswith("geo_")])) == []
