"""The family of simulation generators: each produces what its truth file says.

The planted signal is recomputed here from the written dataset and its truth file
by an independent path: the words and onsets from events.tsv, the layer features
from a fresh encoder with the generator's recorded context and pooling, the saved
readout, and the stated response applied as an explicit (frames x words) matrix
of kernel values (the kernel rebuilt from the recorded parameters).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.data import make_stimulus
from brainalign.errors import InputError
from brainalign.pipeline.simulate import FAMILIES, Generator, simulate_bids

SMALL = dict(n_subjects=1, n_runs=2, n_volumes=110, tr=1.5, grid=(6, 6, 5), layers=(1, 5), targets_per_layer=8,
             n_words=200)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("act-cache"))


def _sim(root, cache, generator, **kw):
    args = {**SMALL, "seed": 3, "snr": 20.0, **kw}
    truth = simulate_bids(root, "fmri", generator=generator, cache_dir=cache, **args)
    assert truth == json.loads((root / "derivatives/simulation/truth.json").read_text())
    return truth


def _bold(root: Path, truth: dict, sub: str = "01") -> list[np.ndarray]:
    """Per run (n_vol, n_mask) in the simulator's units: (BOLD - 100) / 5."""
    mask = np.asarray(nib.load(root / truth["mask"]).dataobj).astype(bool)
    out = []
    for r in range(1, truth["n_runs"] + 1):
        img = nib.load(root / f"sub-{sub}/func/sub-{sub}_task-story_run-{r}_bold.nii.gz")
        out.append((img.get_fdata()[mask].T - 100.0) / 5.0)
    return out


def _stimulus(root: Path, truth: dict, sub: str = "01") -> pd.DataFrame:
    rows = []
    for r in range(1, truth["n_runs"] + 1):
        ev = pd.read_csv(root / f"sub-{sub}/func/sub-{sub}_task-story_run-{r}_events.tsv", sep="\t")
        rows.append(ev[["word", "onset", "duration"]].assign(run=r))
    return make_stimulus(pd.concat(rows, ignore_index=True))


def _features(truth: dict, stim: pd.DataFrame, cache: str) -> dict[int, np.ndarray]:
    from brainalign.encoders import HFEncoder

    enc = truth["encoder"]
    acts = HFEncoder(context_words=enc["context_words"], pooling=enc["pooling"], cache_dir=cache).encode(stim)
    return {int(l): np.asarray(acts.sel(layer=l).values, dtype=np.float64) for l in acts["layer"].values}


def _kernel(rec: dict, tr: float, j: int) -> tuple[np.ndarray, float]:
    """The stated response of planted voxel j, rebuilt from the truth record: (kernel, dt)."""
    from nilearn.glm.first_level import glover_hrf, spm_hrf
    from scipy.stats import gamma

    dt = rec.get("dt_s", tr / 50)
    os_ = int(round(tr / dt))
    if rec["model"] in ("spm", "glover"):
        return np.asarray((spm_hrf if rec["model"] == "spm" else glover_hrf)(tr, os_, time_length=32.0)), dt
    if rec["model"] == "random":
        p = {k: v[j] for k, v in rec["params"].items()}
        t = np.arange(int(round(32.0 / dt))) * dt
        h = (gamma.pdf(t, p["peak_s"] / p["dispersion_s"] + 1, scale=p["dispersion_s"])
             - p["ratio"] * gamma.pdf(t, p["undershoot_s"] / p["u_dispersion_s"] + 1, scale=p["u_dispersion_s"]))
        return h / h.sum(), dt
    t = np.arange(int(np.floor(16.0 / dt + 1e-9)) + 1) * dt
    return np.interp(t, rec["taps_s"], rec["taps"][j]), dt


def _operator(onsets: np.ndarray, n_vol: int, tr: float, kernel: np.ndarray, dt: float) -> np.ndarray:
    """(n_vol, n_words): the kernel value at each frame's lag after each word onset."""
    os_ = int(round(tr / dt))
    lag = np.arange(n_vol)[:, None] * os_ - np.rint(onsets / dt).astype(int)[None, :]
    inside = (lag >= 0) & (lag < kernel.size)
    return np.where(inside, kernel[np.clip(lag, 0, kernel.size - 1)], 0.0)


def _zs(a, axis=0):
    return (a - a.mean(axis)) / (a.std(axis) + 1e-8)


def _predicted(root, truth, cache, layer_feats: int, layer_code: int, sub: str = "01",
               response: dict | None = None) -> np.ndarray:
    """Clean signal of the planted voxels of ``layer_code`` if they were driven by ``layer_feats``'s features."""
    stim = _stimulus(root, truth, sub)
    F = _features(truth, stim, cache)[layer_feats]
    key = f"layer-{layer_code}" if truth["readout"]["shared"] else f"sub-{sub}_layer-{layer_code}"
    B = np.load(root / truth["readout"]["files"][key])
    tr, n_vol = truth["tr"], truth["n_volumes"]
    runs, onsets = stim["run"].to_numpy(), stim["onset"].to_numpy(dtype=float)
    rec = response or truth["response"]["per_subject"][sub][str(layer_code)]
    if not truth["generator"]["impulses"]:  # classic path: convolve each feature, z-score per run, then read out
        k, dt = _kernel(rec, tr, 0)
        design = [_operator(onsets[runs == r], n_vol, tr, k, dt) @ F[runs == r] for r in sorted(set(runs))]
        X = np.concatenate([_zs(d) for d in design]) if truth["generator"]["features"] == "zscore" \
            else np.concatenate(design)
        X = _zs(X) if truth["generator"]["features"] == "zscore" else X
        return X @ B
    amps = (_zs(F) if truth["generator"]["features"] == "zscore" else F) @ B
    cols = []
    for j in range(B.shape[1]):
        k, dt = _kernel(rec, tr, j)
        cols.append(np.concatenate([_operator(onsets[runs == r], n_vol, tr, k, dt) @ amps[runs == r, j]
                                    for r in sorted(set(runs))]))
    return np.stack(cols, axis=1)


def _corr_cols(a, b):
    return np.mean(_zs(a) * _zs(b), axis=0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_signal_follows_its_truth(tmp_path, cache, family):
    truth = _sim(tmp_path, cache, family)
    assert truth["generator"] == FAMILIES[family].to_dict() and truth["generator"]["name"] == family
    data = np.concatenate(_bold(tmp_path, truth))
    for layer, other in ((1, 5), (5, 1)):
        idx = truth["planted"][str(layer)]
        r_true = _corr_cols(data[:, idx], _predicted(tmp_path, truth, cache, layer, layer))
        r_other = _corr_cols(data[:, idx], _predicted(tmp_path, truth, cache, other, layer))
        assert np.min(r_true) > 0.98, (family, layer, r_true)  # snr 20: at most 20 / sqrt(401) = 0.9988
        assert np.median(r_true) > np.median(r_other) + 0.2, (family, layer, r_true, r_other)
        pred = _predicted(tmp_path, truth, cache, layer, layer)
        noise = data[:, truth["noise"]]
        assert np.max(np.abs(_zs(noise).T @ _zs(pred) / len(noise))) < 0.6  # noise voxels carry none of it


@pytest.mark.parametrize("family", ["glover_ar1", "random_hrf", "fir_pink", "raw_lowrank"])
def test_snr_is_signal_sd_over_noise_sd(tmp_path, cache, family):
    truth = _sim(tmp_path, cache, family, snr=2.0, seed=5)
    data = np.concatenate(_bold(tmp_path, truth))
    assert np.allclose(data[:, truth["noise"]].std(0), 1.0, atol=0.02)
    idx = truth["planted"]["1"]
    clean = _zs(_predicted(tmp_path, truth, cache, 1, 1))
    slope = np.mean(data[:, idx] * clean, axis=0)  # regression slope on the unit-s.d. clean signal
    assert abs(np.median(slope) - 2.0) < 0.15, slope


def test_stated_per_voxel_response_beats_a_canonical_one(tmp_path, cache):
    truth = _sim(tmp_path, cache, "random_hrf", seed=8)
    rec = truth["response"]["per_subject"]["01"]["5"]
    lo_hi = rec["bounds"]
    for k, vals in rec["params"].items():
        assert lo_hi[k][0] <= min(vals) and max(vals) <= lo_hi[k][1] and len(set(vals)) == len(vals)
    data = np.concatenate(_bold(tmp_path, truth))[:, truth["planted"]["5"]]
    own = _corr_cols(data, _predicted(tmp_path, truth, cache, 5, 5))
    spm = _corr_cols(data, _predicted(tmp_path, truth, cache, 5, 5, response={"model": "spm", "dt_s": rec["dt_s"]}))
    assert np.min(own) > 0.98 and np.mean(own) > np.mean(spm) + 0.01


def _noise_voxels(tmp_path, cache, generator, **kw):
    truth = _sim(tmp_path, cache, generator, **kw)
    return truth, [run[:, truth["noise"]] for run in _bold(tmp_path, truth)]


@pytest.mark.parametrize("phi", [0.2, 0.75])
def test_ar1_noise_has_its_lag1_autocorrelation(tmp_path, cache, phi):
    gen = replace(FAMILIES["glover_ar1"], ar_phi=phi)
    truth, runs = _noise_voxels(tmp_path, cache, gen, n_volumes=200, seed=11)
    assert truth["noise_model"]["ar_phi"] == phi
    r1 = np.mean([np.mean(_zs(x)[1:] * _zs(x)[:-1]) for x in runs])
    assert abs(r1 - phi) < 0.07, r1


def _low_frequency_share(runs, tr, max_hz=1 / 128):
    from scipy.signal import periodogram

    shares = []
    for x in runs:
        f, p = periodogram(x, fs=1 / tr, axis=0, detrend=False)
        shares.append(p[(f > 0) & (f <= max_hz)].sum(0) / p[f > 0].sum(0))
    return float(np.mean(shares))


def test_drifts_show_low_frequency_power(tmp_path, cache):
    with_drift = FAMILIES["spm_ar1_drift"]
    without = replace(with_drift, noise=("ar1",))
    _, a = _noise_voxels(tmp_path / "a", cache, with_drift, n_volumes=200, seed=2)
    _, b = _noise_voxels(tmp_path / "b", cache, without, n_volumes=200, seed=2)
    assert _low_frequency_share(a, 1.5) > 3 * _low_frequency_share(b, 1.5)


def test_pink_noise_spectrum_falls_as_one_over_f(tmp_path, cache):
    from scipy.signal import periodogram

    _, runs = _noise_voxels(tmp_path, cache, Generator("pink_only", noise=("pink",), impulses=True), n_volumes=256)
    f, p = periodogram(np.concatenate(runs, axis=1), fs=1 / 1.5, axis=0)
    keep = f > 0
    slope = np.polyfit(np.log(f[keep]), np.log(p[keep].mean(1)), 1)[0]
    assert -1.25 < slope < -0.75, slope


def test_spikes_sit_at_the_recorded_frames(tmp_path, cache):
    truth, runs = _noise_voxels(tmp_path, cache, "fir_pink", n_volumes=200, seed=4)
    frames = truth["noise_model"]["realised"]["01"]
    assert set(frames) == {"1", "2"}
    for r, x in enumerate(runs, start=1):
        size = np.abs(_zs(x)).mean(1)
        at = frames[str(r)]["spike_frames"]
        assert len(at) == 2 and size[at].min() > 2 * np.median(np.delete(size, at + [a + 1 for a in at]))


@pytest.mark.parametrize("family", ["classic", "random_hrf"])
@pytest.mark.parametrize("tr,n_runs", [(0.7, 1), (2.5, 4)])
def test_tr_and_runs_give_the_right_shapes(tmp_path, cache, tr, n_runs, family):
    n_vol = 240 if tr < 1 else 50
    truth = _sim(tmp_path, cache, family, tr=tr, n_runs=n_runs, n_volumes=n_vol, seed=6)
    func = sorted((tmp_path / "sub-01/func").glob("*_bold.nii.gz"))
    assert len(func) == n_runs and truth["tr"] == tr and truth["n_runs"] == n_runs
    for f in func:
        img = nib.load(f)
        assert img.shape == (6, 6, 5, n_vol) and np.isclose(img.header.get_zooms()[3], tr)
        assert json.loads(Path(str(f).replace(".nii.gz", ".json")).read_text())["RepetitionTime"] == tr
        ev = pd.read_csv(str(f).replace("_bold.nii.gz", "_events.tsv"), sep="\t")
        assert len(ev) and ev.onset.max() < n_vol * tr
    if family != "classic":
        assert truth["response"]["per_subject"]["01"]["1"]["dt_s"] <= 0.05
    data = np.concatenate(_bold(tmp_path, truth))[:, truth["planted"]["1"]]
    assert np.min(_corr_cols(data, _predicted(tmp_path, truth, cache, 1, 1))) > 0.9


def _bold_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*_bold.nii.gz")):
        h.update(np.ascontiguousarray(np.asarray(nib.load(f).dataobj)).tobytes())
    return h.hexdigest()


def test_classic_is_the_default_generator(tmp_path, cache):
    kw = {**SMALL, "n_subjects": 2, "seed": 9, "cache_dir": cache}
    roots = [tmp_path / n for n in ("none", "name", "obj")]
    simulate_bids(roots[0], "fmri", **kw)
    simulate_bids(roots[1], "fmri", generator="classic", **kw)
    t = simulate_bids(roots[2], "fmri", generator=Generator(), **kw)
    assert len({_bold_hash(r) for r in roots}) == 1
    for f in sorted(roots[0].rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (roots[1] / f.relative_to(roots[0])).read_bytes(), f
    assert t["generator"] == FAMILIES["classic"].to_dict() and t["rank"] == 4 and t["encoder"]["context_words"] == 20
    assert _bold_hash(roots[0]) != _bold_hash(_mkdir_sim(tmp_path / "other", "glover_ar1", kw))


def _mkdir_sim(root, generator, kw):
    simulate_bids(root, "fmri", generator=generator, **kw)
    return root


def test_per_subject_readouts_differ_and_drive_their_own_participant(tmp_path, cache):
    truth = _sim(tmp_path, cache, "random_hrf", n_subjects=2, seed=12)
    files = truth["readout"]["files"]
    assert set(files) == {f"sub-{s}_layer-{l}" for s in ("01", "02") for l in (1, 5)}
    B1, B2 = (np.load(tmp_path / files[f"sub-{s}_layer-1"]) for s in ("01", "02"))
    assert B1.shape == B2.shape and not np.allclose(B1, B2)
    idx = truth["planted"]["1"]
    data2 = np.concatenate(_bold(tmp_path, truth, "02"))[:, idx]
    own = _corr_cols(data2, _predicted(tmp_path, truth, cache, 1, 1, sub="02"))
    swapped = dict(truth, readout=dict(truth["readout"], files={**files, "sub-02_layer-1": files["sub-01_layer-1"]}))
    other = _corr_cols(data2, _predicted(tmp_path, swapped, cache, 1, 1, sub="02",
                                         response=truth["response"]["per_subject"]["02"]["1"]))
    assert np.min(own) > 0.9 and np.median(np.abs(other)) < np.median(own) - 0.2


def test_full_rank_and_rank_override(tmp_path, cache):
    t = _sim(tmp_path / "full", cache, Generator("full", rank=None, impulses=True), seed=1)
    B = np.load(tmp_path / "full" / t["readout"]["files"]["layer-1"])
    assert t["rank"] is None and np.linalg.matrix_rank(B) == B.shape[1]
    t = _sim(tmp_path / "r1", cache, "raw_lowrank", rank=1, seed=1)
    B = np.load(tmp_path / "r1" / t["readout"]["files"]["layer-5"])
    assert t["rank"] == 1 and t["generator"]["rank"] == 1 and np.linalg.matrix_rank(B) == 1


def test_bad_generators_are_refused(tmp_path, cache):
    with pytest.raises(InputError, match=r"'nope' is not one of classic, glover_ar1"):
        simulate_bids(tmp_path, "fmri", generator="nope", cache_dir=cache)
    with pytest.raises(InputError, match="needs impulses=True"):
        Generator(response="fir")
    with pytest.raises(InputError, match="'brown' is not one of white"):
        Generator(noise=("brown",))
    with pytest.raises(InputError, match="rank 0"):
        Generator(rank=0)
    with pytest.raises(InputError, match="is for fmri"):
        simulate_bids(tmp_path, "meg", generator="random_hrf", cache_dir=cache)


def test_meg_takes_the_generator_noise(tmp_path, cache):
    gen = Generator("meg_ar1", noise=("ar1",), ar_phi=0.6, context_words=10)
    truth = simulate_bids(tmp_path, "meg", n_subjects=1, n_runs=1, run_seconds=40, n_channels=6, targets_per_layer=2,
                          layers=(2,), n_words=60, seed=1, cache_dir=cache, generator=gen)
    from mne_bids import BIDSPath, read_raw_bids

    raw = read_raw_bids(BIDSPath(subject="01", task="story", run=1, datatype="meg", root=tmp_path), verbose="error")
    x = raw.get_data()[truth["noise"]].T
    x = x / x.std(0)  # volts or tesla: to unit s.d. before the 1e-8-guarded z-score
    assert truth["generator"]["name"] == "meg_ar1" and abs(np.mean(_zs(x)[1:] * _zs(x)[:-1]) - 0.6) < 0.07


def _cli(*args, cwd, cache):
    env = {**os.environ, "BRAINALIGN_CACHE": cache, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "brainalign.cli", "simulate", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_cli_generator_and_overrides(tmp_path, cache):
    small = ["--subjects", "1", "--volumes", "60", "--grid", "6", "6", "5", "--targets-per-layer", "4",
             "--n-words", "200", "--quiet"]  # the words of SMALL: cached encodings
    res = _cli(str(tmp_path / "a"), "--generator", "fir_pink", *small, cwd=tmp_path, cache=cache)
    assert res.returncode == 0, res.stderr
    truth = json.loads((tmp_path / "a/derivatives/simulation/truth.json").read_text())
    assert truth["generator"] == FAMILIES["fir_pink"].to_dict() and "generator fir_pink" in res.stdout
    res = _cli(str(tmp_path / "b"), "--generator", "classic", "--response", "random", "--noise", "ar1", "drift",
               "--ar-phi", "0.3", "--generator-context", "10", *small, cwd=tmp_path, cache=cache)
    assert res.returncode == 0, res.stderr
    g = json.loads((tmp_path / "b/derivatives/simulation/truth.json").read_text())["generator"]
    assert g == dict(FAMILIES["classic"].to_dict(), name="classic+custom", response="random", impulses=True,
                     noise=["ar1", "drift"], ar_phi=0.3, context_words=10)
    res = _cli(str(tmp_path / "c"), "--generator", "nope", cwd=tmp_path, cache=cache)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "--generator" in res.stderr and "'nope'" in res.stderr and "raw_lowrank" in res.stderr
    assert not (tmp_path / "c").exists()
