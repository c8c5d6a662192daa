"""The job API over HTTP against a real ``brainalign serve`` (SQLite and PostgreSQL): a demo job
from submission to scores equal to ``brainalign run``, resubmission, isolation, auth, outputs."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _server import REPO, small_demo_config, wait_job

TSV = "text/tab-separated-values"
KEYS = ["subject", "session", "task", "model", "layer", "target", "method", "metric", "fold"]


@pytest.fixture(scope="module")
def alice(server) -> str:
    return server.token("alice")


@pytest.fixture(scope="module")
def demo_job(server, alice) -> dict:
    """The small demo job, submitted by alice and run to the end."""
    with server.client(alice) as c:
        r = c.post("/api/v1/jobs", json={"config": small_demo_config(), "name": "demo small"})
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["status"] in ("queued", "running") and job["name"] == "demo small" and job["user"] == "alice"
        done = wait_job(c, job["id"], timeout=1500)
    assert done["status"] == "succeeded", (done, server.log()[-3000:])
    return done


def _read_tsv(text_or_path) -> pd.DataFrame:
    src = io.StringIO(text_or_path) if isinstance(text_or_path, str) else text_or_path
    return pd.read_csv(src, sep="\t", dtype=str, keep_default_na=False)


def _cli_scores(out: Path) -> pd.DataFrame:
    files = sorted(out.glob("sub-*/*/sub-*_scores.tsv"))
    return pd.concat([_read_tsv(f) for f in files], ignore_index=True)


def _same_scores(got: pd.DataFrame, want: pd.DataFrame) -> None:
    keys = [k for k in KEYS if k in want.columns]
    assert list(got.columns) == list(want.columns)
    got = got.astype({k: str for k in keys}).sort_values(keys, ignore_index=True)
    want = want.astype({k: str for k in keys}).sort_values(keys, ignore_index=True)
    got["value"] = pd.to_numeric(got["value"], errors="coerce")
    want["value"] = pd.to_numeric(want["value"], errors="coerce")
    pd.testing.assert_frame_equal(got[keys], want[keys])
    alpha = want["metric"] == "alpha"
    assert alpha.any()
    np.testing.assert_array_equal(got.loc[alpha, "value"].to_numpy(float), want.loc[alpha, "value"].to_numpy(float))
    np.testing.assert_allclose(got["value"].to_numpy(float), want["value"].to_numpy(float), rtol=1e-5, atol=1e-6,
                               equal_nan=True)


def test_demo_job_progress_and_scores_equal_cli(server, alice, demo_job, cli_reference):
    job = demo_job
    p = job["progress"]
    assert p["participants_done"] == p["participants_total"] == 3
    assert p["layers_done"] == p["layers_total"] == 3 * 2 and p["tasks_done"] == p["tasks_total"] > 0
    assert [x["status"] for x in job["participants"]] == ["done"] * 3
    assert job["timings"]["running_s"] > 0 and job["started_at"] and job["finished_at"]
    want = _cli_scores(cli_reference)
    with server.client(alice) as c:
        tsv = c.get(f"/api/v1/jobs/{job['id']}/scores", headers={"Accept": TSV})
        assert tsv.status_code == 200 and tsv.headers["content-type"].startswith(TSV)
        _same_scores(_read_tsv(tsv.text), want)
        records = c.get(f"/api/v1/jobs/{job['id']}/scores").json()
        assert all(isinstance(r["value"], float) or r["value"] is None for r in records)
        _same_scores(pd.DataFrame.from_records(records), want)
        group = c.get(f"/api/v1/jobs/{job['id']}/scores", params={"level": "group"}, headers={"Accept": TSV})
        ref = (cli_reference / "group").glob("*_scores.tsv")
        assert group.status_code == 200 and group.text == next(ref).read_text()


def test_resubmission_returns_the_job_and_force_reruns_then_cancel(server, alice, demo_job):
    with server.client(alice) as c:
        again = c.post("/api/v1/jobs", json={"config": small_demo_config()})
        assert again.status_code == 200 and again.json()["id"] == demo_job["id"]
        forced = c.post("/api/v1/jobs", json={"config": small_demo_config(), "force": True, "name": "rerun"})
        assert forced.status_code == 201 and forced.json()["id"] != demo_job["id"]
        assert forced.json()["config_hash"] == demo_job["config_hash"]
        jid = forced.json()["id"]
        cancel = c.post(f"/api/v1/jobs/{jid}/cancel")
        assert cancel.status_code == 200 and cancel.json()["cancel_requested"] is True
        final = wait_job(c, jid, timeout=900)
        assert final["status"] == "cancelled" and "cancel" in (final["reason"] or "").lower()
        listed = [j["id"] for j in c.get("/api/v1/jobs").json()]
        assert listed.index(jid) < listed.index(demo_job["id"])  # newest first
        only = c.get("/api/v1/jobs", params={"status": "succeeded"}).json()
        assert demo_job["id"] in [j["id"] for j in only] and all(j["status"] == "succeeded" for j in only)


def test_users_are_isolated_and_admin_sees_all(server, alice, demo_job):
    jid = demo_job["id"]
    with server.client(server.token("bob")) as bob:
        for method, path in [("GET", f"/api/v1/jobs/{jid}"), ("POST", f"/api/v1/jobs/{jid}/cancel"),
                             ("GET", f"/api/v1/jobs/{jid}/scores"), ("GET", f"/api/v1/jobs/{jid}/files"),
                             ("GET", f"/api/v1/jobs/{jid}/files/dataset_description.json")]:
            r = bob.request(method, path)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["detail"] == f"no job {jid}"
        assert jid not in [j["id"] for j in bob.get("/api/v1/jobs").json()]
        # bob's own copy of the same study is his own job, not alice's
        mine = bob.post("/api/v1/jobs", json={"config": small_demo_config()})
        assert mine.status_code == 201 and mine.json()["id"] != jid
        bob.post(f"/api/v1/jobs/{mine.json()['id']}/cancel")
    with server.client(server.token("root", admin=True)) as admin:
        assert admin.get(f"/api/v1/jobs/{jid}").json()["user"] == "alice"
        assert jid in [j["id"] for j in admin.get("/api/v1/jobs").json()]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YTpi"},
                                     {"Authorization": "Bearer"}, {"Authorization": "Token abc"}])
def test_no_or_bad_token_is_401(server, headers):
    with server.client() as c:
        assert c.get("/api/v1/health").status_code == 200
        for path in ["/api/v1/jobs", "/api/v1/datasets", "/api/v1/models", "/api/v1/cache", "/metrics",
                     "/api/v1/jobs/0123456789abcdef0123456789abcdef"]:
            r = c.get(path, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (path, r.text)
            assert "token" in r.json()["detail"]
        r = c.post("/api/v1/jobs", json={"config": small_demo_config()}, headers=headers)
        assert r.status_code == 401


def test_files_listed_and_downloaded_byte_for_byte(server, alice, demo_job):
    folder = server.state_dir / "jobs" / demo_job["id"]
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    with server.client(alice) as c:
        listed = c.get(f"/api/v1/jobs/{demo_job['id']}/files").json()
        assert [f["path"] for f in listed] == on_disk
        assert any(f["path"].endswith(".html") for f in listed) and any("_scores.tsv" in f["path"] for f in listed)
        for f in listed:
            r = c.get(f"/api/v1/jobs/{demo_job['id']}/files/{f['path']}")
            assert r.status_code == 200 and r.content == (folder / f["path"]).read_bytes(), f
            assert len(r.content) == f["bytes"]
        for bad in ["%2e%2e/%2e%2e/brainalign.sqlite", "..%2f..%2fbrainalign.sqlite", "%2Fetc%2Fpasswd",
                    "sub-01/../../../brainalign.sqlite"]:
            r = c.get(f"/api/v1/jobs/{demo_job['id']}/files/{bad}")
            assert r.status_code in (403, 404) and "SQLite" not in r.text, (bad, r.status_code)
        assert c.get(f"/api/v1/jobs/{demo_job['id']}/files/no-such.tsv").status_code == 404


def test_datasets_models_cache_and_metrics(server, alice, demo_job):
    subjects = sorted(p.name[4:] for p in (REPO / "data").glob("sub-*") if p.is_dir())
    with server.client(alice) as c:
        ds = {d["path"]: d for d in c.get("/api/v1/datasets").json()}
        demo = ds[str((REPO / "data").resolve())]
        assert demo["participants"] == subjects and demo["tasks"] == ["story"]
        assert not any("outside" in p for p in ds)  # the symlink leading out of a root is not followed
        models = c.get("/api/v1/models").json()
        assert "packaged:minilm" in [m["path"] for m in models]
        cache = c.get("/api/v1/cache").json()
        stats = server.state_dir / "cache" / "stats"
        hits = sum(p.stat().st_size for p in (stats / "hits").iterdir())
        misses = (stats / "misses").stat().st_size
        assert cache["entries"] and cache["hits"] == hits >= 3 and cache["misses"] == misses >= 1
        assert sum(e["hits"] for e in cache["entries"]) == hits
        metrics = c.get("/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        values = dict(line.rsplit(" ", 1) for line in metrics.text.splitlines() if line and not line.startswith("#"))
        jobs = c.get("/api/v1/jobs").json()
        assert int(values['brainalign_jobs{status="succeeded"}']) >= 1
        assert int(values["brainalign_queue_length"]) >= 0 and int(values["brainalign_running_jobs"]) >= 0
        assert int(values["brainalign_job_duration_seconds_count"]) >= 1
        assert int(values["brainalign_cache_hits_total"]) >= hits and int(values["brainalign_cache_misses_total"]) >= misses
        assert len(jobs) >= 1
