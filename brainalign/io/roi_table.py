"""ROI time-course tables, and the Alice fMRI dataset (Brennan et al., 2016).

An ROI table is a plain text matrix: one row per fMRI volume, one column per
region of interest (whitespace- or tab-separated, with or without a header).
:func:`load_roi_timecourses` turns one into a Recording; :func:`load_alice`
reads one participant of the Alice ROI dataset into a Recording, the story's
word table and the authors' baseline regressors.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..data import make_recording, make_stimulus
from ..errors import (
    ConstantSignalError,
    CorruptFileError,
    InputError,
    MissingDataError,
    ShapeMismatchError,
    check_safe_label,
)

ALICE_ROIS = ("LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG")
ALICE_TR = 2.0
ALICE_T0 = 20.0  # volume 0 is acquired 20 s into the TextGrid clock (data README)
ALICE_RESOLUTIONS = ("10mm", "6mm")
MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
_PARTICIPANT = re.compile(r"^(s\d+)-timecourses\.txt$")


def read_matrix(path: str | Path, n_columns: int | None = None) -> np.ndarray:
    """Read a numeric whitespace/tab-separated text matrix (no header).

    Parameters
    ----------
    path : path-like
        The text file.
    n_columns : int, optional
        Required number of columns.

    Returns
    -------
    ndarray, shape (n_rows, n_columns), float64
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path} does not exist")
    try:
        arr = np.loadtxt(path, dtype=float, ndmin=2)
    except ValueError as exc:
        raise CorruptFileError(f"{path} is not a numeric matrix: {exc}") from None
    if arr.size == 0:
        raise CorruptFileError(f"{path} is empty")
    if n_columns is not None and arr.shape[1] != n_columns:
        raise ShapeMismatchError(f"{path} has {arr.shape[1]} columns, expected {n_columns}")
    return arr


def _read_table(path: Path, columns: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """A numeric table, with names from its header, from ``columns`` or 0..p-1."""
    if not path.is_file():
        raise MissingDataError(f"ROI table {path} does not exist")
    with open(path) as fh:
        first = fh.readline().split()
    header = bool(first) and any(not _is_number(tok) for tok in first)
    if header:
        df = pd.read_csv(path, sep=r"\s+", header=0)
        names = [str(c) for c in df.columns]
        try:
            arr = df.to_numpy(dtype=float)
        except ValueError as exc:
            raise CorruptFileError(f"ROI table {path} has non-numeric cells: {exc}") from None
    else:
        arr = read_matrix(path)
        names = [str(i) for i in range(arr.shape[1])]
    if columns is not None:
        columns = [str(c) for c in columns]
        if len(columns) != arr.shape[1]:
            raise ShapeMismatchError(
                f"ROI table {path} has {arr.shape[1]} columns but {len(columns)} names were given"
            )
        names = columns
    return arr, names


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def load_roi_timecourses(
    path: str | Path,
    *,
    tr: float,
    t0: float = 0.0,
    columns: Sequence[str] | None = None,
    run: object = 1,
    constant: str = "drop",
    modality: str = "fmri",
    units: str = "a.u.",
    **attrs: object,
) -> xr.DataArray:
    """Read an ROI time-course table as a Recording.

    Parameters
    ----------
    path : path-like
        Text matrix, shape (n_volumes, n_rois); an optional header row names the ROIs.
    tr : float
        Repetition time in seconds.
    t0 : float
        Acquisition time of the first row, in seconds on the stimulus clock.
        Row ``i`` is at ``t0 + i * tr``.
    columns : sequence of str, optional
        ROI names (override a header).
    run : label
        Run label of every row.
    constant : {"drop", "warn", "raise"}
        What to do with ROIs of zero variance. Whatever the choice, a table
        whose ROIs are *all* constant raises :class:`ConstantSignalError`.
    modality, units : str
        Recording attributes.
    **attrs
        Extra Recording attributes.

    Returns
    -------
    Recording
        dims ("time", "target"); ``target`` holds the ROI names.
    """
    if constant not in ("drop", "warn", "raise"):
        raise InputError(f"constant={constant!r}: use 'drop', 'warn' or 'raise'")
    if not tr or tr <= 0:
        raise InputError(f"tr={tr!r}: the repetition time must be a positive number of seconds")
    path = Path(path)
    arr, names = _read_table(path, columns)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise CorruptFileError(f"ROI table {path} has a non-finite value at row {bad[0]}, column {names[bad[1]]}")
    flat = np.ptp(arr, axis=0) == 0
    if flat.all():
        raise ConstantSignalError(
            f"ROI table {path}: every ROI is constant (zero variance); skip this participant"
        )
    if flat.any():
        which = ", ".join(np.asarray(names)[flat])
        if constant == "raise":
            raise ConstantSignalError(f"ROI table {path}: ROI(s) {which} are constant (zero variance)")
        warnings.warn(
            f"ROI table {path}: ROI(s) {which} are constant (zero variance)"
            + ("; dropped" if constant == "drop" else ""),
            stacklevel=2,
        )
        if constant == "drop":
            arr = arr[:, ~flat]
            names = [n for n, f in zip(names, flat) if not f]
    n = arr.shape[0]
    return make_recording(
        arr,
        time=t0 + tr * np.arange(n),
        run=np.full(n, run, dtype=object if isinstance(run, str) else None),
        modality=modality,
        target=names,
        tr=tr,
        units=units,
        sources=[str(path)],
        **attrs,
    )


# --- the Alice dataset -----------------------------------------------------------
def list_alice_participants(root: str | Path, resolution: str = "10mm") -> list[str]:
    """Participant labels (``"s18"``...) that have a time-course file, sorted."""
    folder = _alice_folder(root, resolution)
    labels = [m.group(1) for p in folder.iterdir() if (m := _PARTICIPANT.match(p.name))]
    return sorted(labels, key=lambda s: int(s[1:]))


def _alice_folder(root: str | Path, resolution: str) -> Path:
    if resolution not in ALICE_RESOLUTIONS:
        raise InputError(f"resolution={resolution!r}: the Alice ROIs come in {ALICE_RESOLUTIONS}")
    folder = Path(root) / resolution
    if not folder.is_dir():
        raise MissingDataError(f"{folder} does not exist: is {root} the alice-fmri folder?")
    return folder


def load_alice_stimulus(root: str | Path) -> pd.DataFrame:
    """The story's 2,127 words (``stimulus/words.tsv``) as a Stimulus (TextGrid clock)."""
    path = Path(root) / "stimulus" / "words.tsv"
    if not path.is_file():
        raise MissingDataError(f"{path} does not exist: is {root} the alice-fmri folder?")
    df = pd.read_csv(path, sep="\t", keep_default_na=False)
    for col in ("onset", "offset", "word"):
        if col not in df.columns:
            raise CorruptFileError(f"{path} has no {col!r} column")
    table = pd.DataFrame(
        {"word": df["word"], "onset": df["onset"], "duration": df["offset"] - df["onset"], "run": 1}
    )
    return make_stimulus(table, source=str(path))


def load_alice(
    root: str | Path,
    participant: str,
    resolution: str = "10mm",
    *,
    constant: str = "drop",
) -> tuple[xr.DataArray, pd.DataFrame, pd.DataFrame]:
    """One participant of the Alice ROI dataset.

    Parameters
    ----------
    root : path-like
        The ``alice-fmri`` folder.
    participant : str
        ``"s18"`` (or ``"18"``); see :func:`list_alice_participants`.
    resolution : {"10mm", "6mm"}
        ROI radius.
    constant : {"drop", "warn", "raise"}
        Policy for single constant ROIs (see :func:`load_roi_timecourses`).

    Returns
    -------
    recording : Recording
        (362 volumes, 6 ROIs), ``time = 20 + 2 i`` s, one run labelled 1.
    stimulus : Stimulus
        The story's words on the same clock.
    baseline : DataFrame, shape (362, 8)
        Per volume: ``rate`` and ``sndpwr`` (the authors' HRF-convolved word-rate
        and sound-power regressors) and the six SPM motion parameters (last 362
        rows of the file: the first ten volumes were discarded), index = time.

    Raises
    ------
    ConstantSignalError
        When every ROI is constant (participant s33): report and skip it.
    """
    label = str(participant)
    label = label if label.startswith("s") else f"s{label}"
    check_safe_label(label, "participant")
    folder = _alice_folder(root, resolution)
    root = Path(root)
    tc = folder / f"{label}-timecourses.txt"
    if not tc.is_file():
        have = ", ".join(list_alice_participants(root, resolution))
        raise MissingDataError(f"{tc} does not exist; participants here: {have}")
    rec = load_roi_timecourses(
        tc, tr=ALICE_TR, t0=ALICE_T0, columns=ALICE_ROIS, constant=constant,
        participant=label, resolution=resolution, dataset="alice-fmri",
    )
    n = rec.sizes["time"]
    rate = read_matrix(root / f"{label}-rate.txt", 1)[:, 0]
    snd = read_matrix(root / f"{label}-sndpwr.txt", 1)[:, 0]
    motion_files = sorted(root.glob(f"{label}-rp_*.txt"))
    if len(motion_files) != 1:
        raise MissingDataError(f"expected one {label}-rp_*.txt motion file in {root}, found {len(motion_files)}")
    motion = read_matrix(motion_files[0], 6)
    for name, arr in (("rate", rate), ("sndpwr", snd)):
        if arr.shape[0] != n:
            raise ShapeMismatchError(f"{label}-{name}.txt has {arr.shape[0]} rows; the ROI table has {n}")
    if motion.shape[0] < n:
        raise ShapeMismatchError(f"{motion_files[0]} has {motion.shape[0]} rows; need at least {n}")
    motion = motion[-n:]  # the scanner's first volumes were discarded from the ROI data
    baseline = pd.DataFrame(np.column_stack([rate, snd, motion]), columns=["rate", "sndpwr", *MOTION_COLUMNS])
    baseline.index = pd.Index(rec["time"].to_numpy(), name="time")
    rec.attrs["sources"] = rec.attrs["sources"] + [
        str(root / f"{label}-rate.txt"), str(root / f"{label}-sndpwr.txt"), str(motion_files[0])
    ]
    return rec, load_alice_stimulus(root), baseline


def load_alice_all(
    root: str | Path, resolution: str = "10mm", participants: Sequence[str] | None = None
) -> tuple[dict[str, tuple[xr.DataArray, pd.DataFrame, pd.DataFrame]], dict[str, str]]:
    """Every usable participant; unusable ones are reported, not raised.

    Returns
    -------
    loaded : dict
        label -> ``(recording, stimulus, baseline)`` as from :func:`load_alice`.
    skipped : dict
        label -> one-line reason (e.g. s33: every ROI constant).
    """
    labels = list(participants) if participants is not None else list_alice_participants(root, resolution)
    loaded, skipped = {}, {}
    for label in labels:
        try:
            loaded[label] = load_alice(root, label, resolution)
        except ConstantSignalError as exc:
            skipped[label] = str(exc)
    return loaded, skipped
