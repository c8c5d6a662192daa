"""Geometry validation studies (docs/validation.md, sections "Geometry": a, b, c).

``python -m brainalign.validation.geometry trsa|id|planted [--quick] [--output DIR]``

- ``trsa``: the tRSA authors' layer-identification-under-noise evaluation
  (:mod:`.geometry_trsa`).
- ``id``: intrinsic dimension (TwoNN; GRIDE at scales n1 = 1, 2, 4, 8) of MiniLM's
  layers on the words of ``data/story.txt`` (window of 20 words), of the Alice
  chapter (``../shared/data/alice-fmri/stimulus/words.tsv``, window of 20 words as
  ``pipelines/alice_fmri.yaml``) and of the Frank et al. sentences (``context:
  sentence`` as ``pipelines/frank2015_eeg.yaml``); one point per word.
- ``planted``: mutual k-NN, CKA and shape-metric layer profiles of simulated brain
  patterns that carry one MiniLM layer (random readout + noise), and how often each
  metric's best layer is the planted one.

Every table is printed and written to ``DIR/<study>.md`` (default
``build/validation/geometry``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import geometry, rsa
from ..pipeline.config import REPO_ROOT
from .stats import markdown_table, wilson_interval

DEFAULT_OUT = Path("build") / "validation" / "geometry"
SHARED = Path(os.environ.get("BRAINALIGN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _encode(stimulus, context: str = "window"):
    from ..encoders import HFEncoder

    return HFEncoder(context_words=20, context=context, progress=False).encode(stimulus)


def story_activations():
    """MiniLM (layer, word, feature) on data/story.txt, window of 20 words."""
    from ..pipeline.simulate import story_words

    return _encode(story_words())


def _items(acts, n: int) -> np.ndarray:
    """(layers, n, features) float64 at n words evenly spaced over the text."""
    idx = np.linspace(0, acts.sizes["word"] - 1, n).round().astype(int)
    return np.asarray(acts.values[:, idx], dtype=np.float64)


# ---------------------------------------------------------------------------- (b) ID
def id_profile(acts, label: str) -> pd.DataFrame:
    """TwoNN [bootstrap 95 % CI] and GRIDE (n1 = 1, 2, 4, 8) per layer of one text."""
    rows = []
    for li, layer in enumerate(acts["layer"].values):
        x = np.asarray(acts.values[li], dtype=np.float64)
        d, lo, hi = geometry.intrinsic_dimension_ci(x, "twonn", n_bootstrap=200, seed=0)
        row = {"text": label, "layer": int(layer), "TwoNN": f"{d:.2f} [{lo:.2f}, {hi:.2f}]", "_twonn": d}
        for n1 in (1, 2, 4, 8):
            row[f"GRIDE n1={n1}"] = round(float(geometry.intrinsic_dimension(x, "gride", n1=n1)), 2)
        rows.append(row)
    return pd.DataFrame(rows)


def id_texts(quick: bool) -> list[tuple[str, object]]:
    texts = [("story.txt", story_activations())]
    if quick:
        return texts
    from ..io.roi_table import load_alice_stimulus
    from ..io.word_table import read_frank2015, word_erp_stimulus

    alice = SHARED / "alice-fmri"
    if alice.is_dir():
        texts.append(("Alice ch. 1", _encode(load_alice_stimulus(alice))))
    frank = SHARED / "frank2015-eeg" / "data_EEG.csv"
    if frank.is_file():
        texts.append(("Frank sentences", _encode(word_erp_stimulus(read_frank2015(frank)), context="sentence")))
    return texts


def run_id(quick: bool) -> str:
    frames = [id_profile(acts, label) for label, acts in id_texts(quick)]
    df = pd.concat(frames, ignore_index=True)
    peaks = {t: int(g.loc[g["_twonn"].idxmax(), "layer"]) for t, g in df.groupby("text", sort=False)}
    lines = ["Intrinsic dimension of MiniLM's layers (one point per word; TwoNN with a 200-draw bootstrap "
             "95 % CI; GRIDE at scale n1).", "", markdown_table(df.drop(columns="_twonn")), "",
             "TwoNN peak layer per text: " + ", ".join(f"{t}: {l}" for t, l in peaks.items())]
    return "\n".join(lines)


# ---------------------------------------------------------------------- (c) planted
PLANTED = (1, 3, 5)
METRICS = ("mutual_knn", "cka", "cka_debiased", "shape", "rsa")


def _profile(brain: np.ndarray, layers: np.ndarray, k: int = 10) -> dict:
    out = {"mutual_knn": [geometry.mutual_knn(x, brain, k=k) for x in layers],
           "cka": [geometry.cka(x, brain) for x in layers],
           "cka_debiased": [geometry.cka(x, brain, debiased=True) for x in layers],
           "shape": [-geometry.shape_distance(x, brain) for x in layers]}  # negated: larger = more similar
    b = np.asarray(rsa.rdm(brain))
    out["rsa"] = [float(rsa.compare(np.asarray(rsa.rdm(x)), b)) for x in layers]
    return out


def planted_study(layers: np.ndarray, sigmas, seeds, n_units: int = 200) -> pd.DataFrame:
    """One row per planted layer, noise level, seed and metric: the metric's profile and its arg-max."""
    rows = []
    p = layers.shape[2]
    for planted in PLANTED:
        for sigma in sigmas:
            for seed in seeds:
                rng = np.random.default_rng(1000 * planted + seed)
                signal = layers[planted] @ (rng.standard_normal((p, n_units)) / np.sqrt(p))
                brain = signal + sigma * signal.std() * rng.standard_normal(signal.shape)
                for m, prof in _profile(brain, layers).items():
                    rows.append(dict(planted=planted, sigma=sigma, seed=seed, metric=m,
                                     best=int(np.argmax(prof)), **{f"L{i}": v for i, v in enumerate(prof)}))
    return pd.DataFrame(rows)


def run_planted(quick: bool) -> str:
    layers = _items(story_activations(), 150)
    sigmas, seeds = ((1.0, 4.0), range(3)) if quick else ((1.0, 2.0, 4.0, 8.0), range(10))
    df = planted_study(layers, sigmas, seeds)
    acc = []
    for (m, sigma), g in df.groupby(["metric", "sigma"], sort=False):
        k, n = int((g["best"] == g["planted"]).sum()), len(g)
        lo, hi = wilson_interval(k, n)
        near = int((abs(g["best"] - g["planted"]) <= 1).sum())
        acc.append({"metric": m, "noise (x signal sd)": sigma, "planted layer named": f"{k}/{n}",
                    "accuracy [95 % CI]": f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]", "within one layer": f"{near}/{n}"})
    prof = df[(df["planted"] == 3) & (df["sigma"] == sigmas[len(sigmas) // 2])]
    mean = prof.groupby("metric", sort=False)[[f"L{i}" for i in range(layers.shape[0])]].mean().reset_index()
    return "\n".join([
        f"Items: 150 words of data/story.txt; brain = MiniLM layer (1, 3 or 5) x random readout (384 -> 200 units)"
        f" + noise; {len(list(seeds))} seeds; shape = minus the angular Procrustes distance (radians).", "",
        markdown_table(pd.DataFrame(acc)), "", f"Mean profiles, planted layer 3, noise {sigmas[len(sigmas) // 2]}:",
        "", markdown_table(mean, floatfmt=".3f")])


# ------------------------------------------------------------------------- (a) tRSA
def run_trsa(quick: bool) -> str:
    from . import geometry_trsa as T

    layers = _items(story_activations(), T.N_ITEMS)
    sigmas, seeds = ((2.0,), (0,)) if quick else ((0.5, 1.0, 2.0, 4.0), (0, 1))
    df = T.evaluate(layers, sigmas, seeds)
    bands = df[["sigma", "seed", "gt_bands", "geodesic_bands"]]
    return "\n".join([
        f"{T.N_PARTICIPANTS} participants x {layers.shape[0]} layers x {T.N_READOUTS} readouts, {T.N_ITEMS} words "
        f"of data/story.txt, {T.N_UNITS} units, grid step {T.STEP}; chance {1 / layers.shape[0]:.3f}; "
        "mean accuracy [min, max] over seeds.", "", markdown_table(T.summary(df)), "",
        "Bands chosen per held-out participant (lower-upper):", "", markdown_table(bands)])


STUDIES = {"trsa": run_trsa, "id": run_id, "planted": run_planted}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m brainalign.validation.geometry", description=__doc__.splitlines()[0])
    ap.add_argument("study", choices=sorted(STUDIES))
    ap.add_argument("--quick", action="store_true", help="fewer noise levels and seeds (a smoke run)")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    t0 = time.time()
    text = STUDIES[args.study](args.quick)
    text += f"\n\nWall time: {time.time() - t0:.0f} s ({'quick' if args.quick else 'full'} run).\n"
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"{args.study}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
