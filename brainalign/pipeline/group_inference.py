"""Group inference of the group step, written to ``group/`` for the report to read.

Two results per task x model, computed by :func:`.group.run_group` (never by the
report, which only reads them):

``task-<t>_desc-<m>_layerprofile.tsv`` (+ ``.json``)
    The group's layer choice: each participant's mean r (and r / ceiling when every
    participant has a ceiling) over all targets, and over the targets with group
    ``p_fdr < q`` at some layer, resampled over participants
    (:func:`.uncertainty.participant_bootstrap`, ``statistics.n_bootstrap`` draws,
    ``scoring.seed``). Long table, one row per curve x layer: ``var`` (r | r_norm),
    ``targets`` (all | significant), ``n_targets``, ``layer``, ``mean``, ``ci_low``,
    ``ci_high`` (``statistics.ci``), ``p_best``, ``in_credible_set`` (level
    :data:`.uncertainty.LEVEL`).
``task-<t>_desc-<m>L<NN>_stat-logp_statmap.nii.gz`` (+ ``.json``)
    Volumetric studies: nilearn's ``non_parametric_inference`` at the group's best
    layer (by group mean r): a one-sample sign-flip permutation test of the
    participants' Fisher-z r maps > 0, max-statistic FWE; -log10 p per voxel (0
    outside the voxels every participant has). The sidecar records the layer,
    participants, permutations (:data:`GROUP_PERMUTATIONS`, or all 2**n flips when
    fewer), seed, alpha, threshold and the number of voxels tested and passing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import outputs
from .uncertainty import LEVEL, participant_bootstrap

#: Sign-flip permutations of the group test (all 2**n flips when there are fewer).
GROUP_PERMUTATIONS = 1000
#: Family-wise error level of the thresholded group test map.
GROUP_ALPHA = 0.05
PROFILE_COLUMNS = ("var", "targets", "n_targets", "layer", "mean", "ci_low", "ci_high", "p_best", "in_credible_set")


def profile_path(out_dir, task: str, model: str) -> Path:
    """``group/task-<t>_desc-<m>_layerprofile.tsv``."""
    return outputs.group_scores_path(out_dir, task, model).with_name(f"task-{task}_desc-{model}_layerprofile.tsv")


def test_map_path(out_dir, task: str, model: str, layer: int) -> Path:
    """``group/task-<t>_desc-<m>L<NN>_stat-logp_statmap.nii.gz``."""
    return outputs.map_path(out_dir, None, task, model, layer, "logp")


def sidecar(path: Path) -> Path:
    """The JSON sidecar of a ``.tsv`` or ``.nii.gz`` file."""
    return path.with_name(path.name.split(".")[0] + ".json")


def participant_curves(dsets: list[xr.Dataset], targets=None, var: str = "r") -> tuple[np.ndarray, np.ndarray, int]:
    """(layers, x (n_participants, n_layers), n_targets): each participant's mean ``var`` over (the given) targets.

    Participants are joined on target identity (as :func:`.group.stack_subjects`).
    """
    st = xr.concat([d[var] for d in dsets], dim="subject", join="outer", fill_value=np.nan)
    if targets is not None:
        st = st.isel(target=np.flatnonzero(np.isin(st["target"].values.astype(str), list(targets))))
    with np.errstate(all="ignore"):
        return st["layer"].values, st.mean("target", skipna=True).transpose("subject", "layer").values, st.sizes["target"]


def significant_targets(table: pd.DataFrame, model: str, q: float) -> list[str]:
    """Targets with group ``p_fdr < q`` at some layer in the group table."""
    pf = table[(table.method == "encoding") & (table.model == model) & (table.metric == "p_fdr")]
    return sorted(set(pf[pf["value"] < q]["target"].astype(str)))


def layer_profile(dsets, table: pd.DataFrame, model: str, *, q: float, n_boot: int, ci: float,
                  seed: int) -> pd.DataFrame:
    """The long table of ``layerprofile.tsv`` (see the module docstring)."""
    sig = significant_targets(table, model, q)
    curves = [("r", "all", None)] + ([("r", "significant", sig)] if sig else [])
    if all("r_norm" in d for d in dsets):
        curves.append(("r_norm", "all", None))
    rows = []
    for var, name, targets in curves:
        layers, x, n_t = participant_curves(dsets, targets, var)
        if n_boot > 0 and x.shape[0] > 1:
            b = participant_bootstrap(x, n_boot=n_boot, seed=seed, ci=ci)
        else:
            with np.errstate(all="ignore"):
                m = np.nanmean(x, 0)
            b = {"mean": m, "ci_low": np.full_like(m, np.nan), "ci_high": np.full_like(m, np.nan),
                 "p_best": np.full_like(m, np.nan), "in_credible_set": np.zeros(m.shape, bool)}
        rows.append(pd.DataFrame({"var": var, "targets": name, "n_targets": n_t, "layer": layers.astype(int),
                                  "mean": b["mean"], "ci_low": b["ci_low"], "ci_high": b["ci_high"],
                                  "p_best": b["p_best"], "in_credible_set": b["in_credible_set"].astype(bool)}))
    return pd.concat(rows, ignore_index=True)[list(PROFILE_COLUMNS)]


def _images(dsets: list[xr.Dataset], layer: int):
    """Each participant's Fisher-z r map at ``layer`` and the mask of voxels every participant has."""
    import nibabel as nib

    geo = outputs.result_geometry(dsets[0])
    vols = []
    for d in dsets:
        img = outputs.to_volume(np.arctanh(np.clip(d["r"].sel(layer=layer).values, -0.999999, 0.999999)),
                                outputs.flat_index(d), geo[1], geo[0])
        vols.append(np.asarray(img.dataobj))
    stack = np.stack(vols)
    mask = np.isfinite(stack).all(0)
    imgs = [nib.Nifti1Image(np.nan_to_num(v).astype(np.float32), geo[0]) for v in vols]
    return imgs, nib.Nifti1Image(mask.astype(np.uint8), geo[0]), int(mask.sum())


def group_test(dsets: list[xr.Dataset], layer: int, seed: int):
    """(-log10 p NIfTI, its sidecar dict) of nilearn's permutation group test at ``layer``, or None.

    None with fewer than two participants, results that are not volumetric, or no
    voxel shared by every participant.
    """
    if len(dsets) < 2 or any(outputs.result_geometry(d) is None or "r" not in d for d in dsets):
        return None
    from nilearn.glm.second_level import non_parametric_inference

    imgs, mask, n_vox = _images(dsets, layer)
    if n_vox == 0:
        return None
    n = len(dsets)
    n_perm = min(GROUP_PERMUTATIONS, 2 ** n)
    logp = non_parametric_inference(imgs, design_matrix=pd.DataFrame({"intercept": np.ones(n)}), mask=mask,
                                    n_perm=n_perm, two_sided_test=False, random_state=seed, n_jobs=1)
    vals = np.asarray(logp.dataobj)[np.asarray(mask.dataobj) > 0]
    thr = -np.log10(GROUP_ALPHA)
    side = {"Description": "nilearn non_parametric_inference: one-sample sign-flip permutation test of the "
                           "participants' Fisher-z r > 0, max-statistic FWE; values are -log10 p (0 outside the "
                           "voxels every participant has)",
            "Layer": int(layer), "Participants": [str(d.attrs.get("subject")) for d in dsets],
            "NPermutations": int(n_perm), "Seed": int(seed), "Alpha": GROUP_ALPHA, "Threshold": float(thr),
            "NVoxels": int(n_vox), "NPass": int(np.sum(vals > thr)), "Max": float(np.nanmax(vals)),
            "SmallestP": float(1 / 2 ** n)}
    return logp, side


def best_group_layer(table: pd.DataFrame, model: str) -> int | None:
    """The layer of highest group mean r (mean over targets), as the report draws it; None without one."""
    enc = table[(table.method == "encoding") & (table.model == model) & (table.metric == "mean_r")]
    prof = enc.groupby(enc["layer"].astype(int))["value"].mean()
    if not len(prof) or not np.isfinite(prof.values).any():
        return None
    return int(prof.index[int(np.nanargmax(prof.values))])


def write_inference(out_dir, dsets, table: pd.DataFrame, task: str, model: str, opts: dict, q: float,
                    test: bool = True) -> list[Path]:
    """Compute and write the layer profile and (volumetric, when ``test``) group test of one task x model.

    ``opts`` are :func:`.group.group_options`' (``n_boot``, ``ci``, ``seed``); ``q`` the FDR
    level that picks the significant targets. Returns the paths written.
    """
    out, files = Path(out_dir), []
    for old in (out / "group").glob(f"task-{task}_desc-{model}L*_stat-logp_statmap.*"):  # a previous run's layer
        old.unlink()
    if not dsets or not all("r" in d for d in dsets):
        return files
    prof = layer_profile(dsets, table, model, q=q, n_boot=opts["n_boot"], ci=opts["ci"], seed=opts["seed"])
    path = profile_path(out, task, model)
    files.append(outputs.write_tsv(path, prof))
    files.append(outputs.write_json(sidecar(path), {
        "Description": "group layer profile: each participant's mean over targets per layer, participants resampled",
        "Columns": list(PROFILE_COLUMNS), "NParticipants": len(dsets), "NBootstrap": int(opts["n_boot"]),
        "Seed": int(opts["seed"]), "CI": float(opts["ci"]), "CredibleLevel": LEVEL, "Q": float(q),
        "Participants": [str(d.attrs.get("subject")) for d in dsets],
        "Ceilings": {str(d.attrs.get("subject")): str(d.attrs.get("ceiling_kind", "not recorded")) for d in dsets}}))
    layer = best_group_layer(table, model)
    res = group_test(dsets, layer, opts["seed"]) if test and layer is not None else None
    if res is not None:
        path = test_map_path(out, task, model, layer)
        files += [outputs.write_nifti(path, res[0]), outputs.write_json(sidecar(path), res[1])]
    return files


def read_profile(out_dir, task: str, model: str) -> tuple[pd.DataFrame, dict] | None:
    """The written layer profile and its sidecar, or None (written before the group step wrote it)."""
    path = profile_path(out_dir, task, model)
    if not path.is_file() or not sidecar(path).is_file():
        return None
    tab = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"])
    tab["in_credible_set"] = tab["in_credible_set"].astype(str).str.lower() == "true"
    return tab, json.loads(sidecar(path).read_text())


def read_test(out_dir, task: str, model: str, layer: int):
    """(-log10 p image, sidecar) of the written group test at ``layer``, or None."""
    import nibabel as nib

    path = test_map_path(out_dir, task, model, layer)
    if not path.is_file() or not sidecar(path).is_file():
        return None
    return nib.load(path), json.loads(sidecar(path).read_text())
