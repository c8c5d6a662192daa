"""Noise ceilings across participants (``statistics.ceiling``).

The ceiling is computed from the preprocessed recordings the participant tasks
already loaded (each task hands its (samples, targets) data back with its scores),
so no participant is read twice; participants outside the run (not selected, or
already up to date) are loaded once by :func:`load_others`.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np

from ..errors import DataError, InputError

#: The ceilings ``statistics.ceiling`` can name (besides "none").
CEILINGS = ("loo_isc",)
#: Fewest usable participants a leave-one-out ceiling needs.
MIN_PARTICIPANTS = 3


def check_participants(n: int) -> None:
    """Refuse a leave-one-out ceiling over fewer than :data:`MIN_PARTICIPANTS` participants."""
    if n < MIN_PARTICIPANTS:
        raise InputError(f"ceiling 'loo_isc' needs at least {MIN_PARTICIPANTS} usable participants, found {n}")


def load_others(subjects: Iterable[str], have: Mapping[str, np.ndarray],
                load: Callable[[str], np.ndarray]) -> dict[str, np.ndarray]:
    """Data of the participants in ``subjects`` not in ``have``, from ``load`` (unusable ones skipped)."""
    out = {}
    for s in subjects:
        if s in have:
            continue
        try:
            out[s] = np.asarray(load(s), dtype=np.float64)
        except DataError:  # an unusable participant joins no ceiling
            continue
    return out


def loo_isc(data: Mapping[str, np.ndarray], order: Iterable[str]) -> dict[str, list[float]]:
    """Leave-one-out inter-subject correlation per participant and target.

    Parameters
    ----------
    data : mapping participant -> ndarray, shape (n_samples, n_targets)
        Preprocessed recordings, the same shape for everyone.
    order : iterable of str
        The participants in the order they are averaged (the source's order);
        those missing from ``data`` are skipped.

    Returns
    -------
    dict participant -> list of float (n_targets,)
        Pearson r of each participant's target with the mean of the others
        (finite samples only; NaN with fewer than 3).
    """
    subjects = [s for s in order if s in data]
    check_participants(len(subjects))
    shapes = {data[s].shape for s in subjects}
    if len(shapes) != 1:
        raise InputError(f"ceiling 'loo_isc' needs the same samples x targets for everyone; got shapes {sorted(shapes)}")
    stack = np.stack([data[s] for s in subjects])  # (n_subj, n, t)
    out = {}
    for i, s in enumerate(subjects):
        others = np.nanmean(np.delete(stack, i, axis=0), axis=0)
        a, b = stack[i], others
        ok = np.isfinite(a) & np.isfinite(b)
        r = []
        for t in range(a.shape[1]):
            m = ok[:, t]
            r.append(float(np.corrcoef(a[m, t], b[m, t])[0, 1]) if m.sum() > 2 else float("nan"))
        out[s] = r
    return out


def split_half_runs(data: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Noise ceiling of one participant from repeated runs of the same stimulus (split-half across runs).

    The runs are split into odd and even (in order of appearance), each half is
    averaged, and the correlation of the two half means, Spearman-Brown corrected
    down to one run (``rho_1 = rho_h / (k - (k - 1) rho_h)`` with ``k`` runs per
    half), is the reliability of a single run; the ceiling on the r of any model of
    a single run is its square root.

    Parameters
    ----------
    data : ndarray, shape (n_samples, n_targets)
        Preprocessed recording, runs one after the other.
    runs : ndarray, shape (n_samples,)
        Run label of each sample; every run must have the same number of samples
        (the same stimulus, sample for sample).

    Returns
    -------
    ndarray, shape (n_targets,)
        Ceiling per target (NaN where the reliability is not positive).

    Raises
    ------
    InputError
        Fewer than two runs, or runs of different lengths.
    """
    runs = np.asarray(runs)
    labels = list(dict.fromkeys(runs.tolist()))
    lengths = {int(np.sum(runs == lab)) for lab in labels}
    if len(labels) < 2 or len(lengths) != 1:
        raise InputError(f"a split-half ceiling needs two or more runs of one repeated stimulus with equal lengths; "
                         f"got {len(labels)} run(s) of lengths {sorted(lengths)}")
    stack = np.stack([np.asarray(data, dtype=np.float64)[runs == lab] for lab in labels])  # (n_runs, n, t)
    a, b = stack[0::2].mean(0), stack[1::2].mean(0)
    a, b = a - a.mean(0), b - b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho_h = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
        k = len(labels) / 2.0
        rho_1 = rho_h / (k - (k - 1.0) * rho_h)
        return np.where(rho_1 > 0, np.sqrt(np.where(rho_1 > 0, rho_1, 0.0)), np.nan)
