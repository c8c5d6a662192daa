"""Per-word ERP tables and the Frank 2015 adapter, on real files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.errors import CorruptFileError, MissingDataError, MissingFieldError
from brainalign.io.word_table import (
    FRANK_COLUMNS,
    load_frank2015,
    load_word_erp,
    read_frank2015,
)

HEADER = "\t".join(FRANK_COLUMNS)


def _tiny(tmp_path, rows):
    p = tmp_path / "data_EEG.csv"
    p.write_text(HEADER + "\n" + "\n".join("\t".join(map(str, r)) for r in rows) + "\n")
    return p


ROWS = [
    # subj sent pos item baseline N400 reject_data word log_freq nr_char reject_word
    (1, 7, 1, 701, 0.1, 1.0, "false", "None", -9.1, 4, "true"),
    (1, 7, 2, 702, 0.2, 2.0, "false", "of", -14.4, 2, "false"),
    (1, 7, 3, 703, 0.3, 3.0, "true", "it.", "", 3, "true"),
    (2, 7, 1, 701, 0.1, 4.0, "false", "None", -9.1, 4, "true"),
    (2, 7, 2, 702, 0.2, "", "true", "of", -14.4, 2, "false"),
    (2, 7, 3, 703, 0.3, 6.0, "false", "it.", "", 3, "true"),
    (2, 5, 1, 501, 0.0, 7.0, "false", "Go", -10.0, 2, "false"),
    (1, 5, 1, 501, 0.0, 8.0, "false", "Go", -10.0, 2, "false"),
]


def test_tiny_table_drops_flags_keeps_context(tmp_path):
    p = _tiny(tmp_path, ROWS)
    raw = read_frank2015(p)
    assert raw["word"].iloc[0] == "None" and raw["reject_data"].dtype == bool
    tidy = load_frank2015(p)
    assert sorted(zip(tidy["subject"], tidy["item"])) == [("1", 501), ("1", 702), ("2", 501)]
    assert set(load_frank2015(p, reject=("reject_data",))["item"]) == {501, 701, 702, 703}
    resp, stim, feats = load_word_erp(p)
    # every word stays in the stimulus (context), sorted by sentence then position
    assert list(stim["word"]) == ["Go", "None", "of", "it."] and list(stim["sentence"]) == [5, 7, 7, 7]
    assert resp.shape == (4, 2) and list(resp["target"].values) == ["1", "2"]
    expected = np.array([[8.0, 7.0], [np.nan, np.nan], [2.0, np.nan], [np.nan, np.nan]])
    np.testing.assert_array_equal(resp.values, expected)
    assert list(feats.columns) == ["log_freq", "length", "position"]
    np.testing.assert_array_equal(feats["position"], [1, 1, 2, 3])


def test_tiny_table_errors(tmp_path):
    with pytest.raises(MissingDataError):
        read_frank2015(tmp_path / "absent.csv")
    bad = [list(r) for r in ROWS]
    bad[2][6] = "maybe"
    with pytest.raises(CorruptFileError, match="line 4.*reject_data"):
        read_frank2015(_tiny(tmp_path, bad))
    bad = [list(r) for r in ROWS]
    bad[1][5] = "x1"
    with pytest.raises(CorruptFileError, match="line 3.*N400"):
        read_frank2015(_tiny(tmp_path, bad))
    p = tmp_path / "short.csv"
    p.write_text("subj_nr\tword\n1\ta\n")
    with pytest.raises(MissingFieldError, match="N400"):
        read_frank2015(p)


def test_frank2015_real(shared_data):
    path = shared_data / "frank2015-eeg" / "data_EEG.csv"
    raw = read_frank2015(path)
    assert len(raw) == 46344 and raw["subj_nr"].nunique() == 24 and raw["sent_nr"].nunique() == 205
    tidy = load_frank2015(path)
    flagged = raw["reject_data"] | raw["reject_word"]
    assert len(tidy) == int((~flagged).sum()) and tidy["N400"].notna().all()
    resp, stim, feats = load_word_erp(path)
    assert resp.shape == (1931, 24) and len(stim) == 1931
    assert int(np.isfinite(resp.values).sum()) == len(tidy)
    # the words rebuild the sentences, in order
    first = stim[stim["sentence"] == 1]["word"].str.cat(sep=" ")
    assert first == "Anne lost control and laughed."
    assert (stim["word"] == "None").sum() == 1  # a real word, not a missing value
    # baseline features complete wherever a response was kept
    used = np.isfinite(resp.values).any(axis=1)
    assert not feats[used].isna().any().any()
    # the response matrix matches the tidy table cell by cell
    row = tidy.iloc[123]
    i = int(np.flatnonzero(stim["item"].to_numpy() == row["item"])[0])
    assert resp.sel(target=row["subject"]).values[i] == row["N400"]
    assert isinstance(stim, pd.DataFrame) and resp.attrs["modality"] == "erp"
