"""Configuration schema, outputs and executors (fast: no model, no fitting)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from brainalign.errors import ConfigError, InputError, UnsafeNameError
from brainalign.pipeline import outputs
from brainalign.pipeline.config import load_config, validate_config
from brainalign.pipeline.executor import run_tasks

REPO = Path(__file__).resolve().parents[1]
BASE = {"data": {"source": {"kind": "bids", "root": "/tmp/x"}}}


def _with(**sections):
    d = json.loads(json.dumps(BASE))
    d.update(sections)
    return d


def test_every_shipped_config_validates():
    files = sorted((REPO / "pipelines").glob("**/*.yaml"))
    assert files
    for f in files:
        cfg = load_config(f)
        assert cfg.models and cfg.config_hash()


@pytest.mark.parametrize("bad, field", [
    ({"data": {"source": {"kind": "bids"}}}, "data.source.bids.root"),
    (_with(modls=[]), "modls"),
    (_with(scoring={"cv": {"kind": "group"}}), "scoring.cv"),
    (_with(scoring={"alphas": [-1.0]}), "scoring.alphas"),
    (_with(models=[{"label": "a/b"}]), "models.0.label"),
    (_with(alignment={"tmin": 1.0, "tmax": 0.5}), "alignment"),
    (_with(models=[{"label": "m", "layers": []}]), "models.0.layers"),
])
def test_bad_config_is_one_line_naming_the_field(bad, field):
    with pytest.raises(ConfigError) as exc:
        validate_config(bad)
    msg = str(exc.value)
    assert field in msg and "\n" not in msg


def test_hash_ignores_outputs_and_execution_but_not_scoring():
    a = validate_config(_with(outputs={"dir": "/a"}, execution={"n_jobs": 4}))
    b = validate_config(_with(outputs={"dir": "/b"}))
    c = validate_config(_with(scoring={"seed": 1}))
    assert a.config_hash() == b.config_hash() != c.config_hash()


def test_env_vars_expand_and_relative_paths_follow_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MYROOT", str(tmp_path / "data"))
    (tmp_path / "c.yaml").write_text("# ${NOT_SET} in a comment is ignored\n"
                                     "data: {source: {kind: bids, root: '${MYROOT}', mask: m.nii.gz}}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.source.root == str(tmp_path / "data")
    assert cfg.source.mask == str(tmp_path / "m.nii.gz")
    (tmp_path / "d.yaml").write_text("data: {source: {kind: bids, root: '${NOT_SET_ANYWHERE}'}}\n")
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        load_config(tmp_path / "d.yaml")


def test_shared_data_default_is_beside_the_repository(tmp_path, monkeypatch):
    monkeypatch.delenv("BRAINALIGN_SHARED_DATA", raising=False)
    (tmp_path / "c.yaml").write_text("data: {source: {kind: word_erp, path: '${BRAINALIGN_SHARED_DATA}/f.csv'}}\n")
    assert load_config(tmp_path / "c.yaml").source.path == str(REPO.parent / "shared" / "data" / "f.csv")


def _result(subject="01", n_layers=3, n_targets=5, n_folds=4, seed=0):
    rng = np.random.default_rng(seed)
    rf = rng.uniform(-0.1, 0.5, (n_layers, n_folds, n_targets))
    ds = xr.Dataset(
        {"r_folds": (("layer", "fold", "target"), rf), "alpha": (("layer", "fold", "target"), np.full(rf.shape, 10.0)),
         "r": (("layer", "target"), rf.mean(1)), "p": (("layer", "target"), rng.uniform(0, 1, (n_layers, n_targets))),
         "p_fdr": (("layer", "target"), rng.uniform(0, 1, (n_layers, n_targets)))},
        coords={"layer": np.arange(1, n_layers + 1), "fold": np.arange(n_folds), "target": np.arange(n_targets)})
    ds.coords["voxel_flat"] = ("target", np.array([0, 3, 7, 12, 20])[:n_targets])
    ds.attrs.update(subject=subject, task="story", model="MiniLM", modality="fmri", settings="{}",
                    affine=json.dumps(np.eye(4).tolist()), grid_shape=json.dumps([3, 3, 3]))
    return ds


def test_participant_outputs_are_bids_derivatives_and_rerun_identical(tmp_path):
    from brainalign.encoders.cache import fingerprint_folder
    from brainalign.encoders.model import default_model_path

    ds = _result()
    model = default_model_path()  # resume needs the model's identity (outputs.is_done)
    ds.attrs.update(model_path=str(model), model_fingerprint=fingerprint_folder(model, cache_dir=False))
    files = outputs.write_participant(ds, tmp_path, config_hash="abc")
    tsv = tmp_path / "sub-01/func/sub-01_task-story_desc-MiniLM_scores.tsv"
    assert tsv.is_file() and tsv.with_suffix(".json").is_file()
    table = pd.read_csv(tsv, sep="\t")
    assert list(table.columns) == list(outputs.SCORE_COLUMNS)
    assert set(table.metric) >= {"r", "alpha", "p", "p_fdr"}
    one = table[(table.metric == "r") & table.fold.isna()]
    assert len(one) == 3 * 5
    maps = sorted((tmp_path / "sub-01/func").glob("*_stat-r_statmap.nii.gz"))
    assert [m.name for m in maps] == [f"sub-01_task-story_desc-MiniLML{l:02d}_stat-r_statmap.nii.gz" for l in (1, 2, 3)]
    import nibabel as nib

    vol = np.asarray(nib.load(maps[0]).dataobj)
    assert vol.shape == (3, 3, 3) and np.isnan(vol).sum() == 27 - 5
    np.testing.assert_allclose(vol.ravel()[[0, 3, 7, 12, 20]], ds["r"].sel(layer=1).values, rtol=1e-6)
    assert outputs.is_done(tmp_path, "01", "story", "MiniLM", "fmri", "abc")
    assert not outputs.is_done(tmp_path, "01", "story", "MiniLM", "fmri", "other")
    before = {p: p.read_bytes() for p in files}
    outputs.write_participant(ds, tmp_path, config_hash="abc")
    assert all(p.read_bytes() == b for p, b in before.items())
    assert not list(tmp_path.rglob(".*.tmp")) and not list(tmp_path.rglob(".*nii.gz"))


def test_unsafe_labels_never_become_paths(tmp_path):
    ds = _result(subject="../evil")
    with pytest.raises(UnsafeNameError):
        outputs.write_participant(ds, tmp_path)
    assert not any(tmp_path.iterdir())


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with outputs.atomic_path(tmp_path / "x.tsv") as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_dataset_description(tmp_path):
    outputs.write_dataset_description(tmp_path, [str(tmp_path)])
    d = json.loads((tmp_path / "dataset_description.json").read_text())
    assert d["DatasetType"] == "derivative" and d["GeneratedBy"][0]["Name"] == "brainalign"
    assert d["SourceDatasets"][0]["URL"].startswith("file://")


def _square(spec):
    if spec["x"] == 3:
        raise ValueError("three is bad")
    return spec["x"] ** 2


def test_executors_agree_and_report_failures():
    specs = [{"x": i} for i in range(5)]
    serial = {i: (r, e) for i, r, e in run_tasks(_square, specs)}
    assert serial[3][0] is None and "three is bad" in serial[3][1]
    assert [serial[i][0] for i in (0, 1, 2, 4)] == [0, 1, 4, 16]
    procs = {i: (r, e) for i, r, e in run_tasks(_square, specs, n_jobs=2)}
    assert procs == serial


def test_layer_selection_rows_reach_the_table():
    ds = _result()
    ds["layer_id"] = (("target",), np.array([1, 2, 2, 3, 1]))
    ds["layer_id_score"] = (("layer", "target"), np.zeros((3, 5)))
    t = outputs.scores_table(ds)
    chosen = t[t.metric == "layer_id"]
    assert len(chosen) == 5 and chosen.layer.isna().all()
    assert list(chosen.value) == [1, 2, 2, 3, 1]
    assert (t.metric == "layer_id_score").sum() == 15


# ------------------------------------------------------------------ the seam (issue 16)
def _two_run_recording(rng, n=80, t=4):
    from brainalign.data import make_recording

    times = np.concatenate([np.arange(n) * 2.0] * 2)
    runs = np.repeat([1, 2], n)
    conf = pd.DataFrame({"motion": rng.standard_normal(2 * n), "drift": np.linspace(-1, 1, 2 * n) ** 2})
    Y = 3.0 * conf[["motion"]].to_numpy() + 2.0 * conf[["drift"]].to_numpy() + rng.standard_normal((2 * n, t))
    return make_recording(Y, times, runs, modality="fmri", tr=2.0), conf


def test_preprocess_confounds_are_regressed_out_per_run():
    from brainalign.pipeline.preprocess import preprocess
    from brainalign.pipeline.specs import PreprocessSpec

    rec, conf = _two_run_recording(np.random.default_rng(0))
    plain = preprocess(rec, PreprocessSpec(confounds="none"), conf).values
    clean = preprocess(rec, PreprocessSpec(confounds="auto"), conf).values
    runs = rec["run"].values
    for r in (1, 2):
        m = conf["motion"].to_numpy()[runs == r]
        before = [abs(np.corrcoef(plain[runs == r, j], m)[0, 1]) for j in range(plain.shape[1])]
        after = [abs(np.corrcoef(clean[runs == r, j], m)[0, 1]) for j in range(clean.shape[1])]
        assert min(before) > 0.5 and max(after) < 1e-6
    with pytest.raises(ConfigError, match="data.preprocess.confounds: simple .* needs fMRIPrep"):
        preprocess(rec, PreprocessSpec(confounds="simple"), conf)


def test_baseline_columns_are_the_baseline():
    from brainalign.pipeline.prepare import baseline_table
    from brainalign.pipeline.specs import BaselineSpec

    rng = np.random.default_rng(1)
    base = pd.DataFrame({"rate": rng.standard_normal(10), "power": rng.standard_normal(10)})
    conf = pd.DataFrame({"motion": rng.standard_normal(10)})
    np.testing.assert_array_equal(baseline_table(BaselineSpec(columns=("power",)), base, conf), base[["power"]].to_numpy())
    np.testing.assert_array_equal(baseline_table(BaselineSpec(), base, conf), base.to_numpy())
    with pytest.raises(ConfigError, match="baseline"):
        baseline_table(BaselineSpec(), None, conf)
    with pytest.raises(ConfigError, match="baseline.columns"):
        baseline_table(BaselineSpec(columns=("nope",)), base, None)


def test_statistics_q_is_the_fdr_level_in_the_result():
    from brainalign.pipeline.api import finalize

    rng = np.random.default_rng(2)
    ds = xr.Dataset({"r_folds": (("layer", "fold", "target"), rng.standard_normal((2, 5, 3)))})
    ds["r"] = ds["r_folds"].mean("fold")
    assert finalize(ds, q=0.01).attrs["fdr_q"] == 0.01
    assert finalize(ds).attrs["fdr_q"] == 0.05


def test_unknown_source_options_are_a_config_error_naming_them(tmp_path):
    from brainalign.pipeline.sources import load_participant
    from brainalign.pipeline.specs import LoadSpec

    with pytest.raises(ConfigError, match="data.source.*bogus_option"):
        validate_config({"data": {"source": {"kind": "bids", "root": str(tmp_path), "options": {"bogus_option": 1}}}})
    # a LoadSpec built in Python (no schema) is checked against the loader's signature
    spec = LoadSpec(kind="roi_table", task="t", participants=None, root=str(tmp_path), adapter="alice",
                    options=(("bogus_option", 1),))
    with pytest.raises(ConfigError, match="data.source.options: bogus_option") as exc:
        load_participant(spec, "s1", "t")
    assert "\n" not in str(exc.value)


def test_ceiling_loads_only_the_participants_the_tasks_did_not():
    from brainalign.pipeline import ceiling

    rng = np.random.default_rng(3)
    shared = rng.standard_normal((50, 2))
    have = {s: shared + 0.1 * rng.standard_normal((50, 2)) for s in ("a", "b")}
    asked = []

    def load(s):
        asked.append(s)
        return shared + 0.1 * rng.standard_normal((50, 2))

    data = dict(have, **ceiling.load_others(["a", "b", "c", "d"], have, load))
    assert asked == ["c", "d"]
    r = ceiling.loo_isc(data, ["a", "b", "c", "d"])
    assert list(r) == ["a", "b", "c", "d"] and min(min(v) for v in r.values()) > 0.9
    with pytest.raises(InputError, match="at least 3"):
        ceiling.loo_isc({"a": have["a"], "b": have["b"]}, ["a", "b"])


def test_task_thread_limit_is_restored_for_torch_and_blas():
    import torch
    from threadpoolctl import threadpool_info

    from brainalign.pipeline.executor import _call

    before = (torch.get_num_threads(), [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
    res, err = _call(_threads_seen, {"threads": 1})
    assert err is None and res[0] == 1 and set(res[1]) == {1}
    assert (torch.get_num_threads(), [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]) == before


def _threads_seen(spec):
    import torch
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
