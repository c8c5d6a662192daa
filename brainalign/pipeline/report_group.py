"""The group sections of ``group.html``: the group's layer choice, group maps with a group test.

Read from disk only: the group tables written by :mod:`.group` and the
participants' results. The group's layer choice resamples participants
(:func:`.uncertainty.participant_bootstrap`); volumetric group maps get nilearn's
``non_parametric_inference`` (a one-sample sign-flip permutation test of the
participants' Fisher-z r maps against 0, max-statistic FWE correction); the
threshold of every map is written under it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from . import outputs
from .group import stack_subjects
from .report_figures import _mark_answer, _set_text
from .report_html import figure, para, plt
from .report_maps import preference_figure
from .uncertainty import LEVEL, participant_bootstrap

#: Sign-flip permutations of the group test (all 2**n flips when there are fewer).
GROUP_PERMUTATIONS = 1000
#: Family-wise error level of the thresholded group test map.
GROUP_ALPHA = 0.05


def _profile_from_table(enc: pd.DataFrame, metric: str) -> pd.Series:
    sub = enc[enc.metric == metric]
    return sub.groupby(sub["layer"].astype(int))["value"].mean()


def participant_curves(dsets: list[xr.Dataset], targets=None) -> tuple[np.ndarray, np.ndarray]:
    """(layers, x (n_participants, n_layers)): each participant's mean r over (the given) targets."""
    st = stack_subjects(dsets, "r")
    if targets is not None:
        st = st.isel(target=np.flatnonzero(np.isin(st["target"].values.astype(str), list(targets))))
    return st["layer"].values, st.mean("target", skipna=True).transpose("subject", "layer").values


def group_curve(dsets: list[xr.Dataset], enc: pd.DataFrame, q: float, seed: int) -> list[str]:
    """Group layer profile (participants bootstrapped), best layer starred, credible set shaded, and the answer."""
    if not dsets:
        prof = _profile_from_table(enc, "mean_r")
        fig, ax = plt().subplots(figsize=(6, 3.4))
        ax.plot(prof.index, prof.values, marker="o")
        return [figure(fig, "Group layer profile: mean r over targets and participants (participant results not "
                            "found, no interval).", "group-profile")]
    pf = enc[enc.metric == "p_fdr"]
    sig = sorted(set(pf[pf["value"] < q]["target"]))
    fig, ax = plt().subplots(figsize=(6, 3.6))
    body, parts = [], []
    sets = [("all targets", None)] + ([(f"targets with group p_fdr < {q:g} at some layer (n={len(sig)})", sig)]
                                      if sig else [])
    for k, (name, targets) in enumerate(sets):
        layers, x = participant_curves(dsets, targets)
        b = participant_bootstrap(x, seed=seed)
        color = f"C{k}"
        ax.plot(layers, b["mean"], marker="o", color=color, label=name)
        ax.fill_between(layers, b["ci_low"], b["ci_high"], color=color, alpha=0.2)
        if np.isfinite(b["mean"]).any():
            _mark_answer(ax, layers.astype(float), b["mean"], b["in_credible_set"], color)
            i = int(np.nanargmax(b["mean"]))
            parts.append(f"{name}: best layer {int(layers[i])} (p_best {b['p_best'][i]:.2f}), "
                         f"{int(100 * LEVEL)}% credible set {_set_text(layers, b['in_credible_set'])}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("layer")
    ax.set_xticks(np.asarray(layers, dtype=float))
    ax.set_ylabel("mean r over targets")
    ax.legend(fontsize=7)
    body.append(figure(fig, (f"Group layer profile over {len(dsets)} participants: mean r, 95% bootstrap interval "
                             "(participants resampled); star: best layer, shaded: the layers not distinguishable "
                             "from the best (credible set). " + "; ".join(parts) + "."
                             + (" With fewer than 5 participants the bootstrap over participants is coarse."
                                if len(dsets) < 5 else "")), "group-profile"))
    body.append(para("Group answer: " + "; ".join(parts) + ".", "answer"))
    return body


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


def group_test_map(dsets: list[xr.Dataset], layer: int, seed: int):
    """nilearn non_parametric_inference of the participants' r maps at ``layer``; (figure, caption) or None."""
    if len(dsets) < 2 or any(outputs.result_geometry(d) is None for d in dsets):
        return None
    from nilearn import plotting
    from nilearn.glm.second_level import non_parametric_inference

    imgs, mask, n_vox = _images(dsets, layer)
    if n_vox == 0:
        return None
    n = len(dsets)
    n_perm = min(GROUP_PERMUTATIONS, 2 ** n)
    design = pd.DataFrame({"intercept": np.ones(n)})
    logp = non_parametric_inference(imgs, design_matrix=design, mask=mask, n_perm=n_perm, two_sided_test=False,
                                    random_state=seed, n_jobs=1)
    vals = np.asarray(logp.dataobj)[np.asarray(mask.dataobj) > 0]
    thr = -np.log10(GROUP_ALPHA)
    fig = plt().figure(figsize=(7, 2.6))
    plotting.plot_glass_brain(logp, figure=fig, colorbar=True, threshold=thr, plot_abs=False,
                              vmax=max(float(np.nanmax(vals)), thr + 0.1), title=f"group -log10 p (FWE), layer {layer}")
    caption = (f"Group test at layer {layer}: one-sample sign-flip permutation test of the {n} participants' "
               f"Fisher-z r > 0 (nilearn non_parametric_inference, {n_perm} permutations, max-statistic FWE over "
               f"{n_vox} voxels). Shown: -log10 p > {thr:.2f} (FWE p < {GROUP_ALPHA:g}); "
               f"{int(np.sum(vals > thr))} voxels pass. With {n} participants the smallest attainable p is "
               f"{1 / 2 ** n:.3g}.")
    return fig, caption


def group_preference_map(dsets: list[xr.Dataset], enc: pd.DataFrame, q: float):
    """Best group layer (mean r) of each target with group p_fdr < q at some layer, on the volume."""
    if not dsets or outputs.result_geometry(dsets[0]) is None:
        return None
    mean = enc[enc.metric == "mean_r"].pivot_table(index="target", columns="layer", values="value")
    pf = enc[enc.metric == "p_fdr"]
    sig = set(pf[pf["value"] < q]["target"])
    flat: dict = {}
    for d in dsets:
        flat.update(zip(np.asarray(d["target"].values).astype(str).tolist(), outputs.flat_index(d).tolist()))
    layers = [int(l) for l in mean.columns]
    best = mean.idxmax(axis=1)
    keep = [t for t in best.index if t in sig and t in flat]
    geo = outputs.result_geometry(dsets[0])
    img = outputs.to_volume(best[keep].to_numpy(dtype=float), np.asarray([flat[t] for t in keep], dtype=np.int64),
                            geo[1], geo[0])
    fig = preference_figure(img, layers, "group preferred layer")
    return fig, (f"Group layer-preference map: the layer of highest group mean r for each of the {len(keep)} targets "
                 f"with group p_fdr < {q:g} at some layer (the group table's test, BH over layer x target); other "
                 "targets are not coloured.")
