"""Which words each forward pass reads, and which words it is used for.

A :class:`Pass` reads the words ``start .. end-1`` (joined by single spaces) and
yields the states of its ``targets``. Two kinds of plan:

per-word passes (every policy, every model)
    Word ``i`` gets its own pass ending at ``i``: ``start`` is ``i-K+1`` for
    ``context="window"``, the segment start for ``"run"`` / ``"sentence"``, never
    before the segment start, and moved right (whole words dropped from the left)
    until the text fits the model's maximum length.
shared passes (causal models, ``"run"`` / ``"sentence"``)
    A segment that fits the maximum length is one pass giving every word its whole
    left context; for a causal model this equals the per-word passes exactly. A
    longer segment is cut into chunks on word boundaries that overlap by about
    ``overlap`` of the token budget; each word is taken from the first chunk that
    contains it, where it has the most context. A word from chunk ``c`` then equals
    a per-word pass over ``chunk_start(c) .. i`` (recorded as ``context_start``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TokenizationError


@dataclass(frozen=True)
class Pass:
    """Read words ``start .. end-1``; return the states of ``targets`` (absolute indices)."""

    start: int
    end: int
    targets: tuple[int, ...]


def _check_fits(n_tok: np.ndarray, budget: int) -> None:
    too_long = np.flatnonzero(n_tok > budget)
    if too_long.size:
        i = int(too_long[0])
        raise TokenizationError(
            f"word at position {i} has {int(n_tok[i])} tokens, more than the model's budget of {budget}: "
            "split it or use a model with a longer maximum length"
        )


def per_word_starts(
    n_tok: np.ndarray, seg_start: np.ndarray, budget: int, context_words: int | None
) -> np.ndarray:
    """First context word of each word's own pass, shape (n_words,).

    ``context_words=None`` means the whole segment so far (left-truncated).
    Token counts are the in-context estimates; callers re-check real lengths.
    """
    _check_fits(n_tok, budget)
    n = n_tok.size
    idx = np.arange(n)
    base = seg_start if context_words is None else np.maximum(seg_start, idx - int(context_words) + 1)
    cs = np.concatenate([[0], np.cumsum(n_tok)])
    fit = np.searchsorted(cs, cs[idx + 1] - budget, side="left")
    return np.maximum(base, fit).astype(np.int64)


def per_word_passes(starts: np.ndarray) -> list[Pass]:
    """One pass per word: ``Pass(starts[i], i + 1, (i,))``."""
    return [Pass(int(s), i + 1, (i,)) for i, s in enumerate(starts)]


def shared_passes(
    n_tok: np.ndarray, bounds: list[tuple[int, int]], budget: int, overlap: float = 0.5
) -> list[Pass]:
    """Chunked whole-segment passes for causal models (see module docstring)."""
    _check_fits(n_tok, budget)
    keep = max(1, int(budget * overlap))
    passes: list[Pass] = []
    for a, b in bounds:
        s, done = a, a
        while done < b:
            e, tot = s, 0
            while e < b and tot + n_tok[e] <= budget:
                tot += int(n_tok[e])
                e += 1
            if e <= done:  # cannot happen when every word fits; guards the loop
                raise TokenizationError(f"cannot fit word {done} in a chunk of {budget} tokens")
            passes.append(Pass(s, e, tuple(range(done, e))))
            done = e
            if e >= b:
                break
            s2, tot = e, 0
            room = min(keep, budget - int(n_tok[e]))  # the next chunk must reach word e
            while s2 - 1 > s and tot + n_tok[s2 - 1] <= room:
                s2 -= 1
                tot += int(n_tok[s2])
            s = s2
    return passes
