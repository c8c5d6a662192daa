"""Containers: validation on construction and the removal of unusable targets."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from brainalign.data import drop_invalid_targets, invalid_targets, make_recording, make_stimulus
from brainalign.errors import (
    ConstantSignalError,
    DataQualityWarning,
    MissingFieldError,
    NonFiniteError,
    ShapeMismatchError,
)


def test_recording_and_stimulus_validation():
    with pytest.raises(ShapeMismatchError, match="5 time points but 4 times"):
        make_recording(np.zeros((5, 2)), np.arange(4.0), modality="fmri")
    with pytest.raises(MissingFieldError, match="no 'onset' column"):
        make_stimulus({"word": ["a"]})
    with pytest.raises(NonFiniteError, match="1 non-numeric onsets"):
        make_stimulus({"word": ["a", "b"], "onset": [0.0, "x"]})
    s = make_stimulus({"word": [" b ", "a"], "onset": [2.0, 1.0], "run": [1, 1]})
    assert s["word"].tolist() == ["a", "b"] and s["duration"].tolist() == [0.0, 0.0]


def test_invalid_targets_are_counted_in_one_warning():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((10, 5))
    data[:, 1] = 3.0  # constant everywhere
    data[5:, 2] = 1.0  # constant in run 2 only
    data[3, 3] = np.nan
    rec = make_recording(data, np.arange(10.0), np.repeat([1, 2], 5), modality="fmri", tr=2.0)
    nonfinite, constant = invalid_targets(rec.values, rec["run"].values)
    assert nonfinite.tolist() == [False, False, False, True, False]
    assert constant.tolist() == [False, True, True, False, False]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = drop_invalid_targets(rec, what="sub-01")
    assert len(w) == 1 and issubclass(w[0].category, DataQualityWarning)
    assert "sub-01: dropped 3 of 5 targets (2 constant within a run, 1 with NaN/inf values)" in str(w[0].message)
    assert out["target"].values.tolist() == [0, 4] and out.attrs["n_dropped_targets"] == 3


def test_alice_s33_is_constant_and_refused(shared_data):
    """The real bad input: participant s33 has zero variance in every ROI."""
    path = shared_data / "alice-fmri" / "10mm" / "s33-timecourses.txt"
    data = np.loadtxt(path)
    rec = make_recording(data, 20 + 2.0 * np.arange(data.shape[0]), modality="fmri", tr=2.0,
                         target=["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"], sources=[str(path)])
    with pytest.raises(ConstantSignalError, match=r"s33-timecourses.txt: all 6 targets are unusable \(6 constant"):
        drop_invalid_targets(rec)
    ok = np.loadtxt(shared_data / "alice-fmri" / "10mm" / "s18-timecourses.txt")
    rec_ok = make_recording(ok, 20 + 2.0 * np.arange(ok.shape[0]), modality="fmri", tr=2.0)
    assert drop_invalid_targets(rec_ok) is rec_ok
