"""brainalign.encoders: per-word language-model activations with an exact context
policy and an on-disk cache.

Public names: :class:`HFEncoder`, :func:`stimulus_embeddings`; the cache helpers
(``list_entries``, ``disk_usage``, ``clear``, ``default_cache_dir``) live in
:mod:`brainalign.encoders.cache`, which imports neither torch nor transformers, so
``brainalign cache ls`` stays fast. ``HFEncoder`` is imported on first use.
"""
from __future__ import annotations

from typing import Any

from .cache import CacheWarning, clear, default_cache_dir, disk_usage, list_entries

__all__ = [
    "CacheWarning",
    "HFEncoder",
    "clear",
    "default_cache_dir",
    "disk_usage",
    "list_entries",
    "stimulus_embeddings",
]


def __getattr__(name: str) -> Any:
    if name == "HFEncoder":
        from .hf import HFEncoder

        return HFEncoder
    if name == "stimulus_embeddings":
        from .stimulus import stimulus_embeddings

        return stimulus_embeddings
    raise AttributeError(f"module 'brainalign.encoders' has no attribute {name!r}")
