"""What a server offers its jobs: datasets under the data roots, usable models, cache entries.

Datasets are found by a light BIDS scan (a folder with ``dataset_description.json``
at most :data:`MAX_DEPTH` levels below a data root; participants are its
``sub-*`` folders, tasks the ``task-<label>`` entities of the files inside them),
which reads names only, never data. Models are the packaged MiniLM, folders with a
``config.json`` under the model roots, and the models in the server's Hugging Face
cache. Cache entries come from :func:`brainalign.encoders.cache.list_entries` with
the hit counts the cache records.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..encoders import cache as activation_cache

MAX_DEPTH = 3
MAX_FILES_PER_SUBJECT = 2000
_TASK = re.compile(r"_task-([A-Za-z0-9]+)[_.]")


def _bids_folders(root: Path, depth: int = 0):
    if (root / "dataset_description.json").is_file():
        yield root
    if depth >= MAX_DEPTH:
        return
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "sub-")))
    except OSError:
        return
    for child in children:
        yield from _bids_folders(child, depth + 1)


def _tasks(subject_dir: Path) -> set[str]:
    found: set[str] = set()
    for n, p in enumerate(subject_dir.rglob("*_task-*")):
        if n >= MAX_FILES_PER_SUBJECT:
            break
        m = _TASK.search(p.name)
        if m:
            found.add(m.group(1))
    return found


def describe_dataset(folder: Path, root: Path) -> dict:
    """One BIDS dataset: path, name, its data root, participants and tasks."""
    try:
        desc = json.loads((folder / "dataset_description.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        desc = {}
    subjects = sorted(p for p in folder.glob("sub-*") if p.is_dir())
    tasks: set[str] = set()
    for s in subjects:
        tasks |= _tasks(s)
    return {"path": str(folder), "root": str(root), "relative_path": folder.relative_to(root).as_posix(),
            "name": str(desc.get("Name", folder.name)) if isinstance(desc, dict) else folder.name,
            "dataset_type": str(desc.get("DatasetType", "raw")) if isinstance(desc, dict) else "raw",
            "participants": [p.name.removeprefix("sub-") for p in subjects], "tasks": sorted(tasks)}


def list_datasets(data_roots) -> list[dict]:
    """The BIDS datasets under the data roots (symlinked folders leading out of a root are skipped)."""
    out, seen = [], set()
    for root in data_roots:
        root = Path(root)
        for folder in _bids_folders(root):
            real = folder.resolve()
            if real in seen or not real.is_relative_to(root):
                continue
            seen.add(real)
            out.append(describe_dataset(folder, root))
    return out


def _packaged() -> dict | None:
    try:
        from ..encoders.model import default_model_path

        path = default_model_path()
    except Exception:  # noqa: BLE001 - the packaged model is an optional dependency
        return None
    return {"path": "packaged:minilm", "kind": "packaged", "folder": str(path)}


def _hub_models() -> list[dict]:
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:  # noqa: BLE001 - no cache folder yet, or an unreadable one
        return []
    return [{"path": r.repo_id, "kind": "hub", "revisions": sorted(rev.commit_hash for rev in r.revisions)}
            for r in sorted(info.repos, key=lambda r: r.repo_id) if r.repo_type == "model"]


def list_models(model_roots) -> list[dict]:
    """Models a job may name in ``models[].path``."""
    out = [m for m in [_packaged()] if m]
    for root in model_roots:
        root = Path(root)
        for cfg in sorted(list(root.glob("config.json")) + list(root.glob("*/config.json")) + list(root.glob("*/*/config.json"))):
            folder = cfg.parent.resolve()
            if folder.is_relative_to(root):
                out.append({"path": str(folder), "kind": "folder", "root": str(root)})
    return out + _hub_models()


def list_cache(cache_dir: Path) -> dict:
    """The shared activation cache: entries (with hit counts), total bytes, hits and misses."""
    entries = activation_cache.list_entries(cache_dir)
    counts = activation_cache.hit_counts(cache_dir)
    for e in entries:
        e["hits"] = counts["hits"].get(e["key"], 0)
    return {"path": str(cache_dir), "entries": entries, "bytes": sum(e["bytes"] for e in entries),
            "hits": sum(counts["hits"].values()), "misses": counts["misses"]}
