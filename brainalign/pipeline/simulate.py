"""Simulated BIDS datasets with planted, layer-specific language signal.

``simulate_bids(out_dir, modality="fmri"|"meg"|"ieeg", ...)`` writes a raw BIDS
dataset whose neural signal is, for chosen targets, a random low-rank projection
of one language-model layer's word features put on the neural clock; every other
target is noise. A ``truth.json`` (under ``derivatives/simulation/``) says which
target carries which layer, and, for fMRI, a brain mask is written beside it.

fMRI: features of layer L (:class:`~brainalign.encoders.HFEncoder`) are convolved
with nilearn's SPM HRF on the TR grid, run by run (:func:`brainalign.align.fmri_design`),
and written as 4-D NIfTI (nibabel). MEG / iEEG: each word adds a 0.4 s-peaked bump
scaled by its projected features to the planted channels; written with mne-bids
(FIF for MEG, BrainVision for iEEG). ``events.tsv`` has ``onset``, ``duration``,
``trial_type`` and ``word``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..data import make_recording, make_stimulus
from ..errors import InputError, check_safe_label
from . import outputs

STORY = Path(__file__).resolve().parents[2] / "data" / "story.txt"
WORD_RE = re.compile(r"[A-Za-z0-9'’-]+[.,!?;:\"]*")


def story_words(path: str | Path | None = None) -> list[str]:
    """The words of a story text (punctuation kept on the word, title line dropped)."""
    p = Path(path) if path else STORY
    if not p.is_file():
        raise InputError(f"story file {p} does not exist")
    lines = p.read_text().strip().splitlines()
    body = " ".join(lines[1:]) if len(lines) > 1 else lines[0]
    return WORD_RE.findall(body.replace('"', ""))


def word_timing(words: Sequence[str], n_runs: int, run_seconds: float, seed: int, lead: float = 8.0, tail: float = 12.0):
    """Split words into runs and give them onsets (s, per-run clock) at a natural pace."""
    rng = np.random.default_rng(seed)
    parts = np.array_split(np.arange(len(words)), n_runs)
    rows = []
    for r, idx in enumerate(parts, start=1):
        span = run_seconds - lead - tail
        if idx.size == 0:
            continue
        gaps = rng.uniform(0.6, 1.4, size=idx.size) + np.array([0.5 if words[i][-1] in ".!?" else 0.0 for i in idx])
        onsets = lead + np.cumsum(gaps) / np.sum(gaps) * span - gaps[0] / np.sum(gaps) * span
        dur = np.minimum(np.diff(np.append(onsets, onsets[-1] + 0.5)), 0.5) * 0.9
        for i, on, du in zip(idx, onsets, dur):
            rows.append({"word": words[i], "onset": round(float(on), 3), "duration": round(float(du), 3), "run": r})
    return make_stimulus(pd.DataFrame(rows))


def _projection(feats: np.ndarray, rank: int, n_targets: int, rng) -> np.ndarray:
    """(n, p) features -> (n, n_targets) low-rank random mixtures, z-scored."""
    f = (feats - feats.mean(0)) / (feats.std(0) + 1e-8)
    W = rng.standard_normal((f.shape[1], rank)) / np.sqrt(f.shape[1])
    V = rng.standard_normal((rank, n_targets))
    out = f @ W @ V
    return out


def _z(a):
    a = a - a.mean(0)
    sd = a.std(0)
    sd[sd == 0] = 1
    return a / sd


def simulate_bids(
    out_dir: str | Path,
    modality: str = "fmri",
    *,
    n_subjects: int = 2,
    n_runs: int = 2,
    n_volumes: int = 150,
    tr: float = 2.0,
    grid: tuple[int, int, int] = (12, 12, 10),
    sfreq: float = 100.0,
    run_seconds: float = 150.0,
    n_channels: int = 16,
    layers: Sequence[int] = (1, 5),
    targets_per_layer: int = 40,
    snr: float = 1.0,
    rank: int = 4,
    task: str = "story",
    story: str | Path | None = None,
    n_words: int | None = None,
    seed: int = 0,
    encoder=None,
    cache_dir: str | None = None,
) -> dict:
    """Write a simulated BIDS dataset; returns the truth dictionary.

    Parameters
    ----------
    out_dir : path
        Dataset root (created).
    modality : {"fmri", "meg", "ieeg"}
    n_subjects, n_runs : int
    n_volumes, tr : int, float
        fMRI run length in volumes and repetition time (s).
    grid : tuple of 3 int
        fMRI volume shape; the mask is the central ellipsoid.
    sfreq, run_seconds, n_channels : float, float, int
        MEG / iEEG sampling rate (Hz), run length (s) and channel count.
    layers : sequence of int
        Model layers whose features drive the planted targets (one group each).
    targets_per_layer : int
        Voxels / channels per planted layer.
    snr : float
        Standard deviation of the planted signal over that of the noise.
    rank : int
        Rank of the random projection of the layer's features.
    story : path, optional
        Text of the story (default: data/story.txt); ``n_words`` keeps its first words.
    encoder : HFEncoder, optional
        Defaults to the packaged MiniLM, window context of 20 words, last token.

    Returns
    -------
    dict
        The truth: planted targets per layer, noise targets, snr, seed, settings.
    """
    if modality not in ("fmri", "meg", "ieeg"):
        raise InputError(f"modality {modality!r}: simulate writes 'fmri', 'meg' or 'ieeg'")
    check_safe_label(task, "task")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    words = story_words(story)[: n_words or None]
    length = n_volumes * tr if modality == "fmri" else run_seconds
    stim = word_timing(words, n_runs, length, seed)
    n_targets = int(_ellipsoid(grid).sum()) if modality == "fmri" else n_channels
    if targets_per_layer * len(layers) > n_targets:
        raise InputError(f"{targets_per_layer} x {len(layers)} planted targets do not fit in {n_targets}")
    if encoder is None:
        from ..encoders import HFEncoder

        encoder = HFEncoder(context_words=20, cache_dir=cache_dir)
    acts = encoder.encode(stim)
    have = [int(x) for x in acts["layer"].values]
    bad = [l for l in layers if l not in have]
    if bad:
        raise InputError(f"layers {bad} not in the model (it has {have})")
    order = rng.permutation(n_targets)
    planted = {int(l): np.sort(order[i * targets_per_layer:(i + 1) * targets_per_layer]).tolist() for i, l in enumerate(layers)}
    noise = np.sort(order[len(layers) * targets_per_layer:]).tolist()
    truth = {"modality": modality, "task": task, "layers": [int(l) for l in layers], "planted": {str(k): v for k, v in planted.items()},
             "noise": noise, "snr": snr, "rank": rank, "seed": seed, "n_subjects": n_subjects, "n_runs": n_runs,
             "target_kind": "index in mask (C order)" if modality == "fmri" else "channel index",
             "model": str(acts.attrs.get("model", "")), "n_words": len(stim)}
    subjects = [f"{i + 1:02d}" for i in range(n_subjects)]
    _write_raw_description(out, modality, task, subjects)
    for si, sub in enumerate(subjects):
        srng = np.random.default_rng(seed * 1000 + si + 1)
        if modality == "fmri":
            _write_fmri_subject(out, sub, task, stim, acts, planted, n_targets, n_volumes, tr, grid, snr, rank, srng, seed)
        else:
            _write_meeg_subject(out, sub, task, stim, acts, planted, n_targets, sfreq, run_seconds, snr, rank, srng, seed, modality)
    deriv = out / "derivatives" / "simulation"
    outputs.write_json(deriv / "dataset_description.json", {
        "Name": "brainalign simulation truth", "BIDSVersion": outputs.BIDS_VERSION, "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "brainalign simulate"}]})
    if modality == "fmri":
        import nibabel as nib

        mask = _ellipsoid(grid).astype(np.uint8)
        outputs.write_nifti(deriv / "desc-brain_mask.nii.gz", nib.Nifti1Image(mask, _affine()))
        truth["mask"] = "derivatives/simulation/desc-brain_mask.nii.gz"
    outputs.write_json(deriv / "truth.json", truth)
    return truth


def _affine():
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    aff[:3, 3] = -15.0
    return aff


def _ellipsoid(grid) -> np.ndarray:
    ii = np.stack(np.meshgrid(*[np.linspace(-1, 1, g) for g in grid], indexing="ij"))
    return (ii ** 2).sum(0) <= 1.0


def _write_raw_description(out: Path, modality: str, task: str, subjects):
    outputs.write_json(out / "dataset_description.json", {
        "Name": f"brainalign simulated {modality} story listening", "BIDSVersion": outputs.BIDS_VERSION,
        "DatasetType": "raw", "License": "CC0", "Authors": ["brainalign simulate"]})
    outputs.write_text(out / "participants.tsv", "participant_id\n" + "".join(f"sub-{s}\n" for s in subjects))
    outputs.write_text(out / "README", "Simulated with `brainalign simulate`: planted layer-specific signal; "
                       "see derivatives/simulation/truth.json.\n")


def _events(stim_run: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"onset": stim_run["onset"].to_numpy(), "duration": stim_run["duration"].to_numpy(),
                         "trial_type": "word", "word": stim_run["word"].to_numpy()})


def _write_fmri_subject(out, sub, task, stim, acts, planted, n_targets, n_vol, tr, grid, snr, rank, rng, seed):
    import nibabel as nib

    from ..align import fmri_design

    runs = sorted(stim["run"].unique())
    times = np.concatenate([np.arange(n_vol) * tr for _ in runs])
    run_lab = np.repeat(runs, n_vol)
    template = make_recording(np.zeros((times.size, 1)), times, run_lab, modality="fmri", tr=tr)
    signal = np.zeros((times.size, n_targets))
    for layer, idx in planted.items():
        # the same projection for every participant (a shared code), fresh noise each
        prng = np.random.default_rng(seed * 7919 + layer)
        feats = np.asarray(acts.sel(layer=layer).values, dtype=np.float64)
        X = np.asarray(fmri_design(feats, stim, template, method="hrf", delays=(0,)), dtype=np.float64)
        signal[:, idx] = _z(_projection(X, rank, len(idx), prng))
    noise = rng.standard_normal(signal.shape)
    data = snr * signal + noise
    mask = _ellipsoid(grid)
    func = out / f"sub-{sub}" / "func"
    for r in runs:
        sel = run_lab == r
        vol = np.zeros(grid + (int(sel.sum()),), dtype=np.float32)
        vals = 100.0 + 5.0 * data[sel]  # a BOLD-like baseline and scale
        vol[mask] = vals.T.astype(np.float32)
        outside = ~mask
        vol[outside] = (rng.standard_normal((int(outside.sum()), int(sel.sum()))) * 0.5).astype(np.float32)
        img = nib.Nifti1Image(vol, _affine())
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = tr
        img.set_data_dtype(np.int16)  # scaled integers: half the bytes of float32
        stem = f"sub-{sub}_task-{task}_run-{r}"
        outputs.write_nifti(func / f"{stem}_bold.nii.gz", img)
        outputs.write_json(func / f"{stem}_bold.json", {"RepetitionTime": tr, "TaskName": task})
        outputs.write_tsv(func / f"{stem}_events.tsv", _events(stim[stim["run"] == r]))


def _write_meeg_subject(out, sub, task, stim, acts, planted, n_ch, sfreq, run_seconds, snr, rank, rng, seed, modality):
    import mne
    from mne_bids import BIDSPath, write_raw_bids

    ch_type = "mag" if modality == "meg" else "seeg"
    names = [f"{'MEG' if modality == 'meg' else 'SEEG'}{i:03d}" for i in range(n_ch)]
    n = int(round(run_seconds * sfreq))
    lags = np.arange(0, int(0.8 * sfreq)) / sfreq
    kernel = np.exp(-0.5 * ((lags - 0.4) / 0.08) ** 2)
    for r in sorted(stim["run"].unique()):
        srun = stim[stim["run"] == r]
        rows = srun.index.to_numpy()
        signal = np.zeros((n, n_ch))
        for layer, idx in planted.items():
            prng = np.random.default_rng(seed * 7919 + layer)
            feats = np.asarray(acts.sel(layer=layer).values, dtype=np.float64)
            amp = _z(_projection(feats, rank, len(idx), prng))[rows]  # (n_words_run, k)
            imp = np.zeros((n, len(idx)))
            samp = np.clip(np.rint(srun["onset"].to_numpy() * sfreq).astype(int), 0, n - 1)
            np.add.at(imp, samp, amp)
            from scipy.signal import fftconvolve

            conv = fftconvolve(imp, kernel[:, None], axes=0)[:n]
            signal[:, idx] = _z(conv)
        data = (snr * signal + rng.standard_normal(signal.shape)) * (1e-12 if modality == "meg" else 1e-5)
        info = mne.create_info(names, sfreq, ch_types=ch_type)
        raw = mne.io.RawArray(data.T, info, verbose="error")
        raw.set_meas_date(None) if modality == "meg" else None
        onsets = srun["onset"].to_numpy()
        events = np.column_stack([np.rint(onsets * sfreq).astype(int), np.zeros(len(onsets), int), np.ones(len(onsets), int)])
        meta = pd.DataFrame({"word": srun["word"].to_numpy()})
        bp = BIDSPath(subject=sub, task=task, run=int(r), datatype=modality, root=out)
        fmt = "FIF" if modality == "meg" else "BrainVision"
        if modality == "meg":
            raw.info["line_freq"] = 50
        else:
            raw.info["line_freq"] = 50
        write_raw_bids(raw, bp, events=events, event_id={"word": 1}, event_metadata=meta,
                       extra_columns_descriptions={"word": "the word heard"}, format=fmt, allow_preload=True,
                       overwrite=True, verbose="error")
