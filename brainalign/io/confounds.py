"""fMRIPrep confounds of the runs a recording was read from, for any nilearn strategy.

A recording read from fMRIPrep derivatives without cleaning (``load_bids(...,
clean=False)``) carries, per run, its preprocessed BOLD file, its
``desc-confounds_timeseries.tsv`` and its volume count. :class:`FmriprepConfounds`
collects these so that the cleaning step (:func:`brainalign.pipeline.preprocess.preprocess`)
can ask nilearn's :func:`~nilearn.interfaces.fmriprep.load_confounds_strategy` for the
regressors and the sample mask of the strategy the study names, and regress them out
in the same :func:`nilearn.signal.clean` call as the detrending and the filters.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import CorruptFileError, MissingDataError, ShapeMismatchError

#: ``data.preprocess.confounds`` values that are nilearn ``load_confounds_strategy`` presets.
NILEARN_STRATEGIES = ("simple", "compcor", "scrubbing")


@dataclass(frozen=True)
class RunConfounds:
    """One run: its label, preprocessed BOLD, confounds table (or None) and number of volumes."""

    run: str
    bold: str
    tsv: str | None
    n_volumes: int


@dataclass(frozen=True)
class FmriprepConfounds:
    """The fMRIPrep confound files of every run of a recording, in recording order."""

    runs: tuple[RunConfounds, ...]

    def files(self) -> list[str]:
        """The confounds tables (and their JSON sidecars) that exist."""
        out = []
        for r in self.runs:
            if r.tsv is not None:
                out += [r.tsv] + ([str(Path(r.tsv).with_suffix(".json"))] if Path(r.tsv).with_suffix(".json").is_file() else [])
        return out


def from_recording(rec, relabel: dict[str, str] | None = None) -> FmriprepConfounds:
    """The :class:`FmriprepConfounds` of a recording read by ``load_bids(..., clean=False)`` from fMRIPrep.

    Parameters
    ----------
    rec : Recording
        attrs ``run_files`` ("run:bold path"), ``confound_files`` ("run:tsv path") and
        ``run_volumes`` ("run:n").
    relabel : dict, optional
        Old run label -> new label (sessions pooled).
    """
    def pairs(key: str) -> dict[str, str]:
        return dict(str(x).split(":", 1) for x in rec.attrs.get(key, []))

    bold, tsv, nvol = pairs("run_files"), pairs("confound_files"), pairs("run_volumes")
    relabel = relabel or {}
    return FmriprepConfounds(tuple(RunConfounds(relabel.get(r, r), b, tsv.get(r), int(nvol[r])) for r, b in bold.items()))


def non_steady_state(tsv: str, n_volumes: int) -> np.ndarray:
    """Volumes fMRIPrep flags as non-steady-state (``non_steady_state_outlier_XX`` columns), as indices."""
    df = _read(tsv, n_volumes)
    cols = [c for c in df.columns if str(c).startswith("non_steady_state_outlier")]
    if not cols:
        return np.zeros(0, dtype=int)
    return np.flatnonzero(df[cols].fillna(0).to_numpy(dtype=float).sum(1) > 0)


def _read(tsv: str, n_volumes: int) -> pd.DataFrame:
    try:
        df = pd.read_csv(tsv, sep="\t", na_values=["n/a"])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{tsv} is not a readable confounds table: {exc}") from None
    if len(df) != n_volumes:
        raise ShapeMismatchError(f"{tsv} has {len(df)} rows but its BOLD run has {n_volumes} volumes")
    return df


def strategy_confounds(run: RunConfounds, strategy: str) -> tuple[np.ndarray | None, np.ndarray, list[str]]:
    """Regressors and kept volumes of one run under a confound strategy.

    Parameters
    ----------
    run : RunConfounds
    strategy : {"simple", "compcor", "scrubbing", "none"}
        A nilearn ``load_confounds_strategy`` preset, or "none" (no regressors; the
        non-steady-state volumes fMRIPrep flags are still left out).

    Returns
    -------
    confounds : ndarray, shape (n_volumes, k), or None
    kept : ndarray of int
        Volumes kept (nilearn's sample mask: non-steady-state and, for scrubbing,
        high-motion volumes removed).
    columns : list of str
        Names of the regressors.
    """
    if run.tsv is None:
        raise MissingDataError(f"no fMRIPrep confounds file (desc-confounds_timeseries.tsv) next to {run.bold}: "
                               "set --confounds none (data.preprocess.confounds: none)")
    everything = np.arange(run.n_volumes)
    if strategy == "none":
        return None, np.setdiff1d(everything, non_steady_state(run.tsv, run.n_volumes)), []
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    try:
        df, smask = load_confounds_strategy(run.bold, denoise_strategy=strategy)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        msg = " ".join(str(exc).split())
        raise CorruptFileError(f"{run.tsv} cannot be used with --confounds {strategy} "
                               f"(data.preprocess.confounds): {msg}") from None
    if df is not None and len(df) != run.n_volumes:
        raise ShapeMismatchError(f"{run.tsv} has {len(df)} rows but {run.bold} has {run.n_volumes} volumes")
    kept = everything if smask is None else np.asarray(smask, dtype=int)
    if kept.dtype == bool:  # pragma: no cover - nilearn returns indices
        kept = np.flatnonzero(kept)
    if df is None or df.shape[1] == 0:
        return None, kept, []
    return df.to_numpy(dtype=np.float64), kept, [str(c) for c in df.columns]


def dropped(kept: np.ndarray, n_volumes: int) -> list[int]:
    """The volume indices not in ``kept``."""
    return np.setdiff1d(np.arange(n_volumes), np.asarray(kept, dtype=int)).tolist()


__all__: Sequence[str] = ("FmriprepConfounds", "RunConfounds", "from_recording", "strategy_confounds",
                          "non_steady_state", "dropped", "NILEARN_STRATEGIES")
