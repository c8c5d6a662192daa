"""Simulated BIDS datasets with planted, layer-specific language signal.

``simulate_bids(out_dir, modality="fmri"|"meg"|"ieeg", ...)`` writes a raw BIDS
dataset whose neural signal is, for chosen targets, a random low-rank projection
of one language-model layer's word features put on the neural clock; every other
target is noise. A ``truth.json`` (under ``derivatives/simulation/``) says which
target carries which layer, and, for fMRI, a brain mask is written beside it.

How the signal is made is a :class:`~.sim_generator.Generator` (``generator=``; a
name in :data:`~.sim_generator.FAMILIES` or an instance; default ``"classic"``):
response model (:mod:`.sim_response`), feature transform and readout
(:mod:`.sim_readout`), the generator's own encoder context and pooling, and noise
(:mod:`.sim_noise`). Every choice is recorded in ``truth.json``.

fMRI, classic: features of layer L (:class:`~brainalign.encoders.HFEncoder`) are
convolved with nilearn's SPM HRF on the TR grid, run by run
(:func:`brainalign.align.fmri_design`), then read out. With ``impulses=True``: the
per-word readout amplitudes are impulses at the word onsets on a fine grid,
convolved with each voxel's response and sampled at the frame times. Written as
4-D NIfTI (nibabel). MEG / iEEG: each word adds a 0.4 s-peaked bump scaled by its
projected features to the planted channels; written with mne-bids (FIF for MEG,
BrainVision for iEEG). ``events.tsv`` has ``onset``, ``duration``, ``trial_type``
and ``word``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..data import make_recording, make_stimulus
from ..errors import InputError, check_safe_label
from . import outputs, sim_noise
from .sim_generator import FAMILIES, Generator, resolve_generator
from .sim_noise import make_noise
from .sim_readout import SubjectReadout
from .sim_response import impulse_bold, voxel_kernels

__all__ = ["FAMILIES", "Generator", "simulate_bids", "story_words", "word_timing"]

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
    rank: int | None = None,
    task: str = "story",
    story: str | Path | None = None,
    n_words: int | None = None,
    seed: int = 0,
    encoder=None,
    cache_dir: str | None = None,
    generator: Generator | str | None = None,
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
        Signal s.d. over noise s.d., per planted target: the clean signal is
        z-scored over time and the noise has unit s.d. (see :mod:`.sim_noise`).
    rank : int, optional
        Overrides the generator's readout rank.
    story : path, optional
        Text of the story (default: data/story.txt); ``n_words`` keeps its first words.
    encoder : HFEncoder, optional
        Defaults to the packaged MiniLM with the generator's window context and pooling.
    generator : Generator or str, optional
        The recipe (:class:`~.sim_generator.Generator`) or a name in
        :data:`~.sim_generator.FAMILIES`; ``None`` = ``"classic"``. MEG / iEEG use
        its features, rank, readout, encoder and noise (their response is a 0.4 s bump).

    Returns
    -------
    dict
        The truth: planted targets per layer, noise targets, snr, seed, settings,
        the generator, the response and noise records (also in ``truth.json``).
    """
    if modality not in ("fmri", "meg", "ieeg"):
        raise InputError(f"modality {modality!r}: simulate writes 'fmri', 'meg' or 'ieeg'")
    check_safe_label(task, "task")
    gen = resolve_generator(generator, rank)
    if modality != "fmri" and gen.response != "spm":
        raise InputError(f"generator response {gen.response!r} is for fmri; {modality} uses a 0.4 s bump (response 'spm')")
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

        encoder = HFEncoder(context_words=gen.context_words, pooling=gen.pooling, cache_dir=cache_dir)
    acts = encoder.encode(stim)
    have = [int(x) for x in acts["layer"].values]
    bad = [l for l in layers if l not in have]
    if bad:
        raise InputError(f"layers {bad} not in the model (it has {have})")
    order = rng.permutation(n_targets)
    planted = {int(l): np.sort(order[i * targets_per_layer:(i + 1) * targets_per_layer]).tolist() for i, l in enumerate(layers)}
    truth = _truth_head(modality, task, layers, planted, np.sort(order[len(layers) * targets_per_layer:]).tolist(),
                        snr, gen, seed, n_subjects, n_runs, acts, stim, encoder)
    if modality == "fmri":
        truth.update(tr=tr, n_volumes=n_volumes)
    else:
        truth.update(sfreq=sfreq, run_seconds=run_seconds)
    subjects = [f"{i + 1:02d}" for i in range(n_subjects)]
    _write_raw_description(out, modality, task, subjects)
    deriv = out / "derivatives" / "simulation"
    for si, sub in enumerate(subjects):
        srng = np.random.default_rng(seed * 1000 + si + 1)
        ctx = SubjectReadout(gen, seed, si, sub, deriv)
        if modality == "fmri":
            rec = _write_fmri_subject(out, ctx, task, stim, acts, planted, n_targets, n_volumes, tr, grid, snr, srng)
        else:
            rec = _write_meeg_subject(out, ctx, task, stim, acts, planted, n_targets, sfreq, run_seconds, snr, srng, modality)
        _merge_subject_record(truth, sub, rec)
    _write_truth(out, deriv, truth, modality, grid)
    return truth


def _truth_head(modality, task, layers, planted, noise, snr, gen, seed, n_subjects, n_runs, acts, stim, encoder) -> dict:
    """The settings part of the truth dictionary."""
    enc = {k: getattr(encoder, k) for k in ("context", "context_words", "pooling") if hasattr(encoder, k)}
    return {"modality": modality, "task": task, "layers": [int(l) for l in layers],
            "planted": {str(k): v for k, v in planted.items()}, "noise": noise, "snr": snr, "rank": gen.rank,
            "seed": seed, "n_subjects": n_subjects, "n_runs": n_runs,
            "target_kind": "index in mask (C order)" if modality == "fmri" else "channel index",
            "model": str(acts.attrs.get("model", "")), "n_words": len(stim), "generator": gen.to_dict(),
            "encoder": enc, "noise_model": {**sim_noise.settings(gen.noise, gen.ar_phi), "realised": {}},
            "response": {"model": gen.response if modality == "fmri" else "bump 0.4 s",
                         "impulses": gen.impulses, "per_subject": {}},
            "readout": {"shared": not gen.per_subject_readout, "files": {},
                        "applies_to": _readout_input(gen, modality)}}


def _readout_input(gen: Generator, modality: str) -> str:
    f = "z-scored (over words) " if gen.features == "zscore" else "raw "
    if modality == "fmri" and not gen.impulses:
        return f.replace("over words", "per run") + "HRF-convolved feature columns (fmri_design, method='hrf'): design @ B"
    return f + "word features: amplitudes = features @ B, one column per planted target"


def _merge_subject_record(truth: dict, sub: str, rec: dict) -> None:
    truth["response"]["per_subject"][sub] = rec["response"]
    if rec["noise"]:
        truth["noise_model"]["realised"][sub] = rec["noise"]
    truth["readout"]["files"].update(rec["readout"])


def _write_truth(out: Path, deriv: Path, truth: dict, modality: str, grid) -> None:
    outputs.write_json(deriv / "dataset_description.json", {
        "Name": "brainalign simulation truth", "BIDSVersion": outputs.BIDS_VERSION, "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "brainalign simulate"}]})
    if modality == "fmri":
        import nibabel as nib

        mask = _ellipsoid(grid).astype(np.uint8)
        outputs.write_nifti(deriv / "desc-brain_mask.nii.gz", nib.Nifti1Image(mask, _affine()))
        truth["mask"] = "derivatives/simulation/desc-brain_mask.nii.gz"
    outputs.write_json(deriv / "truth.json", truth)


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


def _fmri_signal(ctx: SubjectReadout, stim, acts, planted, n_targets, n_vol, tr) -> tuple[np.ndarray, dict, dict]:
    """Clean signal (n_runs * n_vol, n_targets), z-scored per planted voxel; response and readout records."""
    from ..align import fmri_design

    gen = ctx.gen
    runs = sorted(stim["run"].unique())
    times = np.concatenate([np.arange(n_vol) * tr for _ in runs])
    run_lab = np.repeat(runs, n_vol)
    template = make_recording(np.zeros((times.size, 1)), times, run_lab, modality="fmri", tr=tr)
    signal = np.zeros((times.size, n_targets))
    response, readout = {}, {}
    for layer, idx in planted.items():
        feats = np.asarray(acts.sel(layer=layer).values, dtype=np.float64)
        readout.update(ctx.save_readout(layer, feats.shape[1], len(idx)))
        if not gen.impulses:
            X = np.asarray(fmri_design(feats, stim, template, method="hrf", delays=(0,), hrf_model=gen.response,
                                       zscore=gen.features == "zscore"), dtype=np.float64)
            signal[:, idx] = _z(ctx.amplitudes(X, layer, len(idx)))
            response[str(layer)] = {"model": gen.response, "path": "fmri_design(method='hrf', oversampling=50)"}
            continue
        amps = ctx.amplitudes(feats, layer, len(idx))
        kernels, rec = voxel_kernels(gen.response, len(idx), tr, ctx.response_rng(layer))
        run_of = stim["run"].to_numpy()
        onsets = stim["onset"].to_numpy(dtype=float)
        cols = [impulse_bold(amps[run_of == r], onsets[run_of == r], n_vol, tr, kernels) for r in runs]
        signal[:, idx] = _z(np.concatenate(cols, axis=0))
        response[str(layer)] = {**rec, "path": "onset impulses on the fine grid, convolved, sampled at k * tr",
                                "voxel_order": "per-voxel entries follow planted[layer]"}
    return signal, response, readout


def _write_fmri_subject(out, ctx: SubjectReadout, task, stim, acts, planted, n_targets, n_vol, tr, grid, snr, rng) -> dict:
    import nibabel as nib

    runs = sorted(stim["run"].unique())
    signal, response, readout = _fmri_signal(ctx, stim, acts, planted, n_targets, n_vol, tr)
    noise, realised = make_noise(ctx.gen.noise, n_vol, len(runs), n_targets, tr, ctx.gen.ar_phi, rng)
    data = snr * signal + noise
    run_lab = np.repeat(runs, n_vol)
    mask = _ellipsoid(grid)
    func = out / f"sub-{ctx.sub}" / "func"
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
        stem = f"sub-{ctx.sub}_task-{task}_run-{r}"
        outputs.write_nifti(func / f"{stem}_bold.nii.gz", img)
        outputs.write_json(func / f"{stem}_bold.json", {"RepetitionTime": tr, "TaskName": task})
        outputs.write_tsv(func / f"{stem}_events.tsv", _events(stim[stim["run"] == r]))
    return {"response": response, "noise": realised, "readout": readout}


def _write_meeg_subject(out, ctx: SubjectReadout, task, stim, acts, planted, n_ch, sfreq, run_seconds, snr, rng,
                        modality) -> dict:
    import mne
    from mne_bids import BIDSPath, write_raw_bids
    from scipy.signal import fftconvolve

    ch_type = "mag" if modality == "meg" else "seeg"
    names = [f"{'MEG' if modality == 'meg' else 'SEEG'}{i:03d}" for i in range(n_ch)]
    n = int(round(run_seconds * sfreq))
    lags = np.arange(0, int(0.8 * sfreq)) / sfreq
    kernel = np.exp(-0.5 * ((lags - 0.4) / 0.08) ** 2)
    readout, realised = {}, {}
    for r in sorted(stim["run"].unique()):
        srun = stim[stim["run"] == r]
        rows = srun.index.to_numpy()
        signal = np.zeros((n, n_ch))
        for layer, idx in planted.items():
            feats = np.asarray(acts.sel(layer=layer).values, dtype=np.float64)
            readout.update(ctx.save_readout(layer, feats.shape[1], len(idx)))
            amp = _z(ctx.amplitudes(feats, layer, len(idx)))[rows]  # (n_words_run, k)
            imp = np.zeros((n, len(idx)))
            samp = np.clip(np.rint(srun["onset"].to_numpy() * sfreq).astype(int), 0, n - 1)
            np.add.at(imp, samp, amp)
            conv = fftconvolve(imp, kernel[:, None], axes=0)[:n]
            signal[:, idx] = _z(conv)
        noise, info = make_noise(ctx.gen.noise, n, 1, n_ch, 1.0 / sfreq, ctx.gen.ar_phi, rng)
        if info:
            realised[str(r)] = info["1"]
        data = (snr * signal + noise) * (1e-12 if modality == "meg" else 1e-5)
        info = mne.create_info(names, sfreq, ch_types=ch_type)
        raw = mne.io.RawArray(data.T, info, verbose="error")
        raw.set_meas_date(None) if modality == "meg" else None
        onsets = srun["onset"].to_numpy()
        events = np.column_stack([np.rint(onsets * sfreq).astype(int), np.zeros(len(onsets), int), np.ones(len(onsets), int)])
        meta = pd.DataFrame({"word": srun["word"].to_numpy()})
        bp = BIDSPath(subject=ctx.sub, task=task, run=int(r), datatype=modality, root=out)
        raw.info["line_freq"] = 50
        write_raw_bids(raw, bp, events=events, event_id={"word": 1}, event_metadata=meta,
                       extra_columns_descriptions={"word": "the word heard"}, format="FIF" if modality == "meg" else "BrainVision",
                       allow_preload=True, overwrite=True, verbose="error")
    return {"response": {}, "noise": realised, "readout": readout}
