"""Per-word ERP tables, and the Frank et al. (2015) N400 dataset.

A per-word ERP table has one row per participant and word with the response
already reduced to a number (e.g. the N400 amplitude). Three views come out:

- a tidy long table (one kept row per participant and word),
- a Stimulus with *every* word of every sentence (rejected words are still
  context for a language model), ``sentence`` = sentence number,
- a Recording of modality ``"erp"``: rows = the Stimulus's words, columns =
  participants, NaN where a participant has no kept response.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..data import make_recording, make_stimulus
from ..errors import CorruptFileError, InputError, MissingDataError, MissingFieldError

FRANK_COLUMNS = (
    "subj_nr", "sent_nr", "word_pos", "item", "baseline", "N400",
    "reject_data", "word", "log_freq", "nr_char", "reject_word",
)
FRANK_REJECT = ("reject_data", "reject_word")
_BOOL = {"true": True, "false": False, "TRUE": True, "FALSE": False, "1": True, "0": False}


def read_frank2015(path: str | Path) -> pd.DataFrame:
    """The raw table, every row, with typed columns.

    Words are read verbatim (the word ``None`` of sentence 74 stays a word);
    ``reject_*`` become booleans; empty numeric cells become NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path} does not exist (expected frank2015-eeg/data_EEG.csv)")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path} cannot be parsed as a tab-separated table: {exc}") from None
    missing = [c for c in FRANK_COLUMNS if c not in df.columns]
    if missing:
        raise MissingFieldError(f"{path} lacks column(s) {', '.join(missing)} (has {', '.join(df.columns)})")
    out = pd.DataFrame({"word": df["word"].astype(str)})
    for col in ("subj_nr", "sent_nr", "word_pos", "item", "nr_char"):
        vals = pd.to_numeric(df[col], errors="coerce")
        if vals.isna().any():
            row = int(np.flatnonzero(vals.isna())[0]) + 2
            raise CorruptFileError(f"{path} line {row}: column {col} is not an integer ({df[col].iloc[row - 2]!r})")
        out[col] = vals.astype(int)
    for col in ("baseline", "N400", "log_freq"):
        bad = df[col].ne("") & pd.to_numeric(df[col], errors="coerce").isna()
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 2
            raise CorruptFileError(f"{path} line {row}: column {col} is not a number ({df[col].iloc[row - 2]!r})")
        out[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in FRANK_REJECT:
        vals = df[col].map(_BOOL)
        if vals.isna().any():
            row = int(np.flatnonzero(vals.isna())[0]) + 2
            raise CorruptFileError(f"{path} line {row}: column {col} must be true/false ({df[col].iloc[row - 2]!r})")
        out[col] = vals.astype(bool)
    out.attrs["source"] = str(path)
    return out[list(FRANK_COLUMNS)]


def load_frank2015(path: str | Path, reject: Sequence[str] = FRANK_REJECT) -> pd.DataFrame:
    """Tidy per-word table of the kept responses.

    Parameters
    ----------
    path : path-like
        ``frank2015-eeg/data_EEG.csv``.
    reject : sequence of str
        Flag columns whose ``true`` rows are dropped (the README: ``reject_data``
        marks EEG artefacts, ``reject_word`` sentence-initial/final words and clitics).

    Returns
    -------
    DataFrame
        Columns ``subject`` (str), ``sentence``, ``word_pos``, ``item``, ``word``,
        ``N400`` and ``baseline`` (µV), ``log_freq``, ``nr_char``; one row per kept
        (participant, word), in the file's order. Rows with a missing N400 are dropped too.
    """
    raw = read_frank2015(path)
    unknown = [c for c in reject if c not in FRANK_REJECT]
    if unknown:
        raise InputError(f"reject={list(reject)!r}: flags are {FRANK_REJECT}")
    keep = np.ones(len(raw), bool)
    for col in reject:
        keep &= ~raw[col].to_numpy()
    keep &= raw["N400"].notna().to_numpy()
    tidy = raw.loc[keep].rename(columns={"subj_nr": "subject", "sent_nr": "sentence"})
    tidy["subject"] = tidy["subject"].astype(str)
    tidy = tidy[["subject", "sentence", "word_pos", "item", "word", "N400", "baseline", "log_freq", "nr_char"]]
    tidy = tidy.reset_index(drop=True)
    tidy.attrs["source"] = raw.attrs["source"]
    return tidy


def word_erp_stimulus(raw: pd.DataFrame) -> pd.DataFrame:
    """Every word of every sentence as a Stimulus, sorted by sentence then position.

    ``onset`` is the word's position in its sentence minus one (an ordinal, the
    table has no times), ``run`` and ``sentence`` are the sentence number, and
    ``item``, ``log_freq``, ``nr_char`` and ``word_pos`` ride along.
    """
    words = raw.drop_duplicates("item").sort_values(["sent_nr", "word_pos"])
    clash = raw.groupby("item")["word"].nunique()
    if (clash > 1).any():
        raise CorruptFileError(f"item {int(clash.idxmax())} has different words for different participants")
    table = pd.DataFrame({
        "word": words["word"].to_numpy(),
        "onset": (words["word_pos"] - 1).to_numpy(float),
        "duration": 0.0,
        "run": words["sent_nr"].to_numpy(),
        "sentence": words["sent_nr"].to_numpy(),
        "item": words["item"].to_numpy(),
        "word_pos": words["word_pos"].to_numpy(),
        "log_freq": words["log_freq"].to_numpy(),
        "nr_char": words["nr_char"].to_numpy(),
    })
    return make_stimulus(table, source=raw.attrs.get("source"))


def word_erp_responses(tidy: pd.DataFrame, stimulus: pd.DataFrame, value: str = "N400") -> xr.DataArray:
    """The (word, participant) response matrix as an ``"erp"`` Recording.

    Rows follow ``stimulus`` (coordinate ``time`` = row index, ``run`` = sentence,
    ``item``), columns are participants (``target``); NaN where a participant has
    no kept response to that word.
    """
    if value not in tidy.columns:
        raise MissingFieldError(f"the word table has no {value!r} column")
    subjects = sorted(tidy["subject"].unique(), key=lambda s: (len(s), s))
    wide = tidy.pivot(index="item", columns="subject", values=value)
    wide = wide.reindex(index=stimulus["item"].to_numpy(), columns=subjects)
    rec = make_recording(
        wide.to_numpy(float),
        time=np.arange(len(stimulus), dtype=float),
        run=stimulus["run"].to_numpy(),
        modality="erp",
        target=np.asarray(subjects),
        units="uV",
        sources=[tidy.attrs.get("source", "")],
        value=value,
        row_meaning="stimulus word (time = row index in the Stimulus)",
    )
    return rec.assign_coords(item=("time", stimulus["item"].to_numpy()))


def load_word_erp(
    path: str | Path, value: str = "N400", reject: Sequence[str] = FRANK_REJECT
) -> tuple[xr.DataArray, pd.DataFrame, pd.DataFrame]:
    """Frank 2015 as ``(responses, stimulus, baseline features)``.

    Returns
    -------
    responses : Recording, modality "erp", shape (n_words, n_participants)
        See :func:`word_erp_responses`; 1,931 words x 24 participants.
    stimulus : Stimulus
        All words, see :func:`word_erp_stimulus`.
    features : DataFrame, shape (n_words, 3)
        The baseline word features per Stimulus row: ``log_freq`` (NaN only for
        words that are always rejected), ``length`` (characters), ``position``.
    """
    raw = read_frank2015(path)
    stimulus = word_erp_stimulus(raw)
    tidy = load_frank2015(path, reject)
    responses = word_erp_responses(tidy, stimulus, value)
    features = pd.DataFrame({
        "log_freq": stimulus["log_freq"].to_numpy(float),
        "length": stimulus["nr_char"].to_numpy(float),
        "position": stimulus["word_pos"].to_numpy(float),
    })
    return responses, stimulus, features
