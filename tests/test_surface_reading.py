"""GIFTI reading details on tiny fsnative surfaces (no model): TR sources, partners, vertex checks, empty vertices."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from _surface_sim import gifti_series
from brainalign.errors import DataQualityWarning, MissingDataError, MissingFieldError, ShapeMismatchError
from brainalign.io import load_bids

N_VOL, N_VERT = 30, 40


def _tiny(root: Path, *, time_step: str | None = None, sidecar_tr: float | None = None, runs=("1", "2"),
          n_vert: dict | None = None, hemis=("L", "R")) -> Path:
    """A raw dataset (events) and fsnative GIFTI pairs of ``N_VOL`` volumes; vertex 0 of each hemisphere is 0 throughout."""
    (root / "sub-01" / "func").mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "tiny", "BIDSVersion": "1.9.0"}))
    func = root / "derivatives" / "fmriprep" / "sub-01" / "func"
    func.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for r in runs:
        pd.DataFrame({"onset": [2.0, 5.0, 9.0], "duration": 0.3, "word": ["a", "story", "begins"]}).to_csv(
            root / "sub-01" / "func" / f"sub-01_task-t_run-{r}_events.tsv", sep="\t", index=False)
        for h in hemis:
            n = (n_vert or {}).get(r, N_VERT)
            data = 100 + rng.standard_normal((N_VOL, n)).astype(np.float32)
            data[:, 0] = 0.0  # no data: the medial wall
            img = gifti_series(data, 2.0)
            if time_step is not None:
                img.darrays[0].meta["TimeStep"] = time_step
            nib.save(img, str(func / f"sub-01_task-t_run-{r}_hemi-{h}_space-fsnative_bold.func.gii"))
        if sidecar_tr is not None:
            (func / f"sub-01_task-t_run-{r}_space-fsnative_bold.json").write_text(json.dumps({"RepetitionTime": sidecar_tr}))
    return root


def _load(root, **kw):
    return load_bids(root, "01", "t", space="fsnative", clean=False, confounds=None, **kw)


def test_gifti_time_step_in_ms_is_the_tr_without_a_sidecar(tmp_path):
    rec, stim = _load(_tiny(tmp_path / "d", time_step="2000.000000"))
    assert rec.attrs["tr"] == 2.0
    assert rec.sizes == {"time": 2 * N_VOL, "target": 2 * (N_VERT - 1)}
    assert rec.attrs["n_empty_targets"] == 2 and "L_0" not in set(rec["target"].values)
    np.testing.assert_array_equal(np.unique(rec["run"].values), ["1", "2"])
    assert len(stim) == 6


def test_sidecar_tr_is_inherited_and_wins(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec, _ = _load(_tiny(tmp_path / "d", time_step="1.0", sidecar_tr=2.0))
    assert rec.attrs["tr"] == 2.0
    assert any(issubclass(w.category, DataQualityWarning) and "time step 1 s" in str(w.message) for w in caught)


def test_no_tr_anywhere_names_the_field(tmp_path):
    with pytest.raises(MissingFieldError, match="data.source.tr"):
        _load(_tiny(tmp_path / "d"))
    rec, _ = _load(tmp_path / "d", tr=1.5)
    assert rec.attrs["tr"] == 1.5


def test_a_hemisphere_without_its_partner_is_refused(tmp_path):
    with pytest.raises(MissingDataError, match="no hemi-R partner"):
        _load(_tiny(tmp_path / "d", sidecar_tr=2.0, hemis=("L",)))


def test_runs_with_other_vertex_counts_are_refused(tmp_path):
    with pytest.raises(ShapeMismatchError, match="vertices"):
        _load(_tiny(tmp_path / "d", sidecar_tr=2.0, n_vert={"2": N_VERT + 1}))


def test_runs_option_picks_runs(tmp_path):
    rec, stim = _load(_tiny(tmp_path / "d", sidecar_tr=2.0), runs=["2"])
    assert set(rec["run"].values) == {"2"} and set(stim["run"]) == {"2"}
    with pytest.raises(MissingDataError, match="no surface run '3'"):
        _load(tmp_path / "d", runs=["3"])
