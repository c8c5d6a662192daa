"""The context window chosen with the layer (``models[].context_words`` as a list; issue 14).

The layer a region is said to match depends on the analysis' context window: a
window unlike the data's shifts every layer's fit and, measured across six
generator families, names deeper layers (docs/validation.md, section 3b). The
brain's window is unknown, so for fMRI the default (``context_words: auto``) scores
each layer at several windows (:data:`FMRI_GRID`) and chooses the (window, layer)
pair with the highest held-out r, target by target. The window is one more
candidate dimension of the same choice, so everything the layer choice carries
carries the window too:

- every window is encoded and scored on the same prepared data (same samples,
  folds and held-out blocks); a target's variables come from its chosen window
  (``context_words`` per target), and ``window_r`` keeps every window's r;
- ``p`` (and ``p_empirical``) are multiplied by the number of windows (Bonferroni:
  the window was chosen from that many), capped at 1;
- the block bootstrap of the layer choice (:mod:`.uncertainty`) runs over all
  (window, layer) candidates with the same draws, and :func:`marginalize` turns
  it into per-layer figures: ``p_best`` is summed over windows and a layer is in
  the credible set when any of its windows is (the set still holds the best
  layer at its level); a summary set ("all", "significant") picks its own window
  (``summary_context_words``);
- RSA picks its window per region by its own score (``rsa_context_words``);
  geometry metrics, which have no common "better" direction, are reported at the
  window of the "all" summary (or the widest window without encoding).
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

#: Analysis windows (words) tried by ``context_words: auto`` for fMRI (docs/validation.md 3b).
FMRI_GRID = (10, 20, 32)
#: The single window of ``context_words: auto`` elsewhere (MEG/EEG/iEEG/ERP: not studied).
DEFAULT_WINDOW = 32
#: Variables chosen otherwise than per target.
_REGION_VARS = ("rsa",)
_KEEP = ("heldout_moments",)


def resolve_windows(context_words: Any, context: str, modality: str, *, grid_allowed: bool = True) -> tuple[int, ...]:
    """The analysis windows (words) of a model: one, or a grid to choose from.

    Parameters
    ----------
    context_words : "auto", int or sequence of int
        ``models[].context_words`` as configured.
    context : str
        ``models[].context``; only ``"window"`` reads the window.
    modality : str
        ``"fmri"``, ``"meg"``, ``"eeg"``, ``"ieeg"`` or ``"erp"``.
    grid_allowed : bool
        False when another setting needs one window (``scoring.layer_selection``
        other than argmax, ``scoring.rsa.select_gt``): ``auto`` then means
        :data:`DEFAULT_WINDOW`.
    """
    if context_words == "auto":
        return FMRI_GRID if (context == "window" and modality == "fmri" and grid_allowed) else (DEFAULT_WINDOW,)
    if isinstance(context_words, (list, tuple)):
        return tuple(sorted(int(w) for w in context_words)) if context == "window" else (DEFAULT_WINDOW,)
    return (int(context_words),)


def stack_windows(dsets: Sequence[xr.Dataset], windows: Sequence[int]) -> xr.Dataset:
    """Join one task's raw results at each window along a new ``window`` dim (coordinate: words).

    Variables with a ``layer`` dim are stacked; the others (baseline, the data's
    block sums) are the same at every window and are taken from the first.
    """
    layered = [d[[v for v in d.data_vars if "layer" in d[v].dims]] for d in dsets]
    out = xr.concat(layered, dim=pd.Index([int(w) for w in windows], name="window"), data_vars="all",
                    coords="minimal", compat="override", join="exact")
    first = dsets[0]
    for v in first.data_vars:
        if "layer" not in first[v].dims:
            out[v] = first[v]
    out.attrs = dict(first.attrs)
    warns = [w for d in dsets for w in json.loads(d.attrs.get("warnings", "[]"))]
    out.attrs["warnings"] = json.dumps(list(dict.fromkeys(warns)))
    return out


def _argmax_window(score: np.ndarray) -> np.ndarray:
    """Index of the best window (axis 0) per column of ``score`` (windows, n); NaN never wins, all-NaN -> 0."""
    filled = np.where(np.isfinite(score), score, -np.inf)
    return np.argmax(filled, axis=0)


def _best_over_layers(a: xr.DataArray) -> np.ndarray:
    """Max over ``layer`` of a (window, layer, x) variable, NaN-aware: (window, x)."""
    v = a.transpose("window", "layer", ...).values.astype(np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(v).any(1), np.nanmax(np.where(np.isfinite(v), v, -np.inf), axis=1), np.nan)


def _pick(a: xr.DataArray, idx: np.ndarray, dim: str) -> xr.DataArray:
    """``a`` at window ``idx[i]`` for each position ``i`` along ``dim`` (pointwise), window dim dropped."""
    out = a.isel(window=xr.DataArray(np.asarray(idx, dtype=np.int64), dims=dim)).drop_vars("window", errors="ignore")
    return out.transpose(*[d for d in a.dims if d != "window"])


def _all_targets_window(ds: xr.Dataset) -> int | None:
    """Index of the window of the best (window, layer) mean r over all targets, or None without r."""
    if "r" not in ds:
        return None
    with np.errstate(invalid="ignore"):
        mean = ds["r"].mean("target", skipna=True).transpose("window", "layer").values
    flat = np.where(np.isfinite(mean), mean, -np.inf)
    return int(np.unravel_index(np.argmax(flat), flat.shape)[0])


def choose_windows(ds: xr.Dataset) -> xr.Dataset:
    """Pick each target's (window, layer) candidate set's window; see the module docstring.

    ``ds`` is a participant's merged raw result with a ``window`` dim and ``p``
    already present (refit null or fold t-test). Returns it with the window dim
    gone from every variable except ``heldout_moments`` (for the joint bootstrap)
    and ``window_r`` (window, layer, target); adds ``context_words`` (target),
    ``rsa_context_words`` (region) when RSA ran, and the JSON attr ``window_selection``.
    """
    windows = np.asarray(ds["window"].values, dtype=np.int64)
    n_w = windows.size
    out = ds.copy()
    w_all = _all_targets_window(ds)
    w_geo = w_all if w_all is not None else n_w - 1
    record: dict[str, Any] = {"windows": windows.tolist(), "p_adjustment": f"Bonferroni over {n_w} windows"}
    if "r" in ds:
        w_t = _argmax_window(_best_over_layers(ds["r"]))
        out["window_r"] = ds["r"]
        out["context_words"] = (("target",), windows[w_t])
        record["encoding"] = "per target: the window of the (window, layer) pair with the highest held-out r"
    if "rsa" in ds:
        w_r = _argmax_window(_best_over_layers(ds["rsa"]))
        out["rsa_context_words"] = (("region",), windows[w_r])
        record["rsa"] = "per region: the window of the (window, layer) pair with the highest RDM similarity"
    for v in ds.data_vars:
        dims = ds[v].dims
        if "window" not in dims or v in _KEEP or v == "window_r":
            continue
        if "target" in dims and "r" in ds:
            out[v] = _pick(ds[v], w_t, "target")
        elif v in _REGION_VARS and "region" in dims:
            out[v] = _pick(ds[v], w_r, "region")
        else:
            out[v] = ds[v].isel(window=w_geo, drop=True)
    if any(v.startswith("geo_") for v in ds.data_vars):
        record["geometry"] = {"context_words": int(windows[w_geo]),
                              "rule": "the window of the 'all' summary" if w_all is not None else "the widest window"}
    for v in ("p", "p_empirical"):
        if v in out:
            out[v] = np.minimum(1.0, n_w * out[v])
    out.attrs["window_selection"] = json.dumps(record)
    return out


def marginalize(res: dict[str, np.ndarray], n_windows: int, chosen: np.ndarray) -> dict[str, np.ndarray]:
    """Per-layer bootstrap figures from figures over (window, layer) candidates.

    Parameters
    ----------
    res : dict
        :func:`~.uncertainty.bootstrap_layers`'s output over ``n_windows * n_layers``
        candidates (window-major).
    n_windows : int
    chosen : ndarray of int, shape (n_targets,)
        Each target's window index.

    Returns
    -------
    dict
        The same keys over layers, plus ``summary_window`` (n_sets,), the index of
        each summary set's window.
    """
    out: dict[str, np.ndarray] = {}
    cols = np.arange(chosen.size)
    for key, vals in res.items():
        v = vals.reshape((n_windows, -1) + vals.shape[1:])  # (windows, layers, columns)
        if key.startswith("summary_"):
            continue
        if key == "p_best":  # shares of one joint draw: NaN at every candidate of a target or at none
            out[key] = v.sum(axis=0)
        elif key == "in_credible_set":
            out[key] = v.any(axis=0)
        else:
            out[key] = v[chosen, :, cols].T  # (layers, targets) at each target's window
    s_r = res["summary_r"].reshape((n_windows, -1) + res["summary_r"].shape[1:])
    n_l = s_r.shape[1]
    flat = np.where(np.isfinite(s_r), s_r, -np.inf).reshape(n_windows * n_l, -1)
    ws = np.argmax(flat, axis=0) // n_l if flat.size else np.zeros(0, dtype=np.int64)
    sets = np.arange(ws.size)
    for key in ("summary_r", "summary_r_ci_low", "summary_r_ci_high"):
        v = res[key].reshape(s_r.shape)
        out[key] = v[ws, :, sets].T
    out["summary_p_best"] = res["summary_p_best"].reshape(s_r.shape).sum(0)
    out["summary_in_credible_set"] = res["summary_in_credible_set"].reshape(s_r.shape).any(0)
    out["summary_window"] = ws
    return out
