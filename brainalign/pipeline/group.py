"""Group level: statistics over participants from their written results.

For every task x model: the mean over participants of r (and r_norm, RSA) per
layer x target with a bootstrap confidence interval (participants resampled,
seeded), a one-sided test against 0 (Wilcoxon signed-rank or t-test) with
Benjamini-Hochberg FDR over layer x target, and, when a baseline was fitted, the
paired test of r(baseline + layer) against r(baseline) per target (FDR over layer x
target). Results go to ``group/`` as long tables and mean-r maps, and ``group.html``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import MissingDataError
from . import outputs

GROUP_COLUMNS = ("task", "model", "layer", "target", "method", "metric", "value", "n")


@dataclass
class GroupResult:
    tables: dict = field(default_factory=dict)
    report: Path | None = None


def _test(x: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One-sided test that the mean of x (n_subjects, m) is > 0, column-wise."""
    from scipy import stats

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
                                    "metric": metric, "value": v.ravel(), "n": np.asarray(n).ravel()}))
    return frames


def group_stats(dsets: list[xr.Dataset], *, test: str = "wilcoxon", ci: float = 0.95, n_boot: int = 1000,
                fdr: bool = True, baseline_label: str = "baseline", seed: int = 0) -> pd.DataFrame:
    """Long table of group statistics for one task x model."""
    from ..encoding import fdr_bh

    task, model = dsets[0].attrs["task"], dsets[0].attrs["model"]
    frames = []
    q = (lambda p: np.asarray(fdr_bh(np.nan_to_num(p.ravel(), nan=1.0))).reshape(p.shape)) if fdr else (lambda p: p)
    if "r" in dsets[0]:
        stack = xr.concat([d["r"] for d in dsets], dim="subject", join="outer")  # (subject, layer, target)
        layers, targets = stack["layer"].values, stack["target"].values
        x = stack.values.reshape(stack.shape[0], -1)
        shp = stack.shape[1:]
        stat, p = _test(x, test) if test != "none" else (np.full(x.shape[1], np.nan),) * 2
        lo, hi = bootstrap_ci(x, ci, n_boot, seed)
        n = np.sum(np.isfinite(x), axis=0).reshape(shp)
        vals = {"mean_r": np.nanmean(x, 0).reshape(shp), "ci_low": lo.reshape(shp), "ci_high": hi.reshape(shp),
                "stat": stat.reshape(shp), "p": p.reshape(shp), "p_fdr": q(p.reshape(shp))}
        if "r_norm" in dsets[0]:
            rn = xr.concat([d["r_norm"] for d in dsets], dim="subject", join="outer").values.reshape(len(dsets), -1)
            vals["mean_r_norm"] = np.nanmean(rn, 0).reshape(shp)
            lo2, hi2 = bootstrap_ci(rn, ci, n_boot, seed)
            vals["ci_low_r_norm"], vals["ci_high_r_norm"] = lo2.reshape(shp), hi2.reshape(shp)
        if "baseline_r" in dsets[0]:
            d = xr.concat([ds["r"] - ds["baseline_r"] for ds in dsets], dim="subject", join="outer")
            dx = d.values.reshape(len(dsets), -1)
            dstat, dp = _test(dx, test) if test != "none" else (np.full(dx.shape[1], np.nan),) * 2
            dlo, dhi = bootstrap_ci(dx, ci, n_boot, seed)
            vals.update(mean_delta_r=np.nanmean(dx, 0).reshape(shp), ci_low_delta_r=dlo.reshape(shp),
                        ci_high_delta_r=dhi.reshape(shp), stat_delta_r=dstat.reshape(shp),
                        p_delta_r=dp.reshape(shp), p_fdr_delta_r=q(dp.reshape(shp)))
            b = xr.concat([ds["baseline_r"] for ds in dsets], dim="subject", join="outer")
            bx = b.values
            blo, bhi = bootstrap_ci(bx, ci, n_boot, seed)
            frames += _rows(task, baseline_label, {"mean_r": np.nanmean(bx, 0)[None], "ci_low": blo[None], "ci_high": bhi[None]},
                            None, b["target"].values, "encoding", np.sum(np.isfinite(bx), 0)[None])
        frames += _rows(task, model, vals, layers, targets, "encoding", n)
    if "rsa" in dsets[0]:
        st = xr.concat([d["rsa"] for d in dsets], dim="subject", join="outer")
        x = st.values.reshape(len(dsets), -1)
        shp = st.shape[1:]
        stat, p = _test(x, test) if test != "none" else (np.full(x.shape[1], np.nan),) * 2
        lo, hi = bootstrap_ci(x, ci, n_boot, seed)
        frames += _rows(task, model, {"mean": np.nanmean(x, 0).reshape(shp), "ci_low": lo.reshape(shp),
                                      "ci_high": hi.reshape(shp), "p": p.reshape(shp), "p_fdr": q(p.reshape(shp))},
                        st["layer"].values, st["region"].values, "rsa", np.sum(np.isfinite(x), 0).reshape(shp))
    df = pd.concat(frames, ignore_index=True)
    df["layer"] = df["layer"].astype("Int64")
    return df[list(GROUP_COLUMNS)]


def run_group(out_dir, cfg=None) -> GroupResult:
    """Group level over every participant result in ``out_dir``."""
    out = Path(out_dir)
    files = outputs.find_results(out)
    if not files:
        raise MissingDataError(f"no participant results in {out}: run the participant level first")
    by = {}
    for f in files:
        ds = outputs.read_result(f)
        by.setdefault((ds.attrs["task"], ds.attrs["model"]), []).append(ds)
    st = cfg.statistics if cfg is not None else None
    res = GroupResult()
    for (task, model), dsets in sorted(by.items()):
        dsets = sorted(dsets, key=lambda d: d.attrs["subject"])
        table = group_stats(dsets, test=st.group_test if st else "wilcoxon", ci=st.ci if st else 0.95,
                            n_boot=st.n_bootstrap if st else 1000, fdr=st.fdr if st else True,
                            baseline_label=cfg.baseline.label if (cfg is not None and cfg.baseline) else "baseline",
                            seed=cfg.scoring.seed if cfg is not None else 0)
        maps = []
        geo = outputs.result_geometry(dsets[0])
        if geo is not None and "r" in dsets[0] and (cfg is None or cfg.outputs.maps):
            mean = xr.concat([d["r"] for d in dsets], dim="subject", join="outer").mean("subject", skipna=True)
            idx = outputs.flat_index(dsets[0])
            maps = [(int(l), outputs.to_volume(mean.sel(layer=l).values, idx, geo[1], geo[0])) for l in mean["layer"].values]
        settings = json.loads(dsets[0].attrs.get("settings", "{}"))
        outputs.write_group(table, out, task, model, settings=dict(settings, participants=[d.attrs["subject"] for d in dsets]),
                            maps=maps)
        res.tables[(task, model)] = table
    if cfg is None or cfg.outputs.report:
        from .report import group_report

        res.report = group_report(out, by, res.tables)
    return res
