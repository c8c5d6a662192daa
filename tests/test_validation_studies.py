"""The validation study configs, and (slow) the studies on a subset of real participants."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign.pipeline.config import load_config

REPO = Path(__file__).resolve().parents[1]
STUDIES = ["alice_fmri.yaml", "alice_fmri_6mm.yaml", "frank2015_eeg.yaml"]


@pytest.mark.parametrize("name", STUDIES)
def test_study_configs_validate_and_point_at_the_data(name, shared_data, monkeypatch):
    monkeypatch.setenv("BRAINALIGN_SHARED_DATA", str(shared_data))
    cfg = load_config(REPO / "pipelines" / name)
    src = cfg.source
    where = Path(getattr(src, "root", None) or src.path)
    assert where.exists(), where
    assert cfg.baseline is not None and cfg.baseline.label == "baseline"
    if src.kind == "roi_table":
        assert "s33" in src.exclude and cfg.statistics.ceiling == "loo_isc"
        assert cfg.scoring.layer_selection in ("unique", "unique_adjacent", "unique_pairwise", "single", "argmax")
    else:
        assert cfg.scoring.cv.kind == "group" and cfg.scoring.cv.column == "sentence"


def test_study_participants(shared_data, monkeypatch):
    from brainalign.pipeline.sources import list_participants

    monkeypatch.setenv("BRAINALIGN_SHARED_DATA", str(shared_data))
    alice = list_participants(load_config(REPO / "pipelines" / "alice_fmri.yaml").source)
    assert len(alice) == 27 and "s33" not in alice
    frank = list_participants(load_config(REPO / "pipelines" / "frank2015_eeg.yaml").source)
    assert len(frank) == 24


@pytest.mark.slow
@pytest.mark.parametrize("name,subjects", [("alice_fmri.yaml", ["s18", "s22", "s23"]),
                                           ("frank2015_eeg.yaml", ["1", "2"])])
def test_study_runs_on_a_subset(name, subjects, shared_data, tmp_path, monkeypatch):
    from brainalign.pipeline.study import run_config
    from brainalign.validation.report import layer_profiles, participant_scores, summary_table

    monkeypatch.setenv("BRAINALIGN_SHARED_DATA", str(shared_data))
    code = run_config(REPO / "pipelines" / name, out_dir=tmp_path, participants=subjects, progress=False)
    assert code == 0
    part = participant_scores(tmp_path)
    assert set(part["subject"]) == set(subjects)
    assert {"baseline", "MiniLM"} <= set(part["model"])
    lm = part[(part["model"] == "MiniLM") & (part["metric"] == "r")]
    assert set(lm["layer"].dropna().astype(int)) == set(range(7))
    table = summary_table(tmp_path)
    expected = ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"] if "alice" in name else ["N400"]
    assert list(table["target"]) == expected
    assert np.isfinite(table[["baseline r", "LM r", "Δr"]].to_numpy(float)).all()
    assert isinstance(layer_profiles(tmp_path), pd.DataFrame)
