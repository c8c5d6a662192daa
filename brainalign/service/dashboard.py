"""The dashboard: server-rendered HTML shells at ``/``, ``/jobs/{id}``, ``/submit``, ``/datasets``,
``/models`` and ``/cache``, and Plotly's JavaScript at ``/static/plotly.min.js``.

The pages hold no data: the little plain JavaScript in ``static/`` fetches
everything from the JSON API with the bearer token the user typed on the login
form (kept in the tab's ``sessionStorage``), and writes it into the page with
``textContent`` only. So the HTML routes need no authentication and leak nothing;
the one value a page is rendered with (the job id from the URL) goes through
jinja2's autoescaping. The authenticated routes the job page needs beyond the
core API (configuration, layer curves, brain maps) are in :mod:`.dashboard_api`
and included here, so ``create_app`` includes one router.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from ..errors import ServiceError
from .dashboard_api import router as api_router

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
NAV = (("/", "Jobs"), ("/submit", "Submit"), ("/datasets", "Datasets"), ("/models", "Models"), ("/cache", "Cache"))

router = APIRouter()
router.include_router(api_router)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def render(template: str, **context) -> HTMLResponse:
    """One dashboard page: ``templates/<template>`` rendered with ``context`` (autoescaped)."""
    html = _environment().get_template(template).render(nav=NAV, **context)
    return HTMLResponse(html, headers=PAGE_HEADERS)


@lru_cache(maxsize=1)
def plotly_js_path() -> Path:
    """``plotly.min.js`` as shipped in the installed plotly package's package data.

    Raises
    ------
    ServiceError
        When the installed plotly has no ``package_data/plotly.min.js``.
    """
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise ServiceError(f"the installed plotly {plotly.__version__} has no {path}: reinstall plotly")
    return path


@router.get("/static/plotly.min.js", include_in_schema=False)
def plotly_js() -> FileResponse:
    """Plotly's browser bundle, from the installed Python package (never a CDN)."""
    return FileResponse(plotly_js_path(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def jobs_page() -> HTMLResponse:
    """Log in with a token, then the caller's jobs with live status and progress."""
    return render("jobs.html", title="Jobs", page="jobs")


@router.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
def job_page(job_id: str) -> HTMLResponse:
    """One job: settings, participants, layer curves, brain maps and output files."""
    return render("job.html", title="Job", page="job", job_id=job_id)


@router.get("/submit", response_class=HTMLResponse, include_in_schema=False)
def submit_page() -> HTMLResponse:
    """Paste or upload a YAML configuration, or build one from a dataset and a model."""
    return render("submit.html", title="Submit a job", page="submit")


@router.get("/datasets", response_class=HTMLResponse, include_in_schema=False)
def datasets_page() -> HTMLResponse:
    """The BIDS datasets under the server's data roots."""
    return render("listing.html", title="Datasets", page="datasets", endpoint="/api/v1/datasets")


@router.get("/models", response_class=HTMLResponse, include_in_schema=False)
def models_page() -> HTMLResponse:
    """The models jobs may use on this server."""
    return render("listing.html", title="Models", page="models", endpoint="/api/v1/models")


@router.get("/cache", response_class=HTMLResponse, include_in_schema=False)
def cache_page() -> HTMLResponse:
    """The shared activation cache: entries, sizes, hits."""
    return render("listing.html", title="Activation cache", page="cache", endpoint="/api/v1/cache")
