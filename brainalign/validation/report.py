"""Tables (markdown) and figures for docs/validation.md from pipeline output folders.

``python -m brainalign.validation.report alice OUT_DIR [--figure PNG]`` and
``python -m brainalign.validation.report frank OUT_DIR`` read what
``brainalign run pipelines/<study>.yaml`` wrote (participant ``*_scores.tsv`` and
``*_result.nc``, the group ``*_scores.tsv``) and print the tables of the docs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MissingDataError
from .stats import markdown_table


def _read(pattern_root: Path, pattern: str) -> pd.DataFrame:
    files = sorted(pattern_root.glob(pattern))
    if not files:
        raise MissingDataError(f"no {pattern} under {pattern_root}: run the study first")
    return pd.concat([pd.read_csv(f, sep="\t", na_values=["n/a"], dtype={"target": str, "subject": str})
                      for f in files], ignore_index=True)


def participant_scores(out_dir: str | Path) -> pd.DataFrame:
    """All participants' long scores tables (fold-level rows dropped)."""
    df = _read(Path(out_dir), "sub-*/*/*_scores.tsv")
    return df[df["fold"].isna()]


def group_scores(out_dir: str | Path) -> pd.DataFrame:
    return _read(Path(out_dir) / "group", "*_scores.tsv")


def layer_choices(out_dir: str | Path) -> pd.DataFrame:
    """``layer_id`` (scoring.layer_selection) per participant and target, from the result files."""
    import xarray as xr

    rows = []
    for f in sorted(Path(out_dir).glob("sub-*/*/*_result.nc")):
        with xr.open_dataset(f) as ds:
            if "layer_id" not in ds:
                continue
            for t, l in zip(ds["target"].values, ds["layer_id"].values):
                rows.append({"subject": ds.attrs.get("subject"), "target": str(t), "layer_id": int(l)})
    return pd.DataFrame(rows, columns=["subject", "target", "layer_id"])


def _g(group: pd.DataFrame, model, metric, target, layer=None) -> float:
    sel = (group["model"] == model) & (group["metric"] == metric) & (group["target"] == target)
    sel &= group["layer"].isna() if layer is None else (group["layer"] == layer)
    vals = group.loc[sel, "value"].to_numpy(float)
    return float(vals[0]) if vals.size else float("nan")


def summary_table(out_dir: str | Path, model: str = "MiniLM", baseline: str = "baseline") -> pd.DataFrame:
    """Per target: ceiling, baseline r, best LM layer and r, paired LM-vs-baseline statistics."""
    part, group = participant_scores(out_dir), group_scores(out_dir)
    # scored targets only: the layer-uncertainty summaries ("all", "significant") have mean_* rows, no r
    targets = list(dict.fromkeys(part.loc[part["metric"] == "r", "target"]))
    choices = layer_choices(out_dir)
    rows = []
    for t in targets:
        ceil = part[(part["target"] == t) & (part["metric"] == "ceiling")].drop_duplicates("subject")["value"]
        layers = sorted(group.loc[(group["model"] == model) & (group["target"] == t) & group["layer"].notna(),
                                  "layer"].unique())
        means = [_g(group, model, "mean_r", t, l) for l in layers]
        best = layers[int(np.nanargmax(means))]
        base_r = part[(part["target"] == t) & (part["model"] == baseline) & (part["metric"] == "r")]["value"]
        row = {
            "target": t,
            "n": int(base_r.size),
            "ceiling (LOO ISC)": float(ceil.mean()) if ceil.size else float("nan"),
            "baseline r": _g(group, baseline, "mean_r", t),
            "baseline 95% CI": _ci(group, baseline, t, None, ""),
            "best layer": int(best),
            "LM r": _g(group, model, "mean_r", t, best),
            "LM 95% CI": _ci(group, model, t, best, ""),
            "Δr": _g(group, model, "mean_delta_r", t, best),
            "Δr 95% CI": _ci(group, model, t, best, "_delta_r"),
            "p (Δr)": _g(group, model, "p_delta_r", t, best),
            "q FDR (Δr)": _g(group, model, "p_fdr_delta_r", t, best),
        }
        if not choices.empty:
            c = choices.loc[choices["target"] == t, "layer_id"]
            if c.size:
                counts = c.value_counts()
                row["layer by selection (mode, n)"] = f"{int(counts.index[0])} ({int(counts.iloc[0])}/{c.size})"
        rows.append(row)
    return pd.DataFrame(rows)


def _ci(group, model, t, layer, suffix) -> str:
    lo, hi = _g(group, model, f"ci_low{suffix}", t, layer), _g(group, model, f"ci_high{suffix}", t, layer)
    return "" if np.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]"


def layer_profiles(out_dir: str | Path, model: str = "MiniLM") -> pd.DataFrame:
    """Mean r over participants [95 % CI] per target (rows) and layer (columns)."""
    group = group_scores(out_dir)
    g = group[(group["model"] == model) & group["layer"].notna()]
    targets = list(dict.fromkeys(g["target"]))
    layers = sorted(g["layer"].unique())
    rows = []
    for t in targets:
        row = {"target": t}
        for l in layers:
            row[f"L{int(l)}"] = f"{_g(group, model, 'mean_r', t, l):.3f} {_ci(group, model, t, l, '')}"
        rows.append(row)
    return pd.DataFrame(rows)


def profile_figure(out_dir: str | Path, path: str | Path, model: str = "MiniLM", baseline: str = "baseline") -> Path:
    """Layer profiles (mean r, 95 % CI) per target with the baseline as a dashed line, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..pipeline import outputs

    group = group_scores(out_dir)
    g = group[(group["model"] == model) & group["layer"].notna()]
    targets = list(dict.fromkeys(g["target"]))
    layers = sorted(g["layer"].unique())
    n = len(targets)
    ncol = min(3, n)
    fig, axes = plt.subplots(int(np.ceil(n / ncol)), ncol, figsize=(3.2 * ncol, 2.6 * np.ceil(n / ncol)),
                             sharey=True, squeeze=False)
    for ax, t in zip(axes.ravel(), targets):
        m = np.array([_g(group, model, "mean_r", t, l) for l in layers])
        lo = np.array([_g(group, model, "ci_low", t, l) for l in layers])
        hi = np.array([_g(group, model, "ci_high", t, l) for l in layers])
        ax.fill_between(layers, lo, hi, alpha=0.25)
        ax.plot(layers, m, "o-", label=f"{baseline} + layer")
        ax.axhline(_g(group, baseline, "mean_r", t), ls="--", c="k", lw=1, label=baseline)
        ax.set_title(t)
        ax.set_xlabel("layer")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("held-out r (mean, 95% CI)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    with outputs.atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m brainalign.validation.report")
    ap.add_argument("study", choices=["alice", "frank"])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--figure", type=Path, default=None)
    a = ap.parse_args(argv)
    print(markdown_table(summary_table(a.out_dir)))
    print()
    print(markdown_table(layer_profiles(a.out_dir)))
    if a.figure:
        print(f"\nfigure: {profile_figure(a.out_dir, a.figure)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
