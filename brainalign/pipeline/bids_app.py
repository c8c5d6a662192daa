"""Turn BIDS App command-line options into a validated :class:`PipelineConfig`."""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError, MissingDataError
from .config import PACKAGED_MODEL, read_config_file, validate_config


def model_label_for(model: str | None) -> str:
    """A file-name-safe label for a model path or hub id."""
    if not model or model == PACKAGED_MODEL:
        return "MiniLM"
    name = Path(str(model).rstrip("/")).name or str(model)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", name).strip("-.") or "model"


def detect_datatype(root: Path) -> str:
    """func, meg, eeg or ieeg: the first datatype folder found under sub-*/[ses-*/]."""
    for kind in ("func", "meg", "ieeg", "eeg"):
        if any(root.glob(f"sub-*/{kind}")) or any(root.glob(f"sub-*/ses-*/{kind}")):
            return kind
    raise MissingDataError(f"{root} has no sub-*/func, meg, eeg or ieeg folder: is it a BIDS dataset?")


def _read_config(path: str) -> dict:
    """The ``--config`` file as a mapping (read as :func:`~brainalign.pipeline.config.load_config` reads it)."""
    if not Path(path).is_file():
        raise ConfigError(f"--config {path} does not exist")
    data = read_config_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must be a mapping of sections (data, models, scoring...), "
                          f"got a YAML {type(data).__name__}")
    return data


def _section(value, name: str, where: str | None) -> dict:
    """A section the options below are merged into: a mapping, or absent."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"invalid configuration{' in ' + where if where else ''}: {name}: "
                          f"must be a mapping, got {type(value).__name__}")
    return value


def _layout_options(args, src: dict, data: dict, where: str | None) -> None:
    """``--session``, ``--pool-sessions``, ``--derivatives``, ``--space``, ``--word-column``, ``--trial-type``,
    ``--high-gamma`` into ``data.source``; ``--confounds`` into ``data.preprocess.confounds`` (in place)."""
    for opt in ("session", "space", "word_column"):
        val = getattr(args, opt, None)
        if val:
            src[opt] = val
    if getattr(args, "derivatives", None):
        val = args.derivatives
        if val not in ("auto", "none"):
            if not Path(val).is_dir():
                raise MissingDataError(f"--derivatives {val} is not a folder")
            val = str(Path(val).resolve())
        src["derivatives"] = val
    if getattr(args, "trial_type", None):
        src["trial_type"] = list(args.trial_type)
    for flag in ("pool_sessions", "high_gamma"):
        if getattr(args, flag, False):
            src[flag] = True
    if getattr(args, "confounds", None):
        data["preprocess"] = {**_section(data.get("preprocess"), "data.preprocess", where), "confounds": args.confounds}


def bids_config(args, check_data: bool = True):
    """Configuration of a BIDS App call (``--config`` file, then the options on top)."""
    root = Path(args.bids_dir).resolve()
    if check_data and not (root / "dataset_description.json").is_file():
        raise MissingDataError(f"{root} is not a BIDS dataset (no dataset_description.json)")
    data = _read_config(args.config) if args.config else {}
    where = args.config
    data["data"] = _section(data.get("data"), "data", where)
    src = dict(_section(data["data"].get("source"), "data.source", where))
    src.update(kind="bids", root=str(root))
    if args.task:
        src["task"] = args.task
    if args.datatype or "datatype" not in src:
        src["datatype"] = args.datatype or (detect_datatype(root) if check_data else "func")
    for opt in ("mask", "atlas"):
        val = getattr(args, opt)
        if val:
            if not Path(val).is_file():
                raise MissingDataError(f"--{opt} {val} does not exist")
            src[opt] = str(Path(val).resolve())
    _layout_options(args, src, data["data"], where)
    data["data"]["source"] = src
    if args.model or args.model_label or "models" not in data:
        model = args.model or PACKAGED_MODEL
        first = (data.get("models") or [{}])[0] if isinstance(data.get("models"), list) else {}
        data["models"] = [{**_section(first, "models[0]", where), "label": args.model_label or model_label_for(model),
                           "path": model}]
    if args.methods:
        data["scoring"] = {**_section(data.get("scoring"), "scoring", where), "methods": list(args.methods)}
    data["outputs"] = {**_section(data.get("outputs"), "outputs", where), "dir": str(Path(args.output_dir).resolve())}
    ex = data["execution"] = dict(_section(data.get("execution"), "execution", where))
    if args.n_jobs:
        ex["n_jobs"] = args.n_jobs
    if args.scheduler:
        ex["scheduler"] = args.scheduler
    return validate_config(data, where=args.config or "", base_dir=Path(args.config).parent if args.config else Path.cwd())
