"""Calibration of the per-target encoding p-values: refit circular-shift null vs the old fold t-test.

Simulated studies with the autocorrelation of fMRI: features AR(1) (phi 0.9, as
slow as a convolved word embedding), noise AR(1) (phi 0.7), two runs, contiguous
outer folds crossing the run boundary, nested ridge (the pipeline's kernel,
:func:`brainalign.encoding.cross_validated_scores`).

- Pure noise: the fraction of targets with p < alpha must lie in the binomial 99%
  interval of alpha.
- Planted truth (``n_planted`` targets carry a linear read-out of the features):
  the false-discovery proportion among Benjamini-Hochberg q < .05 discoveries,
  averaged over seeds, must be at most .05.

Both with contiguous outer folds and with leave-one-run-out over the two runs (two
folds: the fold t-test has one degree of freedom). Run
``python -m brainalign.validation.calibration`` (about 4 minutes on 2 cores; ``--quick``
for a smaller run); docs/validation.md quotes its output.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from scipy import stats

from ..encoding import cross_validated_scores, fdr_bh, folds_to_splits, make_folds, permutation_test
from ..encoding.permutation import null_pvalues, refit_shift_null

#: The methods compared: the refit shift null (t tail, the pipeline's p, and empirical tail), the old
#: fold t-test, and a shift of the held-out predictions against the data without refitting
#: (:func:`brainalign.encoding.permutation_test` on the fold-concatenated predictions).
METHODS = ("shift_t", "shift_empirical", "fold_ttest", "prediction_shift")


@dataclass(frozen=True)
class Setting:
    """One simulated study (sizes in samples; ``snr``: s.d. of the planted signal / s.d. of the noise)."""

    n_samples: int = 300
    n_runs: int = 2
    n_features: int = 8
    n_targets: int = 300
    n_planted: int = 0
    snr: float = 0.4
    phi_features: float = 0.9
    phi_noise: float = 0.7
    n_folds: int = 5
    cv: str = "contiguous"
    inner_cv: int = 3
    alphas: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    n_permutations: int = 200


def ar1(rng: np.random.Generator, runs: np.ndarray, k: int, phi: float) -> np.ndarray:
    """(n, k) unit-variance AR(1) series with coefficient ``phi``, restarted at every run."""
    e = rng.standard_normal((runs.size, k))
    out = np.empty_like(e)
    scale = np.sqrt(1.0 - phi * phi)
    for t in range(runs.size):
        fresh = t == 0 or runs[t] != runs[t - 1]
        out[t] = e[t] if fresh else phi * out[t - 1] + scale * e[t]
    return out


def simulate(setting: Setting, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Design X (n, p), data Y (n, T), run labels (n,) and the planted-target mask (T,)."""
    rng = np.random.default_rng(seed)
    runs = np.repeat(np.arange(setting.n_runs), -(-setting.n_samples // setting.n_runs))[:setting.n_samples]
    X = ar1(rng, runs, setting.n_features, setting.phi_features)
    Y = ar1(rng, runs, setting.n_targets, setting.phi_noise)
    truth = np.zeros(setting.n_targets, dtype=bool)
    if setting.n_planted:
        truth[rng.choice(setting.n_targets, setting.n_planted, replace=False)] = True
        signal = X @ rng.standard_normal((setting.n_features, int(truth.sum())))
        Y[:, truth] += setting.snr * signal / signal.std(0)
    return X, Y, runs, truth


def fold_ttest(r_folds: np.ndarray) -> np.ndarray:
    """The old per-target p: one-sided one-sample t-test of the folds' r (n_folds, T) > 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p = stats.ttest_1samp(r_folds, 0.0, axis=0, alternative="greater").pvalue
    return np.where(np.isfinite(p), p, 1.0)


def study_pvalues(setting: Setting, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """p-values (T,) of every method on one simulated study, and its planted mask."""
    X, Y, runs, truth = simulate(setting, seed)
    folds = make_folds(setting.cv, X.shape[0], runs=runs, n_folds=setting.n_folds)
    res = cross_validated_scores(X, Y, outer_cv=folds_to_splits(folds, X.shape[0]), inner_cv=setting.inner_cv,
                                 alphas=np.asarray(setting.alphas))
    null = refit_shift_null(X, Y, folds, res.alpha_folds, runs=runs, n_permutations=setting.n_permutations,
                            seed=seed)
    fold_of = np.zeros(X.shape[0], dtype=int)
    for k, f in enumerate(folds):
        fold_of[f] = k
    m = int(np.ceil(0.1 * min(f.size for f in folds)))
    pred = permutation_test(Y, res.predictions, fold_of, n_permutations=setting.n_permutations, min_shift=m,
                            random_state=seed)
    p = {"shift_t": null_pvalues(null.observed, null.null, "t"),
         "shift_empirical": null_pvalues(null.observed, null.null, "empirical"),
         "fold_ttest": fold_ttest(res.r_folds), "prediction_shift": np.asarray(pred.p_value)}
    return {k: np.where(np.isfinite(v), v, 1.0) for k, v in p.items()}, truth


def binomial_interval(n: int, alpha: float, level: float = 0.99) -> tuple[float, float]:
    """Central ``level`` interval of the fraction of ``n`` independent tests with p < ``alpha`` under the null."""
    lo, hi = stats.binom.interval(level, n, alpha)
    return float(lo) / n, float(hi) / n


def false_positive_rates(setting: Setting, seeds: Sequence[int],
                         alphas: Sequence[float] = (0.05, 0.01)) -> dict[str, dict[float, float]]:
    """Fraction of pure-noise targets (pooled over seeds) with p < alpha, per method."""
    noise = replace(setting, n_planted=0)
    pooled = {m: [] for m in METHODS}
    for s in seeds:
        p, _ = study_pvalues(noise, s)
        for m in METHODS:
            pooled[m].append(p[m])
    return {m: {a: float(np.mean(np.concatenate(v) < a)) for a in alphas} for m, v in pooled.items()}


def planted_study(setting: Setting, seeds: Sequence[int], q: float = 0.05
                  ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per seed and method: the false-discovery proportion among BH q < ``q`` discoveries
    (0 without discoveries) and the share of planted targets found (power)."""
    fdp: dict[str, list[float]] = {m: [] for m in METHODS}
    power: dict[str, list[float]] = {m: [] for m in METHODS}
    for s in seeds:
        p, truth = study_pvalues(setting, s)
        for m in METHODS:
            found = fdr_bh(p[m]) < q
            fdp[m].append(float((found & ~truth).sum() / max(1, found.sum())))
            power[m].append(float((found & truth).sum() / max(1, truth.sum())))
    return fdp, power


def demo_check(config: str = "pipelines/demo.yaml", subject: str = "01", n_permutations: int = 200) -> dict:
    """The packaged demo's participant: share of pure-noise voxels with p < .05 and FDP at q < .05, per method.

    Reads the demo's planted truth (``data/derivatives/simulation/truth.json``: voxels in mask order)
    and scores every layer once with the shift null and once with the fold t-test; also the CPU
    seconds (this process, all threads) of the fit and of the null.
    """
    import dataclasses
    import json
    from pathlib import Path

    from ..pipeline.api import finalize, select_activations
    from ..pipeline.config import load_config
    from ..pipeline.encoder_factory import make_encoder
    from ..pipeline.prepare import baseline_table, prepare
    from ..pipeline.preprocess import preprocess
    from ..pipeline.scoring import score_prepared
    from ..pipeline.sources import load_participant
    from ..pipeline.specs import specs_from_config
    from ..pipeline.targets import regions

    specs = specs_from_config(load_config(config))
    loaded = load_participant(specs.load, subject, specs.load.task)
    rec = preprocess(loaded.recording, specs.preprocess, loaded.confounds)
    acts = select_activations(make_encoder(specs.models[0], specs.execution), loaded.stimulus, None)
    P = prepare(rec, loaded.stimulus, baseline_table(specs.baseline, loaded.baseline, loaded.confounds),
                specs.align, specs.score.cv, regions=regions(rec))
    truth = json.loads((Path(specs.load.root) / "derivatives/simulation/truth.json").read_text())
    noise = np.zeros(P.Y.shape[1], dtype=bool)
    noise[truth["noise"]] = True
    out = {}
    for name, n in (("fold_ttest", 0), ("shift_t", n_permutations)):
        t0 = time.process_time()
        ds = finalize(score_prepared(P, acts, dataclasses.replace(specs.score, methods=("encoding",), permutations=n)))
        sig = ds["p_fdr"].values < 0.05
        out[name] = {"noise_p05": float(np.mean(ds["p"].values[:, noise] < 0.05)),
                     "fdp": float(sig[:, noise].sum() / max(1, sig.sum())), "discoveries": int(sig.sum()),
                     "cpu_s": time.process_time() - t0}
    out["shape"] = {"samples": int(P.Y.shape[0]), "targets": int(P.Y.shape[1]), "layers": int(acts.sizes["layer"])}
    return out


def _table(base: Setting, seeds: list[int]) -> None:
    """Print the FPR / FDP / power rows of one cross-validation scheme."""
    fpr = false_positive_rates(base, seeds)
    fdp, power = planted_study(replace(base, n_planted=base.n_targets // 5, snr=1.0), [100 + s for s in seeds])
    n = len(seeds) * base.n_targets
    folds = "2 leave-one-run-out folds" if base.cv == "leave_one_run_out" else f"{base.n_folds} contiguous folds"
    print(f"\n{len(seeds)} seeds x {base.n_targets} targets, {base.n_permutations} shifts; features AR(1) "
          f"phi={base.phi_features}, noise AR(1) phi={base.phi_noise}, {base.n_runs} runs, {folds}")
    for alpha in (0.05, 0.01):
        lo, hi = binomial_interval(n, alpha)
        print(f"noise, p < {alpha}: binomial 99% interval [{lo:.3f}, {hi:.3f}]")
    print("| method | FPR p<.05 | FPR p<.01 | mean FDP at q<.05 (planted) | power |")
    print("|---|---|---|---|---|")
    for m in METHODS:
        print(f"| {m} | {fpr[m][0.05]:.3f} | {fpr[m][0.01]:.3f} | {np.mean(fdp[m]):.3f} | {np.mean(power[m]):.2f} |")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the calibration tables of docs/validation.md (contiguous folds, then leave-one-run-out)."""
    ap = argparse.ArgumentParser(prog="python -m brainalign.validation.calibration", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10, help="simulated studies per condition (default 10)")
    ap.add_argument("--targets", type=int, default=300, help="targets per study (default 300)")
    ap.add_argument("--permutations", type=int, default=200, help="shifts of the null (default 200)")
    ap.add_argument("--quick", action="store_true", help="3 seeds, 200 targets")
    ap.add_argument("--demo", action="store_true", help="also the packaged demo's participant 01 (about a minute)")
    a = ap.parse_args(argv)
    n_seeds, n_t = (3, 200) if a.quick else (a.seeds, a.targets)
    t0 = time.perf_counter()
    for cv in ("contiguous", "leave_one_run_out"):
        _table(Setting(n_targets=n_t, n_permutations=a.permutations, cv=cv), list(range(n_seeds)))
    print(f"({time.perf_counter() - t0:.0f} s)")
    if a.demo:
        d = demo_check(n_permutations=a.permutations)
        print(f"demo sub-01 ({d['shape']['layers']} layers x {d['shape']['targets']} voxels, {d['shape']['samples']} "
              "samples): | method | noise voxels p<.05 | FDP at q<.05 | discoveries | CPU s |")
        for m in ("shift_t", "fold_ttest"):
            r = d[m]
            print(f"| {m} | {r['noise_p05']:.3f} | {r['fdp']:.3f} | {r['discoveries']} | {r['cpu_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
