"""What a participant's outputs were computed from: input file hashes and the model's identity.

A participant x model output is reused by a rerun only when the configuration,
the SHA-256 of every input file the participant read (the recording's
``sources``: BOLD or M/EEG data, events, sidecars, masks, confounds) and the
model's identity (its folder, revision and the content fingerprint the activation
cache computes over its weight, config and tokenizer files) are all unchanged.
Both are recorded in the participant's JSON sidecar (``InputHashes``, ``Model``).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..encoders.cache import fingerprint_folder

MODEL_ATTRS = ("model_path", "model_revision", "model_fingerprint")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 (hex) of a file's bytes, read ``chunk`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def input_hashes(sources: Iterable[str | os.PathLike]) -> dict[str, str]:
    """Absolute path -> SHA-256 of every input file (missing files are left out)."""
    out = {}
    for s in sources:
        p = Path(s).expanduser().resolve()
        if p.is_file():
            out[str(p)] = file_sha256(p)
    return dict(sorted(out.items()))


def sources_of(attrs: Mapping[str, Any]) -> list[str]:
    """The ``sources`` attr of a result (a JSON list, or a list)."""
    src = attrs.get("sources", "[]")
    return [str(s) for s in (json.loads(src) if isinstance(src, str) else src)]


def model_identity(attrs: Mapping[str, Any], label: str | None = None) -> dict | None:
    """{label, path, revision, fingerprint} of the model a result came from, or None when not recorded.

    ``attrs`` are a result's attributes, copied from the activations'
    ``model_path``, ``revision`` and ``model_fingerprint``
    (see :meth:`brainalign.encoders.HFEncoder.encode`).
    """
    if not attrs.get("model_fingerprint") or not attrs.get("model_path"):
        return None
    return {"label": label or attrs.get("model"), "path": str(attrs["model_path"]),
            "revision": str(attrs.get("model_revision", "")), "fingerprint": str(attrs["model_fingerprint"])}


def inputs_unchanged(recorded: Mapping[str, str] | None) -> bool:
    """True when every recorded input file still exists with the same SHA-256."""
    if not isinstance(recorded, Mapping):
        return False
    for path, digest in recorded.items():
        try:
            if file_sha256(path) != digest:
                return False
        except OSError:
            return False
    return True


def model_unchanged(recorded: Mapping[str, Any] | None, cache_dir: str | os.PathLike | None = None) -> bool:
    """True when the recorded model folder still has the recorded content fingerprint."""
    if not isinstance(recorded, Mapping) or not recorded.get("path") or not recorded.get("fingerprint"):
        return False
    folder = Path(recorded["path"])
    if not folder.is_dir():
        return False
    try:
        return fingerprint_folder(folder, cache_dir) == recorded["fingerprint"]
    except OSError:
        return False


def model_attrs(activations) -> dict[str, str]:
    """The model's identity from an Activations' attrs, as result attrs (:data:`MODEL_ATTRS`)."""
    a = getattr(activations, "attrs", {}) or {}
    if not a.get("model_fingerprint"):
        return {}
    return {"model_path": str(a.get("model_path", "")), "model_revision": str(a.get("revision", "")),
            "model_fingerprint": str(a["model_fingerprint"])}
