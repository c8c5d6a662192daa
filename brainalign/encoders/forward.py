"""Run planned passes through the model in length-sorted batches and pool per word."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import TokenizationError
from .model import LoadedModel, forward
from .plan import Pass
from .tokens import TokenizedSpan
from .words import _positions


def _gather_plan(passes: Sequence[Pass], spans: Sequence[TokenizedSpan], width: int, pooling: str):
    """Flat token indices, output slots and output rows for one padded batch."""
    flat, slot, rows = [], [], []
    missing = []
    n_slots = 0
    for b, (p, sp) in enumerate(zip(passes, spans)):
        for t in p.targets:
            pos = np.flatnonzero(sp.token_word == t - p.start)
            if pos.size == 0:
                missing.append(t)
                continue
            if pooling == "last":
                pos = pos[-1:]
            flat.append(b * width + pos)
            slot.append(np.full(pos.size, n_slots, dtype=np.int64))
            rows.append(t)
            n_slots += 1
    if missing:
        raise TokenizationError(
            f"the tokenizer gives no tokens to the words at positions {_positions(missing)} in their context: "
            "remove or replace them"
        )
    return np.concatenate(flat), np.concatenate(slot), np.asarray(rows, dtype=np.int64), n_slots


def run_passes(
    loaded: LoadedModel,
    passes: Sequence[Pass],
    spans: Sequence[TokenizedSpan],
    layers: Sequence[int],
    pooling: str,
    n_words: int,
    batch_size: int | None,
    name: str,
    progress=None,
    batch_tokens: int = 8192,
    max_padding: float = 0.125,
) -> np.ndarray:
    """Hidden states pooled per word, shape (len(layers), n_words, hidden) float32.

    Passes are sorted by token length (longest first, stable) and grouped
    ``batch_size`` at a time, so a batch is padded only to lengths close to its own.
    With ``batch_size=None`` a batch holds as many passes as fit ``batch_tokens``
    padded tokens (at least one): short windows then go through in large batches,
    which keeps the matrix products big, while long ones cannot exhaust memory.
    Either way a batch only takes passes at least ``1 - max_padding`` as long as its
    longest, so no pass is more than that fraction padding.
    ``pooling="last"`` takes the last sub-token of each target word; ``"mean"``
    averages its sub-tokens (in float32).
    """
    order = sorted(range(len(passes)), key=lambda k: -len(spans[k]))
    pad_id = loaded.tokenizer.pad_token_id
    pad_id = 0 if pad_id is None else int(pad_id)
    out: np.ndarray | None = None
    lo = 0
    while lo < len(order):
        longest = len(spans[order[lo]])
        cap = batch_size if batch_size is not None else max(1, int(batch_tokens) // max(1, longest))
        shortest = longest * (1.0 - max_padding)
        hi = lo + 1
        while hi < len(order) and hi - lo < cap and len(spans[order[hi]]) >= shortest:
            hi += 1
        chunk = order[lo:hi]
        lo = hi
        bp = [passes[k] for k in chunk]
        bs = [spans[k] for k in chunk]
        width = max(len(s) for s in bs)
        ids = torch.full((len(bs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(bs), width), dtype=torch.long)
        for b, s in enumerate(bs):
            ids[b, : len(s)] = torch.from_numpy(s.ids)
            mask[b, : len(s)] = 1
        flat, slot, rows, n_slots = _gather_plan(bp, bs, width, pooling)
        flat_t = torch.from_numpy(flat).to(loaded.device)
        with torch.inference_mode():
            states = forward(loaded, ids, mask, name)
            pooled = []
            for layer in layers:
                h = states[layer]
                g = h.reshape(-1, h.shape[-1]).index_select(0, flat_t).float()
                if pooling == "mean":
                    slot_t = torch.from_numpy(slot).to(g.device)
                    sums = torch.zeros((n_slots, g.shape[1]), dtype=torch.float32, device=g.device)
                    sums.index_add_(0, slot_t, g)
                    counts = torch.bincount(slot_t, minlength=n_slots).to(torch.float32)
                    g = sums / counts[:, None]
                pooled.append(g.cpu().numpy())
        if out is None:
            out = np.zeros((len(layers), n_words, pooled[0].shape[1]), dtype=np.float32)
        for li, g in enumerate(pooled):
            out[li, rows] = g
        if progress is not None:
            progress.update(len(rows))
    assert out is not None
    return out
