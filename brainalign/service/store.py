"""The job store: users and their tokens, jobs, their progress and participants, in one database.

Every method is one short transaction and may be called from any thread. Writes
start with ``BEGIN IMMEDIATE`` on SQLite (WAL: readers are never blocked by them)
and lock the submitting user's row on PostgreSQL, so concurrent submits of the same
configuration still give one job. Tokens are stored as their SHA-256 only.

The job dictionaries returned are what the HTTP API answers (see :func:`job_json`).
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import sqlalchemy as sa

from ..errors import ServiceError
from . import db
from .jobjson import FINISHED, PROGRESS_COLUMNS, STATUSES, job_json
from .runstate import RunState

__all__ = ["JobStore", "User", "STATUSES", "FINISHED", "hash_token"]

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_JOB_ID = re.compile(r"[0-9a-f]{32}")
MAX_NAME = 200


@dataclass(frozen=True)
class User:
    """An authenticated caller: a user name and whether the token is an admin's (sees every job)."""

    name: str
    admin: bool = False


def hash_token(token: str) -> str:
    """SHA-256 (hex) of an API token: what the database keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_user_name(name: str) -> str:
    """``name`` if it is a usable user name (letters, digits, ``._@-``; at most 64), else ServiceError."""
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise ServiceError(f"user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-' "
                           "(starting with a letter or digit)")
    return name


class JobStore(RunState):
    """Users, tokens and jobs in the database at ``database_url`` (created or upgraded on open).

    Parameters
    ----------
    database_url : str
        ``sqlite:///PATH`` or ``postgresql://USER@HOST:PORT/DB`` (psycopg 3 driver).

    The runner's methods (claiming, progress, finishing) come from
    :class:`~brainalign.service.runstate.RunState`.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.engine = db.engine_for(database_url)
        db.upgrade(self.engine)
        self._sqlite = db.is_sqlite(self.engine)
        self._write_lock = threading.Lock() if self._sqlite else None

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # ------------------------------------------------------------ transactions
    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(brainalign_write=True)
                with conn.begin():
                    yield conn
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    # ------------------------------------------------------------------ users
    def _ensure_user(self, conn: sa.Connection, name: str, *, lock: bool = False) -> None:
        """Create the user row if missing (concurrent callers are fine); ``lock``: hold it (PostgreSQL)."""
        if self._sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        conn.execute(insert(db.users).values(name=name, created_at=time.time()).on_conflict_do_nothing())
        if lock and not self._sqlite:
            conn.execute(sa.select(db.users.c.name).where(db.users.c.name == name).with_for_update())

    def create_token(self, user: str, admin: bool = False) -> str:
        """A new random API token for ``user`` (created if new); only its hash is stored.

        ``admin`` marks this token as an admin's: it sees every user's jobs.
        """
        check_user_name(user)
        token = secrets.token_urlsafe(32)
        with self._write() as conn:
            self._ensure_user(conn, user)
            conn.execute(db.tokens.insert().values(token_hash=hash_token(token), user_name=user,
                                                   admin=bool(admin), created_at=time.time()))
        return token

    def authenticate(self, token: str | None) -> User | None:
        """The user of ``token``, or None for a missing, malformed or unknown token."""
        if not isinstance(token, str) or not 16 <= len(token) <= 256 or not token.isascii():
            return None
        digest = hash_token(token)
        with self._read() as conn:
            row = conn.execute(sa.select(db.tokens.c.user_name, db.tokens.c.admin, db.tokens.c.token_hash)
                               .where(db.tokens.c.token_hash == digest)).first()
        if row is None or not secrets.compare_digest(row.token_hash, digest):
            return None
        return User(row.user_name, bool(row.admin))

    # ------------------------------------------------------------------- jobs
    def submit(self, user: User, config: dict, config_hash: str, name: str | None = None,
               force: bool = False) -> tuple[dict, bool]:
        """Queue a job, or return the user's newest job of the same configuration.

        Returns
        -------
        (job, created) : (dict, bool)
            ``created`` is False when ``user`` already has a job with ``config_hash``
            that did not fail and was not cancelled (and ``force`` is False).
        """
        if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
            raise ServiceError(f"name: at most {MAX_NAME} characters")
        check_user_name(user.name)
        blob = json.dumps(config, sort_keys=True)
        with self._write() as conn:
            self._ensure_user(conn, user.name, lock=True)
            if not force:
                row = conn.execute(sa.select(db.jobs).where(
                    db.jobs.c.user_name == user.name, db.jobs.c.config_hash == config_hash,
                    db.jobs.c.status.not_in(("failed", "cancelled"))).order_by(db.jobs.c.seq.desc()).limit(1)).first()
                if row is not None:
                    return self._json(conn, [row])[0], False
            job_id = uuid.uuid4().hex
            conn.execute(db.jobs.insert().values(
                id=job_id, name=name, user_name=user.name, status="queued", config_hash=config_hash, config=blob,
                created_at=time.time(), cancel_requested=False, attempts=0,
                **dict.fromkeys(PROGRESS_COLUMNS, 0)))
            row = conn.execute(sa.select(db.jobs).where(db.jobs.c.id == job_id)).first()
            return self._json(conn, [row])[0], True

    def list_jobs(self, user: User, status: str | None = None, limit: int | None = None) -> list[dict]:
        """The jobs ``user`` may see (an admin: everyone's), newest first, optionally of one status."""
        q = sa.select(db.jobs).order_by(db.jobs.c.seq.desc())
        if not user.admin:
            q = q.where(db.jobs.c.user_name == user.name)
        if status is not None:
            q = q.where(db.jobs.c.status == status)
        if limit is not None:
            q = q.limit(int(limit))
        with self._read() as conn:
            return self._json(conn, conn.execute(q).all())

    def get_job(self, user: User, job_id: str) -> dict | None:
        """The job, or None when it does not exist or belongs to another user (admins see all)."""
        with self._read() as conn:
            row = self._visible(conn, user, job_id)
            return None if row is None else self._json(conn, [row])[0]

    def request_cancel(self, user: User, job_id: str) -> dict | None:
        """Cancel a job: a queued one at once, a running one at its next task boundary.

        Returns the job (None as in :meth:`get_job`); a finished job is returned unchanged.
        """
        now = time.time()
        with self._write() as conn:
            row = self._visible(conn, user, job_id)
            if row is None:
                return None
            c = db.jobs.c
            if row.status == "queued":
                conn.execute(db.jobs.update().where(c.id == job_id, c.status == "queued").values(
                    status="cancelled", cancel_requested=True, cancelled_by=user.name, finished_at=now,
                    reason=f"cancelled by {user.name} before it started"))
            elif row.status == "running" and not row.cancel_requested:
                conn.execute(db.jobs.update().where(c.id == job_id).values(cancel_requested=True,
                                                                             cancelled_by=user.name))
            row = conn.execute(sa.select(db.jobs).where(c.id == job_id)).first()
            return self._json(conn, [row])[0]

    def job_config(self, job_id: str) -> dict:
        """The configuration a job was submitted with (KeyError for an unknown id)."""
        with self._read() as conn:
            blob = conn.execute(sa.select(db.jobs.c.config).where(db.jobs.c.id == job_id)).scalar()
        if blob is None:
            raise KeyError(job_id)
        return json.loads(blob)

    def job(self, job_id: str) -> dict | None:
        """Any job by id, whoever owns it (for the runner and the server's own use)."""
        with self._read() as conn:
            row = conn.execute(sa.select(db.jobs).where(db.jobs.c.id == job_id)).first()
            return None if row is None else self._json(conn, [row])[0]

    def counts(self) -> dict:
        """For the metrics: ``queued``, ``running``, ``by_status`` (every status) and
        ``durations_s`` (running seconds of each finished job)."""
        c = db.jobs.c
        with self._read() as conn:
            by = dict(conn.execute(sa.select(c.status, sa.func.count()).group_by(c.status)).all())
            durations = [float(f - s) for s, f in conn.execute(
                sa.select(c.started_at, c.finished_at).where(c.started_at.is_not(None), c.finished_at.is_not(None)))]
        by_status = {s: int(by.get(s, 0)) for s in STATUSES}
        return {"queued": by_status["queued"], "running": by_status["running"], "by_status": by_status,
                "durations_s": durations}

    # --------------------------------------------------------------- helpers
    def _visible(self, conn: sa.Connection, user: User, job_id: str):
        if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
            return None
        q = sa.select(db.jobs).where(db.jobs.c.id == job_id)
        if not user.admin:
            q = q.where(db.jobs.c.user_name == user.name)
        return conn.execute(q).first()

    def _json(self, conn: sa.Connection, rows) -> list[dict]:
        ids = [r.id for r in rows]
        parts: dict[str, list] = {i: [] for i in ids}
        if ids:
            p = db.job_participants
            for r in conn.execute(sa.select(p).where(p.c.job_id.in_(ids)).order_by(p.c.subject, p.c.model)):
                parts[r.job_id].append(r)
        now = time.time()
        return [job_json(r, parts[r.id], now) for r in rows]


