"""Service test fixtures: the database each module runs against (SQLite and PostgreSQL).

``database_url`` is parametrized over ``sqlite`` (None: the server's own SQLite
file in its state dir) and ``postgresql`` (a fresh database per module, created on
the server named by ``BRAINALIGN_TEST_DATABASE_URL`` and dropped afterwards; the
tests skip with the reason when that variable is unset).
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import start_server  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _sqlalchemy_url(url: str) -> str:
    """The admin URL with the psycopg (3) driver, which is what the environment ships."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def create_pg_database() -> tuple[str, callable]:
    """A fresh database ``brainalign_t_<hex>``: its URL and a function that drops it."""
    admin = os.environ.get("BRAINALIGN_TEST_DATABASE_URL")
    if not admin:
        pytest.skip("BRAINALIGN_TEST_DATABASE_URL is not set (PostgreSQL tests need a server; .ci/run sets it)")
    import sqlalchemy as sa

    name = f"brainalign_t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(_sqlalchemy_url(admin), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return _with_database(admin, name), drop


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request):
    """None (SQLite in the server's state dir) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    url, drop = create_pg_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, database_url):
    """One real ``brainalign serve`` per module and database (data root: the repository's data/)."""
    srv = start_server(tmp_path_factory.mktemp("service"), database_url=database_url)
    try:
        yield srv
    finally:
        srv.stop()
