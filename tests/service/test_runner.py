"""The job runner on a real Dask cluster: jobs equal ``brainalign run``, cancel, partial, requeue + resume.

One ``LocalCluster`` (one single-threaded worker process) and one SQLite state
folder per module; a small demo job (layers 1 and 5, encoding only, 3 folds) on
the repository's data/. The reference is ``run_config`` (what ``brainalign run
--scheduler`` does) on the same cluster, so the score tables must be byte-equal.
"""
from __future__ import annotations

import shutil
from dataclasses import replace
import time
from pathlib import Path

import pytest
import yaml

from brainalign.pipeline.config import validate_config
from brainalign.pipeline.schema import ScoringConfig
from brainalign.pipeline.study import run_config
from brainalign.service.runner import JobRunner
from brainalign.service.settings import ServiceSettings
from brainalign.service.store import FINISHED, JobStore, User

REPO = Path(__file__).resolve().parents[2]
ALICE = User("alice")
WAIT_S = 240.0


def small_config(data: Path, **over) -> dict:
    """pipelines/demo.yaml cut down: layers [1, 5], encoding only, 3 folds, data paths absolute into ``data``."""
    cfg = yaml.safe_load((REPO / "pipelines" / "demo.yaml").read_text())
    cfg["data"]["source"]["root"] = str(data)
    cfg["data"]["source"]["mask"] = str(data / "derivatives" / "simulation" / "desc-brain_mask.nii.gz")
    cfg["models"][0]["layers"] = [1, 5]
    cfg["scoring"].update(methods=["encoding"], cv={"kind": "contiguous", "n_folds": 3}, inner_cv=2,
                          alphas=[10.0, 1000.0, 100000.0])
    if "permutations" in ScoringConfig.model_fields:
        cfg["scoring"]["permutations"] = 0  # the t-test p: the shift null is tested elsewhere and costs minutes here
    cfg["statistics"]["n_bootstrap"] = 200
    cfg["outputs"]["report"] = False
    for section, values in over.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as lc:
        with distributed.Client(lc) as client:
            yield client


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    settings = ServiceSettings(state_dir=state, database_url=f"sqlite:///{state / 'brainalign.sqlite'}",
                               data_roots=(REPO / "data",), model_roots=(), max_running_per_user=2)
    store = JobStore(settings.database_url)
    yield settings, store
    store.close()


@pytest.fixture
def runner(service, cluster):
    settings, store = service
    made = []

    def make():
        r = JobRunner(store, settings, cluster, poll_s=0.2)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, service, cluster):
    """``brainalign run`` of the small job (with reports) on the same cluster: its output folder."""
    settings, _ = service
    tmp = tmp_path_factory.mktemp("cli")
    cfg = small_config(REPO / "data", outputs={"report": True}, execution={"cache_dir": str(settings.cache_dir)})
    path = tmp / "small.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert run_config(path, out_dir=tmp / "out", scheduler=cluster, progress=False) == 0
    return tmp / "out"


def submit(store, cfg: dict, config_hash: str | None = None) -> str:
    job, _ = store.submit(ALICE, cfg, config_hash or validate_config(cfg).config_hash(), None, True)
    return job["id"]


def wait(store, job_id: str, until=lambda j: j["status"] in FINISHED) -> dict:
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        job = store.job(job_id)
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {store.job(job_id)['status']} after {WAIT_S} s")


def tables(folder: Path) -> dict[str, bytes]:
    """Every score table (participant and group) and participant sidecar, by relative path."""
    files = sorted(folder.rglob("*_scores.tsv")) + sorted(folder.glob("sub-*/*/*_scores.json"))
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


# ------------------------------------------------------------------------ tests
def test_job_equals_brainalign_run(service, runner, reference):
    settings, store = service
    cfg = small_config(REPO / "data", outputs={"report": True})
    job_id = submit(store, cfg)
    runner().start()
    job = wait(store, job_id)
    assert job["status"] == "succeeded", job["reason"]
    assert job["reason"] is None and job["finished_at"] is not None
    out = settings.job_dir(job_id)
    want = tables(reference)
    assert len(want) == 7 and tables(out) == want  # 3 participants x (tsv + json) + group tsv
    ref_files = {str(p.relative_to(reference)) for p in reference.rglob("*") if p.is_file()}
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == ref_files  # maps, reports, group
    p = job["progress"]
    n_layers = len(cfg["models"][0]["layers"])
    assert (p["tasks_done"], p["participants_done"], p["layers_done"]) == (p["tasks_total"], 3, 3 * n_layers)
    assert (p["participants_total"], p["layers_total"]) == (3, 3 * n_layers)
    assert [x["status"] for x in job["participants"]] == ["done"] * 3
    assert any(settings.cache_dir.rglob("meta.json"))  # the shared cache was the one used


def test_cancel_stops_at_a_task_boundary(service, runner):
    settings, store = service
    job_id = submit(store, small_config(REPO / "data"))
    runner().start()
    wait(store, job_id, lambda j: j["status"] != "queued")
    store.request_cancel(ALICE, job_id)
    job = wait(store, job_id)
    assert job["status"] == "cancelled"
    assert job["reason"] == "cancelled by alice at a task boundary"
    assert job["progress"]["tasks_done"] < 3
    assert not (settings.job_dir(job_id) / "group").exists()


def test_failing_participant_gives_partial_with_reason(service, runner, tmp_path):
    _, store = service
    data = tmp_path / "data"
    shutil.copytree(REPO / "data", data)
    bold = data / "sub-02" / "func" / "sub-02_task-story_run-1_bold.nii.gz"
    bold.write_bytes(bold.read_bytes()[:200])  # a truncated download
    job_id = submit(store, small_config(data))
    runner().start()
    job = wait(store, job_id)
    assert job["status"] == "partial"
    parts = {p["subject"]: p for p in job["participants"]}
    assert [parts[s]["status"] for s in ("01", "02", "03")] == ["done", "failed", "done"]
    reason = parts["02"]["reason"]
    assert reason and "\n" not in reason and "Traceback" not in reason
    assert "sub-02" in job["reason"] and "1 of 3" in job["reason"]


def test_unusable_jobs_fail_with_one_line_reasons(service, runner, tmp_path):
    _, store = service
    broken = submit(store, {"data": {"source": {"kind": "bids"}}, "scoring": {"n_folds": "many"}}, "broken")
    data = tmp_path / "data"
    shutil.copytree(REPO / "data", data)
    for bold in data.glob("sub-*/func/*_bold.nii.gz"):
        bold.write_bytes(b"not a nifti")
    nothing = submit(store, small_config(data))
    runner().start()
    bad = wait(store, broken)
    assert bad["status"] == "failed" and bad["reason"].startswith("invalid configuration")
    job = wait(store, nothing)
    assert job["status"] == "failed" and "every participant failed" in job["reason"]
    assert [p["status"] for p in job["participants"]] == ["failed"] * 3
    for text in (bad["reason"], job["reason"], *(p["reason"] for p in job["participants"])):
        assert "\n" not in text and "Traceback" not in text


def test_requeue_and_resume_give_identical_outputs(service, runner, reference):
    settings, store = service
    job_id = submit(store, small_config(REPO / "data"))  # no reports: the score tables are what resume must keep
    left = settings.job_dir(job_id)  # what a crash after sub-01's outputs leaves (each file is moved into place whole)
    shutil.copytree(reference / "sub-01", left / "sub-01")
    shutil.copy(reference / "dataset_description.json", left)
    first = runner()
    first.start()
    wait(store, job_id, lambda j: j["status"] != "queued")
    first.stop()  # the server stops: the job stops at its next task boundary, back in the queue
    job = store.job(job_id)
    assert job["status"] == "queued" and "re-queued" in job["reason"], job
    assert job["progress"]["tasks_done"] < job["progress"]["tasks_total"] or job["progress"]["tasks_total"] == 0
    assert store.claim_next(2) == job_id  # ...claimed by a server that then died: left `running`
    second = runner()
    assert second.start() == [job_id]  # re-queued on start
    job = wait(store, job_id)
    assert job["status"] == "succeeded", job["reason"]
    assert [(p["subject"], p["status"]) for p in job["participants"]] == [("01", "skipped"), ("02", "done"),
                                                                           ("03", "done")]
    assert job["progress"]["tasks_total"] == 2  # only the missing participants ran
    assert job["progress"]["participants_done"] == job["progress"]["participants_total"] == 3
    assert tables(left) == tables(reference)


def test_jobs_of_several_users_run_at_once_at_most_k_each(service, cluster):
    settings, store = service
    cfg = small_config(REPO / "data")
    a1, a2 = submit(store, cfg), submit(store, cfg)
    b1 = store.submit(User("bob"), cfg, validate_config(cfg).config_hash(), None, True)[0]["id"]
    one_each = JobRunner(store, replace(settings, max_running_per_user=1), cluster, poll_s=0.2)
    admin = User("root", admin=True)
    try:
        one_each.start()
        wait(store, a1, lambda j: j["status"] != "queued")
        wait(store, b1, lambda j: j["status"] != "queued")
        assert [store.job(j)["status"] for j in (a1, a2, b1)] == ["running", "queued", "running"]
        for j in (a2, a1, b1):
            store.request_cancel(admin, j)
        assert [wait(store, j)["status"] for j in (a1, a2, b1)] == ["cancelled"] * 3
        assert store.job(a2)["started_at"] is None  # never started: alice had her one running job
    finally:
        one_each.stop()
