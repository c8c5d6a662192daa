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
