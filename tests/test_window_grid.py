"""models[].context_words as a list: the window is chosen with the layer (issue 14, pipeline/windows.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from brainalign.errors import ConfigError
from brainalign.pipeline.config import validate_config
from brainalign.pipeline.simulate import simulate_bids
from brainalign.pipeline.study import run_config
from brainalign.pipeline.windows import marginalize

BASE = {"data": {"source": {"kind": "bids", "root": "."}}}


@pytest.mark.parametrize("model, scoring, field", [
    ({"context_words": [10, 10]}, {}, "context_words"),
    ({"context_words": [0, 10]}, {}, "context_words"),
    ({"context_words": [10]}, {}, "context_words"),
    ({"context_words": "all"}, {}, "context_words"),
    ({"context_words": [10, 20], "context": "run"}, {}, "context"),
    ({"context_words": [10, 20]}, {"layer_selection": "single"}, "scoring.layer_selection"),
])
def test_bad_window_lists_are_one_line_naming_the_field(model, scoring, field):
    with pytest.raises(ConfigError) as exc:
        validate_config({**BASE, "models": [{"label": "m", **model}], "scoring": scoring})
    assert field in str(exc.value) and "\n" not in str(exc.value)


def test_marginalize_sums_shares_unions_sets_and_reads_each_targets_window():
    rng = np.random.default_rng(0)
    n_w, n_l, n_t, n_s = 3, 4, 5, 2
    shares = rng.dirichlet(np.ones(n_w * n_l), size=n_t).T  # (candidates, targets), columns sum to 1
    inset = rng.random((n_w * n_l, n_t)) > 0.6
    lo = rng.normal(size=(n_w * n_l, n_t))
    s_r = rng.normal(size=(n_w * n_l, n_s))
    res = {"p_best": shares, "in_credible_set": inset, "r_ci_low": lo, "r_ci_high": lo + 1,
           "summary_r": s_r, "summary_p_best": rng.dirichlet(np.ones(n_w * n_l), size=n_s).T,
           "summary_in_credible_set": rng.random((n_w * n_l, n_s)) > 0.5,
           "summary_r_ci_low": s_r - 1, "summary_r_ci_high": s_r + 1}
    chosen = np.array([0, 2, 1, 1, 0])
    out = marginalize(res, n_w, chosen)
    for t in range(n_t):
        for layer in range(n_l):
            cands = [w * n_l + layer for w in range(n_w)]
            assert out["p_best"][layer, t] == pytest.approx(shares[cands, t].sum())
            assert out["in_credible_set"][layer, t] == inset[cands, t].any()
            assert out["r_ci_low"][layer, t] == lo[chosen[t] * n_l + layer, t]
    np.testing.assert_allclose(out["p_best"].sum(0), 1.0)
    for s in range(n_s):
        w = int(np.argmax(s_r[:, s])) // n_l
        assert out["summary_window"][s] == w
        np.testing.assert_array_equal(out["summary_r"][:, s], s_r[w * n_l:(w + 1) * n_l, s])


def _study(tmp_path: Path, root: Path, truth: dict, cache: Path, words, name: str) -> xr.Dataset:
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(f"data: {{source: {{kind: bids, root: {root}, task: story, mask: {root / truth['mask']}}}}}\n"
                   f"models: [{{label: MiniLM, path: 'packaged:minilm', layers: [0, 1, 2, 3], context_words: {words}}}]\n"
                   "scoring: {methods: [encoding, rsa], inner_cv: 3, permutations: 20, alphas: [10.0, 1000.0, 100000.0]}\n"
                   "statistics: {n_bootstrap: 20}\noutputs: {report: false, maps: false}\n"
                   f"execution: {{cache_dir: {cache}}}\n")
    out = tmp_path / name
    assert run_config(cfg, out_dir=out, progress=False) == 0
    return xr.load_dataset(next(out.rglob("sub-01_*_result.nc")))


@pytest.fixture(scope="module")
def grid_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("windows")
    cache, root = tmp / "cache", tmp / "bids"
    truth = simulate_bids(root, "fmri", n_subjects=1, n_runs=2, n_volumes=120, grid=(6, 6, 4), layers=(1, 3),
                          targets_per_layer=12, n_words=300, snr=2.0, seed=5, cache_dir=str(cache),
                          generator="spm_ar1_drift")  # its own window: 10 words
    one = _study(tmp, root, truth, cache, 10, "single10")
    grid = _study(tmp, root, truth, cache, "[10, 32]", "grid")
    return truth, one, grid, tmp / "grid"


def test_each_target_takes_its_chosen_windows_scores_and_p_is_adjusted(grid_runs):
    _, one, grid, _ = grid_runs
    at10 = grid["context_words"].values == 10
    assert at10.any() and (~at10).any()
    np.testing.assert_array_equal(grid["window_r"].sel(window=10).values, one["r"].values)
    np.testing.assert_array_equal(grid["r"].values[:, at10], one["r"].values[:, at10])
    np.testing.assert_array_equal(grid["p"].values[:, at10], np.minimum(1.0, 2 * one["p"].values[:, at10]))
    best = grid["window_r"].max("layer")  # the chosen window holds the target's best (window, layer) r
    np.testing.assert_array_equal(grid["r"].max("layer").values, best.max("window").values)
    np.testing.assert_allclose(grid["p_best"].sum("layer").values, 1.0)


def test_planted_targets_choose_the_generators_window_and_layer(grid_runs):
    truth, _, grid, _ = grid_runs
    for layer, idx in truth["planted"].items():
        wr = grid["window_r"].values[:, :, idx].mean(2)  # (window, layer) mean over the planted targets
        w, l = np.unravel_index(np.argmax(wr), wr.shape)
        assert int(grid["window"].values[w]) == 10 and int(grid["layer"].values[l]) == int(layer)
    # a voxel's own choice between windows is noisy; a set of targets' choice is not
    assert set(grid["summary_context_words"].values.tolist()) == {10}


def test_scores_table_and_sidecar_carry_the_window(grid_runs):
    _, _, grid, out = grid_runs
    table = pd.read_csv(next(out.rglob("sub-01_*_scores.tsv")), sep="\t")
    enc = table[table["method"] == "encoding"]
    chosen = enc[enc["metric"] == "context_words"]
    assert len(chosen) == grid.sizes["target"] and set(chosen["value"]) <= {10.0, 32.0}
    assert {"r_context10", "r_context32", "mean_context_words"} <= set(enc["metric"])
    assert set(table[(table["method"] == "rsa") & (table["metric"] == "context_words")]["value"]) <= {10.0, 32.0}
    side = pd.read_json(next(out.rglob("sub-01_*_scores.json")), typ="series")
    assert side["WindowSelection"]["windows"] == [10, 32]
