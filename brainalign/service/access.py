"""What a submitted job may read: its configuration checked and rewritten against the server's roots.

A job configuration is validated by the same code as ``brainalign run``
(:func:`brainalign.pipeline.config.validate_config`, same one-line messages), then
every path in it is checked:

- data paths (``data.source.root`` / ``path`` / ``mask`` / ``atlas``, and path-like
  strings in ``data.source.options``) must lie under a ``--data-root`` once
  symlinks are resolved; a relative path is taken relative to the first data root
  that has it; a ``..`` component is refused outright;
- ``models[].path`` is ``packaged:minilm``, a folder under a ``--model-root``
  (absolute, or relative to a root) or a hub id found in the server's own Hugging
  Face cache;
- ``trust_remote_code`` is refused unless the server allows it;
- ``outputs.dir``, ``execution.cache_dir`` and ``execution.scheduler`` belong to
  the server and are refused.

Paths are rewritten to their resolved absolute form, so the stored configuration
says exactly what the job reads. A path outside the roots raises
:class:`~brainalign.errors.AccessDeniedError` (HTTP 403); anything else wrong
raises :class:`~brainalign.errors.ConfigError` (HTTP 422). Both name the field.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import AccessDeniedError, ConfigError
from ..pipeline.config import PACKAGED_MODEL, PipelineConfig, validate_config
from .settings import ServiceSettings

SERVER_FIELDS = (("outputs", "dir"), ("execution", "cache_dir"), ("execution", "scheduler"))
DATA_FIELDS = ("root", "path", "mask", "atlas")
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


def parse_config(config: Any) -> dict:
    """The submitted ``config``: a mapping, or YAML / JSON text of one.

    Raises
    ------
    ConfigError
        Text that is not YAML, or anything but a mapping of sections.
    """
    if isinstance(config, str):
        try:
            config = yaml.safe_load(config)
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            at = f" (line {line + 1})" if line is not None else ""
            problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
            raise ConfigError(f"config: not valid YAML{at}: {problem}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config: must be a mapping of sections (data, models, scoring...), got {type(config).__name__}")
    return config


def refuse_server_fields(raw: dict) -> None:
    """Refuse the fields only the server sets (outputs folder, cache folder, scheduler)."""
    for section, name in SERVER_FIELDS:
        sec = raw.get(section)
        if isinstance(sec, dict) and sec.get(name) is not None:
            raise ConfigError(f"{section}.{name}: set by the server (job outputs and the activation cache live in its "
                              f"state folder, tasks run on its workers); remove it from the configuration")


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def resolve_under(value: str, roots: tuple[Path, ...], field: str, what: str = "data") -> str:
    """``value`` resolved (symlinks followed) and checked to lie under one of ``roots``.

    A relative value is taken relative to the first root where it exists (else the
    first root). Raises :class:`AccessDeniedError` naming ``field`` and the path when
    it has a ``..`` component or resolves outside every root.
    """
    p = Path(value).expanduser()
    if ".." in p.parts:
        raise AccessDeniedError(f"{field}: {value!r} has a '..' component; give a path inside the server's {what} roots")
    if not roots:
        raise AccessDeniedError(f"{field}: {value!r} is refused: this server has no {what} roots (--{what}-root)")
    if p.is_absolute():
        candidates = [p]
    else:
        candidates = [r / p for r in roots if (r / p).exists()] or [roots[0] / p]
    resolved = candidates[0].resolve()
    if not _inside(resolved, roots):
        shown = f"{value!r}" + (f" (resolves to {resolved})" if str(resolved) != value else "")
        raise AccessDeniedError(f"{field}: {shown} is outside the server's {what} roots "
                                f"({', '.join(str(r) for r in roots)})")
    return str(resolved)


def _looks_like_path(s: str) -> bool:
    return s.startswith(("/", "~", ".")) or "/" in s or "\\" in s


def _check_options(obj: Any, roots: tuple[Path, ...], field: str) -> Any:
    """Path-like strings in ``data.source.options`` (e.g. ``words``, ``derivatives``), checked recursively."""
    if isinstance(obj, str):
        return resolve_under(obj, roots, field) if _looks_like_path(obj) else obj
    if isinstance(obj, list):
        return [_check_options(x, roots, f"{field}[{i}]") for i, x in enumerate(obj)]
    if isinstance(obj, dict):
        return {k: _check_options(v, roots, f"{field}.{k}") for k, v in obj.items()}
    return obj


def check_data(cfg: PipelineConfig, settings: ServiceSettings) -> None:
    """Rewrite and check every data path of ``cfg`` in place."""
    src = cfg.data.source
    for name in DATA_FIELDS:
        val = getattr(src, name, None)
        if val:
            setattr(src, name, resolve_under(str(val), settings.data_roots, f"data.source.{name}"))
    if src.options:
        src.options = _check_options(dict(src.options), settings.data_roots, "data.source.options")


def _in_hf_cache(repo_id: str, revision: str | None) -> bool:
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - huggingface_hub raises several types for "not there"
        return False
    return True


def check_models(cfg: PipelineConfig, settings: ServiceSettings) -> None:
    """Check every model's source and ``trust_remote_code``; rewrite model folders to absolute paths."""
    for m in cfg.models:
        field = f"models.{m.label}"
        if m.trust_remote_code and not settings.allow_remote_code:
            raise AccessDeniedError(f"{field}.trust_remote_code: refused: this server does not run code shipped with "
                                    "models (start it with --allow-remote-code to allow it)")
        if m.path == PACKAGED_MODEL:
            continue
        p = Path(m.path).expanduser()
        local = p.is_absolute() or m.path.startswith((".", "~")) or ".." in p.parts
        under_root = not p.is_absolute() and any((r / p).is_dir() for r in settings.model_roots)
        if local or under_root:
            m.path = resolve_under(m.path, settings.model_roots, f"{field}.path", what="model")
            if not Path(m.path).is_dir():
                raise ConfigError(f"{field}.path: model folder {m.path} does not exist")
            continue
        if not _HUB_ID.fullmatch(m.path) or not _in_hf_cache(m.path, m.revision):
            raise ConfigError(f"{field}.path: {m.path!r} is not {PACKAGED_MODEL}, a folder under the server's model "
                              "roots, or a model in the server's Hugging Face cache")


def prepare_job_config(config: Any, settings: ServiceSettings) -> tuple[dict, str]:
    """A submitted configuration, validated, checked and rewritten for this server.

    Parameters
    ----------
    config : dict or str
        The ``config`` of ``POST /api/v1/jobs``: a mapping or YAML/JSON text.
    settings : ServiceSettings
        The server's roots and permissions.

    Returns
    -------
    (dict, str)
        The configuration to store (every default explicit, paths absolute, the
        shared activation cache set as ``execution.cache_dir``) and its
        ``config_hash()`` (which the outputs and the cache folder do not change).

    Raises
    ------
    ConfigError
        A malformed configuration or a field the server sets (HTTP 422).
    AccessDeniedError
        A path outside the roots or a refused ``trust_remote_code`` (HTTP 403).
    """
    raw = parse_config(config)
    refuse_server_fields(raw)
    cfg = validate_config(raw)
    check_models(cfg, settings)
    check_data(cfg, settings)
    out = json.loads(cfg.model_dump_json())
    out["execution"]["cache_dir"] = str(settings.cache_dir)
    final = validate_config(out)
    return json.loads(final.model_dump_json()), final.config_hash()
