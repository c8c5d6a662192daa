"""Which layer of a model matches a brain region best, under RSA and tRSA."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import InputError, ShapeMismatchError
from ._checks import as_rdm_stack, check_unit_interval
from .compare import check_method
from .inference import NoiseCeiling, bootstrap
from .topology import geodesic, gt_transform

TRANSFORMS = ("gt", "geodesic")


def gt_grid(step: float = 0.05) -> list[tuple[float, float]]:
    """All (lower, upper) pairs with 0 <= lower < upper <= 1 on a grid of ``step``.

    ``gt_grid(0.05)`` is the paper's grid (210 settings).
    """
    n = int(round(1.0 / step))
    if n < 1 or abs(n * step - 1.0) > 1e-9:
        raise InputError(f"step={step} does not divide 1; pass e.g. 0.05, 0.1 or 0.25")
    levels = np.round(np.arange(n + 1) * step, 10)
    return [(float(lo), float(up)) for i, lo in enumerate(levels) for up in levels[i + 1:]]


@dataclass(frozen=True)
class LayerScores:
    """Layer scores under one setting (plain RSA when ``lower`` is None).

    Attributes
    ----------
    lower, upper : float or None
        GT quantile levels; None for plain RSA.
    transform : str
        "none", "gt" or "geodesic".
    layers : ndarray (n_layers,)
        Layer labels.
    scores : ndarray (n_layers,)
        Mean over participants of the similarity with each layer.
    participant_scores : ndarray (n_participants, n_layers)
    samples : ndarray (n_bootstrap, n_layers)
        Bootstrap scores (the same draws for every setting of one call).
    ci : ndarray (n_layers, 2)
        Percentile interval at ``ci_level``.
    p_best : ndarray (n_layers,)
        Fraction of bootstrap samples in which each layer scores highest.
    best_index : int
    best_layer : label of the best layer on the full data
    participant_best : ndarray (n_participants,)
        Index of the best layer for each participant on its own (with one RDM
        per layer, the paper's leave-one-subject-out nearest-centroid rule reduces
        to this; its accuracy is ``mean(participant_best == true_index)``).
    noise_ceiling : NoiseCeiling
        Leave-one-participant-out ceiling (NaN with one participant).
    """

    lower: float | None
    upper: float | None
    transform: str
    layers: np.ndarray
    scores: np.ndarray
    participant_scores: np.ndarray
    samples: np.ndarray
    ci: np.ndarray
    p_best: np.ndarray
    best_index: int
    best_layer: Any
    participant_best: np.ndarray
    noise_ceiling: NoiseCeiling


@dataclass(frozen=True)
class LayerIdentification:
    """Result of :func:`identify_layer`: one :class:`LayerScores` per setting."""

    method: str
    over: str
    ci_level: float
    settings: tuple[LayerScores, ...]

    @property
    def plain(self) -> LayerScores:
        """The plain-RSA setting."""
        return self.settings[0]

    def get(self, lower: float | None, upper: float | None) -> LayerScores:
        """The setting with these quantile levels (None, None for plain RSA)."""
        for s in self.settings:
            if (s.lower is None and lower is None) or (
                s.lower is not None and lower is not None
                and np.isclose(s.lower, lower) and np.isclose(s.upper, upper)
            ):
                return s
        raise InputError(f"no setting with lower={lower}, upper={upper} in this result")

    def to_frame(self):
        """Long table: one row per setting and layer (pandas DataFrame)."""
        import pandas as pd

        rows = []
        for s in self.settings:
            for i, layer in enumerate(s.layers):
                rows.append({
                    "transform": s.transform, "lower": s.lower, "upper": s.upper,
                    "layer": layer, "score": s.scores[i], "ci_low": s.ci[i, 0],
                    "ci_high": s.ci[i, 1], "p_best": s.p_best[i], "is_best": i == s.best_index,
                    "nc_lower": s.noise_ceiling.lower, "nc_upper": s.noise_ceiling.upper,
                })
        return pd.DataFrame(rows)


def _settings(gt: Any) -> list[tuple[float, float]]:
    if gt is None:
        return []
    if isinstance(gt, str):
        if gt != "paper":
            raise InputError(f"gt={gt!r} is unknown; pass 'paper', None or (lower, upper) pairs")
        return gt_grid(0.05)
    out = []
    for pair in gt:
        try:
            lo, up = pair
        except (TypeError, ValueError):
            raise InputError(f"gt entry {pair!r} is not a (lower, upper) pair") from None
        lo, up = check_unit_interval(lo, "lower"), check_unit_interval(up, "upper")
        if lo > up:
            raise InputError(f"gt entry ({lo}, {up}) has lower > upper; pass lower <= upper")
        out.append((lo, up))
    return out


def identify_layer(
    brain: Any,
    layers: Any,
    method: str = "spearman",
    *,
    gt: Iterable[tuple[float, float]] | str | None = ((0.2, 0.8),),
    transform: str = "gt",
    layer_names: Sequence[Any] | None = None,
    over: str = "both",
    n_bootstrap: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> LayerIdentification:
    """Say which layer's RDM matches participants' brain RDMs best.

    Scores every layer under plain RSA and under each GT (lower, upper) setting
    (both the brain and the layer RDMs transformed, each on its own), with a
    bootstrap over stimuli and/or participants. Every setting uses the same draws,
    so settings can be compared sample by sample.

    Parameters
    ----------
    brain : array (n_participants, n, n) or (n, n)
        Brain RDMs of one region.
    layers : array (n_layers, n, n)
        One model RDM per layer, same stimuli in the same order.
    method : str
        As :func:`brainalign.rsa.compare`.
    gt : iterable of (lower, upper), "paper" or None
        GT settings besides plain RSA; "paper" is :func:`gt_grid` (0.05 steps).
    transform : {"gt", "geodesic"}
        Compare GT-transformed RDMs, or their graph geodesics (unreachable pairs
        filled with the largest finite path length).
    layer_names : sequence, optional
        Labels of the layers (default 0..n_layers-1).
    over, n_bootstrap, seed, ci : see :func:`brainalign.rsa.bootstrap`.

    Returns
    -------
    LayerIdentification
        ``settings[0]`` is plain RSA, then one entry per GT setting in order.
    """
    check_method(method)
    if transform not in TRANSFORMS:
        raise InputError(f"transform={transform!r} is unknown; choose 'gt' or 'geodesic'")
    sb, _ = as_rdm_stack(brain, "brain")
    sl, single = as_rdm_stack(layers, "layers")
    if single or sl.shape[0] < 2:
        raise InputError("layers must stack at least 2 layer RDMs (n_layers, n, n) to choose between")
    if sb.shape[-1] != sl.shape[-1]:
        raise ShapeMismatchError(
            f"brain RDMs cover {sb.shape[-1]} stimuli but layer RDMs {sl.shape[-1]}; "
            "use the same stimuli in the same order"
        )
    names = np.arange(sl.shape[0]) if layer_names is None else np.asarray(list(layer_names))
    if names.shape[0] != sl.shape[0]:
        raise ShapeMismatchError(f"{names.shape[0]} layer_names for {sl.shape[0]} layer RDMs")
    results = []
    for setting in [None] + _settings(gt):
        if setting is None:
            tb, tl, kind, lo, up = sb, sl, "none", None, None
        elif transform == "gt":
            lo, up = setting
            tb, tl, kind = gt_transform(sb, lo, up), gt_transform(sl, lo, up), "gt"
        else:
            lo, up = setting
            tb = geodesic(sb, lo, up, fill="max")
            tl = geodesic(sl, lo, up, fill="max")
            kind = "geodesic"
        res = bootstrap(tb, tl, method, over=over, n_samples=n_bootstrap, seed=seed, ci=ci,
                        noise_ceiling=False)
        best = int(np.argmax(res.scores))
        results.append(LayerScores(
            lower=lo, upper=up, transform=kind, layers=names, scores=res.scores,
            participant_scores=res.participant_scores, samples=res.samples, ci=res.ci,
            p_best=res.p_best, best_index=best, best_layer=names[best].item() if hasattr(names[best], "item") else names[best],
            participant_best=np.argmax(res.participant_scores, axis=1),
            noise_ceiling=res.noise_ceiling,
        ))
    return LayerIdentification(method=method, over=over, ci_level=float(ci), settings=tuple(results))
