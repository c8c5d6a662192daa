"""Word tables: Praat TextGrids (long and short text formats), transcripts, events.tsv."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.errors import CorruptFileError, InputError, MissingDataError, MissingFieldError
from brainalign.io import read_events_words, read_textgrid, read_transcript, read_words

LONG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 3.0
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 3.0
        intervals: size = 5
        intervals [1]:
            xmin = 0
            xmax = 0.5
            text = ""
        intervals [2]:
            xmin = 0.5
            xmax = 0.9
            text = "hello"
        intervals [3]:
            xmin = 0.9
            xmax = 1.2
            text = "sp"
        intervals [4]:
            xmin = 1.2
            xmax = 1.8
            text = "world"
        intervals [5]:
            xmin = 1.8
            xmax = 3.0
            text = "  "
    item [2]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 3.0
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 3.0
            text = "HH"
'''

SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
2.5
<exists>
1
"IntervalTier"
"transcript"
0
2.5
3
0
1.25
"bonjour"
1.25
1.5
""
1.5
2.5
"monde"
'''


def test_long_and_short_textgrids(tmp_path):
    f = tmp_path / "a.TextGrid"
    f.write_text(LONG)
    stim = read_textgrid(f, run="2")
    assert stim["word"].tolist() == ["hello", "world"]  # empty, blank and "sp" intervals are not words
    np.testing.assert_allclose(stim["onset"], [0.5, 1.2])
    np.testing.assert_allclose(stim["duration"], [0.4, 0.6])
    assert stim["run"].tolist() == ["2", "2"]
    with pytest.raises(MissingFieldError, match=r"has no tier 'word' \(tiers: words, phones\)"):
        read_textgrid(f, tier="word")
    g = tmp_path / "b.TextGrid"
    g.write_text(SHORT)
    s2 = read_textgrid(g)  # the only interval tier
    assert s2["word"].tolist() == ["bonjour", "monde"] and s2["onset"].tolist() == [0.0, 1.5]
    bad = tmp_path / "c.TextGrid"
    bad.write_text("File type = \"ooTextFile\"\nthis is not a textgrid")
    with pytest.raises(CorruptFileError, match="c.TextGrid is not a readable Praat TextGrid"):
        read_textgrid(bad)
    with pytest.raises(MissingDataError, match="TextGrid .*nope.TextGrid does not exist; .* holds: a.TextGrid"):
        read_textgrid(tmp_path / "nope.TextGrid")


def test_real_alice_textgrid_matches_its_word_table(shared_data):
    stim_dir = shared_data / "alice-fmri" / "stimulus"
    tg = read_textgrid(stim_dir / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid")
    tab = read_transcript(stim_dir / "words.tsv")  # columns onset, offset, word
    assert len(tg) == len(tab) == 2127
    assert (tg["word"].to_numpy() == tab["word"].to_numpy()).all()
    np.testing.assert_allclose(tg["onset"], tab["onset"], atol=1e-4)
    np.testing.assert_allclose(tg["duration"], tab["duration"], atol=2e-4)
    assert tg["word"].iloc[0] == "Alice" and 20.0 < tg["onset"].iloc[0] < 20.1


def test_transcripts_and_events(tmp_path):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"Start": [0.1, 0.6], "End": [0.5, 0.9], "Text": ["a", "b"], "sentence": [1, 1]}).to_csv(csv, index=False)
    s = read_words(csv, run=3)
    assert s.columns.tolist()[:5] == ["word", "onset", "duration", "run", "sentence"]
    np.testing.assert_allclose(s["duration"], [0.4, 0.3])
    pd.DataFrame({"time": [0.1], "word": ["x"]}).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(MissingFieldError, match=r"u.csv has no onset column 'onset' \(columns: time, word\)"):
        read_transcript(tmp_path / "u.csv")
    assert read_transcript(tmp_path / "u.csv", onset_column="time")["onset"].tolist() == [0.1]
    ev = tmp_path / "sub-01_task-x_events.tsv"
    pd.DataFrame({"onset": [0.0, 1.0, 2.0], "duration": [0, 0, 0], "trial_type": ["word", "tone", "word"],
                  "value": ["yes", "n/a", "no"]}).to_csv(ev, sep="\t", index=False)
    e = read_words(ev, word_column="value")
    assert e["word"].tolist() == ["yes", "no"]
    assert read_events_words(ev, word_column="value", trial_type="word")["onset"].tolist() == [0.0, 2.0]
    with pytest.raises(MissingFieldError, match=r"sub-01_task-x_events.tsv has no word column 'word' \(columns: onset, duration, trial_type, value\)"):
        read_events_words(ev)
    with pytest.raises(InputError):
        read_textgrid(_two_tier(tmp_path))


def _two_tier(tmp_path):
    f = tmp_path / "two.TextGrid"
    f.write_text(LONG.replace('name = "words"', 'name = "ortho"'))
    return f
