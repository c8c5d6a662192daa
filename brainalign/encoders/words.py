"""Word lists in, validated words and their run / sentence segments out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError, MissingFieldError, TokenizationError


@dataclass(frozen=True)
class WordSequence:
    """Stripped words with optional run and sentence labels (one per word)."""

    words: list[str]
    run: np.ndarray | None = None
    sentence: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.words)


def _positions(idx: Sequence[int]) -> str:
    idx = list(idx)
    shown = ", ".join(str(i) for i in idx[:10])
    return shown + (f" ... ({len(idx)} in all)" if len(idx) > 10 else "")


def as_word_sequence(words: Any) -> WordSequence:
    """Accept a list of str or a Stimulus table (``word``, optional ``run``, ``sentence``).

    Words are stripped of surrounding whitespace.

    Raises
    ------
    TokenizationError
        When a word is empty after stripping (names its positions).
    MissingFieldError
        When a table has no ``word`` column.
    """
    run = sentence = None
    if isinstance(words, pd.DataFrame):
        if "word" not in words.columns:
            raise MissingFieldError(
                f"stimulus table has no 'word' column (columns: {', '.join(map(str, words.columns))})"
            )
        raw = words["word"].tolist()
        if "run" in words.columns:
            run = words["run"].to_numpy()
        if "sentence" in words.columns:
            sentence = words["sentence"].to_numpy()
    elif isinstance(words, str):
        raise InputError("encode() takes a list of words or a Stimulus table, not one string: split it first")
    else:
        raw = list(words)
    bad_type = [i for i, w in enumerate(raw) if not isinstance(w, str)]
    if bad_type:
        raise TokenizationError(f"words at positions {_positions(bad_type)} are not strings (e.g. {raw[bad_type[0]]!r})")
    clean = [w.strip() for w in raw]
    empty = [i for i, w in enumerate(clean) if not w]
    if empty:
        raise TokenizationError(f"empty words at positions {_positions(empty)}: remove them or give them text")
    if not clean:
        raise InputError("no words to encode")
    return WordSequence(clean, run, sentence)


def segments(labels: np.ndarray | None, n: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, end)`` blocks of equal label (one block when ``labels`` is None)."""
    if labels is None or n == 0:
        return [(0, n)]
    lab = pd.Series(labels).astype(str).to_numpy()
    cuts = np.flatnonzero(lab[1:] != lab[:-1]) + 1
    edges = np.concatenate([[0], cuts, [n]])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def context_segments(seq: WordSequence, context: str) -> list[tuple[int, int]]:
    """The blocks that a context never crosses: runs, or sentences within runs."""
    n = len(seq)
    if context == "sentence":
        if seq.sentence is None:
            raise MissingFieldError("context='sentence' needs a 'sentence' column in the stimulus table")
        labels = seq.sentence if seq.run is None else (
            pd.Series(seq.run).astype(str) + "\x1f" + pd.Series(seq.sentence).astype(str)
        ).to_numpy()
        return segments(labels, n)
    return segments(seq.run, n)


def segment_of(bounds: list[tuple[int, int]], n: int) -> np.ndarray:
    """Start index of the segment each word belongs to, shape (n,)."""
    start = np.empty(n, dtype=np.int64)
    for a, b in bounds:
        start[a:b] = a
    return start
