"""Random readouts from layer features to simulated targets.

The readout of a layer is ``B = W @ V``: ``W`` (p, r) ~ N(0, 1 / p), ``V`` (r, k) ~ N(0, 1),
``r`` the generator's rank (full rank: ``W`` (p, k), ``V`` = I). Its seed is
``seed * 7919 + layer`` when all participants share one code, else
``[seed, 7919, layer, participant index + 1]`` (numpy SeedSequence); every ``B`` is
written as ``derivatives/simulation/readout/<key>.npy`` (float64, p x k).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import outputs
from .sim_generator import Generator


def readout_weights(p: int, rank: int | None, n_targets: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Random readout factors ``W`` (p, r) and ``V`` (r, n_targets); full rank: ``W`` (p, n_targets), ``V`` = I."""
    if rank is None:
        return rng.standard_normal((p, n_targets)) / np.sqrt(p), np.eye(n_targets)
    W = rng.standard_normal((p, rank)) / np.sqrt(p)
    V = rng.standard_normal((rank, n_targets))
    return W, V


def projection(feats: np.ndarray, rank: int, n_targets: int, rng) -> np.ndarray:
    """(n, p) features -> (n, n_targets) low-rank random mixtures of the z-scored features."""
    f = (feats - feats.mean(0)) / (feats.std(0) + 1e-8)
    W, V = readout_weights(f.shape[1], rank, n_targets, rng)
    out = f @ W @ V
    return out


@dataclass(frozen=True)
class SubjectReadout:
    """One participant's readout: its generator, seeds, and where its readout matrices are written.

    Parameters
    ----------
    gen : Generator
    seed : int
        The dataset's seed.
    index : int
        0-based participant index.
    sub : str
        Participant label (without ``sub-``).
    deriv : Path
        ``derivatives/simulation`` of the dataset.
    """

    gen: Generator
    seed: int
    index: int
    sub: str
    deriv: Path

    def readout_rng(self, layer: int) -> np.random.Generator:
        if self.gen.per_subject_readout:
            return np.random.default_rng([self.seed, 7919, layer, self.index + 1])
        return np.random.default_rng(self.seed * 7919 + layer)  # one code shared by every participant

    def amplitudes(self, feats: np.ndarray, layer: int, k: int) -> np.ndarray:
        """(n, p) inputs -> (n, k) readout (z-scored or raw inputs, as the generator says)."""
        if self.gen.features == "zscore":
            return projection(feats, self.gen.rank, k, self.readout_rng(layer))
        W, V = readout_weights(feats.shape[1], self.gen.rank, k, self.readout_rng(layer))
        return feats @ W @ V

    def save_readout(self, layer: int, p: int, k: int) -> dict:
        """Write the readout matrix ``B = W @ V`` (p, k) as .npy; returns {key: path in the dataset}."""
        shared = not self.gen.per_subject_readout
        if shared and self.index > 0:
            return {}
        key = f"layer-{layer}" if shared else f"sub-{self.sub}_layer-{layer}"
        W, V = readout_weights(p, self.gen.rank, k, self.readout_rng(layer))
        with outputs.atomic_path(self.deriv / "readout" / f"{key}.npy", suffix=".npy") as tmp:
            np.save(tmp, W @ V)
        return {key: f"derivatives/simulation/readout/{key}.npy"}

    def response_rng(self, layer: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.index + 1, layer, 2])
