"""Alice ROIs with the baseline left (almost) unpenalised: a check of the pipeline's Δr.

The pipeline fits "baseline + layer" as one ridge with one penalty, so the eight
baseline regressors (word rate, sound power, motion) are shrunk as hard as the
1,536 delayed MiniLM features; the joint model can then predict worse than the
baseline alone. Here the baseline enters as a kernel weighted ``BASELINE_WEIGHT``
times more than the layer's, i.e. with a penalty that many times weaker (a
two-band ridge with fixed band weights), using
:func:`brainalign.encoding.layer_id.kernel_ridge_cv_predict`. Same data, same
preprocessing (nilearn detrend, 1/128 Hz high-pass, z-score), same design
(Lanczos, FIR 1-4, window-20 MiniLM), same 5 contiguous outer folds.

``python -m brainalign.validation.alice_unpenalized [--resolution 10mm] [--output DIR]``
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .stats import markdown_table, t_interval

BASELINE_WEIGHT = 1e3
DEFAULT_OUT = Path("build") / "validation"


def _shared() -> Path:
    from ..pipeline.config import shared_data_default

    return Path(os.environ.get("BRAINALIGN_SHARED_DATA") or shared_data_default())


def participant_scores(root: Path, label: str, resolution: str, encoder) -> pd.DataFrame:
    """Held-out r per ROI for the baseline and for baseline (weak penalty) + each layer."""
    from nilearn.signal import clean

    from ..encoding.layer_id import contiguous_folds, kernel_ridge_cv_predict, layer_kernels, _fold_scores
    from ..io.roi_table import load_alice
    from ..align import layer_design

    rec, stim, base = load_alice(root, label, resolution)
    Y = clean(rec.values.astype(np.float64), detrend=True, high_pass=1 / 128, t_r=2.0, standardize="zscore_sample")
    B = base.to_numpy(np.float64)
    B = (B - B.mean(0)) / B.std(0)
    acts = encoder.encode(stim)
    folds = contiguous_folds(Y.shape[0], 5)
    # kernels divided by their width, with the alphas of the published table (width-normalised scale)
    KB = layer_kernels([B])[0] / B.shape[1]
    rows = []
    pred, _ = kernel_ridge_cv_predict(KB, Y, folds, alphas=np.logspace(-3, 4, 15))
    for t, r in zip(rec["target"].values, _fold_scores(pred, Y, folds)[0]):
        rows.append({"subject": label, "target": str(t), "model": "baseline", "layer": -1, "r": r})
    for layer in acts["layer"].values:
        X = layer_design(np.asarray(acts.sel(layer=layer).values, np.float64), stim, rec, "lanczos", delays=(1, 2, 3, 4))
        K = BASELINE_WEIGHT * KB + layer_kernels([X])[0] / X.shape[1]
        pred, _ = kernel_ridge_cv_predict(K, Y, folds, alphas=np.logspace(-3, 6, 19))
        for t, r in zip(rec["target"].values, _fold_scores(pred, Y, folds)[0]):
            rows.append({"subject": label, "target": str(t), "model": "baseline+layer", "layer": int(layer), "r": r})
    return pd.DataFrame(rows)


def group_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per ROI: baseline r, best layer by group mean, its r, paired Wilcoxon on Δr, BH-FDR over ROIs x layers."""
    from ..encoding import fdr_bh

    base = scores[scores["model"] == "baseline"].set_index(["subject", "target"])["r"]
    lm = scores[scores["model"] == "baseline+layer"]
    tests = []
    for (t, layer), g in lm.groupby(["target", "layer"]):
        d = g.set_index(["subject", "target"])["r"] - base.loc[g.set_index(["subject", "target"]).index]
        p = stats.wilcoxon(d.to_numpy(), alternative="greater").pvalue
        tests.append({"target": t, "layer": layer, "lm_r": g["r"].mean(), "delta": d.mean(), "p": p,
                      "ci": t_interval(d.to_numpy())})
    tests = pd.DataFrame(tests)
    tests["q"] = fdr_bh(tests["p"].to_numpy())
    rows = []
    for t in dict.fromkeys(scores["target"]):
        tt = tests[tests["target"] == t]
        best = tt.loc[tt["lm_r"].idxmax()]
        b = base.xs(t, level="target")
        rows.append({"target": t, "n": int(b.size), "baseline r": b.mean(), "best layer": int(best["layer"]),
                     "LM r": best["lm_r"], "Δr": best["delta"],
                     "Δr 95% CI": f"[{best['ci'][0]:.3f}, {best['ci'][1]:.3f}]", "p (Wilcoxon, Δr>0)": best["p"],
                     "q FDR": best["q"], "layers with q<0.05": ",".join(str(int(x)) for x in tt.loc[tt["q"] < 0.05, "layer"])})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    from threadpoolctl import threadpool_limits

    from ..encoders import HFEncoder
    from ..io.roi_table import list_alice_participants
    from ..pipeline import outputs

    ap = argparse.ArgumentParser(prog="python -m brainalign.validation.alice_unpenalized")
    ap.add_argument("--resolution", default="10mm", choices=["10mm", "6mm"])
    ap.add_argument("--output", type=Path, default=None)
    ap.add_argument("--cache-dir", default=None)
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = _shared() / "alice-fmri"
    encoder = HFEncoder(context_words=20, pooling="last", cache_dir=a.cache_dir)
    parts, skipped = [], []
    with threadpool_limits(limits=1):
        for label in list_alice_participants(root, a.resolution):
            try:
                parts.append(participant_scores(root, label, a.resolution, encoder))
            except Exception as exc:  # noqa: BLE001 - report and skip (s33 is constant)
                skipped.append(f"{label}: {type(exc).__name__}: {exc}")
    scores = pd.concat(parts, ignore_index=True)
    table = group_table(scores)
    out = a.output or DEFAULT_OUT / f"alice-unpenalized-{a.resolution}"
    outputs.write_tsv(out / "scores.tsv", scores)
    outputs.write_tsv(out / "group.tsv", table)
    for s in skipped:
        print("skipped", s)
    print(markdown_table(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
