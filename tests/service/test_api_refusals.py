"""What the job API refuses, over HTTP against a real server (SQLite and PostgreSQL): paths outside
the data roots (403), trust_remote_code (403), malformed configurations and server-only fields
(422 naming the field, the same message as ``brainalign run``), oversized bodies (413)."""
from __future__ import annotations

import copy

import pytest
from _server import REPO, small_demo_config

from brainalign.errors import ConfigError
from brainalign.pipeline.config import validate_config


@pytest.fixture(scope="module")
def api(server):
    with server.client(server.token("carol")) as c:
        yield c


def _with(path: tuple, value) -> dict:
    cfg = copy.deepcopy(small_demo_config())
    node = cfg
    for key in path[:-1]:
        node = node[key] if not isinstance(key, int) else node[key]
    node[path[-1]] = value
    return cfg


def _jobs(api) -> list[str]:
    return [j["id"] for j in api.get("/api/v1/jobs").json()]


def test_dotdot_absolute_outside_and_symlink_out_are_403(api, outside, extra_root):
    before = _jobs(api)
    cases = [
        (("data", "source", "root"), str(REPO / "data" / ".." / "data"), "data.source.root"),
        (("data", "source", "root"), "../data", "data.source.root"),
        (("data", "source", "root"), str(outside), "data.source.root"),
        (("data", "source", "root"), "escape", "data.source.root"),  # extra_root/escape -> outside
        (("data", "source", "root"), str(extra_root / "escape"), "data.source.root"),
        (("data", "source", "mask"), str(outside / "secret.txt"), "data.source.mask"),
        (("data", "source", "mask"), "escape/secret.txt", "data.source.mask"),
        (("data", "source", "options"), {"words": str(outside / "secret.txt")}, "data.source.options.words"),
        (("models", 0, "path"), str(outside), "models.MiniLM.path"),
    ]
    for path, value, field in cases:
        r = api.post("/api/v1/jobs", json={"config": _with(path, value)})
        assert r.status_code == 403, (value, r.text)
        detail = r.json()["detail"]
        assert detail.startswith(field + ":") and "\n" not in detail, detail
        shown = value if isinstance(value, str) else value["words"]
        assert shown in detail or str(outside) in detail, detail
    assert _jobs(api) == before  # nothing was queued


def test_relative_paths_are_taken_from_a_data_root(api):
    cfg = _with(("data", "source", "root"), "sub-01/..")  # '..' anywhere is refused
    assert api.post("/api/v1/jobs", json={"config": cfg}).status_code == 403
    cfg = small_demo_config()
    cfg["data"]["source"]["root"] = "."  # the first data root: the repository's data/
    cfg["data"]["source"]["mask"] = "derivatives/simulation/desc-brain_mask.nii.gz"
    cfg["name"] = "relative"
    r = api.post("/api/v1/jobs", json={"config": cfg})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    want = validate_config(small_demo_config(name="relative")).config_hash()  # same study, absolute paths
    assert r.json()["config_hash"] == want
    api.post(f"/api/v1/jobs/{jid}/cancel")


def test_trust_remote_code_refused(api):
    r = api.post("/api/v1/jobs", json={"config": _with(("models", 0, "trust_remote_code"), True)})
    assert r.status_code == 403
    assert r.json()["detail"].startswith("models.MiniLM.trust_remote_code:") and "--allow-remote-code" in r.json()["detail"]


@pytest.mark.parametrize("path,value,field", [
    (("scoring", "cv", "n_folds"), 1, "scoring.cv.n_folds"),
    (("scoring", "methods"), ["encoding", "astrology"], "scoring.methods"),
    (("models", 0, "layers"), [], "models.0.layers"),
    (("alignment", "colour"), "blue", "alignment.colour"),
    (("data", "source", "kind"), "csv", "data.source"),
])
def test_malformed_config_is_422_with_the_cli_message(api, path, value, field):
    cfg = _with(path, value)
    with pytest.raises(ConfigError) as cli:
        validate_config(cfg)  # what `brainalign run` says, without the file name
    r = api.post("/api/v1/jobs", json={"config": cfg})
    assert r.status_code == 422
    assert r.json()["detail"] == str(cli.value) and field in r.json()["detail"]


@pytest.mark.parametrize("section,name,value", [("outputs", "dir", "/tmp/x"), ("execution", "cache_dir", "/tmp/c"),
                                                ("execution", "scheduler", "tcp://127.0.0.1:8786")])
def test_server_only_fields_refused(api, section, name, value):
    cfg = small_demo_config()
    cfg.setdefault(section, {})[name] = value
    r = api.post("/api/v1/jobs", json={"config": cfg})
    assert r.status_code == 422 and r.json()["detail"].startswith(f"{section}.{name}:")


@pytest.mark.parametrize("body,field", [
    ({}, "config"),
    ({"config": 3}, "config"),
    ({"config": small_demo_config(), "colour": 1}, "colour"),
    ({"config": small_demo_config(), "force": "maybe"}, "force"),
    ({"config": "data: [unclosed"}, "config"),
    ({"config": "- a\n- list"}, "config"),
])
def test_malformed_request_is_422_naming_the_field(api, body, field):
    r = api.post("/api/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert field in detail and "\n" not in detail and "Traceback" not in detail


def test_yaml_text_is_accepted_like_a_mapping(api):
    import yaml

    cfg = small_demo_config(name="yamltext")
    r = api.post("/api/v1/jobs", json={"config": yaml.safe_dump(cfg)})
    assert r.status_code == 201, r.text
    assert r.json()["config_hash"] == validate_config(cfg).config_hash()
    again = api.post("/api/v1/jobs", json={"config": cfg})  # the same study as a mapping: the same job
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    api.post(f"/api/v1/jobs/{r.json()['id']}/cancel")


def test_not_json_and_oversized_bodies(api):
    r = api.post("/api/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    big = {"config": small_demo_config(), "name": "x" * 100, "pad": "y" * 1_200_000}
    r = api.post("/api/v1/jobs", json=big)
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b" " * 50_000

    r = api.post("/api/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_job_and_bad_status_filter(api):
    assert api.get("/api/v1/jobs/0123456789abcdef0123456789abcdef").status_code == 404
    assert api.get("/api/v1/jobs/not-an-id").status_code == 404
    assert api.post("/api/v1/jobs/nope/cancel").status_code == 404
    r = api.get("/api/v1/jobs", params={"status": "exploded"})
    assert r.status_code == 422 and "status" in r.json()["detail"]
