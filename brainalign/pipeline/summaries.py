"""Small read-only summaries of a participant result, shared by reports and results.

Kept apart so that :mod:`.report` and :mod:`.result` both import it and neither
imports the other's internals: results depend on reports, reports on these.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np
import xarray as xr

DEFAULT_Q = 0.05


def settings_of(ds: xr.Dataset) -> dict:
    """The study settings a result was computed with (``settings`` attr, JSON)."""
    return json.loads(ds.attrs.get("settings", "{}") or "{}")


def warnings_of(ds: xr.Dataset) -> list[str]:
    """The warnings recorded while a result was computed (``warnings`` attr, JSON)."""
    return json.loads(ds.attrs.get("warnings", "[]") or "[]")


def fdr_q(settings: Mapping[str, Any] | None) -> float:
    """The FDR level ``statistics.q`` of a study's settings (0.05 when absent)."""
    stats = (settings or {}).get("statistics") or {}
    q = stats.get("q", DEFAULT_Q) if isinstance(stats, Mapping) else DEFAULT_Q
    return float(q) if q is not None else DEFAULT_Q


def best_layer(ds: xr.Dataset, var: str = "r") -> int:
    """Layer with the highest mean ``var`` over targets (and folds/regions)."""
    prof = ds[var].mean([d for d in ds[var].dims if d != "layer"], skipna=True)
    return int(ds["layer"].values[int(np.nanargmax(prof.values))])
