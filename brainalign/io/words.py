"""Word tables from BIDS events.tsv files, Praat TextGrids and transcript tables.

Every reader returns a Stimulus (see :mod:`brainalign.data`): columns ``word``,
``onset`` (s), ``duration`` (s), ``run`` and, when known, ``sentence``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ..data import make_stimulus
from ..errors import CorruptFileError, InputError, MissingDataError, MissingFieldError

#: Interval labels that mark silence, not words (forced aligners' conventions).
SILENCE_LABELS = ("", "sp", "sil", "<sil>", "SIL", "{SL}", "<SIL>", "{LG}", "{NS}")


def _require_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        sibling = sorted(x.name for x in p.parent.glob("*"))[:20] if p.parent.is_dir() else []
        hint = f"; {p.parent} holds: {', '.join(sibling)}" if sibling else ""
        raise MissingDataError(f"{what} {p} does not exist{hint}")
    return p


def read_textgrid(
    path: str | Path,
    tier: str | None = None,
    run: Any = 1,
    silence: Iterable[str] = SILENCE_LABELS,
) -> pd.DataFrame:
    """Read the words of a Praat TextGrid (long or short text format) with praatio.

    Parameters
    ----------
    path : path-like
        The ``.TextGrid`` file.
    tier : str, optional
        Interval tier holding the words; defaults to a tier named ``word`` or
        ``words`` (any case), else the only interval tier.
    run : label
        Run label given to every word.
    silence : iterable of str
        Labels that are pauses, not words (empty intervals are never words).

    Returns
    -------
    Stimulus
        Onset and duration in seconds on the TextGrid's clock.
    """
    from praatio import textgrid as tgio

    p = _require_file(path, "TextGrid")
    try:
        tg = tgio.openTextgrid(str(p), includeEmptyIntervals=False)
    except Exception as exc:  # praatio raises a variety of parse errors
        raise CorruptFileError(f"{p} is not a readable Praat TextGrid: {exc}") from None
    interval_tiers = [n for n in tg.tierNames if isinstance(tg.getTier(n), tgio.IntervalTier)]
    if tier is None:
        named = [n for n in interval_tiers if n.strip().lower() in ("word", "words")]
        if len(named) == 1:
            tier = named[0]
        elif len(interval_tiers) == 1:
            tier = interval_tiers[0]
        else:
            raise InputError(f"{p} has interval tiers {interval_tiers}: pass tier= to choose the word tier")
    if tier not in tg.tierNames:
        raise MissingFieldError(f"{p} has no tier {tier!r} (tiers: {', '.join(tg.tierNames)})")
    t = tg.getTier(tier)
    if not isinstance(t, tgio.IntervalTier):
        raise InputError(f"tier {tier!r} of {p} is a point tier: words need an interval tier")
    sil = {s.strip() for s in silence} | {""}
    rows = [(e.label.strip(), e.start, e.end - e.start) for e in t.entries if e.label.strip() not in sil]
    df = pd.DataFrame(rows, columns=["word", "onset", "duration"])
    df["run"] = run
    return make_stimulus(df, source=str(p))


_ONSET_NAMES = ("onset", "start", "tmin", "begin", "start_time", "onset_s")
_OFFSET_NAMES = ("offset", "end", "tmax", "stop", "end_time", "offset_s")
_WORD_NAMES = ("word", "words", "text", "token", "label")


def _pick(columns: Sequence[str], names: Sequence[str]) -> str | None:
    low = {c.lower(): c for c in columns}
    for n in names:
        if n in low:
            return low[n]
    return None


def read_transcript(
    path: str | Path,
    run: Any = 1,
    word_column: str | None = None,
    onset_column: str | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a transcript table (CSV or TSV) of timed words.

    The table needs a word column (``word``, ``text``, ``token``...), an onset
    column (``onset``, ``start``...) in seconds and either ``duration`` or an
    offset column (``offset``, ``end``...). A ``sentence`` column is kept.

    Parameters
    ----------
    path : path-like
    run : label
        Run label for every row (a ``run`` column in the file wins).
    word_column, onset_column : str, optional
        Override the detected column names.
    sep : str, optional
        Field separator; defaults to tab for ``.tsv``/``.txt`` and comma otherwise.

    Returns
    -------
    Stimulus
    """
    p = _require_file(path, "transcript")
    if sep is None:
        sep = "\t" if p.suffix.lower() in (".tsv", ".txt") else ","
    try:
        df = pd.read_csv(p, sep=sep, keep_default_na=False, na_values=["n/a", "NaN", "nan"])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CorruptFileError(f"{p} is not a readable table: {exc}") from None
    cols = [str(c) for c in df.columns]
    wcol = word_column or _pick(cols, _WORD_NAMES)
    ocol = onset_column or _pick(cols, _ONSET_NAMES)
    if wcol is None or wcol not in df.columns:
        raise MissingFieldError(f"{p} has no word column {word_column or 'word'!r} (columns: {', '.join(cols)})")
    if ocol is None or ocol not in df.columns:
        raise MissingFieldError(f"{p} has no onset column {onset_column or 'onset'!r} (columns: {', '.join(cols)})")
    out = pd.DataFrame({"word": df[wcol], "onset": df[ocol]})
    if "duration" in df.columns:
        out["duration"] = df["duration"]
    else:
        end = _pick(cols, _OFFSET_NAMES)
        if end is not None:
            out["duration"] = pd.to_numeric(df[end], errors="coerce") - pd.to_numeric(df[ocol], errors="coerce")
    out["run"] = df["run"] if "run" in df.columns else run
    if "sentence" in df.columns:
        out["sentence"] = df["sentence"]
    out = out[out["word"].astype(str).str.strip() != ""]
    return make_stimulus(out, source=str(p))


def read_events_words(
    path: str | Path,
    word_column: str = "word",
    trial_type: str | Sequence[str] | None = None,
    run: Any = 1,
    sentence_column: str | None = "sentence",
) -> pd.DataFrame:
    """Words from a BIDS ``events.tsv`` (read with pandas; mne-bids ignores ``value``).

    Parameters
    ----------
    path : path-like
        The events file.
    word_column : str
        Column holding the word text (e.g. ``word`` or ``value``).
    trial_type : str or sequence of str, optional
        Keep only rows whose ``trial_type`` is one of these.
    run : label
        Run label for the rows.
    sentence_column : str, optional
        Column with a sentence id, kept as ``sentence`` when present.

    Returns
    -------
    Stimulus
        Rows whose word is ``n/a`` or empty are not words and are left out.
    """
    p = _require_file(path, "events file")
    try:
        df = pd.read_csv(p, sep="\t", keep_default_na=False, na_values=["n/a"], dtype={word_column: str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CorruptFileError(f"{p} is not a readable events table: {exc}") from None
    cols = [str(c) for c in df.columns]
    if "onset" not in df.columns:
        raise MissingFieldError(f"{p} has no 'onset' column (columns: {', '.join(cols)})")
    if word_column not in df.columns:
        raise MissingFieldError(
            f"{p} has no word column {word_column!r} (columns: {', '.join(cols)}); choose one with --word-column "
            "(data.source.word_column)"
        )
    if trial_type is not None:
        if "trial_type" not in df.columns:
            raise MissingFieldError(f"{p} has no 'trial_type' column to filter on (columns: {', '.join(cols)})")
        kinds = [trial_type] if isinstance(trial_type, str) else list(trial_type)
        present = sorted(set(df["trial_type"].dropna().astype(str)))
        df = df[df["trial_type"].astype(str).isin(kinds)]
        if df.empty:
            raise MissingDataError(f"{p} has no rows with trial_type in {kinds} (--trial-type, data.source.trial_type; "
                                   f"trial types present: {', '.join(present)})")
    words = df[word_column]
    keep = words.notna() & (words.astype(str).str.strip() != "")
    df = df[keep]
    out = pd.DataFrame({"word": df[word_column].astype(str), "onset": df["onset"]})
    out["duration"] = df["duration"] if "duration" in df.columns else 0.0
    out["run"] = run
    if sentence_column and sentence_column in df.columns:
        out["sentence"] = df[sentence_column].to_numpy()
    if out.empty:
        raise MissingDataError(f"{p} has no words in column {word_column!r}")
    return make_stimulus(out, source=str(p))


def read_words(path: str | Path, run: Any = 1, **kwargs) -> pd.DataFrame:
    """Dispatch on the file type: ``.TextGrid`` to :func:`read_textgrid`,
    ``*_events.tsv`` to :func:`read_events_words`, other tables to :func:`read_transcript`."""
    p = Path(path)
    if p.suffix.lower() == ".textgrid":
        return read_textgrid(p, run=run, **kwargs)
    if p.name.endswith("_events.tsv"):
        return read_events_words(p, run=run, **kwargs)
    return read_transcript(p, run=run, **kwargs)


def concat_stimuli(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-run Stimulus tables into one (validated) Stimulus."""
    if not parts:
        raise MissingDataError("no word tables to concatenate")
    df = pd.concat(list(parts), ignore_index=True)
    out = make_stimulus(df, source=";".join(str(p.attrs.get("source")) for p in parts))
    return out
