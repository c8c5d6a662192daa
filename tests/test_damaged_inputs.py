"""Damaged inputs, as a careless user would hand them over, run through the real CLI in subprocesses.

Every case checks the contract of the command line: the exit code (2 for the user's
or the machine's mistakes), one line on stderr naming the culprit (file, field, flag
or value), no traceback, and nothing half-written (the output folder absent, or, when
participants were tried and all failed, holding nothing but the failure log; no
stray temporary files anywhere). The damaged datasets are built in ``tmp_path`` from
one small simulated dataset per module; one activation cache serves every case.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import yaml

from brainalign.pipeline.simulate import simulate_bids

EXIT_OK, EXIT_PARTIAL, EXIT_REFUSED = 0, 1, 2
STEM = "sub-01/func/sub-01_task-story_run-1"
LOG_ONLY = {"dataset_description.json", "logs/failures.json"}


@dataclass
class World:
    root: Path  # the pristine simulated dataset (never written by a case)
    cache: Path
    mask: Path


@dataclass
class Case:
    """What one damaged input should produce."""

    argv: list
    culprit: str | tuple  # text (or texts, any one) the error line must contain (case-insensitive)
    out: Path | None = None  # the output folder the call names
    code: int = EXIT_REFUSED
    tried: bool = False  # participants may be attempted: when they all fail, the failure log may be written
    guard: Path | None = None  # a folder that must come out byte-identical (an input, an existing output)
    env: dict = field(default_factory=dict)
    cwd: Path | None = None


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    cache = tmp_path_factory.mktemp("activations")
    root = tmp_path_factory.mktemp("sim") / "ds"
    truth = simulate_bids(root, "fmri", n_subjects=2, n_runs=2, n_volumes=40, grid=(6, 6, 5), layers=(1,),
                          targets_per_layer=10, snr=1.5, n_words=80, seed=11, cache_dir=str(cache))
    return World(root=root, cache=cache, mask=root / truth["mask"])


# ---------------------------------------------------------------------------- helpers
def cli(case: Case, world: World) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", BRAINALIGN_CACHE=str(world.cache))
    env.update(case.env)
    return subprocess.run([sys.executable, "-m", "brainalign.cli", *map(str, case.argv)], capture_output=True,
                          text=True, env=env, cwd=case.cwd, timeout=300)


def base_config(world: World, root: Path | None = None) -> dict:
    """A fast study: two layers, encoding only, two folds, no maps or reports."""
    return {"data": {"source": {"kind": "bids", "root": str(root or world.root), "mask": str(world.mask)}},
            "models": [{"label": "m", "path": "packaged:minilm", "layers": [0, 1], "context_words": 20}],
            "scoring": {"methods": ["encoding"], "inner_cv": 2, "alphas": [1.0, 100.0], "cv": {"n_folds": 2}},
            "statistics": {"n_bootstrap": 10, "group_test": "none"},
            "outputs": {"maps": False, "report": False},
            "execution": {"cache_dir": str(world.cache)}}


def write_config(tmp: Path, cfg: dict | str, name: str = "study.yaml") -> Path:
    p = tmp / name
    p.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return p


def copy_dataset(world: World, tmp: Path) -> Path:
    dst = tmp / "bids"
    shutil.copytree(world.root, dst)
    return dst


def participant(world: World, tmp: Path, root: Path, *extra, label: str | None = "01", cfg: dict | None = None) -> Case:
    """The BIDS-App call on ``root`` (participant ``label``, or everyone) with the fast configuration."""
    conf = write_config(tmp, cfg or base_config(world, root))
    out = tmp / "out"
    argv = [root, out, "participant", "--config", conf, "--quiet", *extra]
    if label:
        argv += ["--participant-label", label]
    return Case(argv=argv, culprit="", out=out)


def snapshot(folder: Path) -> dict | None:
    if not folder.exists():
        return None
    if folder.is_file():
        return {".": folder.read_bytes()}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stray_temp_files(*folders: Path) -> list[str]:
    out = []
    for f in folders:
        if f.is_dir():
            out += [str(p) for p in f.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".brainalign-probe")]
    return out


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("brainalign: warning:")]


def readonly_dir(tmp: Path) -> Path:
    """A folder this process cannot write: chmod 555, or (root ignores modes) a sysfs folder."""
    d = tmp / "readonly"
    d.mkdir()
    d.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    for cand in (d, Path("/sys/kernel")):
        try:
            fd, probe = tempfile.mkstemp(dir=cand)
        except OSError:
            return cand
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no folder here is read-only for this user (root without a read-only file system)")


def check_refused(case: Case, res: subprocess.CompletedProcess, tmp: Path, before: dict | None) -> None:
    both = res.stdout + res.stderr
    assert res.returncode == case.code, both
    assert "Traceback" not in both, both
    lines = error_lines(res.stderr)
    assert len(lines) == 1, res.stderr
    wanted = (case.culprit,) if isinstance(case.culprit, str) else case.culprit
    assert any(w.lower() in lines[0].lower() for w in wanted), (wanted, lines[0])
    assert "error" in lines[0] or "failed" in lines[0]
    if case.out is not None and case.guard != case.out:
        written = set(snapshot(case.out) or {})
        allowed = LOG_ONLY if case.tried and " failed: " in lines[0] else set()  # a refusal writes nothing
        assert written <= allowed, sorted(written - allowed)
    if case.guard is not None:
        assert snapshot(case.guard) == before, f"{case.guard} was changed"
    assert not stray_temp_files(tmp), stray_temp_files(tmp)


# ------------------------------------------------------------------ damage builders
def _events(root: Path, stem: str = STEM) -> Path:
    return root / f"{stem}_events.tsv"


def _edit_events(root: Path, fn: Callable[[pd.DataFrame], pd.DataFrame], stem: str = STEM) -> Path:
    p = _events(root, stem)
    fn(pd.read_csv(p, sep="\t")).to_csv(p, sep="\t", index=False)
    return p


def _bold(root: Path, stem: str = STEM) -> Path:
    return root / f"{stem}_bold.nii.gz"


def _rewrite_bold(root: Path, fn: Callable[[np.ndarray], np.ndarray], stem: str = STEM) -> None:
    import nibabel as nib

    p = _bold(root, stem)
    img = nib.load(p)
    data = fn(np.asarray(img.dataobj, dtype=np.float32))
    out = nib.Nifti1Image(data.astype(np.float32), img.affine)
    out.header.set_xyzt_units("mm", "sec")
    nib.save(out, p)


def _write_mask(tmp: Path, data: np.ndarray, world: World) -> Path:
    import nibabel as nib

    p = tmp / "mask.nii.gz"
    nib.save(nib.Nifti1Image(data, nib.load(world.mask).affine), p)
    return p


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
    case.culprit = "compare"
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
def _data_case(w, tmp, damage: Callable[[Path], None], culprit, **kw) -> Case:
    ds = copy_dataset(w, tmp)
    damage(ds)
    case = participant(w, tmp, ds, **kw)
    case.culprit, case.tried = culprit, True
    return case


def c_negative_onsets(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.assign(onset=t.onset - 100)), "run-1_events.tsv")


def c_onsets_past_end(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.assign(onset=t.onset + 500)), "run-1_events.tsv")


def c_onsets_in_ms(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.assign(onset=t.onset * 1000)), "milliseconds")


def c_missing_events(w, tmp):
    return _data_case(w, tmp, lambda ds: _events(ds).unlink(), "run-1_events.tsv")


def c_events_no_onset(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.rename(columns={"onset": "time"})), "onset")


def c_events_no_word(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.drop(columns=["word"])), "word")


def c_events_header_only(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.iloc[:0]), "run-1_events.tsv")


def c_events_zero_bytes(w, tmp):
    return _data_case(w, tmp, lambda ds: _events(ds).write_bytes(b""), "run-1_events.tsv")


def c_events_text_onsets(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.assign(onset="soon")), "run-1_events.tsv")


def c_events_all_na_words(w, tmp):
    return _data_case(w, tmp, lambda ds: _edit_events(ds, lambda t: t.assign(word="n/a")), "run-1_events.tsv")


def c_truncated_nifti(w, tmp):
    def damage(ds):
        b = _bold(ds)
        b.write_bytes(b.read_bytes()[: b.stat().st_size // 2])
    return _data_case(w, tmp, damage, "run-1_bold.nii.gz")


def c_nifti_garbage(w, tmp):
    return _data_case(w, tmp, lambda ds: _bold(ds).write_bytes(b"this is not an image\n" * 10), "run-1_bold.nii.gz")


def c_bold_all_nan(w, tmp):
    return _data_case(w, tmp, lambda ds: _rewrite_bold(ds, lambda a: np.full_like(a, np.nan)), "sub-01")


def c_bold_constant(w, tmp):
    return _data_case(w, tmp, lambda ds: _rewrite_bold(ds, lambda a: np.full_like(a, 100.0)), "sub-01")


def c_bold_3d(w, tmp):
    return _data_case(w, tmp, lambda ds: _rewrite_bold(ds, lambda a: a[..., 0]), ("run-1_bold", "volume"))


def c_no_repetition_time(w, tmp):
    def damage(ds):
        for f in (ds / "sub-01" / "func").glob("*_bold.json"):
            f.write_text(json.dumps({"TaskName": "story"}))
    return _data_case(w, tmp, damage, "RepetitionTime")


def c_bad_repetition_time(w, tmp):
    return _data_case(w, tmp, lambda ds: (ds / f"{STEM}_bold.json").write_text('{"RepetitionTime": "two"}'),
                      "RepetitionTime")


def c_sidecar_not_json(w, tmp):
    return _data_case(w, tmp, lambda ds: (ds / f"{STEM}_bold.json").write_text("{RepetitionTime: 2"),
                      "run-1_bold.json")


def c_runs_different_tr(w, tmp):
    return _data_case(w, tmp, lambda ds: (ds / f"{STEM}_bold.json").write_text('{"RepetitionTime": 1.5}'),
                      "RepetitionTime")


def c_mask_all_zeros(w, tmp):
    import nibabel as nib

    shape = nib.load(w.mask).shape
    mask = _write_mask(tmp, np.zeros(shape, np.uint8), w)
    cfg = base_config(w)
    cfg["data"]["source"]["mask"] = str(mask)
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit, case.tried = "mask", True
    return case


def c_mask_wrong_shape(w, tmp):
    mask = _write_mask(tmp, np.ones((4, 4, 3, 2), np.uint8), w)  # 4-D: not a mask
    cfg = base_config(w)
    cfg["data"]["source"]["mask"] = str(mask)
    case = participant(w, tmp, w.root, cfg=cfg)
    case.culprit, case.tried = "mask", True
    return case


def c_mask_not_nifti(w, tmp):
    (tmp / "mask.nii.gz").write_text("no image here\n")
    case = participant(w, tmp, w.root, "--mask", tmp / "mask.nii.gz")
    case.culprit, case.tried = "mask.nii.gz", True
    return case


CASES = {name[2:]: fn for name, fn in sorted(globals().items()) if name.startswith("c_") and callable(fn)}


@dataclass
class Ran:
    case: Case | None
    tmp: Path
    before: dict | None = None
    res: subprocess.CompletedProcess | None = None
    skip: str | None = None


@pytest.fixture(scope="module")
def ran(world, tmp_path_factory) -> dict[str, Ran]:
    """Every case built, then run as CLI subprocesses a few at a time (most of a call is importing)."""
    done: dict[str, Ran] = {}
    for name, build in CASES.items():
        tmp = tmp_path_factory.mktemp(name)
        try:
            case = build(world, tmp)
        except pytest.skip.Exception as exc:
            done[name] = Ran(None, tmp, skip=str(exc))
            continue
        done[name] = Ran(case, tmp, before=snapshot(case.guard) if case.guard is not None else None)
    todo = [r for r in done.values() if r.case is not None]
    with ThreadPoolExecutor(max_workers=3) as pool:
        for r, res in zip(todo, pool.map(lambda r: cli(r.case, world), todo)):
            r.res = res
            (r.tmp / "cli.log").write_text(f"{' '.join(map(str, r.case.argv))}\nexit {res.returncode}\n"
                                           f"--- stdout\n{res.stdout}--- stderr\n{res.stderr}")
    return done


XFAIL: dict[str, str] = {}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=XFAIL[n]))
                                  if n in XFAIL else n for n in sorted(CASES)])
def test_damaged_input_is_refused(ran, name):
    r = ran[name]
    if r.skip:
        pytest.skip(r.skip)
    case, res, tmp_path, before = r.case, r.res, r.tmp, r.before
    if name == "kendall" and res.returncode == EXIT_OK:  # accepted: then it must have run for real
        assert "1 done" in res.stdout and "Traceback" not in res.stderr, res.stderr
        assert list(case.out.rglob("*_scores.tsv"))
        return
    check_refused(case, res, tmp_path, before)


def test_a_broken_participant_is_skipped_and_the_batch_goes_on(world, tmp_path):
    """sub-01's BOLD is truncated, sub-02 has one word past the end of a run: exit 1, sub-02 done with a warning."""
    ds = copy_dataset(world, tmp_path)
    b = _bold(ds)
    b.write_bytes(b.read_bytes()[: b.stat().st_size // 2])
    stem2 = STEM.replace("01", "02")
    _edit_events(ds, lambda t: pd.concat([t, t.iloc[[-1]].assign(onset=10_000.0)]), stem=stem2)
    case = participant(world, tmp_path, ds, label=None)
    res = cli(case, world)
    assert res.returncode == EXIT_PARTIAL, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and "sub-01" in lines[0] and "run-1_bold.nii.gz" in lines[0], res.stderr
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("brainalign: warning:")]
    assert any("sub-02_task-story_run-1_events.tsv" in ln and "dropped 1 of" in ln for ln in warn), res.stderr
    assert "1 done" in res.stdout and "1 failed" in res.stdout
    assert list((case.out / "sub-02").rglob("*_scores.tsv"))
    assert not (case.out / "sub-01").exists()
    failures = json.loads((case.out / "logs" / "failures.json").read_text())
    assert "01" in json.dumps(failures) and "02" not in failures
    assert not stray_temp_files(tmp_path)
