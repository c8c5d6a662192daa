"""``brainalign report OUT`` re-renders HTML from disk: tables untouched, settings from the sidecars."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from brainalign.errors import MissingDataError
from brainalign.pipeline.report import write_all_reports
from brainalign.pipeline.simulate import simulate_bids

BIN = Path(sys.executable).parent / "brainalign"
CFG = """data: {{source: {{kind: bids, root: '{root}', mask: '{mask}'}}}}
models: [{{label: MiniLM, path: 'packaged:minilm', layers: [1, 3], context_words: 20}}]
alignment: {{trim: [3, 3]}}
scoring: {{methods: [encoding, rsa], inner_cv: 3, alphas: [10.0, 1000.0, 100000.0]}}
statistics: {{n_bootstrap: 50, group_test: ttest, q: {q}}}
execution: {{cache_dir: '{cache}'}}
"""


def cli(*args, cache):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="2", BRAINALIGN_CACHE=str(cache))
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A two-participant simulated fMRI study run by ``brainalign run`` with ttest and q = 0.2."""
    tmp = tmp_path_factory.mktemp("report")
    cache, root = tmp / "cache", tmp / "bids"
    truth = simulate_bids(root, "fmri", n_subjects=2, n_runs=2, n_volumes=60, grid=(7, 7, 5), layers=(1, 3),
                          targets_per_layer=10, snr=1.5, n_words=150, seed=11, cache_dir=str(cache))
    cfg = tmp / "study.yaml"
    cfg.write_text(CFG.format(root=root, mask=root / truth["mask"], q=0.2, cache=cache))
    out = tmp / "out"
    res = cli("run", cfg, "--output", out, "--quiet", cache=cache)
    assert res.returncode == 0, res.stderr
    return out, cache


def _tables(out: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.suffix in (".tsv", ".json", ".gz", ".nc")}


def test_report_never_recomputes_tables(study):
    out, cache = study
    before = _tables(out)
    assert any("group" in str(p) and p.suffix == ".tsv" for p in before)
    (out / "group.html").unlink()
    res = cli("report", out, cache=cache)
    assert res.returncode == 0, res.stderr
    assert _tables(out) == before  # the ttest group table is not rewritten with default (wilcoxon) statistics
    assert (out / "group.html").is_file() and (out / "sub-01.html").is_file()
    assert "ttest" in (out / "group.html").read_text()


def test_report_uses_the_studys_fdr_level(study):
    out, _ = study
    scores = pd.read_csv(out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_scores.tsv", sep="\t")
    enc = scores[(scores.method == "encoding") & scores.fold.isna() & (scores.model == "MiniLM")]
    best = int(enc[enc.metric == "r"].groupby("layer")["value"].mean().idxmax())
    p = enc[(enc.metric == "p_fdr") & (enc.layer == best)]["value"]
    n_sig = int((p < 0.2).sum())
    html = (out / "sub-01.html").read_text()
    assert f"Best layer (mean r over targets): {best};" in html
    assert f"targets with p_fdr &lt; 0.2 at that layer: {n_sig} of {len(p)}" in html
    assert "p_fdr &lt; 0.05" not in html


def test_report_of_a_missing_folder_is_refused(tmp_path, study):
    _, cache = study
    with pytest.raises(MissingDataError, match="does not exist"):
        write_all_reports(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="no participant results"):
        write_all_reports(tmp_path / "empty")
    res = cli("report", tmp_path / "nowhere", cache=cache)
    assert res.returncode == 2
    assert "nowhere" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "nowhere").exists()
