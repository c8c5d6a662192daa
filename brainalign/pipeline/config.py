"""The one place a user's configuration is validated (YAML or a dict, by pydantic).

Every problem becomes a one-line :class:`~brainalign.errors.ConfigError` naming the
field. The schema itself (sections, fields, option lists) is in :mod:`.schema`, whose
names are re-exported here; :func:`brainalign.pipeline.specs.specs_from_config` turns
the validated :class:`PipelineConfig` into the frozen specs the pipeline reads.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from .schema import (
    PACKAGED_MODEL,
    REPO_ROOT,
    AlignmentConfig,
    BaselineConfig,
    BidsSource,
    CVConfig,
    DataConfig,
    ExecutionConfig,
    ModelConfig,
    OutputsConfig,
    PipelineConfig,
    Preprocess,
    RoiTableSource,
    RSAConfig,
    ScoringConfig,
    StatisticsConfig,
    WordErpSource,
)

__all__ = [
    "PACKAGED_MODEL", "REPO_ROOT", "AlignmentConfig", "BaselineConfig", "BidsSource", "CVConfig", "DataConfig",
    "ExecutionConfig", "ModelConfig", "OutputsConfig", "PipelineConfig", "Preprocess", "RoiTableSource",
    "RSAConfig", "ScoringConfig", "StatisticsConfig", "WordErpSource", "dump_config", "expand_vars",
    "load_config", "read_config_file", "shared_data_default", "validate_config",
]


# ------------------------------------------------------------------------- loading
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def shared_data_default() -> str:
    return str(REPO_ROOT.parent / "shared" / "data")


def expand_vars(text: str) -> str:
    """Replace ``${NAME}`` by the environment variable NAME.

    ``${BRAINALIGN_SHARED_DATA}`` defaults to ``../shared/data`` beside the repository;
    any other unset variable is an error.
    """

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name in os.environ:
            return os.environ[name]
        if name == "BRAINALIGN_SHARED_DATA":
            return shared_data_default()
        raise ConfigError(f"configuration uses ${{{name}}} but the environment variable {name} is not set")

    return _VAR.sub(sub, text)


def _expand_tree(obj):
    """Expand ``${VARS}`` in every string value of a parsed YAML tree (not in comments)."""
    if isinstance(obj, str):
        return expand_vars(obj)
    if isinstance(obj, list):
        return [_expand_tree(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _expand_tree(v) for k, v in obj.items()}
    return obj


def _format_error(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling and section)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = f" (+{len(exc.errors()) - 3} more)" if len(exc.errors()) > 3 else ""
    return f"invalid configuration{where}: " + "; ".join(parts) + more


def _resolve_paths(cfg: PipelineConfig, base: Path) -> PipelineConfig:
    src = cfg.data.source
    for field in ("root", "path", "mask", "atlas", "derivatives"):
        val = getattr(src, field, None)
        if val and val not in ("auto", "none") and not Path(val).is_absolute():
            setattr(src, field, str((base / val).resolve()))
    for m in cfg.models:
        if m.path != PACKAGED_MODEL and m.path.startswith((".", "/")) and not Path(m.path).is_absolute():
            m.path = str((base / m.path).resolve())
    if cfg.outputs.dir and not Path(cfg.outputs.dir).is_absolute():
        cfg.outputs.dir = str((base / cfg.outputs.dir).resolve())
    if cfg.execution.cache_dir and not Path(cfg.execution.cache_dir).is_absolute():
        cfg.execution.cache_dir = str((base / cfg.execution.cache_dir).resolve())
    return cfg


def validate_config(data: dict, *, where: str = "", base_dir: str | Path | None = None) -> PipelineConfig:
    """Validate a configuration mapping.

    Parameters
    ----------
    data : dict
        The parsed YAML (or a dict built in Python).
    where : str
        Name of the file, for messages.
    base_dir : path, optional
        Relative data/output paths are resolved against it (the config file's folder).

    Raises
    ------
    ConfigError
        One line naming the first faulty fields.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"configuration{where and ' ' + where} must be a mapping of sections, got {type(data).__name__}")
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, f" in {where}" if where else "")) from None
    if base_dir is not None:
        cfg = _resolve_paths(cfg, Path(base_dir))
    return cfg


def read_config_file(path: str | Path) -> Any:
    """The parsed YAML of a configuration file with ``${VARS}`` expanded (not validated).

    Raises
    ------
    ConfigError
        If the file does not exist, is not UTF-8 text or is not valid YAML.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"configuration file {p} does not exist")
    try:
        return _expand_tree(yaml.safe_load(p.read_text(encoding="utf-8")))
    except UnicodeDecodeError:
        raise ConfigError(f"configuration file {p} is not UTF-8 text: is it a YAML file?") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"configuration file {p} is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read, expand ``${VARS}`` and validate a YAML configuration file.

    Relative paths inside the file are taken relative to the file's folder.
    """
    p = Path(path)
    data = read_config_file(p)
    return validate_config({} if data is None else data, where=str(p), base_dir=p.parent.resolve())


def dump_config(cfg: PipelineConfig) -> str:
    """The configuration as YAML text (every default made explicit)."""
    return yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False)
