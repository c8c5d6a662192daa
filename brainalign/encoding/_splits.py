"""Cross-validation splits for the ridge solvers."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import FitError, InputError, ShapeMismatchError
from .folds import folds_to_splits, make_folds


def make_splits(cv: Any, n_samples: int, groups: Any = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Resolve ``cv`` into a list of ``(train, test)`` index arrays.

    Parameters
    ----------
    cv : int, scikit-learn splitter, or iterable of (train, test)
        An int gives :func:`~brainalign.encoding.folds.make_folds`'s
        ``"contiguous"`` folds (the blocks of an unshuffled KFold, as
        himalaya), unless ``groups`` is given, in which case it gives its
        ``"leave_one_run_out"`` folds over the groups, in order of first
        appearance (the int is then ignored). A splitter
        is called as ``cv.split(np.empty(n_samples), groups=groups)``.
    n_samples : int
    groups : array-like, shape (n_samples,), optional
        Run or story label of each sample.

    Returns
    -------
    list of (ndarray, ndarray)
        Sorted integer indices; every split has non-empty train and test parts.
    """
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n_samples,):
            raise ShapeMismatchError(
                f"groups has shape {groups.shape} but there are {n_samples} samples; give one label per sample"
            )
    dummy = np.empty((n_samples, 0))
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if groups is not None:
            splits = folds_to_splits(make_folds("leave_one_run_out", n_samples, runs=groups), n_samples)
        else:
            splits = folds_to_splits(make_folds("contiguous", n_samples, n_folds=int(cv)), n_samples)
    elif hasattr(cv, "split"):
        splits = cv.split(dummy, groups=groups)
    else:
        try:
            splits = list(cv)
        except TypeError:
            raise InputError(f"cv={cv!r} is neither an int, a scikit-learn splitter nor a list of (train, test)") from None
    out = []
    for k, (train, test) in enumerate(splits):
        train = np.sort(np.asarray(train, dtype=np.intp))
        test = np.sort(np.asarray(test, dtype=np.intp))
        if train.size == 0 or test.size == 0:
            raise FitError(f"cross-validation split {k} has an empty train or test part; check cv and groups")
        out.append((train, test))
    if not out:
        raise FitError("cross-validation produced no splits; check cv and groups")
    return out
