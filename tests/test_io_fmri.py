"""load_bids for fMRI on BIDS datasets written here with nibabel (raw and fMRIPrep shapes)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.align import fmri_design
from brainalign.errors import (
    ConstantSignalError,
    CorruptFileError,
    DataQualityWarning,
    InputError,
    MissingDataError,
    MissingFieldError,
)
from brainalign.io import list_runs, list_subjects, list_tasks, load_bids, read_masked, to_nifti

pytestmark = pytest.mark.filterwarnings("ignore:Cosine filter was not created:UserWarning")  # short test runs

SHAPE = (6, 7, 5)
TR = 2.0
AFFINE = np.diag([3.0, 3.0, 3.5, 1.0])
AFFINE[:3, 3] = [-9, -10, -8]


def _bold(rng, n_vol, signal=None, scale=True):
    base = 20 + 5 * rng.standard_normal(SHAPE + (n_vol,))
    base[1:5, 1:6, 1:4] += 1000 + 45 * rng.standard_normal((4, 5, 3, n_vol))  # the "brain"
    if signal is not None:
        base[2:4, 2:4, 1:3] += 30 * signal[None, None, None, :]
    data = base.astype(np.int16) if scale else base.astype(np.float32)
    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 1.0  # a default that must not be trusted
    return img


def small_mask():
    m = np.zeros(SHAPE, np.uint8)
    m[1:5, 1:6, 1:4] = 1
    return nib.Nifti1Image(m, AFFINE)


def _events(path, onsets, words, extra=None):
    df = pd.DataFrame({"onset": onsets, "duration": 0.3, "trial_type": "word", "word": words})
    if extra:
        df = pd.concat([df, pd.DataFrame(extra)], ignore_index=True).sort_values("onset")
    df.to_csv(path, sep="\t", index=False, na_rep="n/a")


def make_dataset(root: Path, n_vol=(40, 30), subjects=("01", "02"), sidecar_tr=True, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.8.0"}))
    side = {"TaskName": "listen"}
    if sidecar_tr:
        side["RepetitionTime"] = TR
    (root / "task-listen_bold.json").write_text(json.dumps(side))  # top level: inheritance
    for sub in subjects:
        d = root / f"sub-{sub}" / "func"
        d.mkdir(parents=True)
        for run, n in enumerate(n_vol, start=1):
            stem = f"sub-{sub}_task-listen_run-{run}"
            onsets = np.sort(rng.uniform(1, n * TR - 2, 3 * n))
            sig = np.zeros(n)
            nib.save(_bold(rng, n, sig), d / f"{stem}_bold.nii.gz")
            _events(d / f"{stem}_events.tsv", onsets, [f"w{i}" for i in range(onsets.size)],
                    extra={"onset": [0.5], "duration": [0.0], "trial_type": ["noise"], "word": [None]})
    return root


def make_fmriprep(root: Path, space="MNI152NLin2009cAsym", n_vol=(40, 30)) -> Path:
    rng = np.random.default_rng(1)
    der = root / "derivatives" / "fmriprep"
    d = der / "sub-01" / "func"
    d.mkdir(parents=True)
    (der / "dataset_description.json").write_text(json.dumps({"Name": "fmriprep", "BIDSVersion": "1.8.0", "DatasetType": "derivative"}))
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:5, 1:6, 1:4] = 1
    for run, n in enumerate(n_vol, start=1):
        stem = f"sub-01_task-listen_run-{run}"
        nib.save(_bold(rng, n, scale=False), d / f"{stem}_space-{space}_desc-preproc_bold.nii.gz")
        (d / f"{stem}_space-{space}_desc-preproc_bold.json").write_text(json.dumps({"RepetitionTime": TR, "SkullStripped": True}))
        nib.save(nib.Nifti1Image(mask, AFFINE), d / f"{stem}_space-{space}_desc-brain_mask.nii.gz")
        conf = {c: rng.standard_normal(n) for c in ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
                                                      "white_matter", "csf", "global_signal", "framewise_displacement"]}
        for base in ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "white_matter", "csf", "global_signal"]:
            d1 = np.r_[np.nan, np.diff(conf[base])]
            conf[f"{base}_derivative1"] = d1
            conf[f"{base}_power2"] = conf[base] ** 2
            conf[f"{base}_derivative1_power2"] = d1**2
        conf["framewise_displacement"][0] = np.nan
        conf["std_dvars"] = np.r_[np.nan, np.ones(n - 1)]
        for k in range(3):
            conf[f"cosine{k:02d}"] = np.cos(np.pi * (k + 1) * np.arange(n) / n)
        pd.DataFrame(conf).to_csv(d / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a")
        (d / f"{stem}_desc-confounds_timeseries.json").write_text("{}")
    return der


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "bids")


def test_listing_and_missing_entities(dataset):
    assert list_subjects(dataset) == ["01", "02"]
    assert list_tasks(dataset, "01") == ["listen"]
    assert list_runs(dataset, "sub-01", "listen") == ["1", "2"]
    with pytest.raises(MissingDataError, match=r"subject '03' is not in .*subjects: 01, 02"):
        load_bids(dataset, "03", "listen")
    with pytest.raises(MissingDataError, match=r"no BOLD run of task 'read'.*func tasks: listen"):
        load_bids(dataset, "01", "read")
    with pytest.raises(MissingDataError, match=r"no run '7'.*runs: \['1', '2'\]"):
        load_bids(dataset, "01", "listen", runs=[7])
    with pytest.raises(MissingDataError, match="is not a folder"):
        load_bids(dataset / "nope", "01", "listen")


def test_raw_voxels_mask_and_times(dataset, tmp_path):
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:4, 2:5, 0:3] = 1
    mpath = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask, AFFINE), mpath)
    rec, stim = load_bids(dataset, "sub-01", "task-listen", mask=mpath)
    assert rec.dims == ("time", "target") and rec.shape == (70, int(mask.sum()))
    assert rec.dtype == np.float32 and rec.attrs["tr"] == TR
    np.testing.assert_allclose(rec["time"].values[:40], np.arange(40) * TR)
    np.testing.assert_allclose(rec["time"].values[40:], np.arange(30) * TR)
    assert list(pd.unique(rec["run"].values)) == ["1", "2"]
    # cleaned per run: z-scored columns
    np.testing.assert_allclose(rec.values[:40].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(rec.values[40:].std(0, ddof=1), 1, atol=1e-3)
    # words: the noise row (word n/a) is not a word; runs are strings matching the recording
    assert len(stim) == 3 * 40 + 3 * 30 and set(stim["run"]) == {"1", "2"}
    # the voxels are the mask's, in the input grid: values round-trip through to_nifti
    ijk = np.column_stack([rec[c].values for c in ("voxel_i", "voxel_j", "voxel_k")])
    np.testing.assert_array_equal(ijk, np.argwhere(mask))
    img = to_nifti(np.arange(rec.sizes["target"], dtype=float), rec)
    np.testing.assert_allclose(img.affine, AFFINE)
    vol = img.get_fdata()
    assert np.isnan(vol[mask == 0]).all()
    np.testing.assert_array_equal(vol[mask > 0], np.arange(mask.sum()))
    # frame_time="middle" shifts every frame by TR/2; the design still aligns row by row
    rec_mid, _ = load_bids(dataset, "01", "listen", mask=mpath, frame_time="middle", runs=[2])
    np.testing.assert_allclose(rec_mid["time"].values, (np.arange(30) + 0.5) * TR)
    X = fmri_design(np.ones((len(stim), 2)), stim, rec)
    assert X.shape == (70, 8)


def test_read_masked_matches_nibabel(dataset):
    f = dataset / "sub-01" / "func" / "sub-01_task-listen_run-1_bold.nii.gz"
    rng = np.random.default_rng(3)
    mask = rng.random(SHAPE) > 0.4
    ref = nib.load(f).get_fdata()[mask].T
    np.testing.assert_allclose(read_masked(f, mask, chunk_mb=0.002), ref, rtol=1e-6)


def test_repetition_time_required(tmp_path):
    root = make_dataset(tmp_path / "b", subjects=("01",), sidecar_tr=False)
    with pytest.raises(MissingFieldError, match=r"RepetitionTime is missing for .*run-1_bold.nii.gz.*data.source.tr"):
        load_bids(root, "01", "listen")
    m = np.zeros(SHAPE, np.uint8)
    m[2:4, 2:4, 2] = 1
    rec, _ = load_bids(root, "01", "listen", tr=2.5, runs=["1"], mask=nib.Nifti1Image(m, AFFINE))
    assert rec.attrs["tr"] == 2.5 and rec["time"].values[1] == 2.5
    with pytest.raises(InputError, match="word onsets fall outside the run"):  # the events were timed at 2 s
        load_bids(root, "01", "listen", tr=1.0, runs=["1"], mask=nib.Nifti1Image(m, AFFINE))


def test_default_mask_is_nilearn_epi_mask(tmp_path):
    root = make_dataset(tmp_path / "b", subjects=("01",), n_vol=(24,))
    f = root / "sub-01" / "func" / "sub-01_task-listen_run-1_bold.nii.gz"
    rng = np.random.default_rng(5)
    grid = np.indices((20, 20, 12)) - np.array([10, 10, 6])[:, None, None, None]
    brain = (grid**2).sum(0) < 36
    data = rng.normal(10, 2, (20, 20, 12, 24))
    data[brain] += 1000
    nib.save(nib.Nifti1Image(data.astype(np.float32), AFFINE), f)
    rec, _ = load_bids(root, "01", "listen")
    assert rec.attrs["mask"].startswith("compute_epi_mask")
    ijk = np.column_stack([rec[c].values for c in ("voxel_i", "voxel_j", "voxel_k")])
    assert brain[tuple(ijk.T)].mean() > 0.95 and abs(len(ijk) - brain.sum()) < 0.2 * brain.sum()


def test_corrupt_nifti_names_the_file(dataset):
    f = dataset / "sub-02" / "func" / "sub-02_task-listen_run-2_bold.nii.gz"
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="sub-02_task-listen_run-2_bold.nii.gz is truncated"):
        load_bids(dataset, "02", "listen", mask=small_mask())
    f.write_bytes(b"not a nifti at all")
    with pytest.raises(CorruptFileError, match="sub-02_task-listen_run-2_bold.nii.gz is not a readable NIfTI"):
        load_bids(dataset, "02", "listen", mask=small_mask())


def test_events_without_word_column(dataset):
    ev = dataset / "sub-01" / "func" / "sub-01_task-listen_run-1_events.tsv"
    with pytest.raises(MissingFieldError, match=r"run-1_events.tsv has no word column 'token' \(columns: onset, duration, trial_type, word\)"):
        load_bids(dataset, "01", "listen", word_column="token", runs=[1], mask=small_mask())
    _, stim = load_bids(dataset, "01", "listen", trial_type="word", runs=[1], clean=False, mask=small_mask())
    assert len(stim) == 120
    with pytest.raises(MissingDataError, match=r"trial_type in \['sentence'\].*present: noise, word"):
        load_bids(dataset, "01", "listen", trial_type="sentence", runs=[1], mask=small_mask())
    ev.unlink()
    with pytest.raises(MissingDataError, match="no events file .*run-1_events.tsv"):
        load_bids(dataset, "01", "listen", runs=[1], mask=small_mask())


def test_constant_voxels_are_dropped_with_one_warning(tmp_path):
    root = make_dataset(tmp_path / "b", subjects=("01",), n_vol=(20,))
    f = root / "sub-01" / "func" / "sub-01_task-listen_run-1_bold.nii.gz"
    img = nib.load(f)
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0, :] = 7
    data[1, 0, 0, :] = 9
    nib.save(nib.Nifti1Image(data, AFFINE, img.header), f)
    mask = np.zeros(SHAPE, bool)
    mask[:3, 0, 0] = True
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rec, _ = load_bids(root, "01", "listen", mask=nib.Nifti1Image(mask.astype(np.uint8), AFFINE))
    msgs = [str(x.message) for x in w if issubclass(x.category, DataQualityWarning)]
    assert len(msgs) == 1 and "dropped 2 of 3 targets (2 constant" in msgs[0]
    assert rec.sizes["target"] == 1 and rec["voxel_i"].values.tolist() == [2]
    data[2, 0, 0, :] = 3
    nib.save(nib.Nifti1Image(data, AFFINE, img.header), f)
    with pytest.raises(ConstantSignalError, match="all 3 targets"):
        load_bids(root, "01", "listen", mask=nib.Nifti1Image(mask.astype(np.uint8), AFFINE))


def test_fmriprep_confounds_mask_and_atlas(tmp_path):
    root = make_dataset(tmp_path / "b", subjects=("01",))
    make_fmriprep(root)
    rec, stim = load_bids(root, "01", "listen", derivatives=True, space="MNI152NLin2009cAsym")
    assert rec.sizes["target"] == 4 * 5 * 3 and rec.attrs["confounds"] == "simple"
    assert "desc-preproc_bold" in rec.attrs["sources"][0] and len(stim) == 210
    # the confounds were regressed out: cleaned data are orthogonal to the motion columns
    conf = pd.read_csv(
        root / "derivatives/fmriprep/sub-01/func/sub-01_task-listen_run-1_desc-confounds_timeseries.tsv", sep="\t"
    )
    c = conf["trans_x"].to_numpy()
    r = np.corrcoef(c, rec.values[:40].T)[0, 1:]
    assert np.abs(r).max() < 1e-3
    # scrubbing censors volumes: the time coordinate keeps the frames that remain
    conf.loc[[10, 11, 12], "framewise_displacement"] = 5.0
    conf.to_csv(root / "derivatives/fmriprep/sub-01/func/sub-01_task-listen_run-1_desc-confounds_timeseries.tsv",
                sep="\t", index=False, na_rep="n/a")
    rec_s, _ = load_bids(root, "01", "listen", derivatives=True, confounds="scrubbing", runs=[1])
    assert rec_s.sizes["time"] < 40 and 2 * TR * 11 not in rec_s["time"].values
    X = fmri_design(np.ones((120, 1)), stim[stim.run == "1"], rec_s, delays=(0, 1))
    assert X.shape == (rec_s.sizes["time"], 2)
    # atlas: parcel means through nilearn's labels masker
    labels = np.zeros(SHAPE, np.int16)
    labels[:3] = 1
    labels[3:] = 2
    apath = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels, AFFINE), apath)
    rec_a, _ = load_bids(root, "01", "listen", derivatives=root / "derivatives" / "fmriprep", atlas=apath,
                         atlas_labels=["left", "right"])
    assert rec_a.shape == (70, 2) and rec_a.attrs["target_kind"] == "parcel"
    assert [str(t) for t in rec_a["target"].values] == ["left", "right"]
    with pytest.raises(MissingDataError, match=r"no fMRIPrep preprocessed BOLD.*space-T1w.*found: sub-01_task-listen_run-1_space"):
        load_bids(root, "01", "listen", derivatives=True, space="T1w")


def test_time_round_trip_and_words_from_textgrids(dataset, tmp_path):
    """A word on frame k's clock lands on row k; TextGrids per run replace events.tsv."""
    from brainalign.align import lanczos_resample

    tgs = {}
    for run, t in ((1, 10 * TR), (2, 4 * TR)):
        f = tmp_path / f"run{run}.TextGrid"
        f.write_text(
            'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = 100\ntiers? <exists>\nsize = 1\n'
            'item []:\n    item [1]:\n        class = "IntervalTier"\n        name = "word"\n        xmin = 0\n'
            f'        xmax = 100\n        intervals: size = 2\n        intervals [1]:\n            xmin = 0\n'
            f'            xmax = {t}\n            text = ""\n        intervals [2]:\n            xmin = {t}\n'
            f'            xmax = 100\n            text = "here"\n'
        )
        tgs[str(run)] = f
    rec, stim = load_bids(dataset, "01", "listen", mask=small_mask(), words=tgs)
    assert stim["word"].tolist() == ["here", "here"] and stim["run"].tolist() == ["1", "2"]
    X = fmri_design(np.ones((2, 1)), stim, rec, delays=(0,), zscore=False)
    assert int(np.argmax(X[:40, 0])) == 10 and int(np.argmax(X[40:, 0])) == 4
    np.testing.assert_allclose(X[40:, 0], lanczos_resample(np.ones(1), [4 * TR], np.arange(30) * TR), rtol=1e-6)
    # with frame_time="middle" the same word sits between frames 3 and 4 of run 2
    rec_m, stim_m = load_bids(dataset, "01", "listen", mask=small_mask(), words=tgs, runs=[2], frame_time="middle")
    Xm = fmri_design(np.ones((1, 1)), stim_m, rec_m, delays=(0,), zscore=False)
    np.testing.assert_allclose(Xm[3, 0], Xm[4, 0], rtol=1e-6)
    with pytest.raises(MissingDataError, match=r"words has no entry for run '2'"):
        load_bids(dataset, "01", "listen", mask=small_mask(), words={"1": tgs["1"]})


def test_sessions_are_resolved_or_asked_for(tmp_path):
    root = make_dataset(tmp_path / "b", subjects=("01",), n_vol=(20,))
    func = root / "sub-01" / "func"
    for ses in ("a", "b"):
        d = root / "sub-01" / f"ses-{ses}" / "func"
        d.mkdir(parents=True)
        for f in func.iterdir():
            (d / f.name.replace("sub-01_", f"sub-01_ses-{ses}_")).write_bytes(f.read_bytes())
    for f in func.iterdir():
        f.unlink()
    func.rmdir()
    with pytest.raises(InputError, match=r"sub-01 has sessions a, b: choose one with --session"):
        load_bids(root, "01", "listen", mask=small_mask(), clean=False)
    with pytest.raises(MissingDataError, match=r"no session 'c' \(--session, data.source.session; sessions: a, b\)"):
        load_bids(root, "01", "listen", session="c", mask=small_mask())
    rec, stim = load_bids(root, "01", "listen", session="ses-b", mask=small_mask(), clean=False)
    assert rec.attrs["session"] == "b" and "ses-b" in rec.attrs["sources"][0] and len(stim) == 60


def _shift_onsets(ev: Path, fn) -> None:
    t = pd.read_csv(ev, sep="\t")
    t["onset"] = fn(t["onset"].to_numpy(dtype=float), t)
    t.to_csv(ev, sep="\t", index=False, na_rep="n/a")


@pytest.mark.parametrize("how, message", [
    ("negative", r"run-1_events.tsv: \d+ of 120 word onsets fall outside the run \(0 to 80 s"),
    ("past_end", r"run-1_events.tsv: \d+ of 120 word onsets fall outside the run \(0 to 80 s"),
    ("milliseconds", r"run-1_events.tsv: onsets look like milliseconds.*divide the onset column by 1000"),
])
def test_onsets_outside_the_run_are_refused_naming_the_file(dataset, how, message):
    ev = dataset / "sub-01" / "func" / "sub-01_task-listen_run-1_events.tsv"
    shift = {"negative": lambda o, t: o - 60.0, "past_end": lambda o, t: o + 60.0, "milliseconds": lambda o, t: o * 1000}
    _shift_onsets(ev, shift[how])
    with pytest.raises(InputError, match=message):
        load_bids(dataset, "01", "listen", runs=[1], clean=False, mask=small_mask())


def test_a_few_onsets_outside_the_run_are_dropped_with_a_counted_warning(dataset):
    ev = dataset / "sub-01" / "func" / "sub-01_task-listen_run-2_events.tsv"
    _, before = load_bids(dataset, "01", "listen", clean=False, mask=small_mask())

    def push_two_out(o, t):
        o = o.copy()
        words = np.flatnonzero(t["word"].notna().to_numpy())
        o[words[0]], o[words[-1]] = -1.5, 30 * TR + 0.5  # run 2 has 30 volumes: 0 to 60 s
        return o

    _shift_onsets(ev, push_two_out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, stim = load_bids(dataset, "01", "listen", clean=False, mask=small_mask())
    msgs = [str(w.message) for w in caught if issubclass(w.category, DataQualityWarning)]
    assert len(msgs) == 1 and "run-2_events.tsv: dropped 2 of 90 words" in msgs[0] and "0 to 60 s" in msgs[0], msgs
    assert len(stim) == len(before) - 2
    run2 = stim[stim["run"] == "2"]["onset"]
    assert run2.min() >= 0 and run2.max() <= 60
    assert stim[stim["run"] == "1"].reset_index(drop=True).equals(before[before["run"] == "1"].reset_index(drop=True))
