"""Tables of the cross-family layer study: accuracy, depth bias, credible-set coverage (issue 14).

A trial is one region of one simulated dataset under one analysis; it has a
``planted`` and a ``chosen`` layer. Its signed error is ``chosen - planted``
(layers; positive = a deeper layer named). Accuracy intervals are Wilson 95 %
intervals over trials; the mean signed error has a Student-t 95 % interval over
trials (regions of one dataset share its noise and word timing, so these
intervals are somewhat narrow).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import markdown_table, t_interval, wilson_interval

#: Columns that name an analysis.
ANALYSIS = ["alignment", "context", "method"]


def add_errors(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with ``error`` (chosen - planted), ``correct`` and ``within_one`` (0/1) columns."""
    out = trials.copy()
    err = out["chosen"].astype(int) - out["planted"].astype(int)
    out["error"] = err
    out["correct"] = (err == 0).astype(int)
    out["within_one"] = (err.abs() <= 1).astype(int)
    return out


def summarise(trials: pd.DataFrame) -> dict:
    """Exact and within-one accuracy (Wilson CIs) and the mean signed error (t CI) of a set of trials."""
    err = (trials["chosen"].astype(int) - trials["planted"].astype(int)).to_numpy()
    n, k, k1 = err.size, int((err == 0).sum()), int((np.abs(err) <= 1).sum())
    lo, hi = wilson_interval(k, n)
    lo1, hi1 = wilson_interval(k1, n)
    elo, ehi = t_interval(err)
    return {"n": n, "exact": k / n if n else np.nan, "exact_low": lo, "exact_high": hi,
            "within_one": k1 / n if n else np.nan, "within_one_low": lo1, "within_one_high": hi1,
            "signed_error": float(err.mean()) if n else np.nan, "signed_low": elo, "signed_high": ehi,
            "abs_error": float(np.abs(err).mean()) if n else np.nan,
            "n_deeper": int((err > 0).sum()), "n_shallower": int((err < 0).sum())}


def accuracy_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per analysis x family x SNR, with ``family="all"`` (pooled over families) and ``snr="all"`` rows."""
    rows = []
    t = trials.assign(snr=trials["snr"].astype(str))
    pooled = [t, t.assign(family="all")]
    both = pd.concat([p for q in pooled for p in (q, q.assign(snr="all"))], ignore_index=True)
    for key, g in both.groupby([*ANALYSIS, "family", "snr"], sort=False):
        rows.append({**dict(zip([*ANALYSIS, "family", "snr"], key)), **summarise(g)})
    return pd.DataFrame(rows)


def coverage_table(trials: pd.DataFrame, snr: float) -> pd.DataFrame:
    """How often the credible set holds the planted layer, per analysis x family (and pooled), at ``snr``.

    Uses the trials with an ``in_set`` value (0/1) and ``set_size``.
    """
    t = trials[np.isclose(trials["snr"].astype(float), snr) & trials["in_set"].notna()]
    rows = []
    for key, g in pd.concat([t, t.assign(family="all")]).groupby([*ANALYSIS, "family"], sort=False):
        k, n = int(g["in_set"].sum()), len(g)
        lo, hi = wilson_interval(k, n)
        rows.append({**dict(zip([*ANALYSIS, "family"], key)), "snr": snr, "n": n, "coverage": k / n,
                     "coverage_low": lo, "coverage_high": hi, "mean_set_size": float(g["set_size"].mean()),
                     "p_best_planted": float(g["p_best_planted"].mean())})
    return pd.DataFrame(rows)


def _label(row) -> str:
    return f"{row['alignment']} / {row['context']} / {row['method']}"


def _cell(r, what: str) -> str:
    if what == "exact":
        return f"{r['exact']:.2f} [{r['exact_low']:.2f}, {r['exact_high']:.2f}]"
    if what == "within":
        return f"{r['within_one']:.2f}"
    return f"{r['signed_error']:+.2f} [{r['signed_low']:+.2f}, {r['signed_high']:+.2f}]"


def pooled_markdown(acc: pd.DataFrame, top: int | None = None) -> str:
    """Pooled over families: exact accuracy per SNR, and at the highest SNR within-one and signed error."""
    a = acc[acc["family"] == "all"]
    snrs = sorted({s for s in a["snr"] if s != "all"}, key=float)
    hi = snrs[-1]
    ranked = a[a["snr"] == hi].sort_values(["exact", "abs_error"], ascending=[False, True])
    rows = []
    for _, r in ranked.head(top or len(ranked)).iterrows():
        sub = a[(a["alignment"] == r["alignment"]) & (a["context"] == r["context"]) & (a["method"] == r["method"])]
        by = {s: g.iloc[0] for s, g in sub.groupby("snr")}
        rows.append({"analysis (alignment / context / selection)": _label(r),
                     **{f"exact, snr {s}": _cell(by[s], "exact") if s in by else "" for s in snrs},
                     f"within one, snr {hi}": _cell(r, "within"), f"signed error, snr {hi}": _cell(r, "signed"),
                     "signed error, all snr": _cell(by["all"], "signed"),  # analyses run at one SNR: that SNR
                     "deeper / shallower (all)": f"{by['all']['n_deeper']} / {by['all']['n_shallower']}"})
    return markdown_table(pd.DataFrame(rows))


def family_markdown(acc: pd.DataFrame, snr: str, top: int | None = None) -> str:
    """At one SNR: per family, exact accuracy and mean signed error ("acc / err")."""
    a = acc[acc["snr"] == snr]
    fams = [f for f in dict.fromkeys(a["family"]) if f != "all"]
    ranked = a[a["family"] == "all"].sort_values(["exact", "abs_error"], ascending=[False, True])
    rows = []
    for _, r in ranked.head(top or len(ranked)).iterrows():
        sub = a[(a["alignment"] == r["alignment"]) & (a["context"] == r["context"]) & (a["method"] == r["method"])]
        by = {f: g.iloc[0] for f, g in sub.groupby("family")}
        rows.append({"analysis": _label(r), **{f: (f"{by[f]['exact']:.2f} / {by[f]['signed_error']:+.2f}"
                                                    if f in by else "") for f in fams},
                     "worst family exact": f"{min(by[f]['exact'] for f in fams if f in by):.2f}",
                     "max abs signed error": f"{max(abs(by[f]['signed_error']) for f in fams if f in by):.2f}"})
    return markdown_table(pd.DataFrame(rows))


def coverage_markdown(cov: pd.DataFrame) -> str:
    """Coverage of the credible set (Wilson CI) per analysis (rows) and family (columns), and set size."""
    fams = [f for f in dict.fromkeys(cov["family"]) if f != "all"]
    rows = []
    for key, g in cov.groupby(ANALYSIS, sort=False):
        by = {r["family"]: r for _, r in g.iterrows()}
        rows.append({"analysis": " / ".join(map(str, key)),
                     **{f: f"{by[f]['coverage']:.2f} ({by[f]['mean_set_size']:.1f})" if f in by else "" for f in fams},
                     "pooled [95 % CI]": (f"{by['all']['coverage']:.2f} [{by['all']['coverage_low']:.2f}, "
                                          f"{by['all']['coverage_high']:.2f}]") if "all" in by else ""})
    return markdown_table(pd.DataFrame(rows))


def study_markdown(acc: pd.DataFrame, cov: pd.DataFrame | None, settings: dict) -> str:
    """The whole ``accuracy.md``: settings, pooled table, per-family table at the highest SNR, coverage."""
    snrs = sorted({s for s in acc["snr"] if s != "all"}, key=float)
    parts = [f"# Layer identification across generator families\n\n`{settings.get('command', '')}`; "
             f"families {', '.join(settings.get('families', []))}; SNRs {', '.join(snrs)}; "
             f"seeds {settings.get('seeds')}; {settings.get('seconds', '?')} s.\n",
             "## Pooled over families (exact accuracy [Wilson 95 %]; signed error = chosen - planted, "
             "layers, + = deeper [t 95 %])\n", pooled_markdown(acc),
             f"\n## Per family at SNR {snrs[-1]} (exact accuracy / mean signed error)\n",
             family_markdown(acc, snrs[-1])]
    if cov is not None and len(cov):
        parts += [f"\n## Credible-set coverage at SNR {snrs[0]} (share of regions whose planted layer is in the "
                  f"{settings.get('level', 0.9):g} set; mean set size in brackets)\n", coverage_markdown(cov)]
    return "\n".join(parts) + "\n"
