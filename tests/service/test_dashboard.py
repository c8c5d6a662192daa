"""The dashboard over HTTP on a real ``brainalign serve``: HTML shells, Plotly from the package,
and the job page's routes (configuration, layer curves, brain maps) with their access rules.

The expected curves are recomputed here from the score tables on disk with numpy;
the brain-map listing is compared with a walk of the job's folder.
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _server import small_demo_config, start_server, wait_job

NAME = "<script>alert(1)</script>"
PAGES = ("/", "/submit", "/datasets", "/models", "/cache")


@pytest.fixture(scope="module")
def srv(tmp_path_factory, demo_cache):
    server = start_server(tmp_path_factory.mktemp("dashboard"), seed_cache=demo_cache)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tokens(srv):
    return {"alice": srv.token("alice"), "bob": srv.token("bob")}


@pytest.fixture(scope="module")
def job(srv, tokens):
    """A finished two-participant job of alice's, named with markup (maps, no HTML reports: no test here
    reads them; the browser test opens one)."""
    cfg = small_demo_config(layers=(1, 5), n_folds=3)
    cfg["data"]["source"]["participants"] = ["01", "02"]
    cfg["outputs"]["report"] = False
    with srv.client(tokens["alice"]) as c:
        r = c.post("/api/v1/jobs", json={"config": cfg, "name": NAME})
        assert r.status_code == 201, r.text
        done = wait_job(c, r.json()["id"], timeout=900)
    assert done["status"] == "succeeded", (done, srv.log()[-3000:])
    return done


def job_dir(srv, job) -> Path:
    return srv.state_dir / "jobs" / job["id"]


def test_pages_are_shells_that_leak_nothing_and_escape(srv, job):
    with srv.client() as c:  # no token: the shells need none
        for path in PAGES + (f"/jobs/{job['id']}",):
            r = c.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith("text/html")
            assert NAME not in r.text and "alert(1)" not in r.text, path
            assert job["config_hash"] not in r.text, path  # no job data in the HTML itself
            assert 'id="login-form"' in r.text
        r = c.get("/jobs/" + NAME.replace("/", "%2F"))
        if r.status_code == 200:  # the id from the URL is rendered into the page: escaped
            assert NAME not in r.text and html.escape(NAME) in r.text
        r = c.get("/jobs/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
        assert r.status_code == 200
        assert "<img src=x" not in r.text and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in r.text


def test_plotly_and_every_asset_served_locally(srv):
    import plotly

    shipped = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    with srv.client() as c:
        r = c.get("/static/plotly.min.js")
        assert r.status_code == 200
        assert "javascript" in r.headers["content-type"]
        assert r.content == shipped
        assets = set()
        for path in PAGES + ("/jobs/x",):
            page = c.get(path).text
            assert not re.search(r"(src|href)=\"(https?:)?//", page), path  # no CDN, no outside link
            assets |= set(re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", page))
        assert "/static/plotly.min.js" in assets and "/static/common.js" in assets
        for a in sorted(assets):
            assert c.get(a).status_code == 200, a


@pytest.mark.parametrize("route", ["config", "curves", "brainmaps", "brainmap?layer=1"])
def test_job_page_routes_need_the_owner_token(srv, tokens, job, route):
    url = f"/api/v1/jobs/{job['id']}/{route}"
    with srv.client() as c:
        assert c.get(url).status_code == 401
    with srv.client("not-a-token") as c:
        assert c.get(url).status_code == 401
    with srv.client(tokens["bob"]) as c:
        r = c.get(url)
        assert r.status_code == 404 and NAME not in r.text
    with srv.client(tokens["alice"]) as c:
        assert c.get(url).status_code == 200


def test_config_is_the_submitted_one(srv, tokens, job):
    with srv.client(tokens["alice"]) as c:
        cfg = c.get(f"/api/v1/jobs/{job['id']}/config").json()["config"]
    assert cfg["models"][0]["layers"] == [1, 5]
    assert cfg["data"]["source"]["participants"] == ["01", "02"]
    assert cfg["scoring"]["cv"]["n_folds"] == 3


def _expected_curves(folder: Path) -> dict:
    """(subject, metric) -> (layers, mean, half-width) of encoding r/r_norm/delta_r over the targets with a value,
    recomputed with numpy."""
    out = {}
    for tsv in sorted(folder.glob("sub-*/func/*_scores.tsv")):
        t = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
        for metric in ("r", "r_norm", "delta_r"):
            rows = t[(t.method == "encoding") & (t.metric == metric) & (t.fold == "n/a") & (t.layer != "n/a")]
            if not len(rows):
                continue
            layers = sorted({int(x) for x in rows.layer})
            value = pd.to_numeric(rows.value.replace("n/a", np.nan))  # n/a (e.g. r_norm without a ceiling): left out
            vals = [v[np.isfinite(v)] for v in (value[rows.layer.astype(int) == L].to_numpy(float) for L in layers)]
            mean = np.array([v.mean() for v in vals])
            half = np.array([1.96 * v.std(ddof=1) / np.sqrt(v.size) for v in vals])
            out[(rows.subject.iloc[0], metric)] = (layers, mean, half)
    return out


def test_layer_curves_equal_the_score_tables(srv, tokens, job):
    with srv.client(tokens["alice"]) as c:
        curves = c.get(f"/api/v1/jobs/{job['id']}/curves").json()["curves"]
    expected = _expected_curves(job_dir(srv, job))
    assert {k[0] for k in expected} == {"01", "02"}
    got = {(cv["subject"], cv["metric"]): cv for cv in curves if cv["method"] == "encoding"}
    assert set(got) == set(expected)
    for key, (layers, mean, half) in expected.items():
        cv = got[key]
        assert cv["layer"] == layers == [1, 5]
        np.testing.assert_allclose(cv["mean"], mean, rtol=1e-9)
        np.testing.assert_allclose(np.array(cv["high"]) - np.array(cv["mean"]), half, rtol=1e-6)
        np.testing.assert_allclose(np.array(cv["mean"]) - np.array(cv["low"]), half, rtol=1e-6)


def test_brain_map_listing_is_the_job_folder(srv, tokens, job):
    folder = job_dir(srv, job)
    on_disk = {os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
               if f.endswith("_statmap.nii.gz")}
    with srv.client(tokens["alice"]) as c:
        maps = c.get(f"/api/v1/jobs/{job['id']}/brainmaps").json()["maps"]
    assert {m["path"] for m in maps} == on_disk and on_disk
    assert {m["subject"] for m in maps} == {"01", "02", "group"}
    assert {m["layer"] for m in maps} == {1, 5}


def test_brain_map_views(srv, tokens, job):
    base = f"/api/v1/jobs/{job['id']}/brainmap"
    with srv.client(tokens["alice"], timeout=120) as c:
        vol = c.get(base, params={"layer": 5, "subject": "01"})
        assert vol.status_code == 200 and vol.headers["content-type"].startswith("text/html")
        assert "sandbox" in vol.headers["content-security-policy"]
        assert "brainsprite" in vol.text.lower() and "sub-01 MiniLM layer 5 r" in vol.text
        assert "raw.githubusercontent.com" not in vol.text
        other = c.get(base, params={"layer": 1, "subject": "01"})
        assert other.status_code == 200 and other.text != vol.text
        group = c.get(base, params={"layer": 5})  # no subject: the group map
        assert group.status_code == 200 and "group MiniLM layer 5 r" in group.text
        surf = c.get(base, params={"layer": 5, "subject": "02", "view": "surface"})
        assert surf.status_code == 200 and "plotly" in surf.text.lower() and "sub-02 MiniLM layer 5 r" in surf.text
        for bad in ({"layer": 3}, {"layer": 5, "subject": "../../etc"}, {"layer": 5, "model": "nope"}):
            assert c.get(base, params=bad).status_code == 404, bad
        assert c.get(base, params={"layer": "x"}).status_code == 422
        assert c.get(base, params={"layer": 5, "view": "<b>"}).status_code == 422


def test_surface_map_files_listed_and_drawn(tmp_path):
    """GIFTI surface maps (as the surface pipeline names them) are listed and drawn with view_surf."""
    import nibabel as nib

    from brainalign.service.dashboard_api import brain_maps, parse_map_name, render_map

    rng = np.random.default_rng(0)
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    names = [f"sub-01_task-story_hemi-{h}_space-fsaverage5_desc-MiniLML05_stat-r_statmap.func.gii" for h in "LR"]
    for name in names:
        arr = nib.gifti.GiftiDataArray(rng.standard_normal(10242).astype(np.float32), intent="NIFTI_INTENT_NONE")
        nib.save(nib.gifti.GiftiImage(darrays=[arr]), func / name)
    (func / "sub-01_task-story_desc-MiniLM_scores.tsv").write_text("subject\n01\n")  # not a map
    maps = brain_maps(tmp_path)
    assert [m["path"] for m in maps] == [f"sub-01/func/{n}" for n in names]
    assert [(m["subject"], m["model"], m["layer"], m["hemi"], m["kind"]) for m in maps] == [
        ("01", "MiniLM", 5, "L", "surface"), ("01", "MiniLM", 5, "R", "surface")]
    assert parse_map_name("task-story_desc-gpt2L1L12_stat-r_statmap.nii.gz")["model"] == "gpt2L1"
    assert parse_map_name("task-story_desc-gpt2L1L12_stat-r_statmap.nii.gz")["subject"] == "group"
    for junk in ("sub-01_statmap.nii.gz", "sub-01_task-a_desc-M_stat-r_statmap.nii.gz", "x_statmap.func.gii"):
        assert parse_map_name(junk) is None, junk
    page = render_map(str(func / names[0]), 0, "volume", "mni", "sub-01 MiniLM layer 5 r hemi-L")
    assert "plotly" in page.lower() and "sub-01 MiniLM layer 5 r hemi-L" in page
