"""load_bids for MEG, EEG and iEEG: datasets written here by mne-bids, and real vendor files."""
from __future__ import annotations

import warnings

import mne
import numpy as np
import pandas as pd
import pytest
from mne_bids import BIDSPath, mark_channels, write_raw_bids

from brainalign.align import word_epochs
from brainalign.errors import InputError, MissingDataError, MissingFieldError
from brainalign.io import list_runs, list_tasks, load_bids

WORDS = ["the", "cat", "sat", "on", "a", "mat"]


def _add_words(bp: BIDSPath, onsets, words, column="word"):
    """Labs add the word text to events.tsv; mne-bids writes onset/duration/trial_type/value/sample."""
    ev = bp.copy().update(suffix="events", extension=".tsv").fpath
    df = pd.read_csv(ev, sep="\t") if ev.is_file() else pd.DataFrame(columns=["onset", "duration", "trial_type"])
    df[column] = "n/a"
    extra = pd.DataFrame({"onset": onsets, "duration": 0.2, "trial_type": "word", column: words})
    df = pd.concat([df, extra], ignore_index=True).sort_values("onset")
    df.to_csv(ev, sep="\t", index=False, na_rep="n/a")


def _eeg_raw(seed, sfreq=250.0, seconds=12.0, onsets=()):
    rng = np.random.default_rng(seed)
    names = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "P3", "P4"]
    info = mne.create_info(names, sfreq, ch_types="eeg")
    n = int(seconds * sfreq)
    data = rng.standard_normal((len(names), n)) * 1e-6
    if seed == 2:
        data[4] = 0.0  # C3 flat in run 2: dropped with a counted warning
    for on in onsets:  # an "N400-like" bump 300 ms after each word on Pz
        k = int(round((on + 0.3) * sfreq))
        data[2, k - 2 : k + 3] += 20e-6 * np.array([0.25, 0.5, 1.0, 0.5, 0.25])
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_montage("standard_1020", verbose="error")
    raw.set_meas_date(None)
    return raw


@pytest.fixture(scope="module")
def eeg_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("eeg")
    for run, onsets in ((1, [1.0, 2.5, 4.0, 6.0, 8.0, 10.0]), (2, [0.7, 3.1, 5.2, 7.7, 9.0, 11.2])):
        raw = _eeg_raw(run, onsets=onsets)
        events = np.array([[int(1.0 * 250), 0, 1]])
        bp = BIDSPath(subject="01", task="read", run=run, datatype="eeg", root=root)
        write_raw_bids(raw, bp, events=events, event_id={"start": 1}, format="BrainVision",
                       allow_preload=True, overwrite=True, verbose="error")
        _add_words(bp, onsets, WORDS)
    mark_channels(BIDSPath(subject="01", task="read", run=2, datatype="eeg", root=root),
                  ch_names=["Oz"], status="bad", descriptions=["noisy"], verbose="error")
    return root


def test_eeg_runs_words_and_bads(eeg_root):
    assert list_tasks(eeg_root, "01") == ["read"]
    assert list_runs(eeg_root, "01", "read", "eeg") == ["1", "2"]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rec, stim = load_bids(eeg_root, "01", "read", datatype="eeg")
    msgs = [str(x.message) for x in w]
    assert any("1 channels are bad or missing" in m for m in msgs)
    assert any("dropped 1 of 7 targets (1 constant within a run" in m for m in msgs)
    assert "Oz" not in rec["target"].values and "C3" not in rec["target"].values and rec.sizes["target"] == 6
    assert rec.attrs["modality"] == "eeg" and rec.attrs["sfreq"] == 250.0 and rec.attrs["bad_channels"] == ["Oz"]
    assert rec.sizes["time"] == 2 * 3000 and list(pd.unique(rec["run"].values)) == ["1", "2"]
    np.testing.assert_allclose(rec["time"].values[3000:3003], [0, 0.004, 0.008])
    assert stim["word"].tolist() == WORDS * 2 and stim["run"].tolist() == ["1"] * 6 + ["2"] * 6
    # positions kept from the montage (head frame, metres)
    pz = rec.sel(target="Pz")
    assert np.isfinite([pz.x, pz.y, pz.z]).all() and float(pz.z) > 0
    # time round-trip: events.tsv onsets -> epochs -> the bump 300 ms later on Pz
    ep = word_epochs(rec, stim, tmin=-0.1, tmax=0.5)
    assert ep.sizes["word"] == 12
    peak = ep["lag"].values[np.argmax(ep.sel(target="Pz").mean("word").values)]
    assert abs(peak - 0.3) < 1e-9


@pytest.mark.filterwarnings("ignore::brainalign.errors.DataQualityWarning")  # run 2's flat C3, tested above
def test_eeg_filter_resample_and_word_column(eeg_root):
    rec, stim = load_bids(eeg_root, "01", "read", datatype="eeg", runs=[2], l_freq=0.5, h_freq=40.0, sfreq=100.0)
    assert rec.attrs["sfreq"] == 100.0 and rec.sizes["time"] == 1200 and rec.attrs["lowpass"] == 40.0
    ep = word_epochs(rec, stim, tmin=-0.1, tmax=0.5)
    peak = ep["lag"].values[np.argmax(ep.sel(target="Pz").mean("word").values)]
    assert abs(peak - 0.3) <= 0.01
    with pytest.raises(MissingFieldError, match=r"run-2_events.tsv has no word column 'value_text'.*onset, duration"):
        load_bids(eeg_root, "01", "read", datatype="eeg", runs=[2], word_column="value_text")
    _, s2 = load_bids(eeg_root, "01", "read", datatype="eeg", runs=[2], word_column="trial_type")
    assert "start" in s2["word"].tolist()  # any column can hold the words
    with pytest.raises(InputError, match=r"\['mask'\] apply to fMRI only"):
        load_bids(eeg_root, "01", "read", datatype="eeg", mask="m.nii.gz")
    with pytest.raises(MissingDataError, match=r"no meg recording of task 'read'.*meg tasks: none"):
        load_bids(eeg_root, "01", "read", datatype="meg")


def test_ieeg_high_gamma_and_mni_positions(tmp_path):
    sfreq, n = 1000.0, 8000
    names = [f"G{i}" for i in range(1, 7)]
    info = mne.create_info(names, sfreq, ch_types="ecog")
    rng = np.random.default_rng(0)
    t = np.arange(n) / sfreq
    data = rng.standard_normal((6, n)) * 1e-6
    burst = (t > 3.0) & (t < 3.5)
    data[0, burst] += 20e-6 * np.sin(2 * np.pi * 100 * t[burst])  # high gamma on G1 only
    raw = mne.io.RawArray(data, info, verbose="error")
    pos = {nm: np.array([0.01 * i, 0.02, 0.03]) for i, nm in enumerate(names)}
    montage = mne.channels.make_dig_montage(ch_pos=pos, coord_frame="mni_tal")
    raw.set_montage(montage, verbose="error")
    raw.set_meas_date(None)
    bp = BIDSPath(subject="01", task="listen", run=1, datatype="ieeg", root=tmp_path)
    write_raw_bids(raw, bp, format="BrainVision", allow_preload=True, montage=montage, acpc_aligned=True,
                   overwrite=True, verbose="error")
    ev = bp.copy().update(suffix="events", extension=".tsv").fpath
    pd.DataFrame({"onset": [1.0, 3.0, 5.0], "duration": 0.3, "trial_type": "word",
                  "value": ["alpha", "beta", "gamma"]}).to_csv(ev, sep="\t", index=False)
    rec, stim = load_bids(tmp_path, "01", "listen", datatype="ieeg", high_gamma=True, word_column="value")
    assert stim["word"].tolist() == ["alpha", "beta", "gamma"]
    assert rec.attrs["sfreq"] == 100.0 and rec.sizes == {"time": 800, "target": 6}
    env = rec.sel(target="G1").values
    inside = (rec["time"].values > 3.1) & (rec["time"].values < 3.4)
    assert env[inside].mean() > 5 * env[~inside & (rec["time"].values > 0.5) & (rec["time"].values < 7.5)].mean()
    # electrode positions as written in electrodes.tsv, in their declared space (not mne's head frame)
    assert rec.attrs["coord_frame"] == "fsaverage"
    np.testing.assert_allclose(rec["x"].values, [0.01 * i for i in range(6)], atol=1e-6)
    # configurable band and rate
    rec2, _ = load_bids(tmp_path, "01", "listen", datatype="ieeg", word_column="value",
                        high_gamma={"l_freq": 80.0, "h_freq": 120.0, "sfreq": 50.0})
    assert rec2.attrs["sfreq"] == 50.0 and rec2.sizes["time"] == 400


def test_real_meg_fif_through_mne_bids(shared_data, tmp_path):
    """The real (truncated) Neuromag recording, written to BIDS by mne-bids and read back."""
    raw = mne.io.read_raw_fif(shared_data / "mne-testing" / "sample_audvis_trunc_raw_sss.fif", verbose="error")
    bp = BIDSPath(subject="sample", task="audvis", run=1, datatype="meg", root=tmp_path)
    write_raw_bids(raw, bp, overwrite=True, verbose="error")
    mark_channels(bp, ch_names=["MEG 2443"], status="bad", descriptions=["flat"], verbose="error")
    _add_words(bp, [0.2, 0.5], ["audio", "visual"])
    rec, stim = load_bids(tmp_path, "sample", "audvis", datatype="meg")
    n_meg = len(mne.pick_types(raw.info, meg=True, exclude=[]))
    assert rec.sizes["target"] == n_meg - 1 and "MEG 2443" not in rec["target"].values
    assert set(rec["ch_type"].values) == {"mag", "grad"} and rec.attrs["sfreq"] == pytest.approx(300.307, abs=1e-3)
    assert rec.sizes["time"] == raw.n_times and rec["time"].values[0] == 0.0
    picks = [raw.ch_names.index(c) for c in rec["target"].values[:5]]
    np.testing.assert_allclose(rec.values[:, :5], raw.get_data(picks=picks).T, rtol=1e-5, atol=1e-16)
    assert stim["word"].tolist() == ["audio", "visual"]
    rec_ds, _ = load_bids(tmp_path, "sample", "audvis", datatype="meg", sfreq=100.0, h_freq=30.0)
    assert rec_ds.attrs["sfreq"] == 100.0 and abs(rec_ds.sizes["time"] - 100) <= 1


def test_real_ecog_persyst_through_mne_bids(shared_data, tmp_path):
    """The real clinical ECoG clip (Persyst), converted by mne-bids, then band envelope."""
    raw = mne.io.read_raw_persyst(
        shared_data / "mne-testing" / "sub-pt1_ses-02_task-monitor_acq-ecog_run-01_clip2.lay", verbose="error"
    )
    raw.set_channel_types({c: "ecog" for c in raw.ch_names}, verbose="error")
    raw.set_meas_date(None)
    bp = BIDSPath(subject="pt1", session="02", task="monitor", acquisition="ecog", run=1, datatype="ieeg", root=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_raw_bids(raw, bp, overwrite=True, verbose="error")
    pd.DataFrame({"onset": [0.5, 2.0], "duration": 0.0, "trial_type": "word", "word": ["one", "two"]}).to_csv(
        bp.copy().update(suffix="events", extension=".tsv").fpath, sep="\t", index=False
    )
    with pytest.raises(InputError, match="sampled at 200.0 Hz: a 70.0-150.0 Hz band needs more than 300.0 Hz"):
        load_bids(tmp_path, "pt1", "monitor", datatype="ieeg", high_gamma=True)
    rec, stim = load_bids(tmp_path, "pt1", "monitor", datatype="ieeg", session="02",
                          high_gamma={"l_freq": 30.0, "h_freq": 90.0, "sfreq": 50.0})
    assert rec.sizes["target"] == 83 and rec.attrs["sfreq"] == 50.0 and rec.attrs["session"] == "02"
    assert (rec.values < 0).mean() < 0.02 and np.isfinite(rec.values).all()  # an envelope (resampling may ring a little)
    assert stim["word"].tolist() == ["one", "two"]
