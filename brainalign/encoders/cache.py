"""Content-addressed, per-layer, checksummed cache of word activations.

Layout under a cache folder (default :func:`default_cache_dir`)::

    activations/<kk>/<key>/meta.json          what the entry is (model, words, policy...)
    activations/<kk>/<key>/layer-007.npy      one (n_words, n_features) float32 array per layer
    activations/<kk>/<key>/layer-007.json     its sha256, shape and dtype (the commit marker)
    fingerprints/<hash of path>.json          memo of model-file hashes (path, mtime, size)

``key`` is a sha256 over everything that decides the numbers (see
:func:`entry_key`). Each file is written to a unique temporary name in the same
folder and moved into place with :func:`os.replace`, so a reader never sees half a
file and two processes writing the same entry both leave a complete, valid one.
A layer whose bytes do not match its recorded checksum is reported with a warning
and treated as missing, so it is recomputed and rewritten.

Only ``.npy`` files read with ``allow_pickle=False`` and JSON are ever stored.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import CacheError

__all__ = [
    "ActivationCache",
    "CacheWarning",
    "clear",
    "default_cache_dir",
    "disk_usage",
    "entry_key",
    "hit_counts",
    "list_entries",
]

ENTRIES = "activations"
FINGERPRINTS = "fingerprints"
STATS = "stats"  # use counts: stats/hits/<key>, stats/misses (one byte per read)
FORMAT = 1
_PROCESS_MEMO: dict[tuple, str] = {}  # (folder, file stamps) -> fingerprint, for this process


class CacheWarning(UserWarning):
    """A cache entry was unreadable or corrupted and will be recomputed."""


def default_cache_dir() -> Path:
    """The cache folder: ``$BRAINALIGN_CACHE`` if set, else ``~/.cache/brainalign``."""
    env = os.environ.get("BRAINALIGN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "brainalign"


def _as_dir(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def entry_key(description: dict[str, Any]) -> str:
    """sha256 (hex) of a JSON description, with sorted keys and no whitespace."""
    blob = json.dumps(description, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=1).encode("utf-8")


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, "rb") as fh:
            out = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return out if isinstance(out, dict) else None


def _layer_name(layer: int | str) -> str:
    return f"layer-{layer:03d}" if isinstance(layer, (int, np.integer)) else str(layer)


class ActivationCache:
    """Read and write cache entries under ``cache_dir``.

    Parameters
    ----------
    cache_dir : path, optional
        Root folder; :func:`default_cache_dir` when ``None``.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        self.cache_dir = _as_dir(cache_dir)

    def entry_dir(self, key: str) -> Path:
        """The folder of entry ``key`` (a 64-character hex digest)."""
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise CacheError(f"cache key {key!r} is not a sha256 hex digest")
        return self.cache_dir / ENTRIES / key[:2] / key

    # -- reading ----------------------------------------------------------------
    def read_meta(self, key: str) -> dict | None:
        """The entry's description, or ``None`` when absent or unreadable (counted: :func:`hit_counts`)."""
        meta = _read_json(self.entry_dir(key) / "meta.json")
        _count_use(self.cache_dir, key if meta is not None else None)
        return meta

    def read_array(self, key: str, name: int | str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """One stored array (a layer number or a named extra), verified by checksum.

        Returns ``None`` when the array is absent; warns (:class:`CacheWarning`) and
        returns ``None`` when its bytes, dtype or shape disagree with the record.
        """
        folder = self.entry_dir(key)
        stem = _layer_name(name)
        record = _read_json(folder / f"{stem}.json")
        if record is None:
            return None
        try:
            with open(folder / f"{stem}.npy", "rb") as fh:
                data = fh.read()
        except OSError:
            return None
        why = None
        if hashlib.sha256(data).hexdigest() != record.get("sha256"):
            why = "checksum mismatch"
        else:
            try:
                arr = np.load(io.BytesIO(data), allow_pickle=False)
            except ValueError as exc:
                why = f"unreadable ({exc})"
            else:
                if list(arr.shape) != list(record.get("shape", [])) or str(arr.dtype) != record.get("dtype"):
                    why = "shape or dtype differs from its record"
                elif shape is not None and tuple(arr.shape) != tuple(shape):
                    why = f"shape {arr.shape} where {tuple(shape)} was expected"
        if why is not None:
            warnings.warn(
                f"activation cache entry {folder / (stem + '.npy')} is corrupted ({why}); recomputing it",
                CacheWarning,
                stacklevel=3,
            )
            return None
        return arr

    # -- writing ----------------------------------------------------------------
    def write_meta(self, key: str, meta: dict) -> None:
        """Write the entry's description (atomically)."""
        payload = dict(meta, format=FORMAT, key=key, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        atomic_write_bytes(self.entry_dir(key) / "meta.json", _json_bytes(payload))

    def write_array(self, key: str, name: int | str, array: np.ndarray) -> None:
        """Store one array: the ``.npy`` first, then its checksum record."""
        arr = np.ascontiguousarray(array)
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        data = buf.getvalue()
        folder = self.entry_dir(key)
        stem = _layer_name(name)
        atomic_write_bytes(folder / f"{stem}.npy", data)
        record = {"sha256": hashlib.sha256(data).hexdigest(), "shape": list(arr.shape), "dtype": str(arr.dtype)}
        atomic_write_bytes(folder / f"{stem}.json", _json_bytes(record))


# -- model-file fingerprints --------------------------------------------------------
def _sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def model_files(folder: Path) -> list[Path]:
    """The files of a model folder that decide its outputs (weights, configs, tokenizer).

    Top-level regular files, except documentation (``*.md``), hidden files and git
    attributes; sub-folders (e.g. sentence-transformers pooling heads) are not read
    by Hugging Face ``AutoModel`` and are left out.
    """
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in {".md", ".lock"}:
            out.append(p)
    return out


def fingerprint_folder(folder: Path, cache_dir: str | os.PathLike | None | bool = None) -> str:
    """sha256 over the names and contents of :func:`model_files` of ``folder``.

    File hashes are memoised in ``<cache_dir>/fingerprints`` keyed by the file's
    absolute path, size and modification time, so a large model is read once.
    ``cache_dir=False`` disables the memo.
    """
    folder = Path(folder).resolve()
    files = model_files(folder)
    stamps = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if (folder, stamps) in _PROCESS_MEMO:
        return _PROCESS_MEMO[(folder, stamps)]
    memo_path = None
    memo: dict[str, Any] = {}
    if cache_dir is not False:
        memo_path = _as_dir(cache_dir) / FINGERPRINTS / (hashlib.sha256(str(folder).encode()).hexdigest() + ".json")
        memo = _read_json(memo_path) or {}
    outer = hashlib.sha256()
    fresh: dict[str, Any] = {}
    changed = False
    for f, (_, size, mtime) in zip(files, stamps):
        stamp = [size, mtime]
        known = memo.get(f.name)
        if isinstance(known, dict) and known.get("stamp") == stamp and isinstance(known.get("sha256"), str):
            digest = known["sha256"]
        else:
            digest = _sha256_file(f)
            changed = True
        fresh[f.name] = {"stamp": stamp, "sha256": digest}
        outer.update(f.name.encode("utf-8") + b"\0" + digest.encode("ascii") + b"\n")
    if memo_path is not None and (changed or set(fresh) != set(memo)):
        try:
            atomic_write_bytes(memo_path, _json_bytes(fresh))
        except OSError:
            pass  # a read-only cache still works, only slower
    _PROCESS_MEMO[(folder, stamps)] = outer.hexdigest()
    return _PROCESS_MEMO[(folder, stamps)]


# -- use counts (for the service's /api/v1/cache and /metrics) --------------------
def _count_use(root: Path, key: str | None) -> None:
    """Append one byte to ``stats/hits/<key>`` (a read that found the entry) or ``stats/misses``.

    Appends of one byte (``O_APPEND``) from any number of processes never lose a
    count; a cache folder that cannot be written still works, uncounted.
    """
    path = root / STATS / ("hits/" + key if key else "misses")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, b"1")
        finally:
            os.close(fd)
    except OSError:
        pass


def hit_counts(cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"hits": {key: n}, "misses": n}``: reads of an entry's description that found it / did not."""
    root = _as_dir(cache_dir) / STATS
    hits = {}
    if (root / "hits").is_dir():
        hits = {p.name: p.stat().st_size for p in sorted((root / "hits").iterdir()) if p.is_file()}
    misses = (root / "misses").stat().st_size if (root / "misses").is_file() else 0
    return {"hits": hits, "misses": misses}


# -- listing and cleaning (for ``brainalign cache ls|du|clear``) ------------------
def _entry_dirs(root: Path) -> Iterable[Path]:
    base = root / ENTRIES
    if not base.is_dir():
        return []
    out = []
    for prefix in sorted(base.iterdir()):
        if prefix.is_dir() and len(prefix.name) == 2:
            out.extend(d for d in sorted(prefix.iterdir()) if d.is_dir() and d.name.startswith(prefix.name))
    return out


def _folder_bytes(folder: Path) -> int:
    total = 0
    for p in folder.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def list_entries(cache_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Describe every activation entry in the cache.

    Parameters
    ----------
    cache_dir : path, optional
        Cache root; :func:`default_cache_dir` when ``None``.

    Returns
    -------
    list of dict
        One dict per entry, oldest first, with ``key``, ``path``, ``model``,
        ``context``, ``context_words``, ``pooling``, ``n_words``, ``layers`` (the
        stored layer numbers), ``bytes`` and ``created``.
    """
    rows = []
    for d in _entry_dirs(_as_dir(cache_dir)):
        meta = _read_json(d / "meta.json") or {}
        layers = sorted(int(p.stem.split("-")[1]) for p in d.glob("layer-*.json") if p.stem.split("-")[1].isdigit())
        rows.append(
            {
                "key": d.name,
                "path": str(d),
                "model": meta.get("attrs", {}).get("model", "?"),
                "context": meta.get("attrs", {}).get("context", "?"),
                "context_words": meta.get("attrs", {}).get("context_words"),
                "pooling": meta.get("attrs", {}).get("pooling", "?"),
                "n_words": meta.get("n_words"),
                "layers": layers,
                "bytes": _folder_bytes(d),
                "created": meta.get("created", ""),
            }
        )
    rows.sort(key=lambda r: (r["created"], r["key"]))
    return rows


def disk_usage(cache_dir: str | os.PathLike | None = None) -> int:
    """Total size in bytes of the cache's entries and fingerprint memos."""
    root = _as_dir(cache_dir)
    return sum(_folder_bytes(root / sub) for sub in (ENTRIES, FINGERPRINTS) if (root / sub).is_dir())


def clear(cache_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """Delete every activation entry and fingerprint memo under ``cache_dir``.

    Only brainalign's own sub-folders (``activations/``, ``fingerprints/``) are
    removed, so pointing this at a wrong folder deletes nothing else.

    Returns
    -------
    dict
        ``{"entries": number removed, "bytes": bytes freed}``.
    """
    root = _as_dir(cache_dir)
    n = len(list(_entry_dirs(root)))
    freed = disk_usage(root)
    for sub in (ENTRIES, FINGERPRINTS, STATS):
        if (root / sub).is_dir():
            shutil.rmtree(root / sub)
    return {"entries": n, "bytes": freed}

