"""The authenticated JSON/HTML routes the dashboard's job page reads beyond the core API.

``GET /api/v1/jobs/{id}/config``     the configuration the job was submitted with
``GET /api/v1/jobs/{id}/curves``     layer curves: per participant x model, the mean over
                                     targets of each layer's score, with a 95% CI over targets
``GET /api/v1/jobs/{id}/brainmaps``  the statistical maps in the job's outputs
``GET /api/v1/jobs/{id}/brainmap``   one map as a nilearn ``view_img`` (volume) or
                                     ``view_img_on_surf`` (projected on fsaverage5) HTML page

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
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["dashboard"])

MAP_NAME = re.compile(r"(?:sub-(?P<subject>[^_/]+)_)?(?:ses-(?P<session>[^_/]+)_)?task-(?P<task>[^_/]+)_"
                      r"desc-(?P<model>[^_/]+?)L(?P<layer>\d+)_stat-(?P<stat>[^_/]+)_statmap\.nii\.gz")
ENCODING_CURVES = ("r", "r_norm", "delta_r")
NOT_CURVES = ("layer_id", "layer_id_score", "p_best")
GROUP = "group"


# ------------------------------------------------------------------------- access
def _caller(request: Request):
    """The user of the request's bearer token; 401 without a valid one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    user = request.app.state.store.authenticate(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if user is None:
        raise HTTPException(401, "missing or invalid API token: send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


def _job(request: Request, job_id: str) -> tuple[dict, Path]:
    """The caller's job and its output folder; 404 when the caller may not see it."""
    user = _caller(request)
    job = request.app.state.store.get_job(user, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job, Path(request.app.state.settings.jobs_dir) / job["id"]


@router.get("/api/v1/jobs/{job_id}/config")
def job_config(job_id: str, request: Request) -> dict:
    """The configuration the job was submitted with (``{"config": {...}}``)."""
    job, _ = _job(request, job_id)
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
def job_curves(job_id: str, request: Request) -> dict:
    """Layer curves of the job's participants (``{"curves": [...]}``, see :func:`layer_curves`)."""
    _, folder = _job(request, job_id)
    return {"curves": layer_curves(folder) if folder.is_dir() else []}


# ----------------------------------------------------------------------- brain maps
def brain_maps(job_dir: Path) -> list[dict]:
    """The statistical maps (NIfTI) a job wrote: participants' and the group's.

    Returns
    -------
    list of dict
        ``subject`` ("group" for group maps), ``session`` (or None), ``task``,
        ``model``, ``layer`` (int), ``stat`` and ``path`` (relative to the job folder).
    """
    found = []
    for path in sorted(job_dir.glob("**/*_statmap.nii.gz")):
        m = MAP_NAME.fullmatch(path.name)
        if m is None or path.is_symlink():
            continue
        found.append({"subject": m["subject"] or GROUP, "session": m["session"], "task": m["task"],
                      "model": m["model"], "layer": int(m["layer"]), "stat": m["stat"],
                      "path": path.relative_to(job_dir).as_posix()})
    return found


@router.get("/api/v1/jobs/{job_id}/brainmaps")
def job_brain_maps(job_id: str, request: Request) -> dict:
    """The job's statistical maps (``{"maps": [...]}``, see :func:`brain_maps`)."""
    _, folder = _job(request, job_id)
    return {"maps": brain_maps(folder) if folder.is_dir() else []}


def _pick(maps: list[dict], **want) -> dict | None:
    """The first map whose fields equal every given (not None) value."""
    for m in maps:
        if all(v is None or str(m[k]) == str(v) for k, v in want.items()):
            return m
    return None


@lru_cache(maxsize=8)
def _render(path: str, mtime_ns: int, view: str, background: str, title: str) -> str:
    """nilearn's interactive viewer of one map, as a standalone HTML page (memoised by file and mtime)."""
    import nibabel as nib
    import numpy as np
    from nilearn import plotting

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
                  view: Literal["volume", "surface"] = "volume",
                  background: Literal["mni", "none"] = "mni") -> HTMLResponse:
    """One map of the job as nilearn's interactive viewer (an HTML page to show in a sandboxed frame).

    ``subject`` defaults to the group map when there is one, else the first participant;
    ``view=surface`` projects the volume on fsaverage5 (``view_img_on_surf``);
    ``background=none`` draws the map alone (data not in MNI space).
    """
    _, folder = _job(request, job_id)
    maps = brain_maps(folder) if folder.is_dir() else []
    if subject is None:
        subject = GROUP if _pick(maps, subject=GROUP, layer=layer, model=model, task=task, stat=stat) else None
    found = _pick(maps, subject=subject, layer=layer, model=model, task=task, stat=stat)
    if found is None:
        raise HTTPException(404, f"no {stat} map of layer {layer} for {subject or 'any participant'} in job {job_id}")
    path = folder / found["path"]
    who = "group" if found["subject"] == GROUP else f"sub-{found['subject']}"
    title = f"{who} {found['model']} layer {found['layer']} {found['stat']}"
    html = _render(str(path), path.stat().st_mtime_ns, view, background, title)
    return HTMLResponse(html, headers={"Content-Security-Policy": "sandbox allow-scripts",
                                       "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})
