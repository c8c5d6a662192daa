"""brainalign.client against a real ``brainalign serve``: submit the small demo, wait, scores,
download, result(), resubmission, cancel, errors; ``brainalign submit`` / ``jobs`` as subprocesses.

Expected values come from the job's files on the server's disk, read here directly.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from _server import CLI, free_port, service_env, small_demo_config, start_server

from brainalign.client import Client, Job, config_payload, safe_target
from brainalign.errors import ClientError
from brainalign.pipeline.outputs import read_result
from brainalign.pipeline.result import AlignmentResult


@pytest.fixture(scope="module")
def srv(tmp_path_factory, demo_cache):
    server = start_server(tmp_path_factory.mktemp("client"), seed_cache=demo_cache)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token(srv):
    return srv.token("alice")


@pytest.fixture(scope="module")
def config():
    return small_demo_config(layers=(1, 5), n_folds=3)


@pytest.fixture(scope="module")
def done(srv, token, config) -> Job:
    """The small demo job, submitted and waited for through the client."""
    with Client(srv.url, token) as client:
        job = client.submit(config, name="demo")
        assert job.created is True and job.data["status"] in ("queued", "running")
        job.wait(progress=False, poll=0.5, timeout=900)
    assert job.data["status"] == "succeeded", (job.data, srv.log()[-3000:])
    return job


def folder(srv, job: Job) -> Path:
    return srv.state_dir / "jobs" / job.id


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_wait_ends_with_everything_done(done):
    p = done.data["progress"]
    assert p["tasks_done"] == p["tasks_total"] > 0
    assert p["participants_done"] == p["participants_total"] == 3
    assert {x["status"] for x in done.data["participants"]} == {"done"}


def test_scores_equal_the_tables_on_disk(srv, token, done):
    with Client(srv.url, token) as client:
        got = client.job(done.id).scores()
    tables = sorted(folder(srv, done).glob("sub-*/func/sub-*_scores.tsv"))
    assert len(tables) == 3
    want = pd.concat([pd.read_csv(t, sep="\t", dtype={"target": str, "subject": str, "task": str, "model": str},
                                  keep_default_na=False, na_values=["n/a"]) for t in tables], ignore_index=True)
    pd.testing.assert_frame_equal(got, want)
    assert set(got["layer"].dropna().astype(int)) == {1, 5}


def test_download_gets_every_file_byte_identical(srv, token, done, tmp_path):
    with Client(srv.url, token) as client:
        written = client.job(done.id).download(tmp_path / "out")
    root = folder(srv, done)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)}
    got = {p.relative_to(tmp_path / "out").as_posix() for p in written}
    assert got == on_disk and "group.html" in got
    for rel in on_disk:
        assert sha(tmp_path / "out" / rel) == sha(root / rel), rel
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no partial downloads left


def test_result_is_the_participant_result(srv, token, done):
    with Client(srv.url, token) as client:
        job = client.job(done.id)
        res = job.result(subject="02")
        with pytest.raises(ClientError, match="3 results match.*subject=01"):
            job.result()
        with pytest.raises(ClientError, match="no result matches"):
            job.result(subject="09")
        every = job.results()
    assert isinstance(res, AlignmentResult)
    nc = next(folder(srv, done).glob("sub-02/func/sub-02_*_result.nc"))
    disk = read_result(nc)
    assert res.attrs["subject"] == "02" and list(res["layer"].values) == [1, 5]
    assert res["r"].equals(disk["r"]) and res["alpha"].equals(disk["alpha"])
    assert sorted(every) == [(s, "story", "MiniLM") for s in ("01", "02", "03")]
    assert res.brainalign.best_layer() in (1, 5)


def test_resubmission_returns_the_job_in_every_form(srv, token, done, config, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    jpath = tmp_path / "study.json"
    jpath.write_text(json.dumps(config))
    with Client(srv.url, token) as client:
        for form in (config, yaml.safe_dump(config), path, str(path), jpath):
            again = client.submit(form)
            assert again.created is False and again.id == done.id, form
        assert done.id in [j.id for j in client.jobs()]
        assert done.id in [j.id for j in client.jobs(status="succeeded")]
        assert done.id not in [j.id for j in client.jobs(status="failed")]


def test_cancel(srv, token, config):
    cfg = dict(config, name="to-cancel")
    with Client(srv.url, token) as client:
        job = client.submit(cfg, name="to-cancel", force=True)
        assert job.created
        assert job.cancel().data["cancel_requested"] is True
        job.wait(progress=False, poll=0.3, timeout=600)
    assert job.data["status"] == "cancelled", job.data


def test_other_users_and_bad_tokens(srv, done):
    with Client(srv.url, srv.token("bob")) as bob:
        with pytest.raises(ClientError, match="answered 404"):
            bob.job(done.id)
        assert done.id not in [j.id for j in bob.jobs()]
    with Client(srv.url, "wrong") as bad, pytest.raises(ClientError) as err:
        bad.jobs()
    assert str(err.value).startswith("the server refused the token: set --token or BRAINALIGN_TOKEN")


def test_client_refusals_without_a_server(tmp_path, monkeypatch):
    monkeypatch.delenv("BRAINALIGN_TOKEN", raising=False)
    with pytest.raises(ClientError, match="no API token"):
        Client("http://127.0.0.1:1")
    with pytest.raises(ClientError, match="--server 'localhost:8765'"):
        Client("localhost:8765", "t")
    with Client(f"http://127.0.0.1:{free_port()}", "t", timeout=5) as nobody, pytest.raises(ClientError, match="cannot reach"):
        nobody.jobs()
    with pytest.raises(ClientError, match="cannot read the configuration file"):
        config_payload(tmp_path / "missing.yaml")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ClientError, match="bad.json is not valid JSON"):
        config_payload(tmp_path / "bad.json")
    assert config_payload("name: x\nmodels: []\n") == "name: x\nmodels: []\n"


def test_download_names_that_escape_are_refused(tmp_path):
    dest = (tmp_path / "dest").resolve()
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "link").symlink_to(outside)
    for bad in ("../x", "/etc/passwd", "a/../../b", "..", "a\\..\\b", "link/x", ""):
        with pytest.raises(ClientError, match="refused"):
            safe_target(dest, bad)
    assert safe_target(dest, "sub-01/func/a.tsv") == dest / "sub-01" / "func" / "a.tsv"


def _cli(*args, token=None):
    env = service_env()
    env.pop("BRAINALIGN_TOKEN", None)
    if token:
        env["BRAINALIGN_TOKEN"] = token
    return subprocess.run(CLI + list(args), capture_output=True, text=True, env=env, timeout=600)


def test_cli_submit_wait_and_jobs(srv, token, done, config, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    res = _cli("submit", str(path), "--server", srv.url, "--wait", "--quiet", token=token)
    assert res.returncode == 0, res.stderr
    assert f"job {done.id} already submitted" in res.stdout and f"job {done.id} succeeded: 3/3 participants" in res.stdout
    res = _cli("jobs", "--server", srv.url, "--token", token)
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if x.startswith(done.id))
    assert "succeeded" in line and line.rstrip().endswith("demo")
    res = _cli("jobs", "--server", srv.url, "--status", "failed", token=token)
    assert res.returncode == 0 and done.id not in res.stdout


def test_cli_refusals_exit_2_in_one_line(srv, token, config, tmp_path):
    res = _cli("jobs", "--server", srv.url, "--token", "wrong")
    assert res.returncode == 2
    assert res.stderr.strip() == ("brainalign: error: the server refused the token: set --token or BRAINALIGN_TOKEN "
                                  f"({srv.url} answered 401)")
    bad = dict(config, scoring=dict(config["scoring"], cv={"kind": "contiguous", "n_folds": "many"}))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    res = _cli("submit", str(path), "--server", srv.url, token=token)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "answered 422" in res.stderr and "n_folds" in res.stderr
    res = _cli("submit", str(path), "--server", srv.url)
    assert res.returncode == 2 and "no API token" in res.stderr
