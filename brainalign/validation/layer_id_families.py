"""Layer identification across generator families x SNR x analysis recipes (issue 14).

Each dataset is written by :func:`brainalign.pipeline.simulate.simulate_bids` with one
member of :data:`brainalign.pipeline.simulate.FAMILIES` (its response model, feature
transform, readout rank, its own encoder window and pooling, its noise) and read back
with :func:`brainalign.io.load_bids`: one participant, fMRI, one region of
``targets_per_layer`` voxels per MiniLM layer 0..6. Every analysis of
:mod:`.layer_id_analysis` then names one layer per region. Analysis context windows
are labelled ``gen`` (the generator's own window) or by their words (10, 20, 32; 32 is
the pipeline's default ``context_words``), and ``cv`` (the window of :data:`GRID`
chosen, with the layer, by the highest held-out r).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import layer_id_analysis as A
from . import layer_id_tables as T

LAYERS = tuple(range(7))
DEFAULT_FAMILIES = ("classic", "spm_ar1_drift", "random_hrf", "fir_pink", "raw_lowrank")
QUICK_FAMILIES = ("classic", "spm_ar1_drift")
#: Analysis windows (words) tried by every family; ``cv`` picks among them by held-out r.
GRID = (10, 20, 32)
#: (alignment, context role, with RSA/tRSA, with single_r); roles: ``gen`` (the generator's
#: window), ``32`` (the pipeline's default), ``grid`` (each other window of :data:`GRID`).
#: ``fir4_banded`` is added separately.
FULL_PLAN = (("fir4", "gen", True, True), ("hrf", "gen", True, False), ("hrf_deriv", "gen", False, False),
             ("fir4_pca", "gen", False, False),
             ("fir4", "32", False, False), ("hrf", "32", False, False), ("hrf_fir4", "32", False, False),
             ("fir4", "grid", False, False), ("hrf", "grid", False, False))
QUICK_PLAN = (("fir4", "gen", True, False), ("hrf", "gen", False, False), ("fir4", "32", False, False),
              ("hrf", "32", False, False), ("hrf_fir4", "32", False, False))
#: Alignments whose window is also chosen by held-out r over :data:`GRID` (context ``cv``).
CV_ALIGNMENTS = ("fir4", "hrf")


@dataclass(frozen=True)
class StudyConfig:
    """What is simulated and analysed (defaults: the full study)."""

    families: tuple = DEFAULT_FAMILIES
    snrs: tuple = (0.25, 0.5, 1.0)
    seeds: tuple = (0, 1, 2)
    n_runs: int = 2
    n_volumes: int = 150
    tr: float = 2.0
    targets_per_layer: int = 20
    n_words: int | None = None
    plan: tuple = FULL_PLAN
    #: ``fir4_banded`` (generator's window) runs on the first seed at the highest SNR only, for
    #: these families (it costs ~10x ``fir4``).
    banded: tuple = ("classic", "spm_ar1_drift", "fir_pink")
    level: float = 0.9
    n_boot: int = 200
    #: Also the tRSA methods of :mod:`.layer_id_trsa` on the plan's RSA analyses (section 3c).
    topology: bool = False
    extra: dict = field(default_factory=dict)


def windows_of(role: str, generator_window: int) -> list[int]:
    """The analysis windows (words) of a context role for a generator with window ``generator_window``."""
    if role == "gen":
        return [int(generator_window)]
    if role == "grid":
        return [w for w in GRID if w not in (generator_window, 32)]
    return [int(role)]


def context_label(window: int, generator_window: int) -> str:
    """``gen`` when the analysis window is the generator's, else the window in words."""
    return "gen" if int(window) == int(generator_window) else str(int(window))


def _dataset(root: Path, family: str, snr: float, seed: int, cfg: StudyConfig, cache_dir):
    from ..io import load_bids
    from ..pipeline.simulate import FAMILIES, simulate_bids

    truth = simulate_bids(root, "fmri", n_subjects=1, n_runs=cfg.n_runs, n_volumes=cfg.n_volumes, tr=cfg.tr,
                          layers=LAYERS, targets_per_layer=cfg.targets_per_layer, snr=snr, seed=seed,
                          n_words=cfg.n_words, generator=FAMILIES[family], cache_dir=cache_dir)
    rec, stim = load_bids(root, "01", truth["task"], mask=str(root / truth["mask"]))[:2]
    cols, groups = [], []
    for layer in LAYERS:
        cols += truth["planted"][str(layer)]
        groups += [layer] * len(truth["planted"][str(layer)])
    return rec, stim, np.asarray(rec.values, np.float64)[:, cols], np.asarray(groups)


class _Features:
    """Each layer's word features per analysis window, from one cached encoder per window."""

    def __init__(self, cache_dir):
        self.cache_dir, self.encoders = cache_dir, {}

    def __call__(self, stim, window: int) -> list[np.ndarray]:
        from ..encoders import HFEncoder

        enc = self.encoders.setdefault(window, HFEncoder(context_words=window, cache_dir=self.cache_dir))
        acts = enc.encode(stim)
        return [np.asarray(acts.sel(layer=l).values, np.float64) for l in LAYERS]


def _rows(out: dict, base: dict) -> list[dict]:
    rows = []
    for method, res in out.items():
        for j, planted in enumerate(LAYERS):
            row = {**base, "method": method, "planted": planted, "chosen": int(LAYERS[int(res["chosen"][j])])}
            if "in_set" in res:
                members = [LAYERS[i] for i in np.flatnonzero(res["in_set"][:, j])]
                row.update(in_set=int(planted in members), set_size=len(members),
                           credible_set=",".join(map(str, members)), p_best_planted=float(res["p_best"][j, j]))
            row.update({k: res[k] for k in ("band", "collapsed") if k in res})
            rows.append(row)
    return rows


def analyse_dataset(rec, stim, Y, groups, family: str, plan, features, *, seed: int = 0,
                    n_boot: int = A.N_BOOT, level: float = 0.9, topology: bool = False) -> list[dict]:
    """Every analysis of ``plan`` on one dataset: one row per (analysis, region).

    For the :data:`CV_ALIGNMENTS` analysed at every window of :data:`GRID`, context
    ``cv`` adds the layer of the (window, layer) pair with the highest region mean r
    (the window chosen by the data; its words in ``chosen_window``). ``topology``: the
    tRSA methods of :mod:`.layer_id_trsa` too, wherever the plan asks for RSA.
    """
    from ..pipeline.simulate import FAMILIES

    gen_window = int(FAMILIES[family].context_words)
    rows, region_r = [], {}
    for alignment, role, rsa_too, single_too in plan:
        for window in windows_of(role, gen_window):
            out = A.analyse_alignment(features(stim, window), stim, rec, Y, groups, alignment, rsa_too=rsa_too,
                                      single_too=single_too, seed=seed, n_boot=n_boot, level=level,
                                      topology=topology)
            region_r[alignment, window] = out["argmax_r"].pop("region_r")
            rows += _rows(out, {"alignment": alignment, "context": context_label(window, gen_window),
                                "window": window})
    for alignment in CV_ALIGNMENTS:
        if all((alignment, w) in region_r for w in GRID):
            R = np.stack([region_r[alignment, w] for w in GRID])  # (windows, layers, regions)
            flat = R.reshape(-1, R.shape[2]).argmax(axis=0)
            win, layer = np.unravel_index(flat, R.shape[:2])
            for row in _rows({"argmax_r": {"chosen": layer}}, {"alignment": alignment, "context": "cv", "window": -1}):
                row["chosen_window"] = GRID[int(win[row["planted"]])]
                rows.append(row)
    return rows


def _order(cfg: StudyConfig) -> list[tuple]:
    """(snr, seed, family) in the order run: highest SNR first, then lowest, then the others."""
    snrs = sorted(cfg.snrs, reverse=True)
    snrs = snrs[:1] + snrs[1:][::-1]
    return [(snr, seed, family) for snr in snrs for seed in cfg.seeds for family in cfg.families]


def write_tables(out_dir: Path, trials: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """``trials.tsv``, ``accuracy.tsv``, ``coverage.tsv`` (lowest SNR), ``accuracy.md``, ``settings.json``."""
    from ..pipeline import outputs

    trials = T.add_errors(trials)
    front = ["family", "snr", "seed", "alignment", "context", "window", "method", "planted", "chosen"]
    trials = trials[front + [c for c in trials.columns if c not in front]]
    acc = T.accuracy_table(trials)
    cov = T.coverage_table(trials, float(trials["snr"].min()))
    out_dir = Path(out_dir)
    outputs.write_tsv(out_dir / "trials.tsv", trials)
    outputs.write_tsv(out_dir / "accuracy.tsv", acc)
    outputs.write_tsv(out_dir / "coverage.tsv", cov)
    outputs.write_text(out_dir / "accuracy.md", T.study_markdown(acc, cov, settings))
    outputs.write_json(out_dir / "settings.json", settings)
    return acc


def run(out_dir: Path, cfg: StudyConfig, cache_dir=None, log=print, command: str = "") -> pd.DataFrame:
    """Simulate every (family, SNR, seed), analyse, and write the tables into ``out_dir``.

    Writes ``trials.tsv`` (one row per analysis x region x dataset), ``accuracy.tsv``,
    ``coverage.tsv`` (at the lowest SNR), ``accuracy.md`` and ``settings.json``
    (:func:`write_tables`); while running, ``trials.partial.tsv`` holds the datasets
    done so far. Returns the accuracy table.
    """
    from threadpoolctl import threadpool_limits

    from ..pipeline import outputs
    from ..pipeline.simulate import FAMILIES

    features = _Features(cache_dir)
    rows, t0 = [], time.time()
    out_dir = Path(out_dir)
    with threadpool_limits(limits=1), tempfile.TemporaryDirectory(prefix="brainalign-layerid-fam-") as tmp:
        for snr, seed, family in _order(cfg):
            root = Path(tmp) / f"{family}-snr{snr:g}-seed{seed}"
            rec, stim, Y, groups = _dataset(root, family, snr, seed, cfg, cache_dir)
            plan = tuple(cfg.plan)
            if family in cfg.banded and snr == max(cfg.snrs) and seed == cfg.seeds[0]:
                plan += (("fir4_banded", "gen", False, False),)
            new = analyse_dataset(rec, stim, Y, groups, family, plan, features, seed=seed,
                                  n_boot=cfg.n_boot, level=cfg.level, topology=cfg.topology)
            for r in new:
                r.update(family=family, snr=snr, seed=seed)
            rows += new
            outputs.write_tsv(out_dir / "trials.partial.tsv", pd.DataFrame(rows))
            ok = pd.DataFrame(new).query("method == 'argmax_r'")
            log(f"{family} snr={snr:g} seed={seed}: argmax_r exact "
                + ", ".join(f"{a}/{c}={int((g['planted'] == g['chosen']).sum())}/{len(g)}"
                            for (a, c), g in ok.groupby(["alignment", "context"], sort=False))
                + f"  [{time.time() - t0:.0f} s]")
    settings = {**{k: v for k, v in asdict(cfg).items() if k != "plan"}, "plan": [list(p) for p in cfg.plan],
                "generators": {f: FAMILIES[f].to_dict() for f in cfg.families}, "layers": list(LAYERS),
                "command": command, "seconds": round(time.time() - t0, 1),
                "cv": f"{A.N_FOLDS} contiguous outer folds, {A.N_FOLDS} inner; DEFAULT_ALPHAS"}
    acc = write_tables(out_dir, pd.DataFrame(rows), settings)
    (out_dir / "trials.partial.tsv").unlink(missing_ok=True)
    return acc
