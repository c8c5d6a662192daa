"""The group step writes the group's inference; ``brainalign report`` only reads it (issue 16).

A three-participant simulated fMRI study is run by ``brainalign run``. The group
step writes the layer profile with its participant bootstrap (TSV) and nilearn's
permutation group test (NIfTI statmap), each with a sidecar stating its settings
(from the configuration). The report renders from those files: with the
participants' results removed (the inputs a recomputation would need) it still
draws the group profile and the group test; with the files removed (an output
folder written before this change) it says "not computed" and writes nothing else;
and two renders give identical HTML.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign.pipeline import group_inference, report
from brainalign.pipeline.simulate import simulate_bids

BIN = Path(sys.executable).parent / "brainalign"
SEED, N_BOOT, CI = 7, 60, 0.9
CFG = """data: {{source: {{kind: bids, root: '{root}', mask: '{mask}'}}}}
models: [{{label: MiniLM, path: 'packaged:minilm', layers: [1, 3], context_words: 20}}]
alignment: {{trim: [3, 3]}}
scoring: {{methods: [encoding], inner_cv: 3, alphas: [10.0, 1000.0, 100000.0], seed: {seed}}}
statistics: {{n_bootstrap: {n_boot}, ci: {ci}, group_test: ttest, q: 0.2}}
execution: {{cache_dir: '{cache}'}}
"""

def cli(*args, cache):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="2", BRAINALIGN_CACHE=str(cache))
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("groupdisk")
    cache, root = tmp / "cache", tmp / "bids"
    truth = simulate_bids(root, "fmri", n_subjects=3, n_runs=2, n_volumes=60, grid=(7, 7, 5), layers=(1, 3),
                          targets_per_layer=10, snr=1.5, n_words=150, seed=13, cache_dir=str(cache))
    cfg = tmp / "study.yaml"
    cfg.write_text(CFG.format(root=root, mask=root / truth["mask"], cache=cache, seed=SEED, n_boot=N_BOOT, ci=CI))
    out = tmp / "out"
    res = cli("run", cfg, "--output", out, "--quiet", cache=cache)
    assert res.returncode == 0, res.stderr
    return out, cache


def kinds(html: str) -> set[str]:
    """The data-kind of every figure in a page."""
    return set(re.findall(r"data-kind=['\"]([^'\"]+)['\"]", html))


def _best_layer(out: Path) -> int:
    tab = pd.read_csv(out / "group" / "task-story_desc-MiniLM_scores.tsv", sep="\t", dtype={"target": str})
    return group_inference.best_group_layer(tab, "MiniLM")


def test_the_group_step_writes_the_profile_and_the_group_test(study):
    out, _ = study
    prof, side = group_inference.read_profile(out, "story", "MiniLM")
    assert side["NBootstrap"] == N_BOOT and side["Seed"] == SEED and side["CI"] == CI and side["NParticipants"] == 3
    # the all-targets curve is the mean over participants of each one's mean r over targets, from their tables
    means = []
    for s in ("01", "02", "03"):
        t = pd.read_csv(out / f"sub-{s}" / "func" / f"sub-{s}_task-story_desc-MiniLM_scores.tsv", sep="\t")
        t = t[(t.method == "encoding") & t.fold.isna() & (t.model == "MiniLM") & (t.metric == "r")]
        means.append(t.groupby("layer")["value"].mean())
    want = pd.concat(means, axis=1).mean(axis=1)
    got = prof[(prof["var"] == "r") & (prof.targets == "all")].set_index("layer")["mean"]
    np.testing.assert_allclose(got.loc[want.index].to_numpy(), want.to_numpy(), rtol=1e-6)
    assert (prof["ci_low"] <= prof["mean"] + 1e-12).all() and (prof["mean"] <= prof["ci_high"] + 1e-12).all()
    assert set(prof["var"]) == {"r", "r_norm"}  # three participants: the default ceiling is loo_isc
    assert side["Ceilings"] == {s: "loo_isc" for s in ("01", "02", "03")}
    layer = _best_layer(out)
    logp, tside = group_inference.read_test(out, "story", "MiniLM", layer)
    assert tside["NPermutations"] == min(group_inference.GROUP_PERMUTATIONS, 2 ** 3) and tside["Seed"] == SEED
    vals = np.asarray(logp.dataobj)
    assert int(np.sum(vals > tside["Threshold"])) == tside["NPass"] and np.count_nonzero(np.isfinite(vals))


def test_report_twice_gives_identical_html(study):
    out, cache = study
    pages = sorted(out.glob("*.html"))
    assert out / "group.html" in pages
    first = {p: p.read_bytes() for p in pages}
    for _ in range(2):
        res = cli("report", out, cache=cache)
        assert res.returncode == 0, res.stderr
        assert {p: p.read_bytes() for p in pages} == first


def test_report_renders_from_the_written_files_alone(study, tmp_path):
    out, _ = study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for nc in copy.rglob("*_result.nc"):  # what a bootstrap or a permutation test would need
        nc.unlink()
    (copy / "group.html").unlink()
    path = report.group_report(copy)
    html = path.read_text()
    assert {"group-test", "group-profile", "group-ceiling"} <= kinds(html)
    assert f"{N_BOOT} draws, seed {SEED}" in html and "computed by the group step" in html
    assert "r / noise ceiling (loo_isc)" in html
    # the numbers drawn are the file's: change a p_best and see it in the caption
    prof_path = group_inference.profile_path(copy, "story", "MiniLM")
    prof = pd.read_csv(prof_path, sep="\t")
    rows = prof[(prof["var"] == "r") & (prof.targets == "all")]
    best = rows.index[int(np.nanargmax(rows["mean"].to_numpy()))]
    prof.loc[best, "p_best"] = 0.123
    prof.to_csv(prof_path, sep="\t", index=False, na_rep="n/a")
    assert "(p_best 0.12)" in report.group_report(copy).read_text()


def test_an_older_output_folder_renders_and_says_not_computed(study, tmp_path):
    out, cache = study
    old = tmp_path / "old"
    shutil.copytree(out, old)
    for f in [*old.glob("group/*_layerprofile.*"), *old.glob("group/*_stat-logp_statmap.*")]:
        f.unlink()
    before = sorted(p.relative_to(old) for p in old.rglob("*") if p.is_file() and p.suffix != ".html")
    res = cli("report", old, cache=cache)
    assert res.returncode == 0, res.stderr
    html = (old / "group.html").read_text()
    assert "not computed for this output folder; re-run the group step" in html
    assert "group-test" not in kinds(html) and "group-profile" in kinds(html)
    assert sorted(p.relative_to(old) for p in old.rglob("*") if p.is_file() and p.suffix != ".html") == before
