"""User adapters: ``data.source: {kind: adapter, adapter: "mylab.loaders:load_subject"}``.

The adapter names a function by ``module:function``, where the module is an
importable dotted path (on ``PYTHONPATH``) or a ``.py`` file (relative paths are
taken from the working directory). It is imported with :mod:`importlib` and called
as ``fn(root, participant, **options)``; it returns a
:class:`~brainalign.pipeline.sources.Loaded` or a tuple ``(recording, stimulus[,
baseline[, confounds]])`` where

- ``recording`` is an ``xarray.DataArray`` (time, target) as made by
  :func:`brainalign.data.make_recording` (attr ``modality``; ``tr`` for fMRI or
  ``sfreq``; coordinate ``run``),
- ``stimulus`` a DataFrame with ``word``, ``onset`` (s, on each run's clock) and
  ``run`` (labels as the recording's),
- ``baseline`` / ``confounds`` DataFrames with one row per recording sample, or None.

Participants are ``data.source.participants``, else the module's
``list_participants(root)``.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import xarray as xr

from ..errors import ConfigError, InputError


def _module(name: str):
    if name.endswith(".py"):
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"data.source.adapter: {name} does not exist")
        key = f"brainalign_adapter_{abs(hash(str(path)))}"
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:  # noqa: BLE001 - the user's code: any failure is theirs, in one line
            raise ConfigError(f"data.source.adapter: importing {name} failed: {type(exc).__name__}: {exc}") from None
        sys.modules[key] = mod
        return mod
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"data.source.adapter: cannot import {name} ({exc}); put its folder on PYTHONPATH "
                          "or name a .py file (path/to/loaders.py:function)") from None
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"data.source.adapter: importing {name} failed: {type(exc).__name__}: {exc}") from None


def adapter_function(spec: str, name: str | None = None) -> Callable:
    """The function ``module:function`` names (or another function ``name`` of that module)."""
    mod_name, _, fn_name = spec.rpartition(":")
    mod = _module(mod_name)
    fn = getattr(mod, name or fn_name, None)
    if name is not None:
        return fn
    if not callable(fn):
        raise ConfigError(f"data.source.adapter: {mod_name} has no function {fn_name}()")
    return fn


def adapter_participants(src) -> list[str]:
    """``data.source.participants``, else the adapter module's ``list_participants(root)``."""
    if src.participants:
        return [str(p) for p in src.participants]
    lister = adapter_function(src.adapter, "list_participants")
    if not callable(lister):
        raise ConfigError(f"data.source.participants: give the participants, or define list_participants(root) "
                          f"in {src.adapter.rpartition(':')[0]}")
    return [str(p) for p in lister(src.root)]


def _check(out: Any, where: str) -> tuple:
    if not isinstance(out, tuple) or not 2 <= len(out) <= 4:
        raise InputError(f"{where} returned {type(out).__name__}: it must return Loaded(recording, stimulus, "
                         "baseline, confounds) or a tuple (recording, stimulus[, baseline[, confounds]])")
    rec, stim = out[0], out[1]
    if not isinstance(rec, xr.DataArray) or tuple(rec.dims) != ("time", "target"):
        raise InputError(f"{where}: the recording must be an xarray.DataArray with dims (time, target) "
                         f"(brainalign.data.make_recording), got {type(rec).__name__}"
                         + (f" with dims {tuple(rec.dims)}" if isinstance(rec, xr.DataArray) else ""))
    if "modality" not in rec.attrs or "run" not in rec.coords:
        raise InputError(f"{where}: the recording needs attr 'modality' and a 'run' coordinate "
                         "(brainalign.data.make_recording sets them)")
    if not isinstance(stim, pd.DataFrame) or not {"word", "onset", "run"} <= set(stim.columns):
        raise InputError(f"{where}: the stimulus must be a DataFrame with columns word, onset, run"
                         + (f" (got columns {', '.join(map(str, stim.columns))})" if isinstance(stim, pd.DataFrame)
                            else f", got {type(stim).__name__}"))
    for i, part in ((2, "baseline"), (3, "confounds")):
        if len(out) > i and out[i] is not None and not isinstance(out[i], pd.DataFrame):
            raise InputError(f"{where}: the {part} must be a DataFrame or None, got {type(out[i]).__name__}")
    return tuple(out) + (None,) * (4 - len(out))


def call_adapter(src, subject: str):
    """Load one participant with the user's adapter, checked to return the documented structure."""
    fn = adapter_function(src.adapter)
    options = src.loader_options() if hasattr(src, "loader_options") else dict(src.options)
    where = f"data.source.adapter {src.adapter}"
    out = fn(src.root, subject, **options)
    rec, stim, base, conf = _check(out, where)
    stim = stim.copy()
    stim["run"] = stim["run"].astype(str)
    rec = rec.assign_coords(run=("time", [str(r) for r in rec["run"].values]))
    rec.attrs.setdefault("subject", subject)
    return rec, stim, base, conf
