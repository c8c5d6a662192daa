"""``kind: nifti``: a 4-D NIfTI per run + a Praat TextGrid per run, run from the CLI (issue 15)."""
from __future__ import annotations

import shutil

import nibabel as nib
import pandas as pd
import pytest
import yaml
from _damaged_cases import forked_cli as cli  # the CLI forked from a preloaded interpreter (same checks)
from _layouts import layer_r, planted_flat, simulate, textgrid, separated


@pytest.fixture(scope="module")
def plain_study(tmp_path_factory, layout_cache):
    """The simulated BOLD as ``study/sub01/run1.nii.gz`` with ``study/transcripts/run1.TextGrid`` (no BIDS)."""
    cache = layout_cache
    sim = tmp_path_factory.mktemp("sim") / "ds"
    truth = simulate(sim, cache, seed=5)
    study = tmp_path_factory.mktemp("plain") / "study"
    (study / "sub01").mkdir(parents=True)
    (study / "transcripts").mkdir()
    for run in (1, 2):
        stem = sim / "sub-01" / "func" / f"sub-01_task-story_run-{run}"
        shutil.copy(f"{stem}_bold.nii.gz", study / "sub01" / f"run{run}.nii.gz")
        ev = pd.read_csv(f"{stem}_events.tsv", sep="\t")
        n_vol = nib.load(f"{stem}_bold.nii.gz").shape[3]
        (study / "transcripts" / f"run{run}.TextGrid").write_text(textgrid(ev, n_vol * 2.0))
    shutil.copy(sim / truth["mask"], study / "mask.nii.gz")
    return study, sim, truth, cache


def _config(study, tmp_path, **source):
    cfg = {"data": {"source": {"kind": "nifti", "root": str(study), "bold": "sub{participant}/run{run}.nii.gz",
                               "words": "transcripts/run{run}.TextGrid", "task": "story", "mask": "mask.nii.gz",
                               **source}},
           "models": [{"label": "MiniLM", "path": "packaged:minilm", "layers": [0, 1], "context_words": 20}],
           "scoring": {"methods": ["encoding"], "inner_cv": 2, "alphas": [1.0, 100.0, 10000.0], "cv": {"n_folds": 2},
                       "permutations": 0},  # no p is read here: no shift null
           "statistics": {"n_bootstrap": 10, "group_test": "none"}, "outputs": {"report": False}}
    cfg["data"]["source"]["mask"] = str(study / "mask.nii.gz")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_plain_nifti_and_textgrid_find_the_planted_voxels(plain_study, tmp_path):
    study, sim, truth, cache = plain_study
    out = tmp_path / "out"
    res = cli(["run", _config(study, tmp_path), "--output", out, "--quiet", "--skip-group"], cache, out.parent / "cli")
    assert res.returncode == 0, res.stderr
    tsv = out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_scores.tsv"
    assert (out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLML01_stat-r_statmap.nii.gz").is_file()
    r1 = layer_r(pd.read_csv(tsv, sep="\t", na_values="n/a"))
    planted, noise = planted_flat(sim, truth)
    assert set(r1.index) == planted | noise
    assert separated(r1, planted, noise)
    # the TR came from the header (2 s), the words from the TextGrids
    side = pd.read_json(tsv.with_suffix(".json"), typ="series")
    assert any(s.endswith("run1.TextGrid") for s in side["Sources"])
    assert side["NSamples"] == 120


def test_plain_nifti_errors_name_the_field(plain_study, tmp_path):
    study, _, _, cache = plain_study
    res = cli(["run", _config(study, tmp_path, words="transcripts/missing{run}.TextGrid"), "--output",
               tmp_path / "o", "--quiet"], cache, tmp_path / "o-cli")
    assert res.returncode == 2 and "data.source.words" in res.stderr and "Traceback" not in res.stderr
    res = cli(["run", _config(study, tmp_path, bold="nothing/{participant}.nii.gz"), "--output", tmp_path / "o2"],
              cache, tmp_path / "o2-cli")
    assert res.returncode == 2 and "data.source.bold" in res.stderr
