"""The tRSA authors' evaluation in our setting: identifying the generating layer from noisy RDMs.

Lin & Kriegeskorte (PNAS 2024) ask whether topology-sensitive RDM statistics keep
"layer decodability under noise": each simulated participant reads out a network's
layers through its own random measurement channels, with noise; the layer is then
identified from the participant's RDM by leave-one-participant-out nearest-centroid
classification (the evaluation of :func:`brainalign.rsa.select_gt`).

Here the network is MiniLM (layers 0-6) on the words of ``data/story.txt`` (window
of 20 words, last sub-token); the items are ``N_ITEMS`` words evenly spaced over the
story. Participant p has a random readout W_p (384 features -> ``N_UNITS`` units);
each of its ``N_READOUTS`` readouts of layer l is ``X_l W_p`` plus Gaussian noise of
``sigma`` times the signal's standard deviation; RDMs are correlation distances.
Transforms compared (all per RDM):

- ``rdm``: the RDM itself; ``gt_cv``: the GT transform, (lower, upper) chosen on a
  grid (``STEP``) by the identification accuracy of the **training** participants
  only (nested leave-one-participant-out: the held-out participant never takes part
  in choosing its band); ``geodesic_cv``: the twostep geodesic, band chosen the same
  way; ``p_shortest``, ``k_nearest``: the authors' other graphs at fixed settings;
  ``keep_0.2_0.8``: brainalign's old contraction (zero edges kept, no rank) at the
  band the old pipeline default used, as a reference for the collapse.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .. import rsa
from ..errors import GeodesicCollapseWarning
from ..rsa.gt_select import identification_accuracy

N_ITEMS = 48
N_UNITS = 100
N_PARTICIPANTS = 6
N_READOUTS = 2
STEP = 0.1
FIXED = {"p_shortest": dict(method="p_shortest", p=0.05), "k_nearest": dict(method="k_nearest", k=3),
         "keep_0.2_0.8": dict(lower=0.2, upper=0.8, zero_edges="keep", rank=False)}


def noisy_rdms(layers: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """(participants, layers, readouts, n, n) correlation RDMs of noisy random readouts of ``layers`` (L, n, p)."""
    rng = np.random.default_rng(seed)
    L, n, p = layers.shape
    out = np.empty((N_PARTICIPANTS, L, N_READOUTS, n, n))
    for s in range(N_PARTICIPANTS):
        w = rng.standard_normal((p, N_UNITS)) / np.sqrt(p)
        for li in range(L):
            signal = layers[li] @ w
            scale = signal.std()
            for r in range(N_READOUTS):
                y = signal + sigma * scale * rng.standard_normal(signal.shape)
                out[s, li, r] = np.asarray(rsa.rdm(y, metric="correlation"))
    return out


def _vectors(rdms: np.ndarray) -> np.ndarray:
    iu = np.triu_indices(rdms.shape[-1], 1)
    return rdms[..., iu[0], iu[1]]


def _grid() -> list[tuple[float, float]]:
    lo = np.round(np.arange(0, 1, STEP), 10)
    return [(a, b) for a in lo for b in np.round(np.arange(STEP, 1 + 1e-9, STEP), 10) if b > a]


def _transform(rdms: np.ndarray, kind: str, **kw) -> np.ndarray:
    flat = rdms.reshape(-1, *rdms.shape[-2:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeodesicCollapseWarning)
        if kind == "gt":
            t = rsa.gt_transform(flat, **kw)
        else:
            t = rsa.geodesic(flat, fill="max", **kw)
    return _vectors(np.asarray(t)).reshape(*rdms.shape[:3], -1)


def _accuracy_of(test: np.ndarray, train: np.ndarray) -> float:
    """Nearest-centroid accuracy of one participant's vectors (C, R, m) against others' (P-1, C, R, m)."""
    cent = train.mean(axis=(0, 2))
    q = test.reshape(-1, test.shape[-1])
    d2 = (cent * cent).sum(1)[None] - 2 * q @ cent.T
    return float(np.mean(np.argmin(d2, axis=1) == np.repeat(np.arange(test.shape[0]), test.shape[1])))


def nested_cv(vectors_by_band: dict) -> tuple[float, list]:
    """Leave-one-participant-out accuracy with the band chosen on the other participants only.

    ``vectors_by_band``: band -> (P, C, R, m). Returns (accuracy, chosen band per fold).
    """
    bands = list(vectors_by_band)
    P = next(iter(vectors_by_band.values())).shape[0]
    accs, chosen = [], []
    for s in range(P):
        others = [i for i in range(P) if i != s]
        inner = [identification_accuracy(vectors_by_band[b][others]) for b in bands]
        best = bands[int(np.argmax(inner))]  # ties: first on the grid (smallest lower, then upper)
        v = vectors_by_band[best]
        accs.append(_accuracy_of(v[s], v[others]))
        chosen.append(best)
    return float(np.mean(accs)), chosen


def evaluate(layers: np.ndarray, sigmas, seeds) -> pd.DataFrame:
    """Identification accuracy per transform, noise level and seed (rows), chance 1/L."""
    rows = []
    for sigma in sigmas:
        for seed in seeds:
            rdms = noisy_rdms(layers, sigma, seed)
            res = {"rdm": identification_accuracy(_vectors(rdms))}
            for kind in ("gt", "geodesic"):
                by_band = {(a, b): _transform(rdms, kind, lower=a, upper=b) for a, b in _grid()}
                acc, chosen = nested_cv(by_band)
                res[f"{kind}_cv"] = acc
                res[f"{kind}_bands"] = ";".join(f"{a:g}-{b:g}" for a, b in chosen)
            for name, kw in FIXED.items():
                res[name] = identification_accuracy(_transform(rdms, "geodesic", **kw))
            rows.append(dict(sigma=sigma, seed=seed, **res))
    return pd.DataFrame(rows)


METHODS = ("rdm", "gt_cv", "geodesic_cv", "p_shortest", "k_nearest", "keep_0.2_0.8")


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy [min, max over seeds] per noise level and transform."""
    out = []
    for sigma, g in df.groupby("sigma"):
        row = {"noise (x signal sd)": sigma}
        for m in METHODS:
            row[m] = f"{g[m].mean():.3f} [{g[m].min():.2f}, {g[m].max():.2f}]"
        out.append(row)
    return pd.DataFrame(out)
