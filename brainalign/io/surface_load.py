"""Dispatch a surface ``space`` to its reader: GIFTI pairs (fsaverage*, fsnative) or CIFTI (fsLR)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from .surface_runs import surface_kind


def load_surface_space(root: Path, sub: str, task: str, *, space: str, mask: Any = None, atlas: Any = None,
                       **kw: Any) -> tuple[Any, list]:
    """:func:`brainalign.io.surface.load_surface` or :func:`brainalign.io.cifti.load_cifti` by ``space``.

    ``mask`` and ``atlas`` are volumetric images and are refused here (InputError naming the flags).
    Other keywords (session, runs, derivatives, tr, frame_time, clean, confounds) go to the reader.
    """
    given = [n for n, v in (("mask", mask), ("atlas", atlas)) if v is not None]
    if given:
        names = " and ".join(f"--{n} (data.source.{n})" for n in given)
        raise InputError(f"{names}: a NIfTI image does not apply to surface space {space}; leave it out "
                         "(surface vertices with no data, e.g. the medial wall, are left out by themselves)")
    if surface_kind(space) == "cifti":
        from .cifti import load_cifti

        return load_cifti(root, sub, task, space=space, **kw)
    from .surface import load_surface

    return load_surface(root, sub, task, space=space, **kw)
