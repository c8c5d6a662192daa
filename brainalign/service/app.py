"""The HTTP face of the service: the job API under ``/api/v1``, ``/metrics`` and the dashboard.

``create_app(settings, store, runner)`` builds the FastAPI app. Every route but
``/api/v1/health`` (and the OpenAPI description, the dashboard's HTML shells and
static files) needs ``Authorization: Bearer <token>``; a missing or unknown token
is 401. A job another user owns answers 404 as if it did not exist (an admin sees
every job). Every error is ``{"detail": "<one line>"}``: 422 names the field of a
malformed request or configuration (same wording as ``brainalign run``), 403 a path
outside the server's roots, 413 an oversized body. Routes are plain functions, so
the blocking store calls run in FastAPI's thread pool.
"""
from __future__ import annotations

import logging
from typing import Any, Literal, Optional, Union

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from .._version import __version__
from ..errors import AccessDeniedError, BrainAlignError, ConfigError
from . import catalog, files, metrics
from .access import prepare_job_config
from .auth import caller, visible_job
from .jobjson import STATUSES, one_line
from .limits import BodyLimit, BodyTooLarge
from .settings import ServiceSettings

log = logging.getLogger("brainalign.service")
TSV = "text/tab-separated-values"


class JobRequest(BaseModel):
    """``POST /api/v1/jobs``: a study configuration (a mapping, or YAML/JSON text), an optional name."""

    model_config = ConfigDict(extra="forbid")
    config: Union[dict[str, Any], str] = Field(..., description="the study configuration, as for `brainalign run`")
    name: Optional[str] = Field(None, max_length=200)
    force: bool = Field(False, description="run again even if this user already ran this configuration")


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",)) or "body"
        msg = "required field is missing" if err.get("type") == "missing" else err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field (the body takes config, name, force)"
        parts.append(f"{loc}: {msg}")
    return one_line("invalid request: " + "; ".join(parts))


def _install_errors(app: FastAPI) -> None:
    def detail(status: int, text: Any, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"detail": one_line(text)}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc):
        return detail(422, _validation_detail(exc))

    @app.exception_handler(HTTPException)
    async def _http(request, exc):
        return detail(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request, exc):
        return detail(413, str(exc))

    @app.exception_handler(ConfigError)
    async def _config(request, exc):
        return detail(422, exc)

    @app.exception_handler(AccessDeniedError)
    async def _denied(request, exc):
        return detail(403, exc)

    @app.exception_handler(BrainAlignError)
    async def _refused(request, exc):  # e.g. a name the store refuses
        return detail(422, exc)

    @app.exception_handler(Exception)
    async def _bug(request, exc):  # a bug: logged with its traceback, answered in one line
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return detail(500, f"internal error ({type(exc).__name__}); see the server log")


def _routes_jobs(app: FastAPI, settings: ServiceSettings, store, runner) -> None:
    @app.post("/api/v1/jobs", status_code=201, tags=["jobs"], summary="submit a study configuration")
    def submit(body: JobRequest, response: Response, user=Depends(caller)) -> dict:
        config, config_hash = prepare_job_config(body.config, settings)
        job, created = store.submit(user, config, config_hash, name=body.name, force=body.force)
        response.status_code = 201 if created else 200
        if created and runner is not None and hasattr(runner, "wake"):
            runner.wake()
        return job

    @app.get("/api/v1/jobs", tags=["jobs"], summary="the caller's jobs, newest first")
    def list_jobs(status: Optional[Literal[STATUSES]] = Query(None), user=Depends(caller)) -> list[dict]:
        return store.list_jobs(user, status)

    @app.get("/api/v1/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: str, user=Depends(caller)) -> dict:
        return visible_job(store, user, job_id)

    @app.post("/api/v1/jobs/{job_id}/cancel", tags=["jobs"], summary="cancel at the next task boundary")
    def cancel(job_id: str, user=Depends(caller)) -> dict:
        visible_job(store, user, job_id)
        job = store.request_cancel(user, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.get("/api/v1/jobs/{job_id}/scores", tags=["jobs"],
             summary="the long score table (JSON records, or TSV with Accept: text/tab-separated-values)")
    def scores(job_id: str, request: Request, level: Literal[files.SCORE_LEVELS] = Query("participant"),
               user=Depends(caller)):
        job = visible_job(store, user, job_id)
        folder = settings.job_dir(job["id"])
        if not files.score_files(folder, level):
            raise HTTPException(404, f"job {job_id} has no {level} scores yet (status {job['status']})")
        if TSV in request.headers.get("accept", ""):
            return PlainTextResponse(files.scores_tsv(folder, level), media_type=TSV)
        return files.scores_records(folder, level)

    @app.get("/api/v1/jobs/{job_id}/files", tags=["jobs"], summary="the job's output files")
    def list_files(job_id: str, user=Depends(caller)) -> list[dict]:
        job = visible_job(store, user, job_id)
        return files.list_files(settings.job_dir(job["id"]))

    @app.get("/api/v1/jobs/{job_id}/files/{path:path}", tags=["jobs"], summary="one output file")
    def get_file(job_id: str, path: str, user=Depends(caller)):
        job = visible_job(store, user, job_id)
        try:
            target = files.safe_file(settings.job_dir(job["id"]), path)
        except files.OutsideJobError as exc:
            raise HTTPException(403, str(exc)) from None
        except (FileNotFoundError, OSError, ValueError):
            raise HTTPException(404, f"job {job_id} has no file {path!r}") from None
        return FileResponse(target, filename=target.name if not target.name.endswith(".html") else None)


def _routes_server(app: FastAPI, settings: ServiceSettings, store, runner) -> None:
    @app.get("/api/v1/health", tags=["server"], summary="liveness (no token needed)")
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get("/api/v1/datasets", tags=["server"], summary="BIDS datasets under the data roots")
    def datasets(user=Depends(caller)) -> list[dict]:
        return catalog.list_datasets(settings.data_roots)

    @app.get("/api/v1/models", tags=["server"], summary="models a job may use")
    def models(user=Depends(caller)) -> list[dict]:
        return catalog.list_models(settings.model_roots)

    @app.get("/api/v1/cache", tags=["server"], summary="the shared activation cache")
    def cache(user=Depends(caller)) -> dict:
        return catalog.list_cache(settings.cache_dir)

    @app.get("/metrics", tags=["server"], summary="Prometheus text format", response_class=PlainTextResponse)
    def prometheus(user=Depends(caller)):
        return PlainTextResponse(metrics.render(store, settings), media_type=metrics.CONTENT_TYPE)


def _include_dashboard(app: FastAPI) -> None:
    """The dashboard's router and /static, when that part of the package is installed."""
    try:
        from .dashboard import STATIC, router as dashboard_router
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(__package__):
            raise
        log.warning("the dashboard is not installed (%s); serving the API only", exc)
        return
    from fastapi.staticfiles import StaticFiles

    app.include_router(dashboard_router)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")


def create_app(settings: ServiceSettings, store, runner=None) -> FastAPI:
    """The service's ASGI app.

    Parameters
    ----------
    settings : ServiceSettings
        Roots, state folder, body size limit.
    store : JobStore
        The job database.
    runner : JobRunner, optional
        Told when a job arrives (``wake()``), if it has that method.
    """
    # no /docs or /redoc: FastAPI's pages load their JavaScript from a CDN, and nothing the
    # server answers may fetch from outside; the description stays at /openapi.json
    app = FastAPI(title="brainalign service", version=__version__, docs_url=None, redoc_url=None,
                  description="Brain-model alignment jobs: submit a study configuration, follow it, fetch its outputs.")
    app.state.settings, app.state.store, app.state.runner = settings, store, runner

    _install_errors(app)
    _routes_server(app, settings, store, runner)
    _routes_jobs(app, settings, store, runner)
    _include_dashboard(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
