"""Never lose a job: ``kill -9`` of the whole server (and its Dask workers) in the middle of a job,
a restart on the same state folder and database, and the job ends with every output file
byte-identical to an uninterrupted ``brainalign run`` of the same configuration, HTML reports
included (their nilearn viewers get ids drawn from the content, not at random)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from _server import small_demo_config, start_server, wait_job


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, byte for byte (reports included: their viewer ids are stable)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _kill_after_first_participant(srv, token: str) -> tuple[str, dict]:
    """Submit the small demo, SIGKILL the server group once one participant is written (not all)."""
    with srv.client(token) as c:
        jid = c.post("/api/v1/jobs", json={"config": small_demo_config()}).json()["id"]
        deadline = time.monotonic() + 1500
        while time.monotonic() < deadline:
            job = c.get(f"/api/v1/jobs/{jid}").json()
            if job["status"] != "running" and job["status"] != "queued":
                pytest.fail(f"the job ended before the kill: {job}")
            if job["progress"]["participants_done"] >= 1:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"no participant written in time: {job}")
    srv.kill()
    return jid, job


def test_kill_9_during_a_job_then_restart_finishes_byte_identical(tmp_path, own_database_url, cli_reference, demo_cache):
    srv = start_server(tmp_path, database_url=own_database_url, seed_cache=demo_cache)
    try:
        token = srv.token("dave")
        jid, at_kill = _kill_after_first_participant(srv, token)
    finally:
        srv.kill()
    assert srv.proc.returncode is not None and srv.proc.returncode < 0  # killed, not stopped
    folder = srv.state_dir / "jobs" / jid
    written = {p: p.stat().st_mtime_ns for p in folder.glob("sub-*/*/*") if p.is_file()}
    done_before = {x["subject"] for x in at_kill["participants"] if x["status"] == "done"}
    assert written and done_before and at_kill["progress"]["participants_done"] < 3
    again = srv.restart()
    try:
        with again.client(token) as c:
            final = wait_job(c, jid, timeout=1500)
        assert final["status"] == "succeeded", (final, again.log()[-3000:])
        status = {x["subject"]: x["status"] for x in final["participants"]}
        # resumed: the participants written before the kill are skipped (their outputs kept), the rest done
        assert status == {s: "skipped" if s in done_before else "done" for s in status} and len(status) == 3
    finally:
        assert again.stop() == 0, again.log()[-3000:]
    # the participants written before the kill were resumed (kept), not computed again
    assert {p: p.stat().st_mtime_ns for p in written} == written
    got, want = _files(folder), _files(cli_reference)
    assert sorted(got) == sorted(want)
    differ = [name for name in want if got[name] != want[name]]
    assert differ == [], f"files that differ from the uninterrupted brainalign run: {differ}"
