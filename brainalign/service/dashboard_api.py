"""The authenticated JSON/HTML routes the dashboard's job page reads beyond the core API.

``GET /api/v1/jobs/{id}/config``     the configuration the job was submitted with
``GET /api/v1/jobs/{id}/curves``     layer curves: per participant x model, the mean over
                                     targets of each layer's score, with a 95% CI over targets
``GET /api/v1/jobs/{id}/brainmaps``  the statistical maps in the job's outputs
``GET /api/v1/jobs/{id}/brainmap``   one map as a nilearn viewer page: ``view_img`` (volume),
                                     ``view_img_on_surf`` (a volume projected on fsaverage5)
                                     or ``view_surf`` (a GIFTI / CIFTI surface map)

All need ``Authorization: Bearer <token>`` (401 otherwise) and answer 404 for a job
the caller may not see, as the core API does. Files are found by listing the job's
output folder and matching names; nothing a request carries becomes part of a path.
The app provides ``app.state.store`` (a :class:`~brainalign.service.store.JobStore`)
and ``app.state.settings`` (a :class:`~brainalign.service.settings.ServiceSettings`).
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from .auth import caller, visible_job

router = APIRouter(tags=["dashboard"])

MAP_SUFFIXES = {"_statmap.nii.gz": "volume", "_statmap.func.gii": "surface", "_statmap.dscalar.nii": "surface"}
DESC = re.compile(r"(?P<model>[A-Za-z0-9][A-Za-z0-9.+-]*)L(?P<layer>\d+)")
ENCODING_CURVES = ("r", "r_norm", "delta_r")
NOT_CURVES = ("layer_id", "layer_id_score", "p_best")
GROUP = "group"


# ------------------------------------------------------------------------- access
def _job(request: Request, user, job_id: str) -> tuple[dict, Path]:
    """The caller's job and its output folder; 404 when the caller may not see it."""
    job = visible_job(request.app.state.store, user, job_id)
    return job, request.app.state.settings.job_dir(job["id"])


@router.get("/api/v1/jobs/{job_id}/config")
def job_config(job_id: str, request: Request, user=Depends(caller)) -> dict:
    """The configuration the job was submitted with (``{"config": {...}}``)."""
    job, _ = _job(request, user, job_id)
    return {"config": request.app.state.store.job_config(job["id"])}


# -------------------------------------------------------------------- layer curves
def _finite(x: float) -> Optional[float]:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _curve(rows: pd.DataFrame) -> dict:
    """Mean over targets per layer, with mean +- 1.96 SEM over targets (the reports' profile)."""
    by = rows.groupby(rows["layer"].astype(int))["value"]
    mean, sd, n = by.mean(), by.std(ddof=1), by.count()
    half = (1.96 * sd / n.pow(0.5)).where(n > 1, 0.0)
    return {"layer": [int(x) for x in mean.index], "mean": [_finite(v) for v in mean],
            "low": [_finite(v) for v in mean - half], "high": [_finite(v) for v in mean + half],
            "n_targets": [int(v) for v in n]}


def layer_curves(job_dir: Path) -> list[dict]:
    """Every participant x model layer curve in a job's score tables.

    Parameters
    ----------
    job_dir : Path
        The job's output folder (participants' ``*_scores.tsv`` under ``sub-*/``).

    Returns
    -------
    list of dict
        One per (subject, task, model, method, metric): keys ``subject``, ``task``,
        ``model``, ``method``, ``metric``, ``layer`` (ints), ``mean``, ``low``, ``high``
        (floats or None) and ``n_targets``. Encoding metrics r, r_norm and delta_r
        (pooled over folds); every RSA metric, averaged over regions.
    """
    keys = ["subject", "task", "model", "method", "metric"]
    out = []
    for tsv in sorted(job_dir.glob("sub-*/**/*_scores.tsv")):
        df = pd.read_csv(tsv, sep="\t", dtype={"target": str, "subject": str, "task": str, "model": str},
                         keep_default_na=False, na_values=["n/a"])
        df = df[df["layer"].notna() & df["fold"].isna()]
        keep = ((df["method"] == "encoding") & df["metric"].isin(ENCODING_CURVES)) | (
            (df["method"] == "rsa") & ~df["metric"].isin(NOT_CURVES))
        for key, rows in df[keep].groupby(keys, sort=True):
            out.append({**dict(zip(keys, (str(k) for k in key))), **_curve(rows)})
    return out


@router.get("/api/v1/jobs/{job_id}/curves")
def job_curves(job_id: str, request: Request, user=Depends(caller)) -> dict:
    """Layer curves of the job's participants (``{"curves": [...]}``, see :func:`layer_curves`)."""
    _, folder = _job(request, user, job_id)
    return {"curves": layer_curves(folder) if folder.is_dir() else []}


# ----------------------------------------------------------------------- brain maps
def parse_map_name(name: str) -> dict | None:
    """The entities of a statistical map's file name, or None for any other file.

    ``sub-01_task-story_desc-MiniLML05_stat-r_statmap.nii.gz`` -> subject 01, task story,
    model MiniLM, layer 5, stat r, kind volume; a name without ``sub-`` is a group map;
    ``hemi-``, ``space-`` and ``den-`` entities come with the surface maps
    (``.func.gii``, ``.dscalar.nii``).
    """
    suffix = next((x for x in MAP_SUFFIXES if name.endswith(x)), None)
    if suffix is None:
        return None
    parts = name[: -len(suffix)].split("_")
    if not all("-" in p for p in parts):
        return None
    ent = dict(p.split("-", 1) for p in parts)
    desc = DESC.fullmatch(ent.get("desc", ""))
    if desc is None or "task" not in ent or "stat" not in ent:
        return None
    return {"subject": ent.get("sub", GROUP), "session": ent.get("ses"), "task": ent["task"],
            "model": desc["model"], "layer": int(desc["layer"]), "stat": ent["stat"], "hemi": ent.get("hemi"),
            "space": ent.get("space"), "kind": MAP_SUFFIXES[suffix]}


def brain_maps(job_dir: Path) -> list[dict]:
    """The statistical maps a job wrote: participants' and the group's, volumes and surfaces.

    Returns
    -------
    list of dict
        The fields of :func:`parse_map_name` and ``path`` (relative to the job folder),
        sorted by path.
    """
    found = []
    for path in sorted(p for p in job_dir.glob("**/*_statmap.*") if p.is_file() and not p.is_symlink()):
        meta = parse_map_name(path.name)
        if meta is not None:
            found.append({**meta, "path": path.relative_to(job_dir).as_posix()})
    return found


@router.get("/api/v1/jobs/{job_id}/brainmaps")
def job_brain_maps(job_id: str, request: Request, user=Depends(caller)) -> dict:
    """The job's statistical maps (``{"maps": [...]}``, see :func:`brain_maps`)."""
    _, folder = _job(request, user, job_id)
    return {"maps": brain_maps(folder) if folder.is_dir() else []}


def _pick(maps: list[dict], **want) -> dict | None:
    """The first map whose fields equal every given (not None) value."""
    for m in maps:
        if all(v is None or str(m[k]) == str(v) for k, v in want.items()):
            return m
    return None


@lru_cache(maxsize=8)
def render_map(path: str, mtime_ns: int, view: str, background: str, title: str) -> str:
    """nilearn's interactive viewer of one map file, as a standalone HTML page (memoised by file and mtime).

    A volume (``.nii.gz``) is shown by ``view_img`` (``view="volume"``, on the MNI152
    template or ``background="none"``) or ``view_img_on_surf`` projected on fsaverage5
    (``view="surface"``); a surface map (``.func.gii``, ``.dscalar.nii``) by ``view_surf``
    through :func:`brainalign.pipeline.surface_maps.map_file_view_html`.
    """
    import nibabel as nib
    import numpy as np
    from nilearn import plotting

    if not path.endswith(".nii.gz"):
        from ..pipeline.surface_maps import map_file_view_html

        return map_file_view_html(path, title=title)
    img = nib.load(path)
    data = np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32))  # NaN outside the mask -> not drawn
    img = nib.Nifti1Image(data, img.affine)
    vmax = float(np.max(np.abs(data))) or 1.0
    if view == "surface":
        shown = plotting.view_img_on_surf(img, surf_mesh="fsaverage5", threshold=None, vmax=vmax,
                                          symmetric_cmap=True, title=title)
    else:
        shown = plotting.view_img(img, bg_img="MNI152" if background == "mni" else False, vmax=vmax,
                                  symmetric_cmap=True, title=title, black_bg=False)
    html = shown.get_standalone()
    return re.sub(r"<link\s+rel=\"icon\"[^>]*>", "", html, count=1)  # nilearn's favicon is an outside URL


@router.get("/api/v1/jobs/{job_id}/brainmap", response_class=HTMLResponse)
def job_brain_map(job_id: str, request: Request, layer: int = Query(..., ge=0, le=10_000),
                  subject: Optional[str] = Query(None, max_length=64, description="participant label or 'group'"),
                  model: Optional[str] = Query(None, max_length=64), task: Optional[str] = Query(None, max_length=64),
                  stat: str = Query("r", max_length=32),
                  hemi: Optional[str] = Query(None, max_length=8, description="L or R (surface maps)"),
                  view: Literal["volume", "surface"] = "volume",
                  background: Literal["mni", "none"] = "mni", user=Depends(caller)) -> HTMLResponse:
    """One map of the job as nilearn's interactive viewer (an HTML page to show in a sandboxed frame).

    ``subject`` defaults to the group map when there is one, else the first participant;
    ``view=surface`` projects a volume on fsaverage5 (``view_img_on_surf``);
    ``background=none`` draws the map alone (data not in MNI space). Surface maps
    (GIFTI per hemisphere, CIFTI) are drawn on their mesh (``hemi`` picks one).
    """
    _, folder = _job(request, user, job_id)
    maps = brain_maps(folder) if folder.is_dir() else []
    if subject is None:
        subject = GROUP if _pick(maps, subject=GROUP, layer=layer, model=model, task=task, stat=stat, hemi=hemi) else None
    found = _pick(maps, subject=subject, layer=layer, model=model, task=task, stat=stat, hemi=hemi)
    if found is None:
        raise HTTPException(404, f"no {stat} map of layer {layer} for {subject or 'any participant'} in job {job_id}")
    path = folder / found["path"]
    who = "group" if found["subject"] == GROUP else f"sub-{found['subject']}"
    title = f"{who} {found['model']} layer {found['layer']} {found['stat']}" + (f" hemi-{found['hemi']}" if found["hemi"] else "")
    html = render_map(str(path), path.stat().st_mtime_ns, view, background, title)
    return HTMLResponse(html, headers={"Content-Security-Policy": "sandbox allow-scripts",
                                       "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})
