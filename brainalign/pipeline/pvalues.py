"""Per-target p-values of the encoding scores and the record of how they were made.

:func:`encoding_pvalues` is called by :func:`.scoring.score_prepared` for every
layer when ``scoring.permutations`` > 0: the refit circular-shift null of
:mod:`brainalign.encoding.permutation` on the prepared participant's samples,
runs and folds, at the alphas the fit chose. :func:`statistics_record` is what
:func:`.api.finalize` stores (attr ``statistics``, the sidecar's ``Statistics``).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..align.design import FRAME_METHODS
from ..encoding.permutation import MIN_SHIFT_FRACTION, null_pvalues, refit_shift_null
from .prepare import Prepared

#: Default ``scoring.permutations``: shifts of the refit null per layer (see docs/validation.md,
#: "Calibration of per-target p-values", for the choice).
DEFAULT_PERMUTATIONS = 200

#: The p-value methods recorded in attr ``p_method``.
P_METHODS = {
    "shift": ("refit circular-shift null: Y shifted within runs by >= {frac:.0%} of the run (word and epoch "
              "rows: over the whole sequence of items, which has no within-run time axis), every outer fold "
              "re-predicted at the chosen alphas, {n} shifts; p from the Student-t tail of the null "
              "(p_empirical: (1 + #null >= r) / (1 + {n}))"),
    "none": "no encoding p-values (no encoding scores)",
    "fold_ttest": ("fold t-test: one-sided one-sample t-test of the outer folds' r (NOT calibrated: "
                   "the folds share training data; docs/validation.md)"),
}

#: The family Benjamini-Hochberg runs over (attr ``fdr_family``).
FDR_FAMILY = "layer x target"


def encoding_pvalues(P: Prepared, X: np.ndarray, alpha_folds: np.ndarray, n_permutations: int, seed: int, *,
                     with_baseline: bool, banded: bool, band_alphas: list | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """p and p_empirical (n_targets,) of one layer's fold-mean r from the refit shift null.

    Parameters
    ----------
    P : Prepared
        Samples ``Y``, ``runs``, ``folds`` and baseline ``B`` of the participant.
    X : ndarray, shape (n_kept, n_features)
        The layer's design.
    alpha_folds : ndarray, shape (n_folds, n_targets)
        Penalties the nested CV chose (the layer band's for a banded fit).
    n_permutations, seed : int
        ``scoring.permutations`` and ``scoring.seed`` (the same shifts for every layer).
    with_baseline, banded : bool
        Whether the fit had the baseline columns, as a band of their own.
    band_alphas : list of ndarray (n_bands, n_targets), one per fold, optional
        Per-band penalties of a banded fit (baseline band first).
    """
    use_b = P.B is not None and with_baseline
    Xf = np.hstack([P.B, X]) if use_b else X
    if use_b and banded:
        pen, bands = np.stack(band_alphas), [P.B.shape[1], X.shape[1]]
    else:
        pen, bands = alpha_folds, None
    # frame data are shifted within runs (time is continuous there); word / epoch rows are items in
    # presentation order, where a run may hold a single word: shift the whole item sequence
    runs = P.runs if P.method in FRAME_METHODS else None
    null = refit_shift_null(Xf, P.Y, list(P.folds), pen, runs=runs, bands=bands,
                            n_permutations=int(n_permutations), seed=int(seed))
    p = null_pvalues(null.observed, null.null, "t")
    pe = null_pvalues(null.observed, null.null, "empirical")
    return np.where(np.isfinite(p), p, 1.0), np.where(np.isfinite(pe), pe, 1.0)


def statistics_record(ds: Any, q: float, fdr: bool) -> dict:
    """What ``finalize`` records: p method, permutations, FDR family and level."""
    n = int(ds.attrs.get("n_permutations", 0))
    method = ("shift" if n > 0 else "fold_ttest") if "p" in ds else "none"
    return {
        "p_method": method,
        "p_method_description": P_METHODS[method].format(n=n, frac=MIN_SHIFT_FRACTION),
        "n_permutations": n if method == "shift" else 0,
        "fdr_family": FDR_FAMILY if fdr else "none",
        "fdr_q": float(q),
        "seed": int(ds.attrs.get("permutation_seed", 0)),
    }


def record(ds: Any, q: float, fdr: bool) -> None:
    """Store :func:`statistics_record` in ``ds.attrs`` (flat keys and the JSON ``statistics``)."""
    rec = statistics_record(ds, q, fdr)
    ds.attrs.update(p_method=rec["p_method"], n_permutations=rec["n_permutations"],
                    fdr_family=rec["fdr_family"], fdr_q=rec["fdr_q"], statistics=json.dumps(rec, sort_keys=True))


def describe(attrs: dict) -> str:
    """One sentence for reports: how ``p`` was computed and the FDR family and level of ``p_fdr``."""
    try:
        rec = json.loads(attrs.get("statistics") or "{}")
    except ValueError:
        rec = {}
    method = rec.get("p_method", attrs.get("p_method", "fold_ttest"))
    if method == "none":
        return "No encoding p-values."
    n = int(rec.get("n_permutations", attrs.get("n_permutations", 0)) or 0)
    how = (f"per-target p from a refit circular-shift null ({n} shifts of the data within runs)" if method == "shift"
           else "per-target p from a one-sided t-test over the outer folds' r (scoring.permutations: 0; not calibrated)")
    fam = rec.get("fdr_family", attrs.get("fdr_family", FDR_FAMILY))
    q = float(rec.get("fdr_q", attrs.get("fdr_q", 0.05)))
    tail = f"; Benjamini-Hochberg FDR over {fam} at q = {q:g}" if fam != "none" else "; no FDR correction"
    return how[0].upper() + how[1:] + tail + "."
