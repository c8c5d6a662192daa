"""The one fold factory: outer cross-validation folds as test-index arrays.

Every part of brainalign that splits samples into folds (the pipeline's outer
CV, the estimators' ``cv=int``, layer identification) calls :func:`make_folds`,
so the same configuration gives the same folds, in the same order, everywhere.

Order (the contract)
--------------------
- Within a fold, test indices are sorted ascending.
- ``"contiguous"``: ``n_folds`` blocks of ``range(n_samples)`` in time order;
  the first ``n_samples % n_folds`` blocks are one sample longer (the blocks of
  :class:`sklearn.model_selection.KFold` without shuffling).
- ``"leave_one_run_out"``: one fold per run label, labels in order of their
  first appearance in ``runs`` (so runs given in time order give folds in time
  order, whatever the labels' spelling).
- ``"group"``: the group labels in order of first appearance are cut into
  ``min(n_folds, n_groups)`` contiguous blocks (sizes differing by at most one);
  one fold per block, each group whole in one fold.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError, ShapeMismatchError

#: The fold kinds :func:`make_folds` knows (the configuration's ``scoring.cv.kind``).
FOLD_KINDS = ("contiguous", "leave_one_run_out", "group")


def _labels_in_order(labels: np.ndarray) -> np.ndarray:
    """Unique values of ``labels`` in order of first appearance."""
    _, first = np.unique(labels, return_index=True)
    return labels[np.sort(first)]


def _check_labels(labels: Sequence | None, n_samples: int, what: str, kind: str) -> np.ndarray:
    if labels is None:
        raise InputError(f"cv kind {kind!r} needs {what}: give one label per sample")
    arr = np.asarray(labels)
    if arr.shape != (n_samples,):
        raise ShapeMismatchError(
            f"{what} has shape {arr.shape} but there are {n_samples} samples; give one label per sample"
        )
    return arr


def make_folds(
    kind: str,
    n_samples: int,
    runs: Sequence | None = None,
    n_folds: int = 5,
    groups: Sequence | None = None,
) -> list[np.ndarray]:
    """Outer folds as a list of test-index arrays, in the documented order.

    Parameters
    ----------
    kind : {"contiguous", "leave_one_run_out", "group"}
        How to split (see the module docstring for the order of the folds).
    n_samples : int
        Number of samples (time points) to split.
    runs : array-like, shape (n_samples,), optional
        Run label of each sample; required for ``"leave_one_run_out"``.
    n_folds : int
        Number of folds for ``"contiguous"`` (2 <= n_folds <= n_samples) and the
        most folds for ``"group"``; ignored by ``"leave_one_run_out"``.
    groups : array-like, shape (n_samples,), optional
        Group label of each sample (story, session...); required for ``"group"``.

    Returns
    -------
    list of ndarray of intp
        Test indices of each fold; together they cover ``range(n_samples)``
        exactly once.

    Raises
    ------
    InputError
        Unknown ``kind``, impossible ``n_folds``, missing labels or fewer than
        two runs/groups.
    """
    n_samples = int(n_samples)
    idx = np.arange(n_samples, dtype=np.intp)
    if kind == "contiguous":
        if not 2 <= int(n_folds) <= n_samples:
            raise InputError(
                f"{n_samples} samples cannot make {n_folds} contiguous folds; use 2 <= n_folds <= {n_samples}"
            )
        return [np.asarray(b, dtype=np.intp) for b in np.array_split(idx, int(n_folds))]
    if kind == "leave_one_run_out":
        runs = _check_labels(runs, n_samples, "runs", kind)
        labels = _labels_in_order(runs)
        if labels.size < 2:
            raise InputError("cv 'leave_one_run_out' needs at least 2 runs; use 'contiguous' for one run")
        return [idx[runs == r] for r in labels]
    if kind == "group":
        groups = _check_labels(groups, n_samples, "groups", kind)
        labels = _labels_in_order(groups)
        if labels.size < 2:
            raise InputError("cv 'group' needs at least 2 groups; use 'contiguous' for one group")
        if int(n_folds) < 2:
            raise InputError(f"cv 'group' with n_folds={n_folds}: use n_folds >= 2")
        blocks = np.array_split(labels, min(int(n_folds), labels.size))
        return [idx[np.isin(groups, block)] for block in blocks]
    raise InputError(f"cv kind {kind!r} is not one of {', '.join(FOLD_KINDS)}")


def folds_to_splits(test_folds: Sequence[np.ndarray], n_samples: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Turn test folds into ``(train, test)`` pairs over ``range(n_samples)``.

    Parameters
    ----------
    test_folds : sequence of int arrays
        Test indices of each fold (e.g. from :func:`make_folds`).
    n_samples : int

    Returns
    -------
    list of (ndarray, ndarray)
        Sorted train (every index not in the fold) and test indices, in the
        order of ``test_folds``.
    """
    allidx = np.arange(int(n_samples), dtype=np.intp)
    out = []
    for test in test_folds:
        test = np.sort(np.asarray(test, dtype=np.intp))
        out.append((np.setdiff1d(allidx, test), test))
    return out


__all__ = ["FOLD_KINDS", "folds_to_splits", "make_folds"]
