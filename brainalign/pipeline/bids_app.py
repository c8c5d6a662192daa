"""Turn BIDS App command-line options into a validated :class:`PipelineConfig`."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..errors import ConfigError, MissingDataError
from .config import PACKAGED_MODEL, _expand_tree, validate_config


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


def bids_config(args, check_data: bool = True):
    """Configuration of a BIDS App call (``--config`` file, then the options on top)."""
    root = Path(args.bids_dir).resolve()
    if check_data and not (root / "dataset_description.json").is_file():
        raise MissingDataError(f"{root} is not a BIDS dataset (no dataset_description.json)")
    data: dict = {}
    if args.config:
        p = Path(args.config)
        if not p.is_file():
            raise ConfigError(f"--config {p} does not exist")
        data = _expand_tree(yaml.safe_load(p.read_text())) or {}
    src = dict((data.get("data") or {}).get("source") or {})
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
    data.setdefault("data", {})["source"] = src
    if args.model or args.model_label or "models" not in data:
        model = args.model or PACKAGED_MODEL
        data["models"] = [{**((data.get("models") or [{}])[0]), "label": args.model_label or model_label_for(model),
                           "path": model}]
    if args.methods:
        data.setdefault("scoring", {})["methods"] = list(args.methods)
    data.setdefault("outputs", {})["dir"] = str(Path(args.output_dir).resolve())
    ex = data.setdefault("execution", {})
    if args.n_jobs:
        ex["n_jobs"] = args.n_jobs
    if args.scheduler:
        ex["scheduler"] = args.scheduler
    return validate_config(data, where=args.config or "", base_dir=Path(args.config).parent if args.config else Path.cwd())
