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


@pytest.mark.parametrize("route", ["", "/config", "/curves", "/brainmaps", "/brainmap?layer=1"])
def test_core_and_dashboard_routes_check_the_token_alike(app_client, route):
    store = app_client.app.state.store
    alice, bob = store.create_token("alice"), store.create_token("bob")
    from brainalign.service.store import User

    job, _ = store.submit(User("alice"), {"name": "x"}, "0" * 64)
    url = f"/api/v1/jobs/{job['id']}{route}"
    assert app_client.get(url).status_code == 401
    r = app_client.get(url, headers={"Authorization": "Bearer not-a-valid-token-at-all"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert app_client.get(url, headers={"Authorization": f"Bearer {bob}"}).status_code == 404
    r = app_client.get(url, headers={"Authorization": f"Bearer {alice}"})
    assert r.status_code in (200, 404) and r.json().get("detail", "") != f"no job {job['id']}"
