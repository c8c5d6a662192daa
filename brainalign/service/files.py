"""A job's output files: listing, safe download paths, and its long score table.

The outputs of a job are the BIDS-derivative folder ``<state>/jobs/<id>/`` that
``run_study`` and the group level write. A requested path is taken relative to
that folder; absolute paths, ``..`` components and anything that resolves outside
the folder (a symlink pointing out) are refused, so a download can never read
another job's or the server's files.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

from ..errors import BrainAlignError

SCORE_LEVELS = ("participant", "group")


class OutsideJobError(BrainAlignError, PermissionError):
    """A requested file path that is not inside the job's output folder."""


def list_files(job_dir: Path) -> list[dict]:
    """Every output file of a job: ``{"path": relative POSIX path, "bytes": size}``, sorted by path.

    Hidden and temporary files (``.name``, atomic-write leftovers) and symlinks are left out.
    """
    root = Path(job_dir)
    if not root.is_dir():
        return []
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or p.is_symlink() or not p.is_file():
            continue
        out.append({"path": rel.as_posix(), "bytes": p.stat().st_size})
    return sorted(out, key=lambda f: f["path"])


def safe_file(job_dir: Path, rel: str) -> Path:
    """The file ``rel`` inside ``job_dir``, symlinks resolved.

    Raises
    ------
    OutsideJobError
        ``rel`` is absolute, has a ``..`` component or resolves outside the folder.
    FileNotFoundError
        No such regular file.
    """
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or "\\" in rel or "\x00" in rel:
        raise OutsideJobError(f"file path {rel!r} is not inside the job's output folder")
    root = Path(job_dir).resolve()
    target = (root / p).resolve()
    if not target.is_relative_to(root):
        raise OutsideJobError(f"file path {rel!r} is not inside the job's output folder")
    if any(part.startswith(".") for part in target.relative_to(root).parts) or not target.is_file():
        raise FileNotFoundError(rel)
    return target


def score_files(job_dir: Path, level: str = "participant") -> list[Path]:
    """The job's long score tables: one per participant x model, or the group tables."""
    root = Path(job_dir)
    if level == "group":
        return sorted((root / "group").glob("*_scores.tsv"))
    return sorted(p for p in root.glob("sub-*/*/sub-*_scores.tsv") if p.is_file())


def scores_tsv(job_dir: Path, level: str = "participant") -> str:
    """The score tables concatenated as one TSV text (the header once), exactly as written."""
    parts: list[str] = []
    for i, path in enumerate(score_files(job_dir, level)):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        parts.extend(lines if i == 0 else lines[1:])
    return "".join(parts)


def _number(x: str):
    try:
        v = float(x)
    except ValueError:
        return None
    return None if math.isnan(v) or math.isinf(v) else v


def scores_records(job_dir: Path, level: str = "participant") -> list[dict]:
    """The score tables as JSON records: ``value`` a float (``null`` for n/a), ``layer`` an int, the rest strings."""
    text = scores_tsv(job_dir, level)
    if not text:
        return []
    df = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    records = df.to_dict(orient="records")
    for r in records:
        if "value" in r:
            r["value"] = _number(r["value"])
        if "layer" in r and str(r["layer"]).lstrip("-").isdigit():
            r["layer"] = int(r["layer"])
        if "n_subjects" in r and str(r["n_subjects"]).isdigit():
            r["n_subjects"] = int(r["n_subjects"])
    return records
