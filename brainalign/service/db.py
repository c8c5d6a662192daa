"""The job database: SQLAlchemy 2 tables, engines, and the alembic migrations that create them.

Tables: ``users`` (names), ``tokens`` (the SHA-256 of each API token, never the
token), ``jobs`` (one study configuration each, its status, progress and timings)
and ``job_participants`` (each participant x model of a job, with its status and
one-line reason). Times are seconds since the epoch (UTC), as floats.

:func:`upgrade` brings a database to the newest schema with alembic (the scripts
are in ``brainalign/service/migrations``); it is safe to call on every start, and
from two processes at once.
"""
from __future__ import annotations

import contextlib
import fcntl
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ..errors import ServiceError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_ID = 0x6272_616E  # an arbitrary constant: the advisory lock that serialises upgrades

metadata = sa.MetaData()

users = sa.Table(
    "users", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

tokens = sa.Table(
    "tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    sa.Column("admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("cancelled_by", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("tasks_done", sa.Integer, nullable=False, default=0),
    sa.Column("tasks_total", sa.Integer, nullable=False, default=0),
    sa.Column("participants_done", sa.Integer, nullable=False, default=0),
    sa.Column("participants_total", sa.Integer, nullable=False, default=0),
    sa.Column("layers_done", sa.Integer, nullable=False, default=0),
    sa.Column("layers_total", sa.Integer, nullable=False, default=0),
    sa.Index("ix_jobs_user_hash", "user_name", "config_hash"),
)

job_participants = sa.Table(
    "job_participants", metadata,
    sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("subject", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
)


def normalize_url(database_url: str) -> sa.URL:
    """The SQLAlchemy URL of ``database_url``; ``postgresql://`` gets the psycopg (v3) driver.

    Raises
    ------
    ServiceError
        When the text is not a database URL.
    """
    try:
        url = make_url(str(database_url))
    except ArgumentError:
        raise ServiceError(f"--database {database_url!r}: not a database URL "
                           "(sqlite:///PATH or postgresql://USER@HOST:PORT/DB)") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ServiceError(f"--database {url.render_as_string(hide_password=True)}: only SQLite (sqlite:///PATH) "
                           "and PostgreSQL (postgresql://...) are supported")
    return url


def is_sqlite(engine_or_url) -> bool:
    """Whether an engine or URL is SQLite's."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else normalize_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL (readers never wait for the writer), a busy timeout, foreign keys; explicit BEGINs.

    pysqlite's own transaction handling is turned off so that a write transaction
    can start with ``BEGIN IMMEDIATE`` (the connection option ``brainalign_write``):
    it then waits for the write lock up front instead of failing half-way.
    """
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("brainalign_write") else "BEGIN")


def engine_for(database_url: str) -> Engine:
    """A new engine for ``database_url`` (SQLite: WAL, shared across threads; the folder is made).

    Raises
    ------
    ServiceError
        For a URL that is not one or whose driver is not installed.
    """
    url = normalize_url(database_url)
    try:
        if url.get_backend_name() == "sqlite":
            memory = url.database in (None, "", ":memory:")
            if not memory:
                folder = Path(url.database).expanduser().parent
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ServiceError(f"--database {url}: cannot make the folder {folder} "
                                       f"({exc.strerror or exc})") from None
            kw = {"poolclass": sa.pool.StaticPool} if memory else {}
            engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)
            _sqlite_pragmas(engine)
            return engine
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except (NoSuchModuleError, ArgumentError) as exc:
        raise ServiceError(f"--database {url.render_as_string(hide_password=True)}: {exc}") from None


def alembic_config():
    """The alembic configuration of the service's migrations, built in code (no alembic.ini)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@contextlib.contextmanager
def _upgrade_lock(engine: Engine):
    """Serialise upgrades across processes: a lock file beside a SQLite file; otherwise nothing extra
    (PostgreSQL takes an advisory lock inside the migration transaction)."""
    db = engine.url.database if is_sqlite(engine) else None
    if not db or db == ":memory:":
        yield
        return
    with open(Path(db).expanduser().with_name(Path(db).name + ".lock"), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_UPGRADE_THREAD_LOCK = threading.Lock()


def upgrade(database_url: str | Engine) -> None:
    """Bring the database to the newest schema (a no-op when it is there already).

    Parameters
    ----------
    database_url : str or Engine
        The database, as given to ``--database``, or an engine made by :func:`engine_for`.

    Raises
    ------
    ServiceError
        When the database cannot be reached or upgraded (one line, the URL without password).
    """
    from alembic import command

    engine = database_url if isinstance(database_url, Engine) else engine_for(database_url)
    cfg = alembic_config()
    where = engine.url.render_as_string(hide_password=True)
    try:
        with _UPGRADE_THREAD_LOCK, _upgrade_lock(engine), engine.connect() as conn:
            conn = conn.execution_options(brainalign_write=True)
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise ServiceError(f"--database {where}: cannot use the database ({detail})") from None
    finally:
        if not isinstance(database_url, Engine):
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The alembic revision the database is at (None before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
