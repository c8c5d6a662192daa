"""brainalign simulate: a valid BIDS dataset with a truth file, reproducible from its seed."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.errors import InputError
from brainalign.pipeline.simulate import simulate_bids, story_words


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from brainalign.encoders import HFEncoder

    return HFEncoder(context_words=8, cache_dir=str(tmp_path_factory.mktemp("cache")))


def test_story_has_its_own_words():
    words = story_words()
    assert 600 <= len(words) <= 1100 and words[0] == "On"


def test_fmri_dataset_layout_truth_and_reproducibility(tmp_path, encoder):
    kw = dict(n_subjects=2, n_runs=2, n_volumes=30, grid=(6, 6, 5), layers=(1, 4), targets_per_layer=10,
              n_words=80, seed=4, encoder=encoder)
    truth = simulate_bids(tmp_path / "a", "fmri", **kw)
    simulate_bids(tmp_path / "b", "fmri", **kw)
    root = tmp_path / "a"
    assert json.loads((root / "dataset_description.json").read_text())["DatasetType"] == "raw"
    func = root / "sub-02" / "func"
    img = nib.load(func / "sub-02_task-story_run-2_bold.nii.gz")
    assert img.shape == (6, 6, 5, 30)
    assert json.loads((func / "sub-02_task-story_run-2_bold.json").read_text())["RepetitionTime"] == 2.0
    ev = pd.read_csv(func / "sub-02_task-story_run-1_events.tsv", sep="\t")
    assert {"onset", "duration", "word"} <= set(ev.columns) and ev.onset.is_monotonic_increasing
    assert ev.onset.max() < 30 * 2.0
    mask = np.asarray(nib.load(root / truth["mask"]).dataobj).astype(bool)
    planted = truth["planted"]["1"] + truth["planted"]["4"]
    assert len(set(planted)) == 20 and not set(planted) & set(truth["noise"])
    assert len(planted) + len(truth["noise"]) == mask.sum()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (tmp_path / "b" / f.relative_to(root)).read_bytes(), f


def test_meg_dataset_reads_back_with_mne_bids(tmp_path, encoder):
    from mne_bids import BIDSPath, read_raw_bids

    truth = simulate_bids(tmp_path, "meg", n_subjects=1, n_runs=1, run_seconds=40, n_channels=6,
                          targets_per_layer=2, layers=(2,), n_words=60, seed=1, encoder=encoder)
    raw = read_raw_bids(BIDSPath(subject="01", task="story", run=1, datatype="meg", root=tmp_path), verbose="error")
    assert len(raw.ch_names) == 6 and raw.info["sfreq"] == 100.0
    ev = pd.read_csv(next((tmp_path / "sub-01" / "meg").glob("*_events.tsv")), sep="\t")
    assert "word" in ev.columns and len(ev) == 60
    assert truth["planted"] == {"2": truth["planted"]["2"]} and len(truth["noise"]) == 4


def test_refuses_impossible_requests(tmp_path, encoder):
    with pytest.raises(InputError, match="do not fit"):
        simulate_bids(tmp_path, "meg", n_channels=4, targets_per_layer=3, layers=(1, 2), n_words=30, encoder=encoder)
    with pytest.raises(InputError, match="modality"):
        simulate_bids(tmp_path, "pet", encoder=encoder)
