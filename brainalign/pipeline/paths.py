"""Output, cache and model folders checked before any work: never write into an input, never fail late.

:func:`check_output_dir` refuses an output folder that is a file, that cannot be
written, or that is (or lies inside) a raw input dataset other than under its
``derivatives/`` folder. :func:`check_cache_dir` refuses an activation cache
folder that is a file or cannot be written; :func:`check_model_folders` a local
model folder that does not exist. They only look and probe (a temporary file,
removed at once): nothing is created that the run would not create anyway.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from ..encoders.cache import default_cache_dir
from ..errors import InputError


def _nearest_existing(path: Path) -> Path:
    """``path`` itself, or its closest ancestor that exists."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable(folder: Path) -> bool:
    """Whether a file can be created in an existing folder (probed: permission bits lie to root)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".brainalign-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def check_writable_dir(path: str | os.PathLike, what: str, fix: str) -> Path:
    """Refuse a folder path that is not a folder or cannot be written (nothing is created).

    Parameters
    ----------
    path : path-like
        The folder (it may not exist yet: its closest existing ancestor is checked).
    what : str
        How the user named it, e.g. ``"output folder"`` or ``"execution.cache_dir"``.
    fix : str
        What to do instead, appended to the message.

    Returns
    -------
    Path
        The resolved path.

    Raises
    ------
    InputError
        If the path, or an ancestor, is a file, or the folder cannot be written.
    """
    p = Path(path).expanduser().resolve()
    base = _nearest_existing(p)
    if not base.is_dir():
        where = "" if base == p else f" ({base} is a file)"
        raise InputError(f"{what} {p} is not a folder{where}: {fix}")
    if not _writable(base):
        where = "" if base == p else f" (cannot create it in {base})"
        raise InputError(f"{what} {p} is not writable{where}: {fix}")
    return p


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_not_in_inputs(out: Path, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse an output folder equal to, or inside, a raw input dataset (its ``derivatives/`` excepted).

    Raises
    ------
    InputError
        Naming the output folder and the dataset it would write into.
    """
    for raw in inputs:
        root = Path(raw).expanduser().resolve()
        if not root.is_dir():
            continue
        if out == root:
            raise InputError(f"output folder {out} is the input dataset: writing there would overwrite it; "
                             f"choose another folder, e.g. {root / 'derivatives' / 'brainalign'}")
        if _inside(out, root) and not _inside(out, root / "derivatives"):
            raise InputError(f"output folder {out} is inside the input dataset {root}: outputs go outside it "
                             f"or under its derivatives/ folder, e.g. {root / 'derivatives' / 'brainalign'}")


def check_output_dir(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Every check of an output folder, before any work; returns the resolved path."""
    p = Path(out).expanduser().resolve()
    check_not_in_inputs(p, inputs)
    return check_writable_dir(p, "output folder", "choose a writable folder (OUTPUT_DIR, --output or outputs.dir)")


def check_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """Refuse an activation cache folder that is a file or read-only, before any model runs.

    ``None`` means the default folder (``$BRAINALIGN_CACHE`` or ``~/.cache/brainalign``).
    """
    given = cache_dir is not None
    path = Path(cache_dir) if given else default_cache_dir()
    what = "execution.cache_dir" if given else ("BRAINALIGN_CACHE folder" if os.environ.get("BRAINALIGN_CACHE")
                                               else "activation cache folder")
    return check_writable_dir(path, what, "set execution.cache_dir (or BRAINALIGN_CACHE) to a writable folder")


def check_model_folders(models) -> None:
    """Refuse a model given as a local folder (an absolute or ``./`` path) that does not exist.

    Hub ids (``owner/name``) are left to the encoder, which knows the hub and its cache.
    """
    for i, m in enumerate(models):
        path = str(m.path)
        if path.startswith(("/", "./", "../", "~")) and not Path(path).expanduser().is_dir():
            raise InputError(f"models[{i}] ({m.label}).path: model folder {path} does not exist: "
                             "give an existing folder or a Hugging Face id")


def check_study_paths(cfg, out: str | os.PathLike) -> Path:
    """The output, cache and model-folder checks of a study (``cfg``: a PipelineConfig); returns the output folder."""
    src = cfg.data.source
    raw = [getattr(src, "root", None)] if getattr(src, "kind", "") in ("bids", "roi_table") else []
    path = check_output_dir(out, [r for r in raw if r])
    check_cache_dir(cfg.execution.cache_dir)
    check_model_folders(cfg.models)
    return path
