"""Tokenize word spans and map every sub-token to its word through character offsets.

A span ``[start, end)`` of words is turned into the text ``" ".join(words[start:end])``.
Because the words are joined by single spaces, the character range of every word in
that text is known exactly; each non-special token is assigned to the word that its
non-space characters fall in. A token whose offsets include the separating space
(GPT-2's ``Ġ`` prefix when offsets are not trimmed) is still assigned to the word
that follows the space. A token that covers characters of two words is an error:
sub-tokens are never split between words by guessing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import TokenizationError
from .words import _positions


@dataclass(frozen=True)
class TokenizedSpan:
    """Token ids of one span and, per token, the word it belongs to.

    ``token_word`` holds the word's offset within the span (``0 .. end-start-1``)
    or -1 for special and whitespace-only tokens.
    """

    start: int
    end: int
    ids: np.ndarray
    token_word: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.size)


def span_text(words: Sequence[str], start: int, end: int) -> str:
    """The text of words ``start .. end-1`` joined by single spaces."""
    return " ".join(words[start:end])


def _char_words(lengths: np.ndarray) -> np.ndarray:
    """Word offset of every character of the joined text, -1 on separating spaces."""
    cw = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths + 1)[:-1].copy()
    seps = np.cumsum(lengths + 1)[:-1] - 1
    cw[seps] = -1
    return cw


def tokenize_spans(tokenizer: Any, words: Sequence[str], spans: Sequence[tuple[int, int]]) -> list[TokenizedSpan]:
    """Tokenize each span (special tokens added, no truncation) and map tokens to words.

    Raises
    ------
    TokenizationError
        If a token straddles two words.
    """
    if not spans:
        return []
    texts = [span_text(words, s, e) for s, e in spans]
    enc = tokenizer(
        texts,
        add_special_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        truncation=False,
        padding=False,
        verbose=False,
    )
    lengths_all = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    out = []
    for k, (s, e) in enumerate(spans):
        e_k = enc.encodings[k]
        ids = np.asarray(e_k.ids, dtype=np.int64)
        if ids.size == 0:
            out.append(TokenizedSpan(s, e, ids, np.zeros(0, dtype=np.int64)))
            continue
        off = np.asarray(e_k.offsets, dtype=np.int64).reshape(-1, 2)
        special = np.asarray(e_k.special_tokens_mask, dtype=bool)
        cw = _char_words(lengths_all[s:e])
        a, b = off[:, 0], off[:, 1]
        valid = ~special & (b > a)
        a_c = np.clip(a, 0, cw.size - 1)
        b_c = np.clip(b - 1, 0, cw.size - 1)
        first = cw[a_c]
        # a leading separator space belongs to no word: look one character further
        first = np.where(first < 0, cw[np.clip(np.minimum(a_c + 1, b_c), 0, cw.size - 1)], first)
        last = cw[b_c]
        tw = np.where(valid & (last >= 0), last, -1)
        clash = valid & (first >= 0) & (last >= 0) & (first != last)
        if clash.any():
            t = int(np.flatnonzero(clash)[0])
            raise TokenizationError(
                f"the tokenizer merges words {s + int(first[t])} and {s + int(last[t])} "
                f"({words[s + int(first[t])]!r}, {words[s + int(last[t])]!r}) into one token: "
                "sub-tokens cannot be assigned to words"
            )
        out.append(TokenizedSpan(s, e, ids, tw))
    return out


def word_token_counts(tokenizer: Any, words: Sequence[str], bounds: Sequence[tuple[int, int]]) -> np.ndarray:
    """Tokens per word when each segment is tokenized as one text, shape (n_words,).

    Raises
    ------
    TokenizationError
        Naming the positions of words that the tokenizer turns into nothing.
    """
    counts = np.zeros(len(words), dtype=np.int64)
    for span in tokenize_spans(tokenizer, words, bounds):
        tw = span.token_word[span.token_word >= 0]
        counts[span.start : span.end] = np.bincount(tw, minlength=span.end - span.start)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise TokenizationError(
            f"the tokenizer turns the words at positions {_positions(empty.tolist())} "
            f"(e.g. {words[int(empty[0])]!r}) into no tokens: remove or replace them"
        )
    return counts
