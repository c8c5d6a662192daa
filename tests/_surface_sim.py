"""Simulated fMRIPrep surface derivatives (fsaverage5 GIFTI pairs, a small fsLR CIFTI) with planted MiniLM signal.

Built from :mod:`brainalign.pipeline.simulate`'s pieces (story words, their timing, the
HRF-convolved layer features and their random low-rank projection), written with
nibabel the way fMRIPrep names them. Only a few hundred targets carry data: the other
fsaverage5 vertices are 0 in every volume, as fMRIPrep's medial wall is, so runs stay fast.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.cifti2 import cifti2_axes

from brainalign.align import fmri_design
from brainalign.data import make_recording
from brainalign.encoders import HFEncoder
from brainalign.pipeline.sim_readout import projection
from brainalign.pipeline.simulate import story_words, word_timing

N_FS5 = 10242


def _zscore(a: np.ndarray) -> np.ndarray:
    """Columns to mean 0, s.d. 1 (constant columns left at 0)."""
    a = a - a.mean(0)
    sd = a.std(0)
    return a / np.where(sd == 0, 1.0, sd)


MOTION = [f"{k}_{a}" for k in ("trans", "rot") for a in "xyz"]


def planted_signal(n_targets: int, planted: dict, *, n_runs: int, n_vol: int, tr: float, n_words: int,
                   snr: float, seed: int, cache: str):
    """(stimulus, data (n_runs * n_vol, n_targets)): layer signal in ``planted[layer]`` columns, noise elsewhere."""
    stim = word_timing(story_words()[:n_words], n_runs, n_vol * tr, seed)
    acts = HFEncoder(context_words=20, cache_dir=cache).encode(stim)
    runs = sorted(stim["run"].unique())
    times = np.concatenate([np.arange(n_vol) * tr for _ in runs])
    template = make_recording(np.zeros((times.size, 1)), times, np.repeat(runs, n_vol), modality="fmri", tr=tr)
    signal = np.zeros((times.size, n_targets))
    for layer, idx in planted.items():
        X = np.asarray(fmri_design(np.asarray(acts.sel(layer=layer).values, dtype=float), stim, template,
                                   method="hrf", delays=(0,)), dtype=float)
        signal[:, idx] = _zscore(projection(X, 4, len(idx), np.random.default_rng(seed * 7919 + layer)))
    rng = np.random.default_rng(seed + 1)
    return stim, 100.0 + 5.0 * (snr * signal + rng.standard_normal(signal.shape))


def _raw(root: Path, sub: str, task: str, stim: pd.DataFrame) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "surface sim", "BIDSVersion": "1.9.0"}))
    func = root / f"sub-{sub}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    for r in sorted(stim["run"].unique()):
        s = stim[stim["run"] == r]
        pd.DataFrame({"onset": s["onset"], "duration": s["duration"], "trial_type": "word", "word": s["word"]}).to_csv(
            func / f"sub-{sub}_task-{task}_run-{r}_events.tsv", sep="\t", index=False)
    deriv = root / "derivatives" / "fmriprep"
    deriv.mkdir(parents=True, exist_ok=True)
    (deriv / "dataset_description.json").write_text(json.dumps(
        {"Name": "fMRIPrep", "BIDSVersion": "1.9.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": "fMRIPrep"}]}))


def _confounds(path: Path, n_vol: int, rng) -> None:
    """A confounds table with fMRIPrep's column names (motion with derivatives and powers, wm/csf, cosines)."""
    cols = {}
    for m in MOTION:
        x = np.cumsum(rng.standard_normal(n_vol)) * 0.01
        d = np.r_[np.nan, np.diff(x)]
        cols.update({m: x, f"{m}_derivative1": d, f"{m}_power2": x ** 2, f"{m}_derivative1_power2": d ** 2})
    cols.update(csf=rng.standard_normal(n_vol), white_matter=rng.standard_normal(n_vol),
                global_signal=rng.standard_normal(n_vol), cosine00=np.cos(np.pi * (np.arange(n_vol) + 0.5) / n_vol))
    pd.DataFrame(cols).to_csv(path, sep="\t", index=False, na_rep="n/a")


def gifti_series(values: np.ndarray, tr: float) -> nib.gifti.GiftiImage:
    """(n_time, n_vertices) -> a GIFTI time series, one data array per volume (as fMRIPrep writes it)."""
    img = nib.gifti.GiftiImage()
    for row in values.astype(np.float32):
        img.add_gifti_data_array(nib.gifti.GiftiDataArray(row, intent="NIFTI_INTENT_TIME_SERIES", datatype="NIFTI_TYPE_FLOAT32"))
    return img


def write_gifti_dataset(root: Path, cache: str, *, sub: str = "01", task: str = "story", n_vol: int = 120,
                        tr: float = 2.0, n_data: int = 200, per_layer: int = 30, layers=(1, 5), snr: float = 1.5,
                        seed: int = 3, old_order: bool = False, confounds: bool = True) -> dict:
    """fsaverage5 GIFTI pairs for two runs; ``n_data`` vertices per hemisphere carry data. Returns the truth.

    ``seed`` draws the vertices with data, the planted ones, the word timing and the noise.
    """
    rng = np.random.default_rng(seed)
    verts = {h: np.sort(rng.choice(N_FS5, n_data, replace=False)) for h in "LR"}
    ids = [f"{h}_{v}" for h in "LR" for v in verts[h]]
    order = rng.permutation(len(ids))
    planted = {int(l): order[i * per_layer:(i + 1) * per_layer].tolist() for i, l in enumerate(layers)}
    stim, data = planted_signal(len(ids), planted, n_runs=2, n_vol=n_vol, tr=tr, n_words=260, snr=snr, seed=seed,
                                cache=cache)
    _raw(root, sub, task, stim)
    func = root / "derivatives" / "fmriprep" / f"sub-{sub}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    for ri, r in enumerate(sorted(stim["run"].unique())):
        block = data[ri * n_vol:(ri + 1) * n_vol]
        for hi, h in enumerate("LR"):
            full = np.zeros((n_vol, N_FS5), dtype=np.float32)
            full[:, verts[h]] = block[:, hi * n_data:(hi + 1) * n_data]
            ent = f"space-fsaverage5_hemi-{h}" if old_order else f"hemi-{h}_space-fsaverage5"
            name = f"sub-{sub}_task-{task}_run-{r}_{ent}_bold"
            nib.save(gifti_series(full, tr), str(func / f"{name}.func.gii"))
            (func / f"{name}.json").write_text(json.dumps({"RepetitionTime": tr}))
        if confounds:
            _confounds(func / f"sub-{sub}_task-{task}_run-{r}_desc-confounds_timeseries.tsv", n_vol, rng)
    return {"ids": ids, "planted": {str(k): [ids[i] for i in v] for k, v in planted.items()},
            "noise": [ids[i] for i in sorted(set(range(len(ids))) - {j for v in planted.values() for j in v})]}


def small_axis(n_surf: int = 150, n_vox: int = 60, seed: int = 0) -> cifti2_axes.BrainModelAxis:
    """A synthetic brain models axis: some fsLR-32k vertices per cortex and a few left-thalamus voxels."""
    rng = np.random.default_rng(seed)
    ax = None
    for name in ("CortexLeft", "CortexRight"):
        part = cifti2_axes.BrainModelAxis.from_surface(np.sort(rng.choice(32492, n_surf, replace=False)), 32492, name)
        ax = part if ax is None else ax + part
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask.flat[np.sort(rng.choice(1000, n_vox, replace=False))] = True
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = -10.0
    return ax + cifti2_axes.BrainModelAxis.from_mask(mask, "ThalamusLeft", aff)


def write_cifti_dataset(root: Path, cache: str, *, sub: str = "01", task: str = "story", n_vol: int = 120,
                        tr: float = 2.0, per_layer: int = 30, layers=(1, 5), snr: float = 3.0, seed: int = 4,
                        sidecar: bool = False, n_empty: int = 12) -> dict:
    """fsLR CIFTI dense time series for two runs on :func:`small_axis` (TR in the series axis). Returns the truth.

    ``n_empty`` grayordinates (not planted) are 0 throughout, as outside fMRIPrep's coverage.
    """
    axis = small_axis(seed=seed)
    n = len(axis)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    planted = {int(l): np.sort(order[i * per_layer:(i + 1) * per_layer]).tolist() for i, l in enumerate(layers)}
    empty = np.sort(order[len(layers) * per_layer:len(layers) * per_layer + n_empty]).tolist()
    stim, data = planted_signal(n, planted, n_runs=2, n_vol=n_vol, tr=tr, n_words=260, snr=snr, seed=seed, cache=cache)
    data[:, empty] = 0.0
    _raw(root, sub, task, stim)
    func = root / "derivatives" / "fmriprep" / f"sub-{sub}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    for ri, r in enumerate(sorted(stim["run"].unique())):
        img = nib.Cifti2Image(data[ri * n_vol:(ri + 1) * n_vol].astype(np.float32),
                              header=(cifti2_axes.SeriesAxis(0.0, tr, n_vol), axis))
        img.nifti_header.set_intent("ConnDenseSeries")
        name = f"sub-{sub}_task-{task}_run-{r}_space-fsLR_den-91k_bold"
        img.to_filename(str(func / f"{name}.dtseries.nii"))
        if sidecar:
            (func / f"{name}.json").write_text(json.dumps({"RepetitionTime": tr}))
        _confounds(func / f"sub-{sub}_task-{task}_run-{r}_desc-confounds_timeseries.tsv", n_vol, rng)
    noise = sorted(set(range(n)) - {j for v in planted.values() for j in v} - set(empty))
    return {"axis": axis, "planted": {str(k): v for k, v in planted.items()}, "noise": noise, "empty": empty}
