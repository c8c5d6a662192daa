"""Data layouts that labs have, built with nibabel inside the tests (tests/test_fmriprep*, test_sessions*, ...).

Every layout starts from :func:`brainalign.pipeline.simulate.simulate_bids` (MiniLM
layer-1 features planted in some voxels, noise elsewhere) and rearranges its files:

- :func:`fmriprep_layout`: the planted BOLD moves to ``derivatives/fmriprep`` as
  ``space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz`` with motion artefacts added
  (explained by the confounds table, real fMRIPrep column names, ``n/a`` in the first
  row, two non-steady-state volumes spiking), a brain mask and the confounds JSON;
  the raw BOLD becomes pure noise on another grid, so finding the signal shows the
  derivatives were read.
- sessions: the same, under ``ses-<label>/``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml

from brainalign.pipeline.simulate import simulate_bids

SPACE = "MNI152NLin2009cAsym"
MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
N_COSINE = 3
N_NSS = 2  # non-steady-state volumes at the start of every run


def simulate(root: Path, cache: Path, *, seed: int, n_vol: int = 60, n_runs: int = 2, sessions=None,
             n_words: int = 110, grid=(6, 6, 5), snr: float = 2.0) -> dict:
    """``simulate_bids`` with layer 1 planted in 12 voxels, at a high SNR (tests run few folds)."""
    truth = simulate_bids(root, "fmri", n_subjects=1, n_runs=n_runs, n_volumes=n_vol, grid=grid, layers=(1,),
                          targets_per_layer=12, snr=snr, n_words=n_words, seed=seed, cache_dir=str(cache))
    truth["grid"] = list(grid)
    return truth


def planted_flat(root: Path, truth: dict) -> tuple[set, set]:
    """Flat C-order grid indices of the planted and of the noise voxels."""
    root_mask = np.asarray(nib.load(root / truth["mask"]).dataobj) > 0
    flat = np.flatnonzero(root_mask.ravel())
    return {int(flat[i]) for i in truth["planted"]["1"]}, {int(flat[i]) for i in truth["noise"]}


def confounds_table(n: int, rng) -> pd.DataFrame:
    """An fMRIPrep-like confounds table: motion (+ derivatives, squares), csf, white_matter, global_signal,
    aCompCor, cosines, non-steady-state outliers, framewise_displacement and std_dvars with n/a first."""
    cols: dict[str, np.ndarray] = {}
    for m in MOTION:
        x = np.cumsum(rng.standard_normal(n)) * 0.05
        d = np.r_[np.nan, np.diff(x)]
        cols.update({m: x, f"{m}_derivative1": d, f"{m}_power2": x ** 2, f"{m}_derivative1_power2": d ** 2})
    for name in ("csf", "white_matter", "global_signal"):
        x = rng.standard_normal(n)
        d = np.r_[np.nan, np.diff(x)]
        cols.update({name: x, f"{name}_derivative1": d, f"{name}_power2": x ** 2,
                     f"{name}_derivative1_power2": d ** 2})
    for k in range(5):
        cols[f"a_comp_cor_{k:02d}"] = rng.standard_normal(n)
    t = np.arange(n)
    for k in range(N_COSINE):
        cols[f"cosine{k:02d}"] = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * t + 1) * (k + 1) / (2 * n))
    for k in range(N_NSS):
        cols[f"non_steady_state_outlier_{k:02d}"] = (t == k).astype(float)
    fd = np.abs(rng.standard_normal(n)) * 0.05
    fd[0] = np.nan
    cols["framewise_displacement"] = fd
    dv = np.abs(rng.standard_normal(n)) * 0.2 + 0.8
    dv[0] = np.nan
    cols["std_dvars"] = dv
    cols["dvars"] = dv * 10
    return pd.DataFrame(cols)


def _json_meta() -> dict:
    meta = {f"a_comp_cor_{k:02d}": {"Method": "aCompCor", "Mask": "combined", "Retained": True,
                                    "SingularValue": 10.0 - k, "VarianceExplained": 0.1,
                                    "CumulativeVarianceExplained": 0.1 * (k + 1)} for k in range(5)}
    return meta


def to_fmriprep(root: Path, truth: dict, sub: str = "01", ses: str | None = None, seed: int = 0,
                artefact: float = 4.0) -> Path:
    """Move ``sub``'s simulated BOLD into ``derivatives/fmriprep`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    raw_func = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "func"
    der_func = root / "derivatives" / "fmriprep" / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "func"
    der_func.mkdir(parents=True, exist_ok=True)
    mask_img = nib.load(root / truth["mask"])
    mask = np.asarray(mask_img.dataobj) > 0
    desc = root / "derivatives" / "fmriprep" / "dataset_description.json"
    desc.write_text(json.dumps({"Name": "fMRIPrep", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
                                "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]}))
    for bold in sorted(raw_func.glob("*_bold.nii.gz")):
        stem = bold.name.replace("_bold.nii.gz", "")
        img = nib.load(bold)
        data = np.asarray(img.get_fdata(), dtype=np.float32)
        n = data.shape[3]
        conf = confounds_table(n, rng)
        motion = conf[list(MOTION)].to_numpy()
        w = rng.standard_normal((len(MOTION), int(mask.sum())))
        art = artefact * 5.0 * (motion - motion.mean(0)) / motion.std(0) @ w / np.sqrt(len(MOTION))
        inside = data[mask] + art.T.astype(np.float32)
        inside[:, :N_NSS] += 60.0  # non-steady-state volumes: bright
        data[mask] = inside
        out = nib.Nifti1Image(data, img.affine)
        out.header.set_xyzt_units("mm", "sec")
        out.header["pixdim"][4] = img.header["pixdim"][4]
        nib.save(out, der_func / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz")
        (der_func / f"{stem}_space-{SPACE}_desc-preproc_bold.json").write_text(
            (bold.with_name(stem + "_bold.json")).read_text())
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), img.affine), der_func / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz")
        conf.to_csv(der_func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a")
        (der_func / f"{stem}_desc-confounds_timeseries.json").write_text(json.dumps(_json_meta()))
        # the raw BOLD: noise on another grid (native space), same TR and length
        noise = rng.standard_normal((5, 5, 4, n)).astype(np.float32) + 100
        raw = nib.Nifti1Image(noise, np.diag([4.0, 4.0, 4.0, 1.0]))
        raw.header.set_xyzt_units("mm", "sec")
        raw.header["pixdim"][4] = img.header["pixdim"][4]
        nib.save(raw, bold)
    return der_func


def fast_config(path: Path, *, extra: dict | None = None) -> Path:
    """A BIDS-App ``--config``: MiniLM layers 0 and 1, encoding, 2 folds, small alpha grid, no shift-null
    permutations (no layout test reads a p), no report."""
    cfg = {"models": [{"label": "MiniLM", "path": "packaged:minilm", "layers": [0, 1], "context_words": 20}],
           "scoring": {"methods": ["encoding"], "inner_cv": 2, "alphas": [1.0, 100.0, 10000.0],
                       "cv": {"n_folds": 2}, "permutations": 0},
           "statistics": {"n_bootstrap": 10, "group_test": "none"},
           "outputs": {"report": False}}
    for k, v in (extra or {}).items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(argv, cache: Path, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """``python -m brainalign.cli ARGV`` with the test's activation cache."""
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", BRAINALIGN_CACHE=str(cache))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "brainalign.cli", *map(str, argv)], capture_output=True, text=True,
                          env=e, cwd=cwd, timeout=300)


def layer_r(table: pd.DataFrame, layer: int = 1) -> pd.Series:
    """Mean-over-folds encoding r per target (flat voxel index) at ``layer``."""
    t = table[(table.metric == "r") & (table.method == "encoding") & table.fold.isna() & (table.layer == layer)
              & (table.model == "MiniLM")]
    return t.set_index(t["target"].astype(int))["value"]


def textgrid(words: pd.DataFrame, xmax: float) -> str:
    """A long-format Praat TextGrid with one interval tier 'words' (silences as empty intervals)."""
    ivs, t = [], 0.0
    for on, du, w in zip(words["onset"], words["duration"], words["word"]):
        if on > t + 1e-6:
            ivs.append((t, on, ""))
        ivs.append((on, on + du, str(w).replace('"', "")))
        t = on + du
    if xmax > t:
        ivs.append((t, xmax, ""))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax}",
             "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
             '        name = "words"', "        xmin = 0", f"        xmax = {xmax}",
             f"        intervals: size = {len(ivs)}"]
    for i, (a, b, w) in enumerate(ivs, 1):
        lines += [f"        intervals [{i}]:", f"            xmin = {a}", f"            xmax = {b}",
                  f'            text = "{w}"']
    return "\n".join(lines) + "\n"


def split_sessions(root: Path, sub: str = "01", per_session: int = 2) -> list[str]:
    """Move a subject's runs into sessions ``1``, ``2``...: runs 1..k -> ses-1 runs 1..k, the next k -> ses-2."""
    func = root / f"sub-{sub}" / "func"
    runs = sorted({int(p.name.split("_run-")[1].split("_")[0]) for p in func.glob("*_run-*")})
    labels = []
    for i, run in enumerate(runs):
        ses, new = str(i // per_session + 1), i % per_session + 1
        dest = root / f"sub-{sub}" / f"ses-{ses}" / "func"
        dest.mkdir(parents=True, exist_ok=True)
        for p in func.glob(f"*_run-{run}_*"):
            name = p.name.replace(f"sub-{sub}_", f"sub-{sub}_ses-{ses}_").replace(f"_run-{run}_", f"_run-{new}_")
            p.rename(dest / name)
        labels.append(ses)
    func.rmdir()
    return sorted(set(labels))


def separated(r: pd.Series, planted: set, noise: set, z: float = 3.0) -> bool:
    """Planted voxels' mean r above the noise voxels' by ``z`` standard errors of a mean of that many noise voxels."""
    p, n = r[list(planted)], r[list(noise)]
    return bool(p.mean() - n.mean() > z * n.std() / np.sqrt(len(p)))
