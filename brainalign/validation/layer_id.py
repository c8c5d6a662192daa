"""Layer-identification study: how often is the "best layer" the generating one?

Data come from :func:`brainalign.pipeline.simulate.simulate_bids` (``brainalign
simulate``): a BIDS fMRI dataset whose voxels carry, region by region, a random
low-rank readout of one MiniLM layer's features under nilearn's SPM HRF, plus
white noise. One region per layer (0..6, 20 voxels each); several noise levels
and seeds. Each method then names one layer per region; the study reports, per
method and noise level, the fraction of regions where it named the planted layer,
with Wilson 95 % intervals.

Methods (all on the pipeline's design: Lanczos resampling, FIR delays 1-4, z-score)
- ``argmax_r``: arg-max over layers of the region's mean cross-validated encoding r
  (:func:`brainalign.encoding.cross_validated_scores`, the pipeline's default).
- ``unique_*``: arg-max of what each layer adds to a model of all other layers
  (``unique``), of its neighbours (``unique_adjacent``) or of its best stand-in
  layer (``unique_pairwise``), scored in cross-validated r (``_r``) or R² (``_r2``,
  classic variance partitioning)
  (:func:`brainalign.encoding.layer_id.unique_variance_layers`).
- ``single_r`` / ``single_r2``: arg-max of single-layer r / R² from the same kernel code.
- ``rsa`` and ``trsa_<kind>_<l>_<u>``: arg-max of Spearman similarity between the
  region's RDM over volumes and each layer's RDM (plain, GT or geodesic, :mod:`brainalign.rsa`).

Run ``python -m brainalign.validation.layer_id [--quick] [--output DIR]``.
``--families [NAME ...]`` runs instead the cross-family study of issue 14
(:mod:`.layer_id_families`: generator family x SNR x alignment x context window x
selection method, with credible-set coverage; tables in :mod:`.layer_id_tables`);
``--families --trsa`` runs only its RSA analyses, with the topological RSA methods of
:mod:`.layer_id_trsa` added (issue 13, docs/validation.md section 3c).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .stats import markdown_table, wilson_interval

FULL = dict(snrs=(0.25, 0.5, 1.0), seeds=tuple(range(6)))
QUICK = dict(snrs=(0.5,), seeds=(0, 1))
LAYERS = tuple(range(7))
TARGETS_PER_LAYER = 20
GT_SETTINGS = (("gt", 0.2, 0.8), ("gt", 0.05, 0.5), ("gt", 0.0, 0.3), ("geodesic", 0.2, 0.8))
DEFAULT_OUT = Path("build") / "validation" / "layer_id"
FAMILY_OUT = Path("build") / "validation" / "layer_id_families"


def _encoder(cache_dir):
    from ..encoders import HFEncoder

    return HFEncoder(context_words=20, cache_dir=cache_dir)


def simulate_one(root: Path, snr: float, seed: int, encoder) -> tuple:
    """Write and read back one simulated participant; returns (rec, stim, truth, acts)."""
    from ..io import load_bids
    from ..pipeline.simulate import simulate_bids

    truth = simulate_bids(root, "fmri", n_subjects=1, n_runs=2, n_volumes=150, layers=LAYERS,
                          targets_per_layer=TARGETS_PER_LAYER, snr=snr, seed=seed, encoder=encoder)
    rec, stim = load_bids(root, "01", truth["task"], mask=str(root / truth["mask"]))[:2]
    acts = encoder.encode(stim)
    return rec, stim, truth, acts


def _designs(rec, stim, acts):
    from ..align import layer_design

    return [layer_design(np.asarray(acts.sel(layer=l).values, np.float64), stim, rec, "lanczos",
                         delays=(1, 2, 3, 4)) for l in LAYERS]


def identify_all(designs, Y, groups, runs) -> dict[str, np.ndarray]:
    """Chosen layer per region for every method: name -> (n_regions,) layer indices."""
    from .. import rsa
    from ..encoding import DEFAULT_ALPHAS, cross_validated_scores
    from ..encoding.layer_id import layer_kernels, unique_variance_layers
    from ..encoding import make_folds

    regions = list(dict.fromkeys(groups.tolist()))
    folds = make_folds("contiguous", Y.shape[0], runs, 5)
    alphas = np.asarray(DEFAULT_ALPHAS)  # one grid, one scale, for the primal and the kernel methods

    def by_region(scores):  # (n_layers, n_targets) -> (n_regions,) argmax
        reg = np.stack([scores[:, groups == g].mean(axis=1) for g in regions], axis=1)
        return np.argmax(reg, axis=0)

    out = {}
    splits = [(np.setdiff1d(np.arange(Y.shape[0]), te), te) for te in folds]
    r = np.stack([cross_validated_scores(X, Y, outer_cv=splits, inner_cv=5, alphas=alphas,
                                         return_predictions=False).r for X in designs])
    out["argmax_r"] = by_region(r)
    K = layer_kernels(designs)
    for ref, label in (("others", "unique"), ("adjacent", "unique_adjacent"), ("pairwise", "unique_pairwise")):
        res = unique_variance_layers(K, Y, folds, alphas=alphas, reference=ref)
        if ref == "others":
            out["single_r"] = by_region(res["single_r"])
            out["single_r2"] = by_region(res["single_r2"])
        out[f"{label}_r"] = by_region(res["unique_r"])
        out[f"{label}_r2"] = by_region(res["unique_r2"])
    # volumes where a design row is constant (before the first word) have no correlation distance
    ok = np.all([np.ptp(X, axis=1) > 0 for X in designs], axis=0)
    model = np.asarray(rsa.rdm(np.stack([X[ok] for X in designs]), metric="correlation"))  # (n_layers, n, n)
    brains = np.stack([np.asarray(rsa.rdm(Y[ok][:, groups == g], metric="correlation")) for g in regions])

    def tr(d, kind, lo, up):
        if kind == "none":
            return d
        fn = rsa.gt_transform if kind == "gt" else rsa.geodesic
        return np.stack([np.asarray(fn(x, lower=lo, upper=up)) for x in d])

    for kind, lo, up in (("none", None, None), *GT_SETTINGS):
        name = "rsa" if kind == "none" else f"trsa_{kind}_{lo:g}_{up:g}"
        sim = np.asarray(rsa.compare(tr(model, kind, lo, up), tr(brains, kind, lo, up), method="spearman"))
        out[name] = np.argmax(sim, axis=0)  # (n_layers, n_regions) -> per region
    return out


def run_study(out_dir: Path, snrs, seeds, cache_dir=None, log=print) -> pd.DataFrame:
    """Simulate, identify, and write ``trials.tsv``, ``accuracy.tsv`` and ``accuracy.md``."""
    from ..pipeline import outputs

    from threadpoolctl import threadpool_limits

    encoder = _encoder(cache_dir)
    rows = []
    t0 = time.time()
    # one BLAS thread: the kernels are many small eigendecompositions, which multi-threaded
    # BLAS slows down by orders of magnitude on a busy machine
    with threadpool_limits(limits=1), tempfile.TemporaryDirectory(prefix="brainalign-layerid-") as tmp:
        for snr in snrs:
            for seed in seeds:
                root = Path(tmp) / f"snr{snr:g}-seed{seed}"
                rec, stim, truth, acts = simulate_one(root, snr, seed, encoder)
                cols, groups = [], []
                for layer in LAYERS:
                    cols += truth["planted"][str(layer)]
                    groups += [layer] * len(truth["planted"][str(layer)])
                Y = np.asarray(rec.values, np.float64)[:, cols]
                chosen = identify_all(_designs(rec, stim, acts), Y, np.asarray(groups),
                                      np.asarray(rec["run"].values))
                for method, best in chosen.items():
                    for planted, got in zip(LAYERS, best):
                        rows.append({"snr": snr, "seed": seed, "method": method, "planted": planted,
                                     "chosen": int(LAYERS[int(got)]), "correct": int(LAYERS[int(got)] == planted)})
                log(f"snr={snr:g} seed={seed}: " + ", ".join(
                    f"{m}={int((b == np.arange(len(LAYERS))).sum())}/{len(LAYERS)}" for m, b in chosen.items())
                    + f"  [{time.time() - t0:.0f} s]")
    trials = pd.DataFrame(rows)
    acc = accuracy_table(trials)
    out_dir = Path(out_dir)
    outputs.write_tsv(out_dir / "trials.tsv", trials)
    outputs.write_tsv(out_dir / "accuracy.tsv", acc)
    outputs.write_text(out_dir / "accuracy.md", accuracy_markdown(acc) + "\n")
    outputs.write_json(out_dir / "settings.json", {
        "snrs": list(snrs), "seeds": list(seeds), "layers": list(LAYERS), "targets_per_layer": TARGETS_PER_LAYER,
        "simulation": "brainalign.pipeline.simulate.simulate_bids(fmri, 1 participant, 2 runs x 150 volumes, TR 2 s, "
                      "rank-4 readout, MiniLM window 20 words)", "cv": "5 contiguous outer folds, 5 inner",
        "seconds": round(time.time() - t0, 1)})
    return acc


def accuracy_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per method and SNR (and pooled): accuracy, Wilson 95 % CI, mean |layer error|."""
    rows = []
    for (method, snr), g in list(trials.groupby(["method", "snr"])) + [
        ((m, "all"), g) for m, g in trials.groupby("method")
    ]:
        k, n = int(g["correct"].sum()), len(g)
        lo, hi = wilson_interval(k, n)
        rows.append({"method": method, "snr": snr, "n": n, "correct": k, "accuracy": k / n, "ci_low": lo,
                     "ci_high": hi, "mean_abs_error": float((g["chosen"] - g["planted"]).abs().mean())})
    return pd.DataFrame(rows)


def accuracy_markdown(acc: pd.DataFrame) -> str:
    """Accuracy (95 % CI) per method (rows) and SNR (columns), best first."""
    tab = {}
    for _, r in acc.iterrows():
        tab.setdefault(r["method"], {})[str(r["snr"])] = f"{r['accuracy']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
    pooled = acc[acc["snr"].astype(str) == "all"].set_index("method")
    order = pooled.sort_values("accuracy", ascending=False).index
    cols = [c for c in dict.fromkeys(str(s) for s in acc["snr"]) if c != "all"] + ["all"]
    df = pd.DataFrame([{"method": m, **{f"snr {c}" if c != "all" else "pooled": tab[m].get(c, "") for c in cols},
                        "mean abs error": round(float(pooled.loc[m, "mean_abs_error"]), 2)} for m in order])
    return markdown_table(df)


def _family_study(a, families) -> int:
    """``--families``: the cross-family study of :mod:`.layer_id_families` (issue 14)."""
    from . import layer_id_families as F

    if a.quick:
        cfg = F.StudyConfig(families=tuple(families or F.QUICK_FAMILIES), snrs=tuple(a.snrs or (1.0,)),
                            seeds=tuple(range(a.seeds or 1)), plan=F.QUICK_PLAN, banded=())
    else:
        cfg = F.StudyConfig(families=tuple(families or F.DEFAULT_FAMILIES), snrs=tuple(a.snrs or F.StudyConfig.snrs),
                            seeds=tuple(range(a.seeds)) if a.seeds else F.StudyConfig.seeds,
                            banded=() if a.no_banded else F.StudyConfig.banded)
    if a.trsa:  # section 3c: only the RSA analyses, with the tRSA methods of layer_id_trsa
        plan = tuple(p for p in cfg.plan if p[2])
        cfg = F.StudyConfig(**{**cfg.__dict__, "plan": plan, "banded": (), "topology": True})
    suffix = ("-trsa" if a.trsa else "") + ("-quick" if a.quick else "")
    out = a.output or Path(str(FAMILY_OUT) + suffix)
    command = "python -m brainalign.validation.layer_id " + " ".join(a.argv)
    F.run(out, cfg, cache_dir=a.cache_dir, log=lambda s: print(s, flush=True), command=command.strip())
    print((Path(out) / "accuracy.md").read_text())
    print(f"written: {out}/accuracy.tsv, coverage.tsv, trials.tsv, accuracy.md")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m brainalign.validation.layer_id", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one SNR, few seeds (about 2 minutes)")
    ap.add_argument("--output", type=Path, default=None,
                    help=f"output folder (default {DEFAULT_OUT}[-quick], with --families {FAMILY_OUT}[-quick])")
    ap.add_argument("--snrs", type=float, nargs="+", default=None)
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (0..N-1)")
    ap.add_argument("--cache-dir", default=None, help="activation cache (default: BRAINALIGN_CACHE or ~/.cache)")
    ap.add_argument("--families", nargs="*", default=None,
                    help="the cross-family study (issue 14) over these generator families "
                         "(brainalign.pipeline.simulate.FAMILIES; none named = the default set); "
                         "without this flag: the single-generator study of section 3")
    ap.add_argument("--no-banded", action="store_true", help="--families: skip the per-delay banded ridge")
    ap.add_argument("--trsa", action="store_true",
                    help="--families: only the analyses with RSA (fir4 and hrf at the generator's window), with "
                         "the topological RSA methods (geodesics, select_gt) of section 3c added; "
                         f"output {FAMILY_OUT}-trsa[-quick]")
    argv = sys.argv[1:] if argv is None else list(argv)
    a = ap.parse_args(argv)
    a.argv = argv
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.trsa and a.families is None:
        print("error: --trsa belongs to the cross-family study; pass --families too", file=sys.stderr)
        return 2
    if a.families is not None:
        from ..errors import InputError
        from ..pipeline.simulate import FAMILIES

        bad = [f for f in a.families if f not in FAMILIES]
        if bad:
            err = InputError(f"--families {bad[0]!r} is not one of {', '.join(FAMILIES)}")
            print(f"error: {err}", file=sys.stderr)
            return 2
        return _family_study(a, a.families)
    cfg = dict(QUICK if a.quick else FULL)
    if a.snrs:
        cfg["snrs"] = tuple(a.snrs)
    if a.seeds:
        cfg["seeds"] = tuple(range(a.seeds))
    out = a.output or Path(str(DEFAULT_OUT) + ("-quick" if a.quick else ""))
    acc = run_study(out, cfg["snrs"], cfg["seeds"], cache_dir=a.cache_dir, log=lambda s: print(s, flush=True))
    print(accuracy_markdown(acc))
    print(f"written: {out}/accuracy.tsv, trials.tsv, accuracy.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
