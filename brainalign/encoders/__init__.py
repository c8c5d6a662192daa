"""brainalign.encoders: per-word language-model activations with an exact context
policy and an on-disk cache.

Public names: :class:`HFEncoder`, :func:`stimulus_embeddings`; the cache helpers live
in :mod:`brainalign.encoders.cache` (``list_entries``, ``disk_usage``, ``clear``,
``default_cache_dir``).
"""
from .cache import CacheWarning, clear, default_cache_dir, disk_usage, list_entries
from .hf import HFEncoder
from .stimulus import stimulus_embeddings

__all__ = [
    "CacheWarning",
    "HFEncoder",
    "clear",
    "default_cache_dir",
    "disk_usage",
    "list_entries",
    "stimulus_embeddings",
]
