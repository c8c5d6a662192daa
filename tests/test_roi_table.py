"""ROI tables and the Alice adapter, on real files (tmp_path) and the real recordings."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.errors import (
    ConstantSignalError,
    CorruptFileError,
    MissingDataError,
    ShapeMismatchError,
    UnsafeNameError,
)
from brainalign.io.roi_table import (
    ALICE_ROIS,
    list_alice_participants,
    load_alice,
    load_alice_all,
    load_roi_timecourses,
)


def _write(path, arr, header=None):
    with open(path, "w") as fh:
        if header:
            fh.write("\t".join(header) + "\n")
        np.savetxt(fh, arr, fmt="%.7e")
    return path


def test_roi_table_header_times_and_values(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(15, 3))
    rec = load_roi_timecourses(_write(tmp_path / "a.txt", arr, ["A", "B", "C"]), tr=1.5, t0=4.0)
    assert list(rec["target"].values) == ["A", "B", "C"]
    np.testing.assert_allclose(rec["time"].values, 4.0 + 1.5 * np.arange(15))
    np.testing.assert_allclose(rec.values, arr, rtol=1e-6)
    assert rec.attrs["tr"] == 1.5 and rec.attrs["modality"] == "fmri"


def test_roi_table_columns_override_and_count_check(tmp_path):
    arr = np.random.default_rng(1).normal(size=(10, 2))
    p = _write(tmp_path / "b.txt", arr)
    rec = load_roi_timecourses(p, tr=2.0, columns=["x", "y"])
    assert list(rec["target"].values) == ["x", "y"]
    with pytest.raises(ShapeMismatchError, match="b.txt"):
        load_roi_timecourses(p, tr=2.0, columns=["x", "y", "z"])


def test_roi_table_constant_policy(tmp_path):
    arr = np.random.default_rng(2).normal(size=(12, 3))
    arr[:, 1] = 5.0
    p = _write(tmp_path / "c.txt", arr, ["A", "B", "C"])
    with pytest.warns(UserWarning, match="B"):
        rec = load_roi_timecourses(p, tr=2.0)
    assert list(rec["target"].values) == ["A", "C"]
    with pytest.warns(UserWarning, match="B"):
        assert load_roi_timecourses(p, tr=2.0, constant="warn").sizes["target"] == 3
    with pytest.raises(ConstantSignalError, match="B"):
        load_roi_timecourses(p, tr=2.0, constant="raise")
    allflat = _write(tmp_path / "d.txt", np.ones((12, 3)))
    with pytest.raises(ConstantSignalError, match="d.txt"):
        load_roi_timecourses(allflat, tr=2.0)


def test_roi_table_bad_files(tmp_path):
    with pytest.raises(MissingDataError, match="nope.txt"):
        load_roi_timecourses(tmp_path / "nope.txt", tr=2.0)
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n3 nan\n")
    with pytest.raises(CorruptFileError, match="bad.txt"):
        load_roi_timecourses(bad, tr=2.0)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("1 2\n3\n")
    with pytest.raises(CorruptFileError, match="ragged.txt"):
        load_roi_timecourses(ragged, tr=2.0)


def test_alice_participant(shared_data):
    root = shared_data / "alice-fmri"
    rec, stim, base = load_alice(root, "s18")
    assert rec.shape == (362, 6) and tuple(rec["target"].values) == ALICE_ROIS
    np.testing.assert_allclose(rec["time"].values, 20 + 2 * np.arange(362))
    assert len(stim) == 2127 and stim["word"].iloc[0] == "Alice"
    assert list(base.columns[:2]) == ["rate", "sndpwr"] and base.shape == (362, 8)
    # the authors' rate regressor is onsets under the SPM HRF on this clock (README: r = 0.989)
    from nilearn.glm.first_level import compute_regressor

    ons = stim["onset"].to_numpy()
    reg, _ = compute_regressor(np.vstack([ons, np.zeros_like(ons), np.ones_like(ons)]), "spm", rec["time"].values)
    assert np.corrcoef(reg[:, 0], base["rate"])[0, 1] > 0.98
    # motion: the last 362 of the 372 rows (ten volumes discarded before the ROI data)
    motion = np.loadtxt(next(root.glob("s18-rp_*.txt")))
    np.testing.assert_allclose(base.iloc[:, 2:].to_numpy(), motion[-362:])


def test_alice_batch_skips_s33(shared_data):
    root = shared_data / "alice-fmri"
    assert len(list_alice_participants(root)) == 28
    with pytest.raises(ConstantSignalError, match="s33"):
        load_alice(root, "33", "6mm")
    loaded, skipped = load_alice_all(root, "10mm", participants=["s18", "s33", "s22"])
    assert list(loaded) == ["s18", "s22"] and list(skipped) == ["s33"]
    with pytest.raises(MissingDataError, match="s18"):
        load_alice(root, "s99")
    with pytest.raises(UnsafeNameError):
        load_alice(root, "../s18")


def test_alice_all_27_usable(shared_data):
    for res in ("10mm", "6mm"):
        loaded, skipped = load_alice_all(shared_data / "alice-fmri", res)
        assert len(loaded) == 27 and list(skipped) == ["s33"]
