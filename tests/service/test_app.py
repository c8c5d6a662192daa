"""The ASGI app in process (no server, no jobs): what it serves without a token."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from brainalign.service.app import create_app
from brainalign.service.settings import ServiceSettings, default_database_url
from brainalign.service.store import JobStore


@pytest.fixture
def app_client(tmp_path):
    settings = ServiceSettings(state_dir=tmp_path, database_url=default_database_url(tmp_path),
                               data_roots=(tmp_path,), model_roots=())
    store = JobStore(settings.database_url)
    try:
        with TestClient(create_app(settings, store)) as client:
            yield client
    finally:
        store.close()


def test_openapi_served_but_no_docs_pages_that_load_a_cdn(app_client):
    r = app_client.get("/openapi.json")
    assert r.status_code == 200 and "/api/v1/jobs" in r.json()["paths"]
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert app_client.get(path).status_code == 404, path
