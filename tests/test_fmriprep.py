"""fMRIPrep by default: preprocessed BOLD, brain mask and confounds (issue 15), from the CLI and in Python."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _damaged_cases import forked_cli  # the CLI forked from a preloaded interpreter (same checks)
from _layouts import (N_COSINE, N_NSS, SPACE, cli, fast_config, layer_r, planted_flat, separated, simulate,
                      to_fmriprep)


@pytest.fixture(scope="module")
def fmriprep_ds(tmp_path_factory, layout_cache):
    cache = layout_cache
    root = tmp_path_factory.mktemp("fp") / "ds"
    truth = simulate(root, cache, seed=3)
    to_fmriprep(root, truth, seed=3)
    return root, truth, cache


def _sidecar(out, stem="sub-01_task-story_desc-MiniLM_scores"):
    return json.loads((out / "sub-01" / "func" / f"{stem}.json").read_text())


def test_the_cli_reads_fmriprep_by_default_and_finds_the_planted_voxels(fmriprep_ds, tmp_path):
    root, truth, cache = fmriprep_ds
    out = tmp_path / "out"
    res = forked_cli([root, out, "participant", "--config", fast_config(tmp_path / "c.yaml"), "--quiet"], cache,
                     tmp_path / "cli")
    assert res.returncode == 0, res.stderr
    stem = out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM"
    assert (stem.parent / "sub-01_task-story_desc-MiniLML01_stat-r_statmap.nii.gz").is_file()
    table = pd.read_csv(f"{stem}_scores.tsv", sep="\t", na_values="n/a")
    r1 = layer_r(table)
    planted, noise = planted_flat(root, truth)
    # the fMRIPrep grid (6x6x5, its brain mask) is scored, not the raw 5x5x4 noise
    assert set(r1.index) == planted | noise
    assert separated(r1, planted, noise)
    side = _sidecar(out)
    pre = side["Preprocessing"]
    assert pre["ConfoundStrategy"] == "simple"
    # nilearn's "simple" preset: 24 motion columns (full), csf + white_matter (basic), the cosines (high_pass)
    assert pre["NConfounds"] == {"1": 24 + 2 + N_COSINE, "2": 24 + 2 + N_COSINE}
    assert pre["DroppedVolumes"] == {"1": list(range(N_NSS)), "2": list(range(N_NSS))}
    assert pre["Mask"].endswith(f"run-1_space-{SPACE}_desc-brain_mask.nii.gz") and pre["Space"] == SPACE
    read = " ".join(side["Sources"])
    assert f"space-{SPACE}_desc-preproc_bold.nii.gz" in read and "desc-confounds_timeseries.tsv" in read
    assert "desc-brain_mask" in read and "/derivatives/fmriprep/" in read
    assert side["NSamples"] == 2 * (60 - N_NSS)


def test_confounds_are_regressed_and_outlier_volumes_dropped(fmriprep_ds):
    from brainalign.pipeline.config import validate_config
    from brainalign.pipeline.preprocess import preprocess
    from brainalign.pipeline.sources import load_participant
    from brainalign.pipeline.specs import specs_from_config

    root, _, _ = fmriprep_ds
    for strategy in ("simple", "none", "scrubbing"):
        specs = specs_from_config(validate_config({"data": {"source": {"kind": "bids", "root": str(root)},
                                                            "preprocess": {"confounds": strategy}}}))
        loaded = load_participant(specs.load, "01", "story")
        raw = loaded.recording
        assert raw.attrs["space"] == SPACE and raw.sizes["time"] == 120  # every volume, uncleaned
        rec = preprocess(raw, specs.preprocess, loaded.confounds)
        pre = json.loads(rec.attrs["preprocessing"])
        conf = pd.read_csv(root / "derivatives/fmriprep/sub-01/func/sub-01_task-story_run-1_desc-confounds_timeseries.tsv",
                           sep="\t", na_values="n/a")
        kept = np.setdiff1d(np.arange(60), pre["DroppedVolumes"]["1"])
        run1 = rec.values[np.asarray(rec["run"].values) == "1"]
        assert run1.shape[0] == kept.size and set(range(N_NSS)) <= set(pre["DroppedVolumes"]["1"])
        corr = [abs(np.corrcoef(run1[:, j], conf["trans_x"].to_numpy()[kept])[0, 1]) for j in range(20)]
        if strategy == "none":
            assert max(corr) > 0.3 and pre["NConfounds"]["1"] == 0
        else:
            assert max(corr) < 1e-6
    # scrubbing: nilearn's preset drops volumes whose FD > 0.5 mm or std DVARS > 1.5, and short segments
    fd, dv = conf["framewise_displacement"].to_numpy(), conf["std_dvars"].to_numpy()
    flagged = set(np.flatnonzero((fd > 0.5) | (dv > 1.5)).tolist())
    assert flagged <= set(pre["DroppedVolumes"]["1"])


def test_confounds_flag_and_strategy_errors(fmriprep_ds, tmp_path):
    root, _, cache = fmriprep_ds
    cfg = fast_config(tmp_path / "c.yaml", extra={"data": {"preprocess": {"confounds": True}}})
    res = cli([root, tmp_path / "o1", "participant", "--config", cfg], cache)  # a fresh interpreter: one line
    assert res.returncode == 2 and "data.preprocess.confounds" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    cfg = fast_config(tmp_path / "c2.yaml", extra={"baseline": {"confounds": True}})
    res = forked_cli([root, tmp_path / "o2", "participant", "--config", cfg], cache, tmp_path / "o2-cli")
    assert res.returncode == 2 and "data.preprocess.confounds" in res.stderr
    res = forked_cli([root, tmp_path / "o3", "participant", "--space", "T1w", "--config",
                      fast_config(tmp_path / "c3.yaml")], cache, tmp_path / "o3-cli")
    assert res.returncode == 2 and "--space" in res.stderr and "Traceback" not in res.stderr
