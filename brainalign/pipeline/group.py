"""Group level: statistics over participants from their written results.

For every task x model: the mean over participants of r (and r_norm, RSA) per
layer x target with a bootstrap confidence interval (participants resampled,
seeded), a one-sided test against 0 (Wilcoxon signed-rank or t-test) with
Benjamini-Hochberg FDR over layer x target, and, when a baseline was fitted, the
paired test of r(baseline + layer) against r(baseline) per target (FDR over layer x
target). Participants are joined on each target's identity (voxel flat index in the
volume grid, surface vertex ``<hemi>_<vertex>`` or CIFTI grayordinate, channel, ROI or
region name) and every row says how many participants have that target
(``n_subjects``). Results go to ``group/`` as long tables and mean-r maps (NIfTI, or
GIFTI/CIFTI on surfaces: :mod:`.surface_maps`), with the group's layer profile
(participants bootstrapped) and the volumetric permutation group test
(:mod:`.group_inference`); ``group.html`` is rendered from these files by
:mod:`.report`, which computes nothing.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ..encoding import fdr_bh
from ..errors import InputError, MissingDataError
from . import group_inference, outputs, surface_maps
from .geometry_scores import geometry_rows, geometry_var
from .gt_band import band_table
from .summaries import fdr_q

GROUP_COLUMNS = ("task", "model", "layer", "target", "method", "metric", "value", "n_subjects")


@dataclass
class GroupResult:
    """The group tables written, by (task, model); ``report`` is set by whoever renders ``group.html``."""

    tables: dict = field(default_factory=dict)
    report: Path | None = None
    convergence: list = field(default_factory=list)


def _test(x: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One-sided test that the mean of x (n_subjects, m) is > 0, column-wise."""
    stat = np.full(x.shape[1], np.nan)
    p = np.full(x.shape[1], np.nan)
    for j in range(x.shape[1]):
        col = x[np.isfinite(x[:, j]), j]
        if col.size < 2 or np.allclose(col, col[0]):
            continue
        if kind == "wilcoxon":
            res = stats.wilcoxon(col, alternative="greater")
        else:
            res = stats.ttest_1samp(col, 0.0, alternative="greater")
        stat[j], p[j] = float(res.statistic), float(res.pvalue)
    return stat, p


def bootstrap_ci(x: np.ndarray, ci: float, n_boot: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI of the column means of x (n_subjects, m), resampling subjects."""
    if n_boot == 0 or x.shape[0] < 2:
        return np.full(x.shape[1], np.nan), np.full(x.shape[1], np.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], size=(n_boot, x.shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample of only participants without that target
        means = np.stack([np.nanmean(x[i], axis=0) for i in idx])
    a = (1 - ci) / 2
    return np.nanquantile(means, a, axis=0), np.nanquantile(means, 1 - a, axis=0)


def _rows(task, model, metric_vals: dict, layers, targets, method, n):
    frames = []
    for metric, vals in metric_vals.items():
        v = np.asarray(vals)
        L, T = np.meshgrid(np.arange(v.shape[0]), np.arange(v.shape[1]), indexing="ij")
        frames.append(pd.DataFrame({"task": task, "model": model, "layer": np.asarray(layers)[L.ravel()] if layers is not None else pd.NA,
                                    "target": np.asarray(targets)[T.ravel()].astype(str), "method": method,
                                    "metric": metric, "value": v.ravel(), "n_subjects": np.asarray(n).ravel()}))
    return frames


def stack_subjects(dsets: list[xr.Dataset], var: str) -> xr.DataArray:
    """``var`` of every participant on the union of their targets, (subject, ...).

    Participants are joined on the target's identity (the ``target`` coordinate:
    voxel flat index in the volume grid, channel, ROI or region name), so a
    participant who lost targets has NaN there and the others keep their values.
    """
    return xr.concat([d[var] for d in dsets], dim="subject", join="outer", fill_value=np.nan)


def _summary(x: np.ndarray, shp, test: str, ci: float, n_boot: int, seed: int, q) -> dict:
    """Mean, bootstrap CI, one-sided test and FDR of x (n_subjects, m), reshaped to ``shp``."""
    stat, p = _test(x, test) if test != "none" else (np.full(x.shape[1], np.nan),) * 2
    lo, hi = bootstrap_ci(x, ci, n_boot, seed)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # targets no participant has
        mean = np.nanmean(x, 0)
    return {"mean": mean.reshape(shp), "ci_low": lo.reshape(shp), "ci_high": hi.reshape(shp),
            "stat": stat.reshape(shp), "p": p.reshape(shp), "p_fdr": q(p.reshape(shp))}


def _summary_options(opts: dict) -> dict:
    """The :func:`_summary` keywords of :func:`group_options`' output (FDR as a function)."""
    q = (lambda p: np.asarray(fdr_bh(np.nan_to_num(p.ravel(), nan=1.0))).reshape(p.shape)) if opts["fdr"] else (lambda p: p)
    return dict(test=opts["test"], ci=opts["ci"], n_boot=opts["n_boot"], seed=opts["seed"], q=q)


def group_stats(dsets: list[xr.Dataset], *, test: str = "wilcoxon", ci: float = 0.95, n_boot: int = 1000,
                fdr: bool = True, baseline_label: str = "baseline", seed: int = 0) -> pd.DataFrame:
    """Long table of group statistics for one task x model.

    Rows are per layer x target identity; ``n_subjects`` says how many
    participants have a finite value there (a participant that lost a voxel
    does not count for it).
    """
    task, model = dsets[0].attrs["task"], dsets[0].attrs["model"]
    frames = []
    q = (lambda p: np.asarray(fdr_bh(np.nan_to_num(p.ravel(), nan=1.0))).reshape(p.shape)) if fdr else (lambda p: p)
    opts = dict(test=test, ci=ci, n_boot=n_boot, seed=seed, q=q)
    if all("r" in d for d in dsets):
        stack = stack_subjects(dsets, "r")  # (subject, layer, target)
        layers, targets, shp = stack["layer"].values, stack["target"].values, stack.shape[1:]
        x = stack.values.reshape(len(dsets), -1)
        n = np.sum(np.isfinite(x), axis=0).reshape(shp)
        s = _summary(x, shp, **opts)
        vals = {"mean_r": s.pop("mean"), **s}
        if all("r_norm" in d for d in dsets):
            s = _summary(stack_subjects(dsets, "r_norm").values.reshape(len(dsets), -1), shp, **opts)
            vals.update(mean_r_norm=s["mean"], ci_low_r_norm=s["ci_low"], ci_high_r_norm=s["ci_high"])
        if all("baseline_r" in d for d in dsets):
            delta = xr.concat([d["r"] - d["baseline_r"] for d in dsets], dim="subject", join="outer", fill_value=np.nan)
            s = _summary(delta.transpose("subject", "layer", "target").values.reshape(len(dsets), -1), shp, **opts)
            vals.update({f"{k}_delta_r": v for k, v in s.items()})
            b = stack_subjects(dsets, "baseline_r")
            s = _summary(b.values, (1, b.sizes["target"]), **dict(opts, test="none"))
            frames += _rows(task, baseline_label, {"mean_r": s["mean"], "ci_low": s["ci_low"], "ci_high": s["ci_high"]},
                            None, b["target"].values, "encoding", np.sum(np.isfinite(b.values), 0)[None])
        frames += _rows(task, model, vals, layers, targets, "encoding", n)
    if all("rsa" in d for d in dsets):
        st = stack_subjects(dsets, "rsa").transpose("subject", "layer", "region")
        x = st.values.reshape(len(dsets), -1)
        s = _summary(x, st.shape[1:], **opts)
        del s["stat"]
        frames += _rows(task, model, s, st["layer"].values, st["region"].values, "rsa",
                        np.sum(np.isfinite(x), 0).reshape(st.shape[1:]))
    for _, metric in geometry_rows(dsets[0]):  # geometry: mean and CI only (no test against 0)
        st = xr.concat([geometry_var(d, metric) for d in dsets], dim="subject", join="outer",
                       fill_value=np.nan).transpose("subject", "layer", "region")
        x = st.values.reshape(len(dsets), -1)
        s = _summary(x, st.shape[1:], **dict(opts, test="none"))
        frames += _rows(task, model, {f"{k}_{metric}": s[k] for k in ("mean", "ci_low", "ci_high")},
                        st["layer"].values, st["region"].values, "geometry",
                        np.sum(np.isfinite(x), 0).reshape(st.shape[1:]))
    if not frames:
        return pd.DataFrame(columns=list(GROUP_COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    df["layer"] = df["layer"].astype("Int64")
    return df[list(GROUP_COLUMNS)]


def group_options(cfg, settings: dict) -> dict:
    """Group statistics from ``cfg`` when given, else from the participants' recorded settings."""
    if cfg is not None:
        st = cfg.statistics
        return dict(test=st.group_test, ci=st.ci, n_boot=st.n_bootstrap, fdr=st.fdr, seed=cfg.scoring.seed,
                    baseline_label=cfg.baseline.label if cfg.baseline else "baseline")
    st = settings.get("statistics") or {}
    base = settings.get("baseline") or {}
    return dict(test=st.get("group_test", "wilcoxon"), ci=st.get("ci", 0.95), n_boot=st.get("n_bootstrap", 1000),
                fdr=st.get("fdr", True), seed=(settings.get("scoring") or {}).get("seed", 0),
                baseline_label=base.get("label", "baseline"))


def group_maps(dsets: list[xr.Dataset]) -> list[tuple[int, object]]:
    """(layer, mean-r NIfTI) per layer over the union of the participants' voxels; [] when not volumetric."""
    geo = outputs.result_geometry(dsets[0])
    if geo is None or not all("r" in d for d in dsets):
        return []
    flat: dict = {}
    for d in dsets:  # target identity -> voxel flat index in the grid
        flat.update(zip(d["target"].values.tolist(), outputs.flat_index(d).tolist()))
    stack = stack_subjects(dsets, "r")
    idx = np.asarray([flat[t] for t in stack["target"].values.tolist()], dtype=np.int64)
    mean = stack.mean("subject", skipna=True)
    return [(int(l), outputs.to_volume(mean.sel(layer=l).values, idx, geo[1], geo[0])) for l in mean["layer"].values]


def _one_per_participant(dsets, out: Path) -> None:
    """Refuse several results of one participant (sessions written side by side): the group test needs one each."""
    subjects = [d.attrs["subject"] for d in dsets]
    twice = sorted({s for s in subjects if subjects.count(s) > 1})
    if twice:
        sessions = sorted({str(d.attrs.get("session") or "none") for d in dsets if d.attrs["subject"] == twice[0]})
        raise InputError(f"group level: sub-{twice[0]} has results of sessions {', '.join(sessions)} in {out}; the "
                         "group test takes one result per participant: write each session to its own output folder "
                         "(--session) or fit them together (--pool-sessions)")


def run_group(out_dir, cfg=None) -> GroupResult:
    """Group level over every participant result in ``out_dir``: tables and maps in ``group/``.

    The statistics are ``cfg.statistics`` when ``cfg`` is given, else the ones
    recorded in the participants' settings. Reports are written by
    :func:`brainalign.pipeline.report.group_report`, which reads these files.
    """
    out = Path(out_dir)
    files = outputs.find_results(out)
    if not files:
        raise MissingDataError(f"no participant results in {out}: run the participant level first")
    by: dict = {}
    for f in files:
        ds = outputs.read_result(f)
        by.setdefault((ds.attrs["task"], ds.attrs["model"]), []).append(ds)
    res = GroupResult()
    for (task, model), dsets in sorted(by.items()):
        dsets = sorted(dsets, key=lambda d: d.attrs["subject"])
        _one_per_participant(dsets, out)
        settings = json.loads(dsets[0].attrs.get("settings", "{}"))
        opts = group_options(cfg, settings)
        table = group_stats(dsets, **opts)
        band = band_table(dsets, lambda x, shp: _summary(x, shp, **_summary_options(opts)), out, task, model)
        table = pd.concat([table, band], ignore_index=True) if len(band) else table  # scoring.rsa.select_gt
        maps = group_maps(dsets) if (cfg is None or cfg.outputs.maps) else []
        stats = dict(settings.get("statistics") or {}, group_test=opts["test"], ci=opts["ci"],
                     n_bootstrap=opts["n_boot"], fdr=opts["fdr"])
        if cfg is not None:
            stats["q"] = cfg.statistics.q
        surface = surface_maps.group_mean(dsets) if (cfg is None or cfg.outputs.maps) else None
        outputs.write_group(table, out, task, model, maps=maps, surface=surface,
                            settings=dict(settings, statistics=stats, participants=[d.attrs["subject"] for d in dsets]))
        # the group's layer profile (participants bootstrapped) and the volumetric permutation test, for the report
        group_inference.write_inference(out, dsets, table, task, model, opts,
                                        q=cfg.statistics.q if cfg is not None else fdr_q(settings),
                                        test=cfg is None or cfg.outputs.maps)
        res.tables[(task, model)] = table
    if cfg is not None:  # scoring.methods geometry with two or more models: model x model matrices
        from .convergence import write_convergence
        res.convergence = write_convergence(out, cfg)
    return res
