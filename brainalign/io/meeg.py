"""MEG, EEG and iEEG runs from a BIDS dataset, read with mne-bids.

``mne_bids.read_raw_bids`` applies channels.tsv (bad channels), electrodes.tsv
and coordsystem.json; we drop the bad channels, keep the data channels of the
modality, filter and resample with mne, optionally extract the iEEG high-gamma
envelope, and concatenate runs along time with a ``run`` coordinate. Channel
positions are kept as target coordinates: MNE's (head frame, metres) for
MEG/EEG, and for iEEG the electrodes.tsv coordinates in their declared space
(mne-bids would give head-frame positions even for an MNI space).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..data import drop_invalid_targets, make_recording
from ..errors import DataQualityWarning, InputError, MissingDataError, ShapeMismatchError
from .layout import list_tasks, parse_entities, read_json

PICKS = {"meg": ["meg"], "eeg": ["eeg"], "ieeg": ["ecog", "seeg", "dbs"]}
HIGH_GAMMA = dict(l_freq=70.0, h_freq=150.0, sfreq=100.0)


def find_meeg_runs(root: Path, sub: str, task: str, datatype: str, session=None, runs=None) -> list:
    """BIDSPaths of the recordings of one subject, task and datatype (one per run, splits merged)."""
    from mne_bids import find_matching_paths

    paths = find_matching_paths(
        root, subjects=sub, sessions=session, tasks=task, datatypes=datatype, suffixes=datatype,
        ignore_json=True, ignore_nosub=True,
    )
    from mne_bids.config import ALLOWED_DATATYPE_EXTENSIONS

    allowed = set(ALLOWED_DATATYPE_EXTENSIONS.get(datatype, ())) | {".fif"}
    paths = [p for p in paths if p.extension in allowed and "derivatives" not in p.fpath.parts]
    uniq = {}
    for p in paths:
        q = p.copy().update(split=None)
        uniq[(q.session, q.run, q.acquisition, q.extension)] = q
    if not uniq:
        tasks = list_tasks(root, sub, datatype)
        raise MissingDataError(
            f"sub-{sub} has no {datatype} recording of task {task!r}"
            f"{' in ses-' + str(session) if session else ''} under {root} ({datatype} tasks: {', '.join(tasks) or 'none'})"
        )
    found = sorted(uniq.values(), key=lambda q: str(q.run or "").zfill(8))
    if runs is not None:
        want = {str(r).lstrip("0") or "0" for r in runs}
        have = [q.run for q in found]
        found = [q for q in found if q.run is not None and (str(q.run).lstrip("0") or "0") in want]
        if len(found) != len(want):
            raise MissingDataError(f"sub-{sub} task-{task} {datatype}: runs {sorted(want)} asked, runs present: {have}")
    return found


def _ieeg_positions(bids_path, ch_names: Sequence[str]) -> tuple[np.ndarray | None, dict]:
    """Electrode coordinates as written in electrodes.tsv, and the coordsystem metadata."""
    d = bids_path.fpath.parent
    tsvs = sorted(d.glob(f"sub-{bids_path.subject}*_electrodes.tsv"))
    if not tsvs:
        return None, {}
    tsv = tsvs[0]
    df = pd.read_csv(tsv, sep="\t", na_values=["n/a"])
    ent = parse_entities(tsv.name)
    cs = sorted(d.glob(f"sub-{bids_path.subject}*{'_space-' + ent['space'] if 'space' in ent else ''}_coordsystem.json"))
    meta = read_json(cs[0]) if cs else {}
    meta = {k: v for k, v in meta.items() if isinstance(v, (str, int, float))}
    meta["electrodes_file"] = str(tsv)
    pos = np.full((len(ch_names), 3), np.nan)
    if {"name", "x", "y", "z"} <= set(df.columns):
        table = df.set_index(df["name"].astype(str))
        for i, ch in enumerate(ch_names):
            if ch in table.index:
                pos[i] = table.loc[ch, ["x", "y", "z"]].to_numpy(dtype=float)
    return pos, meta


def _read_one(bp, datatype: str, picks, l_freq, h_freq, sfreq, high_gamma, notch):
    from mne_bids import read_raw_bids

    try:
        raw = read_raw_bids(bp, verbose="error")
    except FileNotFoundError as exc:
        raise MissingDataError(f"{bp.fpath}: {exc}") from None
    except (ValueError, RuntimeError, OSError) as exc:
        from ..errors import CorruptFileError

        raise CorruptFileError(f"{bp.fpath} cannot be read by mne-bids: {exc}") from None
    raw.load_data(verbose="error")
    bads = list(raw.info["bads"])
    types = picks if picks is not None else PICKS[datatype]
    try:
        raw.pick(types, exclude="bads", verbose="error")
    except ValueError as exc:
        present = sorted(set(raw.get_channel_types()))
        raise MissingDataError(f"{bp.fpath} has no {types} channels left after dropping bads (types: {present})") from exc
    if notch:
        raw.notch_filter(notch, verbose="error")
    if high_gamma:
        hg = dict(HIGH_GAMMA)
        if isinstance(high_gamma, dict):
            unknown = set(high_gamma) - set(hg)
            if unknown:
                raise InputError(f"unknown high_gamma options {sorted(unknown)}: use l_freq, h_freq, sfreq")
            hg.update(high_gamma)
        if hg["h_freq"] >= raw.info["sfreq"] / 2:
            raise InputError(
                f"{bp.fpath} is sampled at {raw.info['sfreq']} Hz: a {hg['l_freq']}-{hg['h_freq']} Hz band needs more than "
                f"{2 * hg['h_freq']} Hz"
            )
        raw.filter(hg["l_freq"], hg["h_freq"], picks="all", verbose="error")
        raw.apply_hilbert(picks="all", envelope=True, verbose="error")
        if sfreq is None:
            sfreq = hg["sfreq"]
    if l_freq is not None or h_freq is not None:
        raw.filter(l_freq, h_freq, picks="all", verbose="error")
    if sfreq is not None and abs(sfreq - raw.info["sfreq"]) > 1e-9:
        raw.resample(sfreq, npad="auto", verbose="error")
    return raw, bads


def _sources(found) -> list[str]:
    """Every file of the runs, data files first: events, channels, sidecars, BrainVision .eeg/.vmrk..."""
    data = [Path(bp.fpath) for bp in found]
    rest = []
    for f in data:
        stem = f.name[: f.name.rfind("_")]  # sub-.._task-.._run-.. without the datatype suffix
        rest += sorted(p for p in f.parent.glob(f"{stem}_*") if p.is_file() and p not in data)
    return list(dict.fromkeys(str(p) for p in data + rest))


def load_meeg(
    root: Path,
    sub: str,
    task: str,
    datatype: str,
    *,
    session: str | None = None,
    runs: Sequence | None = None,
    picks: Sequence[str] | None = None,
    l_freq: float | None = None,
    h_freq: float | None = None,
    sfreq: float | None = None,
    high_gamma: bool | dict = False,
    notch: float | Sequence[float] | None = None,
    dtype=np.float32,
) -> tuple[Any, list]:
    """Read every run; see :func:`brainalign.io.load_bids`.

    Returns
    -------
    recording : Recording
        (time, channel); time in seconds from each run's first sample.
    paths : list of mne_bids.BIDSPath
    """
    found = find_meeg_runs(root, sub, task, datatype, session=session, runs=runs)
    raws, bads_all = [], []
    for bp in found:
        raw, bads = _read_one(bp, datatype, picks, l_freq, h_freq, sfreq, high_gamma, notch)
        raws.append(raw)
        bads_all.append(bads)
    rates = {r.info["sfreq"] for r in raws}
    if len(rates) > 1:
        raise ShapeMismatchError(f"runs have sampling rates {sorted(rates)} Hz: pass sfreq= to resample them alike")
    common = [c for c in raws[0].ch_names if all(c in r.ch_names for r in raws[1:])]
    dropped = sorted({c for r in raws for c in r.ch_names} - set(common))
    if dropped:
        warnings.warn(
            f"sub-{sub} task-{task}: {len(dropped)} channels are bad or missing in some run and are dropped from all",
            DataQualityWarning,
            stacklevel=3,
        )
    for r in raws:
        r.pick(common, verbose="error")
    data = np.concatenate([r.get_data().T.astype(dtype, copy=False) for r in raws])
    times = np.concatenate([r.times for r in raws])
    labels = np.concatenate(
        [np.full(r.n_times, "1" if bp.run is None else str(bp.run), dtype=object) for r, bp in zip(raws, found)]
    ).astype(str)
    info = raws[0].info
    ch_types = np.asarray(raws[0].get_channel_types())
    loc = np.array([ch["loc"][:3] for ch in info["chs"]], dtype=float)
    coord_frame = "head"
    attrs: dict = {}
    if datatype == "ieeg":
        pos, meta = _ieeg_positions(found[0], common)
        if pos is not None:
            loc = pos
            coord_frame = str(meta.get("iEEGCoordinateSystem", "unknown"))
            attrs.update({f"coordsystem_{k}": v for k, v in meta.items()})
    unit_of = {"mag": "T", "grad": "T/m", "eeg": "V", "ecog": "V", "seeg": "V", "dbs": "V"}
    units = sorted({unit_of.get(t, "a.u.") for t in ch_types})
    if high_gamma:
        units = [u + " (envelope)" for u in units]
    rec = make_recording(
        data,
        times,
        labels,
        modality=datatype,
        target=np.asarray(common),
        sfreq=float(info["sfreq"]),
        units=", ".join(units),
        sources=_sources(found),
        bad_channels=sorted({b for bs in bads_all for b in bs}),
        coord_frame=coord_frame,
        highpass=float(info["highpass"]),
        lowpass=float(info["lowpass"]),
        high_gamma=str(high_gamma),
        **attrs,
    )
    rec = rec.assign_coords(
        ch_type=("target", ch_types), x=("target", loc[:, 0]), y=("target", loc[:, 1]), z=("target", loc[:, 2])
    )
    return drop_invalid_targets(rec, what=f"sub-{sub} task-{task} {datatype}"), found
