"""Service test fixtures: the database each module runs against (SQLite and PostgreSQL).

``database_url`` (package scope: one shared server per database) and
``own_database_url`` (module scope) are parametrized over ``sqlite`` (None: the server's own SQLite
file in its state dir) and ``postgresql`` (a fresh database per module, created on
the server named by ``BRAINALIGN_TEST_DATABASE_URL`` and dropped afterwards; the
tests skip with the reason when that variable is unset).
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import CLI, REPO, service_env, small_demo_config, start_server  # noqa: E402

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


def _database(kind: str):
    if kind == "sqlite":
        yield None
        return
    url, drop = create_pg_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def database_url(request):
    """None (SQLite in the server's state dir) or the URL of a fresh PostgreSQL database; the one
    :func:`server` shared by the API test modules uses."""
    yield from _database(request.param)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def own_database_url(request):
    """Like :func:`database_url`, but a database of the module's own (for modules that start,
    kill and restart their own servers)."""
    yield from _database(request.param)


@pytest.fixture(scope="package")
def outside(tmp_path_factory) -> Path:
    """A folder outside every data root, with a file in it (what a job must never read)."""
    folder = tmp_path_factory.mktemp("outside")
    (folder / "secret.txt").write_text("not for jobs")
    return folder


@pytest.fixture(scope="package")
def extra_root(tmp_path_factory, outside) -> Path:
    """A second data root holding a symlink that points out of it (``escape`` -> :func:`outside`)."""
    root = tmp_path_factory.mktemp("extra-root")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return root


@pytest.fixture(scope="package")
def server(tmp_path_factory, database_url, extra_root):
    """One real ``brainalign serve`` per database, shared by the API test modules; data roots: the
    repository's data/ and :func:`extra_root`. Each module uses its own user names."""
    srv = start_server(tmp_path_factory.mktemp("service"), database_url=database_url,
                       data_roots=(REPO / "data", extra_root))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def cli_reference(tmp_path_factory) -> Path:
    """The output folder of ``brainalign run`` of :func:`small_demo_config` (own activation cache)."""
    import yaml

    base = tmp_path_factory.mktemp("cli-reference")
    cfg = base / "demo-small.yaml"
    cfg.write_text(yaml.safe_dump(small_demo_config()))
    env = dict(service_env(), BRAINALIGN_CACHE=str(base / "cache"))
    res = subprocess.run(CLI + ["run", str(cfg), "--output", str(base / "out"), "--quiet"], capture_output=True,
                         text=True, env=env, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    return base / "out"


@pytest.fixture(scope="session")
def demo_cache(cli_reference) -> Path:
    """The activation cache :func:`cli_reference` filled (the packaged MiniLM on the demo story): the seed of
    the servers whose tests are not about computing activations (``start_server(seed_cache=...)``), so each
    of them does not run the model over the story again. The API servers start cold (they check the misses)."""
    return cli_reference.parent / "cache"
