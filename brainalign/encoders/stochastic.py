"""Stochastic activations: the model's own dropout noise, seeded (``HFEncoder(stochastic=True)``).

Duong et al. (ICLR 2023) compare stochastic networks by the means **and** the noise
of their responses; for a language model the natural noise is the dropout it was
trained with. :func:`dropout_active` switches only the dropout on: every
``torch.nn.Dropout`` module goes to training mode, and so does (without recursion)
each module that owns one, because attention layers read their own ``training``
flag to decide on attention-probability dropout (``transformers``' BERT/GPT-2
attention does). Nothing else changes: no gradients (inference mode), layer norms
and everything without dropout as in evaluation. :func:`sample_passes` runs the
planned passes ``n_samples`` times, sample ``s`` under the torch seed
``seed * 1_000_003 + s`` in a forked RNG (the global RNG is left as it was), so the
same settings and the same batches give the same draws.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from ..errors import ModelError
from .forward import run_passes
from .model import LoadedModel


def sample_seed(seed: int, sample: int) -> int:
    """The torch seed of dropout sample ``sample`` (0-based) of run seed ``seed``."""
    return (int(seed) * 1_000_003 + int(sample)) % (2**63 - 1)


@contextmanager
def dropout_active(model: torch.nn.Module) -> Iterator[int]:
    """Dropout modules (and their direct owners' ``training`` flag) on, restored afterwards.

    Yields the number of dropout modules with p > 0.
    """
    drops = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    owners = [m for m in model.modules() if any(c in drops for c in m.children()) and m not in drops]
    before = [(m, m.training) for m in drops + owners]
    try:
        for m in drops + owners:
            m.training = True
        yield sum(1 for m in drops if float(getattr(m, "p", 0.0)) > 0)
    finally:
        for m, flag in before:
            m.training = flag


def sample_passes(loaded: LoadedModel, passes, spans, layers, pooling: str, n_words: int, batch_size,
                  name: str, progress, batch_tokens: int, n_samples: int, seed: int) -> np.ndarray:
    """``n_samples`` dropout draws of :func:`~brainalign.encoders.forward.run_passes`.

    Returns
    -------
    ndarray, shape (len(layers), n_samples, n_words, hidden), float32
    """
    out = []
    devices = [loaded.device] if loaded.device.type == "cuda" else []
    with dropout_active(loaded.model) as n_active:
        if n_active == 0:
            raise ModelError(f"model {name!r} has no dropout with p > 0: stochastic=True has no noise to sample")
        for s in range(int(n_samples)):
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(sample_seed(seed, s))
                out.append(run_passes(loaded, passes, spans, layers, pooling, n_words, batch_size, name, progress,
                                      batch_tokens=batch_tokens))
    return np.stack(out, axis=1)
