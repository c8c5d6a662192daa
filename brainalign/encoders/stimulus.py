"""Stimulus-level embeddings (per sentence or passage) from per-word activations."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputError, MissingFieldError, ShapeMismatchError

HOWS = ("mean", "last")


def stimulus_embeddings(activations: xr.DataArray, groups: Any = "sentence", how: str = "mean") -> xr.DataArray:
    """Pool word activations into one vector per item (sentence, passage...).

    Parameters
    ----------
    activations : xarray.DataArray, dims ("layer", "word", "feature")
        Output of :meth:`HFEncoder.encode` (so the same cache serves words and items).
    groups : str or array-like, shape (n_words,)
        The item of each word: the name of a coordinate along ``word`` (e.g.
        ``"sentence"``) or one label per word. Items are contiguous or not; they are
        ordered by first appearance.
    how : {"mean", "last"}
        The mean of the item's word states, or the state of its last word (for a
        causal model with a sentence context, the state that has read the whole item).

    Returns
    -------
    xarray.DataArray, dims ("layer", "item", "feature"), float32
        Coords ``layer``, ``item`` (the labels) and ``n_words`` per item.
    """
    if how not in HOWS:
        raise InputError(f"how={how!r} is not one of {HOWS}")
    if tuple(activations.dims) != ("layer", "word", "feature"):
        raise ShapeMismatchError(f"activations must have dims ('layer', 'word', 'feature'), got {activations.dims}")
    n = activations.sizes["word"]
    if isinstance(groups, str):
        if groups not in activations.coords:
            raise MissingFieldError(
                f"activations have no {groups!r} coordinate (have: {', '.join(map(str, activations.coords))}): "
                "pass one label per word instead"
            )
        labels = np.asarray(activations.coords[groups].values)
    else:
        labels = np.asarray(groups)
    if labels.shape != (n,):
        raise ShapeMismatchError(f"{labels.size} group labels for {n} words")
    codes, uniques = pd.factorize(pd.Series(labels), sort=False)
    if (codes < 0).any():
        raise InputError("group labels contain missing values (NaN/None): label every word")
    k = len(uniques)
    data = np.asarray(activations.values, dtype=np.float32)
    counts = np.bincount(codes, minlength=k)
    if how == "mean":
        out = np.zeros((data.shape[0], k, data.shape[2]), dtype=np.float64)
        np.add.at(out, (slice(None), codes), data)  # exact per-item sums in float64
        out = (out / counts[None, :, None]).astype(np.float32)
    else:
        last = np.zeros(k, dtype=np.int64)
        np.maximum.at(last, codes, np.arange(n))
        out = data[:, last, :]
    return xr.DataArray(
        out,
        dims=("layer", "item", "feature"),
        coords={"layer": activations.coords["layer"].values, "item": np.asarray(uniques), "n_words": ("item", counts)},
        attrs=dict(activations.attrs, item_pooling=how),
        name="stimulus_embeddings",
    )
