"""fMRI's default alignment is the SPM HRF with no extra delay (issue 14, docs/validation.md 3b),
and ``alignment: hrf`` no longer inherits Lanczos' FIR delays 1-4."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from brainalign.align import resolve_delays, resolve_method
from brainalign.align.design import DEFAULT_DELAYS
from brainalign.pipeline.config import validate_config
from brainalign.pipeline.simulate import simulate_bids
from brainalign.pipeline.specs import specs_from_config
from brainalign.pipeline.study import run_config


def test_auto_is_hrf_for_fmri_and_delays_follow_the_method():
    assert resolve_method("auto", "fmri") == "hrf"
    assert resolve_method("auto", "eeg") == "epochs"
    assert resolve_delays(None, "hrf") == (0,) == DEFAULT_DELAYS["hrf"]
    assert resolve_delays(None, "lanczos") == (1, 2, 3, 4)
    assert resolve_delays([2, 3], "hrf") == (2, 3)  # what the user wrote is kept


@pytest.mark.parametrize("align, want", [({}, None), ({"method": "hrf"}, None), ({"delays": [1, 2]}, (1, 2))])
def test_config_leaves_delays_to_the_method_unless_given(align, want):
    cfg = validate_config({"data": {"source": {"kind": "bids", "root": "."}},
                           "models": [{"label": "m", "path": "packaged:minilm"}], "alignment": align})
    assert specs_from_config(cfg).align.delays == want


@pytest.mark.parametrize("bad", [[], [-1]])
def test_empty_or_negative_delays_are_refused(bad):
    with pytest.raises(Exception, match="delays"):
        validate_config({"data": {"source": {"kind": "bids", "root": "."}},
                         "models": [{"label": "m", "path": "packaged:minilm"}], "alignment": {"delays": bad}})


@pytest.mark.parametrize("align, method, delays", [("", "hrf", [0]), ("alignment: {method: hrf}\n", "hrf", [0]),
                                                   ("alignment: {method: lanczos}\n", "lanczos", [1, 2, 3, 4])])
def test_sidecar_records_the_resolved_alignment(tmp_path: Path, align, method, delays):
    cache, root = tmp_path / "cache", tmp_path / "bids"
    truth = simulate_bids(root, "fmri", n_subjects=1, n_runs=2, n_volumes=50, grid=(6, 6, 4), layers=(1,),
                          targets_per_layer=8, n_words=120, seed=3, cache_dir=str(cache))
    cfg = tmp_path / "study.yaml"
    cfg.write_text(f"data: {{source: {{kind: bids, root: {root}, task: story, mask: {root / truth['mask']}}}}}\n"
                   "models: [{label: MiniLM, path: 'packaged:minilm', layers: [0, 1], context_words: 20}]\n" + align +
                   "scoring: {methods: [encoding], inner_cv: 3, permutations: 0, alphas: [10.0, 1000.0, 100000.0]}\n"
                   "statistics: {n_bootstrap: 20}\noutputs: {report: false, maps: false}\n"
                   f"execution: {{cache_dir: {cache}}}\n")
    assert run_config(cfg, out_dir=tmp_path / "out", progress=False) == 0
    side = json.loads(next((tmp_path / "out").rglob("sub-01_*_scores.json")).read_text())
    assert side["Alignment"] == method and side["AlignmentDelays"] == delays
