"""brainalign.align: Lanczos against the direct formula, HRF against nilearn,
delays that never cross a run boundary (hypothesis), per-run design building."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brainalign.align import (
    fir_delays,
    fmri_design,
    hrf_convolve,
    lagged_design,
    lanczos_resample,
    trf_design,
    trim_mask,
    word_epochs,
    zscore_by_run,
)
from brainalign.data import make_recording, make_stimulus
from brainalign.errors import AlignmentError, ShapeMismatchError


def direct_lanczos(values, word_times, frame_times, window=3, cutoff=None):
    """Textbook formula, one frame and one word at a time."""
    if cutoff is None:
        cutoff = 1.0 / np.median(np.diff(frame_times))
    out = np.zeros((len(frame_times), values.shape[1]))
    for i, tf in enumerate(frame_times):
        for j, tw in enumerate(word_times):
            x = cutoff * (tf - tw)
            if x == 0:
                w = 1.0
            elif abs(x) < window:
                w = window * np.sin(np.pi * x) * np.sin(np.pi * x / window) / (np.pi**2 * x**2)
            else:
                w = 0.0
            out[i] += w * values[j]
    return out


@pytest.mark.parametrize("window", [2, 3, 5])
def test_lanczos_matches_direct_formula(window):
    rng = np.random.default_rng(0)
    wt = np.sort(rng.uniform(0, 60, 80))
    wt[5] = 10.0  # a word exactly on a frame
    ft = np.arange(0, 62, 2.0)
    vals = rng.standard_normal((80, 3))
    ours = lanczos_resample(vals, wt, ft, window=window)
    np.testing.assert_allclose(ours, direct_lanczos(vals, wt, ft, window), rtol=1e-10, atol=1e-12)
    # unsorted word order gives the same result
    perm = rng.permutation(80)
    np.testing.assert_allclose(lanczos_resample(vals[perm], wt[perm], ft, window=window), ours, atol=1e-12)


def test_lanczos_cutoff_and_normalize():
    rng = np.random.default_rng(1)
    wt = np.sort(rng.uniform(0, 40, 50))
    ft = np.arange(0, 40, 2.0)
    vals = rng.standard_normal((50, 2))
    np.testing.assert_allclose(
        lanczos_resample(vals, wt, ft, cutoff=0.25), direct_lanczos(vals, wt, ft, cutoff=0.25), atol=1e-12
    )
    ones = lanczos_resample(np.ones((50, 1)), wt, ft, normalize=True)
    covered = np.abs(lanczos_resample(np.ones((50, 1)), wt, ft)) > 1e-6
    np.testing.assert_allclose(ones[covered], 1.0)


def test_lanczos_shape_errors():
    with pytest.raises(ShapeMismatchError, match="3 feature rows but 2 word times"):
        lanczos_resample(np.ones((3, 2)), [0.0, 1.0], np.arange(5.0))
    with pytest.raises(AlignmentError, match="cutoff"):
        lanczos_resample(np.ones((2, 2)), [0.0, 1.0], [0.0])


@pytest.mark.parametrize("model", ["spm", "glover"])
def test_hrf_convolve_matches_nilearn(model):
    from nilearn.glm.first_level import compute_regressor

    tr, n = 2.0, 60
    ft = np.arange(n) * tr
    rng = np.random.default_rng(2)
    onsets = np.sort(rng.choice(np.arange(0, 100, 0.04), 30, replace=False))
    amps = rng.standard_normal(30)
    ref, _ = compute_regressor(np.vstack([onsets, np.zeros(30), amps]), model, ft, oversampling=50)
    ours = hrf_convolve(amps[:, None], onsets, ft, hrf_model=model)
    assert np.corrcoef(ours[:, 0], ref[:, 0])[0, 1] > 0.999
    np.testing.assert_allclose(ours[:, 0], ref[:, 0], atol=0.02 * np.abs(ref).max())


def _marked(runs, p=2):
    """Rows whose values encode their run, so a leak across runs is visible."""
    runs = np.asarray(runs)
    codes = pd.factorize(runs)[0] + 1
    return (codes[:, None] * 1000 + np.arange(len(runs))[:, None] + 1) * np.ones((1, p))


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    delays=st.lists(st.integers(-4, 6), min_size=1, max_size=4, unique=True),
)
def test_delays_never_cross_runs(lengths, delays):
    runs = np.repeat(np.arange(len(lengths)), lengths)
    X = _marked(runs)
    D = fir_delays(X, runs, delays)
    p = X.shape[1]
    assert D.shape == (runs.size, p * len(delays))
    for k, d in enumerate(delays):
        block = D[:, k * p : (k + 1) * p]
        for t in range(runs.size):
            src = t - d
            if 0 <= src < runs.size and runs[src] == runs[t]:
                np.testing.assert_array_equal(block[t], X[src])
            else:
                assert np.all(block[t] == 0)
            nz = block[t][block[t] != 0]
            assert np.all(nz // 1000 == runs[t] + 1)  # nothing from another run


def test_delays_contiguous_blocks_and_errors():
    runs = np.array(["b", "b", "a", "a", "a"])
    D = fir_delays(np.arange(5.0), runs, (1,))
    np.testing.assert_array_equal(D[:, 0], [0, 0, 0, 2, 3])
    with pytest.raises(ShapeMismatchError, match="5 rows but runs has 4"):
        fir_delays(np.ones((5, 1)), runs[:4], (1,))


def test_zscore_by_run_and_trim():
    rng = np.random.default_rng(3)
    runs = np.repeat([1, 2, 3], [10, 7, 5])
    X = rng.standard_normal((22, 3)) * [1, 5, 0] + [0, 3, 7]
    Z = zscore_by_run(X, runs)
    for r in (1, 2, 3):
        np.testing.assert_allclose(Z[runs == r, :2].mean(0), 0, atol=1e-12)
        np.testing.assert_allclose(Z[runs == r, :2].std(0), 1, atol=1e-12)
        assert np.all(Z[runs == r, 2] == 0)  # constant column: zeros, not NaN
    keep = trim_mask(runs, 2, 1)
    assert keep.sum() == 22 - 3 * 3
    assert not keep[[0, 1, 9, 10, 11, 16, 17, 18, 21]].any()


def _two_run_setup(seed=0, n_frames=(40, 30), tr=2.0):
    rng = np.random.default_rng(seed)
    rows = []
    for run, n in zip((1, 2), n_frames):
        onsets = np.sort(rng.uniform(0, n * tr, 3 * n))
        rows.append(pd.DataFrame({"word": "w", "onset": onsets, "duration": 0.3, "run": run}))
    stim = make_stimulus(pd.concat(rows, ignore_index=True))
    time = np.concatenate([np.arange(n) * tr for n in n_frames])
    runs = np.repeat([1, 2], n_frames)
    rec = make_recording(rng.standard_normal((time.size, 4)), time, runs, modality="fmri", tr=tr)
    feats = rng.standard_normal((len(stim), 5))
    return feats, stim, rec


@pytest.mark.parametrize("method", ["lanczos", "hrf"])
def test_fmri_design_is_built_per_run(method):
    feats, stim, rec = _two_run_setup()
    X = fmri_design(feats, stim, rec, method=method, delays=(1, 2), dtype=np.float64)
    assert X.shape == (70, 10)
    # run 1 on its own gives the same rows: run 2's words never reach run 1
    r1 = stim["run"] == 1
    rec1 = rec.isel(time=slice(0, 40))
    X1 = fmri_design(feats[r1.to_numpy()], stim[r1].reset_index(drop=True), rec1, method=method, delays=(1, 2), dtype=np.float64)
    np.testing.assert_allclose(X[:40], X1)
    # changing run 1's features does not change run 2's rows
    feats2 = feats.copy()
    feats2[r1.to_numpy()] *= -3
    X2 = fmri_design(feats2, stim, rec, method=method, delays=(1, 2), dtype=np.float64)
    np.testing.assert_allclose(X2[40:], X[40:])
    # delay 1 is zero-padded at each run start and z-scored per run before it
    assert np.all(X[[0, 40], :5] == 0)
    Z = fmri_design(feats, stim, rec, method=method, delays=(0,), dtype=np.float64)
    np.testing.assert_allclose(Z[:40].mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(Z[40:].std(0), 1, atol=1e-9)
    np.testing.assert_allclose(X[1:40, :5], Z[:39])


def test_fmri_design_censored_frames_and_run_mismatch():
    feats, stim, rec = _two_run_setup(seed=4)
    full = fmri_design(feats, stim, rec, delays=(0, 1, 3), dtype=np.float64)
    keep = np.ones(70, bool)
    keep[[5, 6, 50]] = False
    part = fmri_design(feats, stim, rec.isel(time=keep), delays=(0, 1, 3), dtype=np.float64)
    np.testing.assert_allclose(part, full[keep])
    bad = stim.assign(run=stim["run"] + 10)
    with pytest.raises(AlignmentError, match="no stimulus run matches"):
        fmri_design(feats, bad, rec)
    with pytest.raises(ShapeMismatchError, match=f"{len(stim) - 1} rows but the stimulus has {len(stim)}"):
        fmri_design(feats[:-1], stim, rec)


def test_fmri_design_midpoint_matches_manual():
    feats, stim, rec = _two_run_setup(seed=5)
    X = fmri_design(feats, stim, rec, delays=(0,), word_time="midpoint", zscore=False, dtype=np.float64)
    r2 = (stim["run"] == 2).to_numpy()
    mid = stim["onset"].to_numpy()[r2] + 0.15
    ref = lanczos_resample(feats[r2], mid, np.arange(30) * 2.0)
    np.testing.assert_allclose(X[40:], ref)


def _meg_setup(sfreq=100.0):
    rng = np.random.default_rng(6)
    n = (300, 200)
    time = np.concatenate([np.arange(k) / sfreq for k in n])
    runs = np.repeat(["01", "02"], n)
    data = rng.standard_normal((500, 3)) * 0.1
    stim = make_stimulus(
        {"word": ["a", "b", "c", "d", "e"], "onset": [0.05, 1.0, 2.9, 0.5, 1.2], "run": ["01", "01", "01", "02", "02"]}
    )
    for on, r in zip(stim["onset"], stim["run"]):
        base = 0 if r == "01" else 300
        data[base + int(round(on * sfreq)) + 10, :] += 5.0  # response 100 ms after the word
    rec = make_recording(data, time, runs, modality="meg", sfreq=sfreq, target=["c1", "c2", "c3"])
    return stim, rec


def test_lagged_and_trf_design_within_runs():
    stim, rec = _meg_setup()
    X, lags = trf_design(np.ones((5, 1)), stim, rec, tmin=0.0, tmax=0.2)
    assert X.shape == (500, 21) and np.isclose(lags[10], 0.1)
    # the lag-0.1 s column has the words 10 samples later, in their own run only
    col = X[:, 10]
    expected = np.zeros(500)
    for on, r in zip(stim["onset"], stim["run"]):
        k = int(round(on * 100)) + 10
        if k < (300 if r == "01" else 200):  # word c's response would fall past run 01's end
            expected[(0 if r == "01" else 300) + k] = 1
    assert expected.sum() == 4
    np.testing.assert_array_equal(col, expected)
    L = lagged_design(np.arange(500.0)[:, None], rec["run"].values, [0.0, 0.03], 100.0)
    assert L[300, 1] == 0 and L[303, 1] == 300
    with pytest.raises(AlignmentError, match="repeated sample lags"):
        lagged_design(np.ones((500, 1)), rec["run"].values, [0.0, 0.001], 100.0)


def test_word_epochs_lock_to_words():
    stim, rec = _meg_setup()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ep = word_epochs(rec, stim, tmin=-0.1, tmax=0.3)
    # word 0 at 0.05 s has no full baseline, word 2 at 2.9 s runs past the run's end
    assert sorted(ep["word"].values.tolist()) == [1, 3, 4]
    assert any("2 of 5 words" in str(x.message) for x in w)
    assert ep.shape == (3, 3, 41)
    peak = ep["lag"].values[np.argmax(ep.values.mean(axis=(0, 1)))]
    assert np.isclose(peak, 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = word_epochs(rec, stim, tmin=-0.1, tmax=0.3, keep_all=True)
    assert full.shape == (5, 3, 41) and np.isnan(full.values[[0, 2]]).all()
    np.testing.assert_array_equal(full.values[[1, 3, 4]], ep.sel(word=[1, 3, 4]).values)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(3, 25), min_size=2, max_size=4),
    delays=st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True),
    seed=st.integers(0, 10_000),
    method=st.sampled_from(["lanczos", "hrf"]),
)
def test_design_rows_depend_only_on_their_own_run(lengths, delays, seed, method):
    rng = np.random.default_rng(seed)
    tr = 1.5
    rows = []
    for run, n in enumerate(lengths):
        k = int(rng.integers(1, 3 * n))
        rows.append(pd.DataFrame({"word": "w", "onset": rng.uniform(-5, n * tr + 5, k), "run": run}))
    stim = make_stimulus(pd.concat(rows, ignore_index=True))
    time = np.concatenate([np.arange(n) * tr for n in lengths])
    runs = np.repeat(np.arange(len(lengths)), lengths)
    rec = make_recording(np.zeros((time.size, 1)), time, runs, modality="fmri", tr=tr)
    feats = rng.standard_normal((len(stim), 2))
    X = fmri_design(feats, stim, rec, method=method, delays=delays, dtype=np.float64)
    victim = int(rng.integers(0, len(lengths)))
    feats2 = feats.copy()
    feats2[(stim["run"] == victim).to_numpy()] = rng.standard_normal((int((stim["run"] == victim).sum()), 2))
    X2 = fmri_design(feats2, stim, rec, method=method, delays=delays, dtype=np.float64)
    others = runs != victim
    np.testing.assert_array_equal(X2[others], X[others])


def test_hrf_word_rate_matches_alice_authors_regressor(shared_data):
    """Real data: onsets from the Alice TextGrid, SPM HRF at the scanner's frame times
    (volume i at 20 + 2 i s), against the authors' own word-rate regressor."""
    from brainalign.io import read_textgrid

    stim = read_textgrid(shared_data / "alice-fmri" / "stimulus" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid")
    rate = np.loadtxt(shared_data / "alice-fmri" / "s18-rate.txt")
    rec = make_recording(np.zeros((rate.size, 1)), 20 + 2.0 * np.arange(rate.size), modality="fmri", tr=2.0)
    X = fmri_design(np.ones((len(stim), 1)), stim, rec, method="hrf", delays=(0,), zscore=False, dtype=np.float64)
    r = np.corrcoef(X[:, 0], rate)[0, 1]
    assert r > 0.98
    # a one-TR error in the clock shows: the check is sharp
    rec_off = make_recording(np.zeros((rate.size, 1)), 22 + 2.0 * np.arange(rate.size), modality="fmri", tr=2.0)
    X_off = fmri_design(np.ones((len(stim), 1)), stim, rec_off, method="hrf", delays=(0,), zscore=False)
    assert np.corrcoef(X_off[:, 0], rate)[0, 1] < r - 0.02
