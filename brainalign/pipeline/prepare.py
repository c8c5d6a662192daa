"""The prepare step: everything a scorer needs about one participant, built once.

:func:`prepare` turns a (preprocessed) recording, its word table and the baseline
table into a frozen :class:`Prepared`: the neural samples ``Y`` on the alignment's
clock, their runs, the keep-mask (run trims and non-finite samples), the outer
folds, the baseline design and a per-layer design builder. Encoding, RSA and layer
selection all read this one object, so they score the same samples in the same
folds.

All arrays in a :class:`Prepared` are restricted to the kept samples except
``keep`` itself (over every sample of the alignment's clock).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from ..align.design import FRAME_METHODS, baseline_design, layer_design, neural_samples, resolve_method, sample_mask
from ..encoding.folds import make_folds
from ..errors import ConfigError, InputError, ShapeMismatchError
from .specs import AlignSpec, BaselineSpec, CVSpec


@dataclass(frozen=True)
class Prepared:
    """One participant, ready to score.

    Attributes
    ----------
    method : str
        The alignment method (resolved from "auto").
    modality : str
    Y : ndarray, shape (n_kept, n_targets), float64
        Neural samples that are scored.
    runs : ndarray, shape (n_kept,)
        Run label of each kept sample.
    keep : ndarray of bool, shape (n_samples,)
        Which samples of the alignment's clock are scored.
    folds : tuple of ndarray
        Outer test folds as indices into the kept samples (non-empty; made on all
        samples, then restricted, so trimming does not move fold boundaries).
    B : ndarray, shape (n_kept, q), or None
        Baseline design (z-scored, FIR-delayed within runs).
    targets : ndarray, shape (n_targets,)
        Target labels of the recording.
    regions : dict of str -> int ndarray
        Target indices of each RSA region.
    recording, stimulus, align
        What the per-layer designs are built from (see :meth:`design`).
    """

    method: str
    modality: str
    Y: np.ndarray
    runs: np.ndarray
    keep: np.ndarray
    folds: tuple
    B: np.ndarray | None
    targets: np.ndarray
    regions: Mapping[str, np.ndarray]
    recording: object
    stimulus: pd.DataFrame
    align: AlignSpec

    @property
    def n_samples(self) -> int:
        """Kept samples."""
        return int(self.Y.shape[0])

    def design(self, features: np.ndarray, layer=None) -> np.ndarray:
        """Design of one layer's word features (n_words, p), kept samples only: (n_kept, p')."""
        X = layer_design(np.asarray(features, dtype=np.float64), self.stimulus, self.recording, self.method,
                         delays=self.align.delays, window=self.align.window, zscore=self.align.zscore)
        if X.shape[0] != self.keep.shape[0]:
            raise ShapeMismatchError(f"layer {layer}: design has {X.shape[0]} rows, data have "
                                     f"{self.keep.shape[0]} samples")
        return X[self.keep]

    def designs(self, activations) -> Iterator[tuple[int, np.ndarray]]:
        """``(layer, X)`` for every layer of ``activations`` (layer, word, feature), built lazily."""
        for li, layer in enumerate(int(x) for x in activations["layer"].values):
            yield layer, self.design(activations.isel(layer=li).values, layer)


def _check_trim(runs: np.ndarray, method: str, trim: tuple[int, int]) -> None:
    """Refuse a trim that leaves a run (frame methods) with no sample."""
    if method not in FRAME_METHODS or not (trim[0] or trim[1]):
        return
    labels, counts = np.unique(runs, return_counts=True)
    short = [(lab, int(n)) for lab, n in zip(labels, counts) if n <= trim[0] + trim[1]]
    if short:
        lab, n = short[0]
        raise InputError(f"alignment.trim {list(trim)} removes every sample of run {lab} ({n} samples"
                         f"{f', and {len(short) - 1} more run(s)' if len(short) > 1 else ''}); "
                         f"use a trim whose two values sum to less than {n}")


def outer_folds(cv: CVSpec, method: str, stimulus: pd.DataFrame, runs: np.ndarray, keep: np.ndarray) -> tuple:
    """Outer test folds over the kept samples (:func:`brainalign.encoding.make_folds` on all samples, restricted)."""
    groups = None
    if cv.kind == "group":
        if cv.column not in stimulus.columns:
            raise InputError(f"cv column {cv.column!r} is not a stimulus column ({', '.join(stimulus.columns)})")
        if method in FRAME_METHODS:
            raise InputError("cv 'group' (stimulus column) needs word-level alignment ('word' or 'epochs')")
        groups = stimulus[cv.column].to_numpy()
    test_folds = make_folds(cv.kind, keep.shape[0], runs, n_folds=cv.n_folds, groups=groups)
    pos = np.full(keep.shape[0], -1)
    pos[np.flatnonzero(keep)] = np.arange(int(keep.sum()))
    return tuple(f for f in (pos[t[keep[t]]] for t in test_folds) if f.size)


def baseline_table(spec: BaselineSpec | None, baseline: pd.DataFrame | None,
                   confounds: pd.DataFrame | None = None) -> np.ndarray | None:
    """The baseline regressors a study asks for, (n_samples, q) float64, or None.

    ``spec.columns`` of the loader's baseline table (None: all of it). The loader's
    confounds are not a baseline: they are regressed out of the signal by
    :func:`brainalign.pipeline.preprocess.preprocess` (``data.preprocess.confounds``).
    """
    if spec is None:
        return None
    if baseline is None:
        raise ConfigError("baseline: the data source gives no baseline regressors; remove the baseline section")
    missing = [c for c in (spec.columns or []) if c not in baseline.columns]
    if missing:
        raise ConfigError(f"baseline.columns: {missing} not in the source's regressors {list(baseline.columns)}")
    return (baseline[list(spec.columns)] if spec.columns else baseline).to_numpy(dtype=np.float64)


def prepare(recording, stimulus: pd.DataFrame, baseline, align: AlignSpec, cv: CVSpec,
            baseline_delays: Sequence[int] | None = None,
            regions: Mapping[str, Sequence[int]] | None = None) -> Prepared:
    """Build the :class:`Prepared` of one participant.

    Parameters
    ----------
    recording : Recording (time, target), preprocessed
    stimulus : Stimulus
    baseline : array, shape (n_samples, q), or None
        Baseline regressors on the alignment's clock (:func:`baseline_table`).
    align : AlignSpec
    cv : CVSpec
    baseline_delays : sequence of int, optional
        FIR delays of the baseline (samples).
    regions : mapping, optional
        RSA region -> target indices (default: one region of every target).
    """
    modality = recording.attrs.get("modality", "fmri")
    method = resolve_method(align.method, modality)
    Y, runs = neural_samples(recording, stimulus, method, tmin=align.tmin, tmax=align.tmax)
    _check_trim(runs, method, tuple(align.trim))
    keep = sample_mask(Y, runs, method, tuple(align.trim))
    folds = outer_folds(cv, method, stimulus, runs, keep)
    B = baseline_design(baseline, runs, baseline_delays)
    n_t = Y.shape[1]
    regions = {k: np.asarray(v, dtype=int) for k, v in (regions or {"all": np.arange(n_t)}).items()}
    return Prepared(method=method, modality=modality, Y=Y[keep], runs=runs[keep], keep=keep, folds=folds,
                    B=None if B is None else B[keep], targets=recording["target"].values, regions=regions,
                    recording=recording, stimulus=stimulus, align=align)
