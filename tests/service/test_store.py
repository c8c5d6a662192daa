"""The job store against real databases: SQLite files and a fresh PostgreSQL database.

PostgreSQL: one database ``brainalign_t_<hex>`` per module on the server named by
``BRAINALIGN_TEST_DATABASE_URL`` (dropped afterwards); each test starts from an
empty ``public`` schema. Without the variable those cases skip with the reason.
"""
from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from brainalign.errors import ServiceError
from brainalign.service import db
from brainalign.service.store import JobStore, User

JOB_KEYS = {"id", "name", "user", "status", "config_hash", "created_at", "started_at", "finished_at",
            "cancel_requested", "reason", "progress", "participants", "timings"}
PROGRESS_KEYS = {"tasks_done", "tasks_total", "participants_done", "participants_total", "layers_done",
                 "layers_total"}


def _admin_url() -> str:
    url = os.environ.get("BRAINALIGN_TEST_DATABASE_URL")
    if not url:
        pytest.skip("BRAINALIGN_TEST_DATABASE_URL is not set (PostgreSQL tests need a server; .ci/run sets it)")
    return url


@pytest.fixture(scope="module")
def pg_database():
    """A fresh PostgreSQL database for this module: its URL (plain ``postgresql://``, as a user gives it)."""
    admin = _admin_url()
    name = f"brainalign_t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(db.normalize_url(admin), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """An empty database: a new SQLite file, or the module's PostgreSQL database with an empty schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'brainalign.sqlite'}"
    pg = request.getfixturevalue("pg_database")
    engine = db.engine_for(pg)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return pg


@pytest.fixture
def store(url):
    s = JobStore(url)
    yield s
    s.close()


def _submit(store, user, h, **kw):
    return store.submit(user, {"name": h}, h, kw.pop("name", None), kw.pop("force", False))


# ------------------------------------------------------------------ migrations
def test_migrations_apply_and_upgrade_twice_is_a_noop(url):
    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    engine = db.engine_for(url)
    try:
        assert db.current_revision(engine) is None
        db.upgrade(url)
        assert db.current_revision(engine) == head
        with engine.begin() as conn:
            conn.execute(db.users.insert().values(name="kept", created_at=1.0))
        db.upgrade(url)
        assert db.current_revision(engine) == head
        with engine.connect() as conn:
            assert conn.execute(sa.select(db.users.c.name)).scalars().all() == ["kept"]
            from alembic.autogenerate import compare_metadata
            from alembic.migration import MigrationContext

            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"the migrations and db.py's tables disagree: {diff}"
    finally:
        engine.dispose()


def test_database_errors_are_one_line(tmp_path):
    with pytest.raises(ServiceError, match="not a database URL"):
        JobStore("nonsense")
    with pytest.raises(ServiceError, match="only SQLite"):
        JobStore("mysql://u@localhost/x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ServiceError, match="cannot make the folder"):
        JobStore(f"sqlite:///{blocker}/sub/db.sqlite")


# ---------------------------------------------------------------------- tokens
def test_only_the_token_hash_is_stored(store):
    token = store.create_token("alice")
    dump = []
    with store.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            dump += [repr(tuple(r)) for r in conn.execute(sa.select(table))]
        hashes = conn.execute(sa.select(db.tokens.c.token_hash)).scalars().all()
    assert token not in "\n".join(dump)
    assert hashes == [hashlib.sha256(token.encode()).hexdigest()]
    if store.engine.url.get_backend_name() == "sqlite":  # the file itself, WAL included
        folder = Path(store.engine.url.database).parent
        raw = b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())
        assert token.encode() not in raw


def test_authenticate_good_and_bad_tokens(store):
    alice = store.create_token("alice")
    root = store.create_token("root", admin=True)
    assert alice != store.create_token("alice")  # every token is new
    assert store.authenticate(alice) == User("alice", False)
    assert store.authenticate(root) == User("root", True)
    tampered = alice[:-1] + ("A" if alice[-1] != "A" else "B")
    for bad in (tampered, "", None, "x" * 43, alice + "x", "é" * 30, "x" * 5000, 12345):
        assert store.authenticate(bad) is None, bad
    with pytest.raises(ServiceError, match="user name"):
        store.create_token("bad name")


# --------------------------------------------------------------------- jobs
def test_job_json_has_the_contract_keys(store):
    job, created = _submit(store, User("alice"), "h1", name="first")
    assert created and set(job) == JOB_KEYS and set(job["progress"]) == PROGRESS_KEYS
    assert (job["status"], job["user"], job["name"], job["config_hash"]) == ("queued", "alice", "first", "h1")
    assert job["started_at"] is None and job["finished_at"] is None and job["participants"] == []
    assert len(job["id"]) == 32 and int(job["id"], 16) >= 0
    assert job["created_at"].endswith("+00:00") and job["timings"]["running_s"] is None
    assert store.job_config(job["id"]) == {"name": "h1"}


def test_users_are_isolated_and_admins_see_all(store):
    alice, bob, root = User("alice"), User("bob"), User("root", admin=True)
    job, _ = _submit(store, alice, "h1")
    assert store.get_job(alice, job["id"])["id"] == job["id"]
    assert store.get_job(bob, job["id"]) is None
    assert store.request_cancel(bob, job["id"]) is None
    assert store.get_job(alice, job["id"])["status"] == "queued"  # bob's cancel did nothing
    assert store.list_jobs(bob) == []
    assert [j["id"] for j in store.list_jobs(root)] == [job["id"]]
    assert store.get_job(root, job["id"])["user"] == "alice"
    for unknown in (uuid.uuid4().hex, "../etc", "", "x" * 32):
        assert store.get_job(alice, unknown) is None


def test_resubmission_returns_the_job_unless_forced(store):
    alice, bob = User("alice"), User("bob")
    first, created = _submit(store, alice, "h1")
    again, created2 = _submit(store, alice, "h1")
    assert created and not created2 and again["id"] == first["id"]
    forced, created3 = _submit(store, alice, "h1", force=True)
    assert created3 and forced["id"] != first["id"]
    assert _submit(store, alice, "h1")[0]["id"] == forced["id"]  # the newest one
    assert _submit(store, bob, "h1")[1]  # another user's same configuration is a new job
    assert _submit(store, alice, "h2")[1]
    # a failed or cancelled job does not count: resubmitting runs again
    store.request_cancel(alice, forced["id"])
    assert _submit(store, alice, "h1")[0]["id"] == first["id"]
    store.request_cancel(alice, first["id"])
    fresh, created4 = _submit(store, alice, "h1")
    assert created4 and fresh["id"] not in (first["id"], forced["id"])


def test_list_newest_first_and_by_status(store):
    alice = User("alice")
    ids = [_submit(store, alice, f"h{i}")[0]["id"] for i in range(4)]
    assert [j["id"] for j in store.list_jobs(alice)] == ids[::-1]
    claimed = store.claim_next(10)
    assert claimed == ids[0]
    assert [j["id"] for j in store.list_jobs(alice, status="running")] == [ids[0]]
    assert [j["id"] for j in store.list_jobs(alice, status="queued")] == ids[1:][::-1]
    assert store.list_jobs(alice, status="succeeded") == []
    assert [j["id"] for j in store.list_jobs(alice, limit=2)] == ids[::-1][:2]
    counts = store.counts()
    assert (counts["queued"], counts["running"], sum(counts["by_status"].values())) == (3, 1, 4)


def test_cancel_queued_running_and_finished(store):
    alice = User("alice")
    queued, _ = _submit(store, alice, "q")
    out = store.request_cancel(alice, queued["id"])
    assert out["status"] == "cancelled" and out["cancel_requested"] and "alice" in out["reason"]
    running, _ = _submit(store, alice, "r")
    assert store.claim_next(5) == running["id"]
    assert store.is_cancel_requested(running["id"]) is None
    out = store.request_cancel(User("root", admin=True), running["id"])
    assert out["status"] == "running" and out["cancel_requested"]
    assert store.is_cancel_requested(running["id"]) == "root"
    store.finish(running["id"], "cancelled", "cancelled by root at a task boundary")
    done = store.get_job(alice, running["id"])
    assert done["status"] == "cancelled" and done["finished_at"] is not None
    assert store.request_cancel(alice, running["id"])["status"] == "cancelled"


def test_claims_in_order_and_at_most_k_per_user(store):
    alice, bob = User("alice"), User("bob")
    a = [_submit(store, alice, f"a{i}")[0]["id"] for i in range(3)]
    b = _submit(store, bob, "b0")[0]["id"]
    assert [store.claim_next(2) for _ in range(4)] == [a[0], a[1], b, None]
    store.finish(a[0], "succeeded")
    assert store.claim_next(2) == a[2]
    assert store.get_job(alice, a[2])["started_at"] is not None


def test_running_jobs_are_requeued_on_start(store, url):
    alice = User("alice")
    j1 = _submit(store, alice, "h1")[0]["id"]
    j2 = _submit(store, alice, "h2")[0]["id"]
    assert store.claim_next(5) == j1 and store.claim_next(5) == j2
    store.request_cancel(alice, j2)
    reopened = JobStore(url)  # what a restarted server opens
    try:
        assert reopened.requeue_running() == [j1]
        job = reopened.get_job(alice, j1)
        assert job["status"] == "queued" and job["started_at"] is None and "re-queued" in job["reason"]
        assert reopened.get_job(alice, j2)["status"] == "cancelled"
        assert reopened.claim_next(5) == j1
    finally:
        reopened.close()


def test_progress_is_recorded_honestly(store):
    alice = User("alice")
    jid = _submit(store, alice, "h")[0]["id"]
    store.claim_next(5)
    plan = {"kind": "planned", "tasks": 3, "pending": [["01", "m"], ["02", "m"], ["03", "m"]],
            "skipped": [["04", "m"]], "failed": {"03": "MissingDataError: no bold file"}}
    store.record_plan(jid, plan, {"m": 2})
    p = store.get_job(alice, jid)["progress"]
    assert p == {"tasks_done": 0, "tasks_total": 3, "participants_done": 1, "participants_total": 4,
                 "layers_done": 0, "layers_total": 4}
    store.record_task(jid, {"kind": "task", "done": 1, "total": 3, "subject": "01", "model": "m", "layers": [1, 5],
                            "error": None})
    store.record_participant(jid, "01", "m")
    store.record_task(jid, {"kind": "task", "done": 2, "total": 3, "subject": "02", "model": "m", "layers": [1, 5],
                            "error": "CorruptFileError: truncated\nsecond line"})
    store.finish(jid, "partial", "2 of 4 participants failed")
    job = store.get_job(alice, jid)
    assert job["progress"]["tasks_done"] == 2 and job["progress"]["layers_done"] == 2
    assert job["progress"]["participants_done"] == 2
    parts = {p["subject"]: (p["status"], p["reason"]) for p in job["participants"]}
    assert parts == {"01": ("done", None), "02": ("failed", "CorruptFileError: truncated second line"),
                     "03": ("failed", "MissingDataError: no bold file"), "04": ("skipped", None)}
    assert job["status"] == "partial" and job["timings"]["running_s"] >= 0


# ----------------------------------------------------------------- threads
def test_concurrent_submits_from_threads(store):
    store.create_token("alice")
    n, results, errors = 8, [], []
    barrier = threading.Barrier(n * 2)

    def same(user):
        try:
            barrier.wait()
            results.append(store.submit(user, {"x": 1}, "same", None, False))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    def distinct(i):
        try:
            barrier.wait()
            store.submit(User("carol"), {"x": i}, f"h{i}", None, False)  # carol has no token: created on the fly
            store.list_jobs(User("carol"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=same, args=(User("alice"),)) for _ in range(n)]
    threads += [threading.Thread(target=distinct, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(created for _, created in results) == 1
    assert len({job["id"] for job, _ in results}) == 1
    assert len(store.list_jobs(User("carol"))) == n
