"""Damaged configurations, flags and folders, run through the real CLI (see tests/_damaged_cases.py)."""

from __future__ import annotations

import gzip

import pytest

from _damaged_cases import (
    Case,
    Ran,
    base_config,
    check_case,
    collect,
    copy_dataset,
    participant,
    readonly_dir,
    run_cases,
    write_config,
)


# Each builder gets (world, tmp) and returns the Case. Data cases copy the dataset first.
def c_output_is_input(w, tmp):
    ds = copy_dataset(w, tmp)
    return Case(argv=[ds, ds, "participant", "--quiet"], culprit="is the input dataset", out=ds, guard=ds)


def c_output_inside_input(w, tmp):
    ds = copy_dataset(w, tmp)
    return Case(argv=[ds, ds / "sub-01" / "results", "participant", "--quiet"], culprit="inside the input dataset",
                out=ds / "sub-01" / "results", guard=ds)


def c_output_inside_input_code(w, tmp):
    ds = copy_dataset(w, tmp)
    out = ds / "code" / "brainalign"
    return Case(argv=[ds, out, "group", "--quiet"], culprit="inside the input dataset", out=out, guard=ds)


def c_run_output_is_input(w, tmp):
    ds = copy_dataset(w, tmp)
    cfg = base_config(w, ds)
    cfg["outputs"]["dir"] = str(ds)
    return Case(argv=["run", write_config(tmp, cfg), "--quiet"], culprit="is the input dataset", out=ds, guard=ds)


def c_run_output_relative_inside(w, tmp):
    ds = copy_dataset(w, tmp)
    cfg = base_config(w, ds)
    cfg["outputs"]["dir"] = "bids/sub-02"  # relative to the configuration file's folder
    return Case(argv=["run", write_config(tmp, cfg), "--quiet"], culprit="inside the input dataset", guard=ds)


def c_output_is_file(w, tmp):
    out = tmp / "results.txt"
    out.write_text("not a folder\n")
    case = participant(w, tmp, w.root)
    case.argv[1] = out
    case.out, case.guard, case.culprit = out, out, "is not a folder"
    return case


def c_output_parent_is_file(w, tmp):
    (tmp / "results.txt").write_text("not a folder\n")
    case = participant(w, tmp, w.root)
    case.argv[1] = case.out = tmp / "results.txt" / "out"
    case.culprit = "is a file"
    return case


def c_output_readonly(w, tmp):
    ro = readonly_dir(tmp)
    case = participant(w, tmp, w.root)
    case.argv[1] = case.out = ro / "brainalign-out"
    case.culprit = "not writable"
    return case


def c_cache_is_file(w, tmp):
    f = tmp / "cache.bin"
    f.write_text("x")
    cfg = base_config(w)
    cfg["execution"]["cache_dir"] = str(f)
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit = "execution.cache_dir"
    return case


def c_cache_readonly(w, tmp):
    cfg = base_config(w)
    cfg["execution"]["cache_dir"] = str(readonly_dir(tmp) / "activations")
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit = ("execution.cache_dir", "not writable")
    return case


def c_default_cache_is_file(w, tmp):
    f = tmp / "cache.bin"
    f.write_text("x")
    cfg = base_config(w)
    del cfg["execution"]["cache_dir"]
    case = participant(w, tmp, w.root, cfg=cfg)
    case.env, case.culprit = {"BRAINALIGN_CACHE": str(f)}, "BRAINALIGN_CACHE"
    return case


def c_malformed_yaml_bids_app(w, tmp):
    case = participant(w, tmp, w.root)
    write_config(tmp, "scoring: {methods: [encoding\nmodels: [\n")
    case.culprit = "study.yaml"
    return case


def c_malformed_yaml_run(w, tmp):
    return Case(argv=["run", write_config(tmp, "data:\n  source: {kind: bids\n   root: x\n")], culprit="not valid YAML")


def c_yaml_tabs(w, tmp):
    return Case(argv=["run", write_config(tmp, "data:\n\tsource: {kind: bids}\n")], culprit="study.yaml")


def c_binary_config(w, tmp):
    p = tmp / "study.yaml"
    p.write_bytes(gzip.compress(b"data: {}"))
    return Case(argv=["run", p], culprit="study.yaml")


def c_empty_yaml(w, tmp):
    return Case(argv=["run", write_config(tmp, "")], culprit="data")


def c_yaml_list_run(w, tmp):
    return Case(argv=["run", write_config(tmp, "- data\n- models\n")], culprit="mapping")


def c_yaml_list_bids_app(w, tmp):
    case = participant(w, tmp, w.root)
    write_config(tmp, "- data\n- models\n")
    case.culprit = "mapping"
    return case


def c_yaml_section_not_mapping(w, tmp):
    case = participant(w, tmp, w.root)
    write_config(tmp, "scoring: encoding\n")
    case.culprit = "scoring"
    return case


def c_unknown_section(w, tmp):
    cfg = base_config(w)
    cfg["scorng"] = {"methods": ["encoding"]}
    return Case(argv=["run", write_config(tmp, cfg)], culprit="scorng")


def c_unknown_source_option(w, tmp):
    cfg = base_config(w)
    cfg["data"]["source"]["options"] = {"high_passs": 0.01}
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit = "high_passs"
    return case


def c_wrong_type(w, tmp):
    cfg = base_config(w)
    cfg["scoring"]["cv"]["n_folds"] = "five"
    return Case(argv=["run", write_config(tmp, cfg)], culprit="n_folds")


def c_negative_delays(w, tmp):
    cfg = base_config(w)
    cfg["alignment"] = {"delays": [-1, 0, 1]}
    return Case(argv=["run", write_config(tmp, cfg)], culprit="delays")


def c_too_many_folds(w, tmp):
    cfg = base_config(w)
    cfg["scoring"]["cv"]["n_folds"] = 500
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit, case.tried = "n_folds", True
    return case


def c_no_models(w, tmp):
    cfg = base_config(w)
    cfg["models"] = []
    return Case(argv=["run", write_config(tmp, cfg)], culprit="models")


def c_negative_alphas(w, tmp):
    cfg = base_config(w)
    cfg["scoring"]["alphas"] = [-1.0, 10.0]
    return Case(argv=["run", write_config(tmp, cfg)], culprit="alphas")


def c_trim_longer_than_runs(w, tmp):
    cfg = base_config(w)
    cfg["alignment"] = {"trim": [30, 30]}  # runs have 40 volumes
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit, case.tried = "trim", True
    return case


def c_unsafe_task(w, tmp):
    case = participant(w, tmp, w.root, "--task", "../story")
    case.culprit = "../story"
    return case


def c_duplicate_model_labels(w, tmp):
    cfg = base_config(w)
    cfg["models"] = [cfg["models"][0], dict(cfg["models"][0], context_words=8)]
    return Case(argv=["run", write_config(tmp, cfg)], culprit="labels")


def c_unsafe_model_label(w, tmp):
    cfg = base_config(w)
    cfg["models"][0]["label"] = "../x"
    return Case(argv=["run", write_config(tmp, cfg)], culprit="../x")


def c_unset_variable(w, tmp):
    cfg = base_config(w)
    cfg["data"]["source"]["root"] = "${BRAINALIGN_NO_SUCH_VAR}/bids"
    case = Case(argv=["run", write_config(tmp, cfg)], culprit="BRAINALIGN_NO_SUCH_VAR")
    return case


def c_missing_model(w, tmp):
    cfg = base_config(w)
    cfg["models"][0]["path"] = str(tmp / "no-such-model")
    case = participant(w, tmp, w.root, cfg=cfg, label=None)  # everyone: refused once, before any participant
    case.culprit = "no-such-model"
    return case


def c_missing_model_relative(w, tmp):
    cfg = base_config(w)
    cfg["models"][0]["path"] = "./models/no-such-model"  # relative to the configuration file
    return Case(argv=["run", write_config(tmp, cfg), "--output", tmp / "out"], culprit="no-such-model", out=tmp / "out")


def c_remote_code_model(w, tmp):
    cfg = base_config(w)
    cfg["models"][0].update(path="someone/remote-code-model", trust_remote_code=True)
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit, case.tried = "someone/remote-code-model", True
    return case


def c_hub_model_offline_everyone(w, tmp):
    """An unknown hub id with two participants: it should be refused once, not once per participant."""
    cfg = base_config(w)
    cfg["models"][0]["path"] = "someone/no-such-model"
    case = participant(w, tmp, w.root, cfg=cfg, label=None)
    case.culprit, case.tried = "someone/no-such-model", True
    return case


def c_missing_layer(w, tmp):
    cfg = base_config(w)
    cfg["models"][0]["layers"] = [0, 99]
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit, case.tried = "99", True
    return case


def c_kendall(w, tmp):
    """``rsa.compare: kendall``: refused at validation (exit 2) or accepted and run for real (exit 0)."""
    cfg = base_config(w)
    cfg["scoring"].update(methods=["rsa"], rsa={"compare": "kendall", "n_items": 20})
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit, case.accept_run = "compare", True
    return case


def c_unknown_participant(w, tmp):
    case = participant(w, tmp, w.root, label="99")
    case.culprit = "99"
    return case


def c_unsafe_participant(w, tmp):
    case = participant(w, tmp, w.root, label="../01")
    case.culprit = "../01"
    return case


def c_unsafe_participant_yaml(w, tmp):
    cfg = base_config(w)
    cfg["data"]["source"]["participants"] = ["01", "0 1"]
    return Case(argv=["run", write_config(tmp, cfg)], culprit="0 1")


def c_missing_task(w, tmp):
    case = participant(w, tmp, w.root, "--task", "rest")
    case.culprit, case.tried = "rest", True
    return case


def c_unknown_flag(w, tmp):
    return Case(argv=[w.root, tmp / "out", "participant", "--frobnicate"], culprit="--frobnicate", out=tmp / "out")


def c_bad_level(w, tmp):
    return Case(argv=[w.root, tmp / "out", "everyone"], culprit="everyone", out=tmp / "out")


def c_bad_n_jobs(w, tmp):
    case = participant(w, tmp, w.root, "--n-jobs", "-2")
    case.culprit = "n_jobs"
    return case


def c_n_jobs_not_number(w, tmp):
    case = participant(w, tmp, w.root, "--n-jobs", "many")
    case.culprit = "many"
    return case


def c_missing_config(w, tmp):
    return Case(argv=[w.root, tmp / "out", "participant", "--config", tmp / "nope.yaml"], culprit="nope.yaml",
                out=tmp / "out")


def c_missing_mask_flag(w, tmp):
    return Case(argv=[w.root, tmp / "out", "participant", "--mask", tmp / "nomask.nii.gz"], culprit="nomask.nii.gz",
                out=tmp / "out")


def c_report_missing_dir(w, tmp):
    return Case(argv=["report", tmp / "nowhere"], culprit="nowhere", out=tmp / "nowhere")


def c_report_on_file(w, tmp):
    f = tmp / "scores.tsv"
    f.write_text("a\tb\n")
    return Case(argv=["report", f], culprit="scores.tsv", guard=f)


def c_not_bids(w, tmp):
    (tmp / "empty").mkdir()
    return Case(argv=[tmp / "empty", tmp / "out", "participant"], culprit="dataset_description.json", out=tmp / "out")


def c_bids_dir_missing(w, tmp):
    return Case(argv=[tmp / "nodata", tmp / "out", "participant"], culprit="nodata", out=tmp / "out")


def c_run_missing_root(w, tmp):
    cfg = base_config(w, tmp / "nodata")
    return Case(argv=["run", write_config(tmp, cfg)], culprit="nodata")


# data damaged on disk (participant 01 only, so one participant fails and nothing is done)


CASES = collect(globals())


@pytest.fixture(scope="module")
def ran(damaged_world, tmp_path_factory) -> dict[str, Ran]:
    return run_cases(CASES, damaged_world, tmp_path_factory)


@pytest.mark.parametrize("name", sorted(CASES))
def test_damaged_configuration_is_refused(ran, name):
    check_case(ran[name])
