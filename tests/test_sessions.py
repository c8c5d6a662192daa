"""Sessions (issue 15): ses- in every name, a session column, sessions side by side or pooled into one fit."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from _damaged_cases import forked_cli as cli  # the CLI forked from a preloaded interpreter (same checks)
from _layouts import fast_config, layer_r, planted_flat, simulate, split_sessions, to_fmriprep, separated


@pytest.fixture(scope="module")
def two_sessions(tmp_path_factory, layout_cache):
    """fMRIPrep derivatives of one participant with two sessions of two runs (the same planted voxels)."""
    root = tmp_path_factory.mktemp("ses") / "ds"
    truth = simulate(root, layout_cache, seed=4, n_runs=4, n_words=160, snr=3.0)
    assert split_sessions(root) == ["1", "2"]
    for ses in ("1", "2"):
        to_fmriprep(root, truth, ses=ses, seed=int(ses))
    return root, truth, layout_cache


def _table(path):
    return pd.read_csv(path, sep="\t", na_values="n/a", dtype={"session": str})


def test_sessions_are_written_side_by_side_and_pooled(two_sessions, tmp_path):
    root, truth, cache = two_sessions
    out, pooled = tmp_path / "out", tmp_path / "pooled"
    cfg = fast_config(tmp_path / "c.yaml")
    loro = fast_config(tmp_path / "loro.yaml", extra={"scoring": {"cv": {"kind": "leave_one_run_out"}}})
    calls = [[root, out, "participant", "--config", cfg, "--session", "1", "--quiet"],
             [root, tmp_path / "none", "participant", "--config", cfg, "--quiet"],
             [root, pooled, "participant", "--config", loro, "--pool-sessions", "--quiet"]]
    with ThreadPoolExecutor(3) as pool:
        first, unnamed, pool_res = pool.map(lambda a, n: cli(a, cache, tmp_path / n), calls, ("first", "unnamed", "pool"))
    assert first.returncode == 0, first.stderr
    assert unnamed.returncode == 2 and "--session" in unnamed.stderr and "pool_sessions" in unnamed.stderr
    assert not (tmp_path / "none").exists()
    second = cli([root, out, "participant", "--config", cfg, "--session", "2", "--quiet"], cache, tmp_path / "second")
    assert second.returncode == 0, second.stderr
    planted, noise = planted_flat(root, truth)
    for ses in ("1", "2"):
        d = out / "sub-01" / f"ses-{ses}" / "func"
        t = _table(d / f"sub-01_ses-{ses}_task-story_desc-MiniLM_scores.tsv")
        assert set(t["session"]) == {ses}
        assert (d / f"sub-01_ses-{ses}_task-story_desc-MiniLML01_stat-r_statmap.nii.gz").is_file()
        side = json.loads((d / f"sub-01_ses-{ses}_task-story_desc-MiniLM_scores.json").read_text())
        assert side["Session"] == ses and all(f"/ses-{ses}/" in s for s in side["Sources"] if "sub-01" in s)
        assert set(layer_r(t).index) == planted | noise  # one session (two short runs) is too weak to separate
    again = cli([root, out, "participant", "--config", cfg, "--session", "1", "--quiet"], cache, tmp_path / "again")
    assert again.returncode == 0 and "1 already up to date" in again.stdout, again.stdout
    # pooled: one fit over both sessions, no ses- entity, session x run as the leave-one-run-out folds
    assert pool_res.returncode == 0, pool_res.stderr
    d = pooled / "sub-01" / "func"
    t = _table(d / "sub-01_task-story_desc-MiniLM_scores.tsv")
    assert set(t["session"]) == {"1+2"}
    folds = t[(t.metric == "r") & t.fold.notna()]["fold"].nunique()
    assert folds == 4
    side = json.loads((d / "sub-01_task-story_desc-MiniLM_scores.json").read_text())
    assert sorted(side["Preprocessing"]["DroppedVolumes"]) == [f"ses-{s}_run-{r}" for s in "12" for r in "12"]
    assert side["NSamples"] == 4 * (60 - 2)
    r1 = layer_r(t)
    assert separated(r1, planted, noise)
