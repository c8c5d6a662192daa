"""AlignmentResult: the xarray Dataset that holds one participant x model analysis.

Layout
------
dims    ``layer`` (int), ``target`` (voxel index / ROI / channel), ``fold`` (outer CV
        fold) and, for RSA, ``region`` (ROI or ``"all"``).
vars    ``r`` (layer, target) mean of per-fold Pearson r; ``r_folds`` (layer, fold, target);
        ``alpha`` (layer, fold, target); ``p`` and ``p_fdr`` (layer, target);
        ``r_norm`` (layer, target) = r / ceiling when a ceiling is known; ``ceiling`` (target);
        ``baseline_r`` (target), ``baseline_r_folds`` (fold, target), ``delta_r`` (layer, target)
        when a baseline is fitted; ``rsa`` (layer, region).
attrs   ``subject``, ``task``, ``model``, ``modality``, ``settings`` (JSON), ``config_hash``,
        ``versions`` (JSON), ``warnings`` (JSON list) and map geometry (``affine``,
        ``grid_shape``) for volumetric fMRI.

The ``brainalign`` accessor (``ds.brainalign.to_bids(dir)`` ...) and the
:class:`AlignmentResult` wrapper expose the methods the issue asks for.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import xarray as xr

from .outputs import write_participant
from .report import participant_report, plot_layers, plot_map
from .summaries import best_layer, settings_of, warnings_of

__all__ = ["AlignmentResult", "BrainAlignAccessor", "best_layer", "merge_chunks", "settings_of", "warnings_of"]

LAYER_VARS = ("r", "r_folds", "alpha", "p", "p_fdr", "r_norm", "delta_r", "rsa", "p_perm")


def merge_chunks(chunks: Sequence[xr.Dataset]) -> xr.Dataset:
    """Join datasets computed on disjoint layer chunks of one participant x model.

    Variables with a ``layer`` dim are concatenated along it (sorted by layer);
    the others (baseline, ceiling) are taken from the chunk that has them.
    """
    chunks = [c for c in chunks if c is not None]
    if len(chunks) == 1:
        return chunks[0]
    layered = [c[[v for v in c.data_vars if "layer" in c[v].dims]] for c in chunks]
    out = xr.concat(layered, dim="layer", data_vars="all", coords="minimal", join="outer")
    out = out.sortby("layer")
    for c in chunks:
        for v in c.data_vars:
            if "layer" not in c[v].dims and v not in out:
                out[v] = c[v]
    out.attrs = dict(chunks[0].attrs)
    warns: list[str] = []
    for c in chunks:
        for w in json.loads(c.attrs.get("warnings", "[]")):
            if w not in warns:
                warns.append(w)
    out.attrs["warnings"] = json.dumps(warns)
    return out


@xr.register_dataset_accessor("brainalign")
class BrainAlignAccessor:
    """``ds.brainalign.to_bids(dir)``, ``.plot_layers()``, ``.plot_map(layer)``, ``.report(path)``."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def to_bids(self, out_dir: str | Path, **kw: Any) -> list[Path]:
        return write_participant(self._ds, out_dir, **kw)

    def plot_layers(self, ax=None, var: str = "r"):
        return plot_layers([self._ds], ax=ax, var=var)

    def plot_map(self, layer: int | None = None, ax=None, var: str = "r"):
        return plot_map(self._ds, layer=layer, ax=ax, var=var)

    def report(self, path: str | Path) -> Path:
        return participant_report([self._ds], path)

    def best_layer(self, var: str = "r") -> int:
        return best_layer(self._ds, var)


class AlignmentResult(xr.Dataset):
    """An :class:`xarray.Dataset` with the brainalign methods attached.

    ``align_model`` returns one. It behaves as a Dataset (indexing, ``.sel``,
    ``.to_netcdf``) and adds :meth:`to_bids`, :meth:`plot_layers`,
    :meth:`plot_map` and :meth:`report`.
    """

    __slots__ = ()

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "AlignmentResult":
        return cls(data_vars=ds.data_vars, coords=ds.coords, attrs=ds.attrs)

    def to_bids(self, out_dir: str | Path, **kw: Any) -> list[Path]:
        """Write this result as BIDS derivatives in ``out_dir``; returns the files."""
        return self.brainalign.to_bids(out_dir, **kw)

    def plot_layers(self, ax=None, var: str = "r"):
        """Layer profile: mean ``var`` over targets per layer, with a 95% CI over targets."""
        return self.brainalign.plot_layers(ax=ax, var=var)

    def plot_map(self, layer: int | None = None, ax=None, var: str = "r"):
        """Glass brain (volumetric fMRI) or bar plot per target of one layer."""
        return self.brainalign.plot_map(layer=layer, ax=ax, var=var)

    def report(self, path: str | Path) -> Path:
        """Self-contained HTML report of this result."""
        return self.brainalign.report(path)
