"""The group sections of ``group.html``: the group's layer choice, group maps with a group test.

Read from disk only, never computed here: the group tables written by :mod:`.group`,
the group's layer profile (participants bootstrapped) and the permutation group
test map written by :mod:`.group_inference` in the group step, and the
participants' results (for the preference map's voxel positions). An output folder
written before the group step wrote those files says so ("not computed; re-run
the group step") instead of recomputing them. The threshold of every map is
written under it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from . import group_inference, outputs
from .report_figures import _mark_answer, _set_text
from .report_html import figure, para, plt
from .report_maps import preference_figure
from .uncertainty import LEVEL

#: What the report says where the group step's inference files are missing.
NOT_COMPUTED = "not computed for this output folder; re-run the group step (brainalign ... group) to compute it"


def _profile_from_table(enc: pd.DataFrame, metric: str) -> pd.Series:
    sub = enc[enc.metric == metric]
    return sub.groupby(sub["layer"].astype(int))["value"].mean()


def _table_curve(enc: pd.DataFrame) -> list[str]:
    """The group table's mean r per layer, without interval (no written layer profile)."""
    prof = _profile_from_table(enc, "mean_r")
    fig, ax = plt().subplots(figsize=(6, 3.4))
    ax.plot(prof.index, prof.values, marker="o")
    ax.set_xlabel("layer")
    ax.set_ylabel("mean r over targets")
    return [figure(fig, "Group layer profile: mean r over targets and participants from the group table (no "
                        f"interval: the participant bootstrap was {NOT_COMPUTED}).", "group-profile")]


def _draw(ax, rows: pd.DataFrame, color: str, label: str) -> str:
    """One written curve with its interval, best layer starred and credible set shaded; its answer text."""
    layers, mean = rows["layer"].to_numpy(dtype=float), rows["mean"].to_numpy(dtype=float)
    ax.plot(layers, mean, marker="o", color=color, label=label)
    ax.fill_between(layers, rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float),
                    color=color, alpha=0.2)
    if not np.isfinite(mean).any():
        return ""
    cred = rows["in_credible_set"].to_numpy(dtype=bool)
    _mark_answer(ax, layers, mean, cred, color)
    i = int(np.nanargmax(mean))
    return (f"{label}: best layer {int(layers[i])} (p_best {rows['p_best'].iloc[i]:.2f}), "
            f"{int(100 * LEVEL)}% credible set {_set_text(layers.astype(int), cred)}")


def group_curve(out_dir, task: str, model: str, enc: pd.DataFrame) -> list[str]:
    """Group layer profile as written by the group step, the answer, and the ceiling-normalised profile."""
    found = group_inference.read_profile(out_dir, task, model)
    if found is None:
        return _table_curve(enc) if len(enc) else []
    prof, side = found
    n, q, ci = int(side.get("NParticipants", 0)), float(side.get("Q", 0.05)), float(side.get("CI", 0.95))
    fig, ax = plt().subplots(figsize=(6, 3.6))
    parts = []
    for k, (name, rows) in enumerate(prof[prof["var"] == "r"].groupby("targets", sort=False)):
        label = "all targets" if name == "all" else (f"targets with group p_fdr < {q:g} at some layer "
                                                     f"(n={int(rows['n_targets'].iloc[0])})")
        part = _draw(ax, rows.sort_values("layer"), f"C{k}", label)
        parts += [part] if part else []
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("layer")
    ax.set_xticks(np.unique(prof["layer"].to_numpy(dtype=float)))
    ax.set_ylabel("mean r over targets")
    ax.legend(fontsize=7)
    body = [figure(fig, (f"Group layer profile over {n} participants: mean r, {int(round(100 * ci))}% bootstrap "
                         f"interval (participants resampled, {side.get('NBootstrap')} draws, seed "
                         f"{side.get('Seed')}); star: best layer, shaded: the layers not distinguishable from the best "
                         "(credible set). " + "; ".join(parts) + "."
                         + (" With fewer than 5 participants the bootstrap over participants is coarse."
                            if n < 5 else "")), "group-profile"),
            para("Group answer: " + "; ".join(parts) + ".", "answer")]
    kinds = sorted(set((side.get("Ceilings") or {}).values()))
    body += _ceiling_curve(prof[prof["var"] == "r_norm"], n, ci, ", ".join(kinds))
    return body


def _ceiling_curve(rows: pd.DataFrame, n: int, ci: float, kinds: str) -> list[str]:
    """The group's ceiling-normalised profile (written r / ceiling curve), when every participant has a ceiling."""
    if not len(rows):
        return [para("No group ceiling-normalised profile: not every participant has a noise ceiling "
                     "(statistics.ceiling; see the participants' reports for the reason).")]
    fig, ax = plt().subplots(figsize=(6, 3.2))
    rows = rows.sort_values("layer")
    _draw(ax, rows, "C2", "r / ceiling, all targets")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("layer")
    ax.set_xticks(rows["layer"].to_numpy(dtype=float))
    ax.set_ylabel("mean r / ceiling")
    return [figure(fig, (f"Group ceiling-normalised layer profile over {n} participants: each participant's mean "
                         f"r / noise ceiling ({kinds or 'kind not recorded'}) over its targets with a positive "
                         "ceiling, averaged over participants, "
                         f"{int(round(100 * ci))}% bootstrap interval (participants resampled)."), "group-ceiling")]


def group_test_section(out_dir, task: str, model: str, layer: int) -> list[str]:
    """The written permutation group test at ``layer``, thresholded and labelled; or why it is missing."""
    found = group_inference.read_test(out_dir, task, model, layer)
    if found is None:
        return [para(f"Group permutation test (nilearn non_parametric_inference) at layer {layer}: {NOT_COMPUTED}.")]
    from nilearn import plotting

    logp, side = found
    thr, n, n_perm = float(side["Threshold"]), len(side["Participants"]), int(side["NPermutations"])
    fig = plt().figure(figsize=(7, 2.6))
    plotting.plot_glass_brain(logp, figure=fig, colorbar=True, threshold=thr, plot_abs=False,
                              vmax=max(float(side["Max"]), thr + 0.1), title=f"group -log10 p (FWE), layer {layer}")
    caption = (f"Group test at layer {layer}: one-sample sign-flip permutation test of the {n} participants' "
               f"Fisher-z r > 0 (nilearn non_parametric_inference, {n_perm} permutations, seed {side['Seed']}, "
               f"max-statistic FWE over {side['NVoxels']} voxels; computed by the group step). Shown: -log10 p > "
               f"{thr:.2f} (FWE p < {side['Alpha']:g}); {side['NPass']} voxels pass. With {n} participants the "
               f"smallest attainable p is {side['SmallestP']:.3g}.")
    return [figure(fig, caption, "group-test")]


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
