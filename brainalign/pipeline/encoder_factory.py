"""The language-model encoder of a :class:`~brainalign.pipeline.specs.ModelSpec`."""
from __future__ import annotations

from ..encoders import HFEncoder
from .config import PACKAGED_MODEL
from .specs import ExecSpec, ModelSpec


def make_encoder(model: ModelSpec, execution: ExecSpec, window: int | None = None) -> HFEncoder:
    """An :class:`~brainalign.encoders.HFEncoder` for one model, every layer (selection comes later).

    ``window``: the context window in words, one of ``model.windows`` (default: the first).
    """
    return HFEncoder(
        model=None if model.path == PACKAGED_MODEL else model.path,
        layers=None,
        context_words=int(model.windows[0] if window is None else window),
        context=model.context,
        pooling=model.pooling,
        batch_size=model.batch_size,
        device=execution.device,
        cache_dir=execution.cache_dir,
        revision=model.revision,
        trust_remote_code=model.trust_remote_code,
    )
