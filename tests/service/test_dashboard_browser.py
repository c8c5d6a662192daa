"""The dashboard in a real browser (Playwright driving Debian's chromium) on a real ``brainalign serve``.

Log in with a token (a wrong one first), submit the small demo from the submit page
with a job name made of markup, watch it finish, open the job page and check the
Plotly layer curves and the nilearn brain map rendered (DOM checks inside the
sandboxed frame), open the group report; a screenshot goes to the test's tmp dir.

Skipped when chromium or Playwright is missing, unless BRAINALIGN_REQUIRE_BROWSER=1
(CI), where that is a failure.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from _server import small_demo_config, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NAME = "<script>alert(1)</script>"
JOB_TIMEOUT_MS = 900_000


def _need_browser():
    reason = None
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError as exc:
        reason = f"playwright is not importable ({exc})"
    if reason is None and not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if reason and os.environ.get("BRAINALIGN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"BRAINALIGN_REQUIRE_BROWSER=1 but {reason}")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, demo_cache):
    _need_browser()
    server = start_server(tmp_path_factory.mktemp("browser"), seed_cache=demo_cache)
    try:
        yield server
    finally:
        server.stop()


def test_log_in_submit_watch_and_see_the_plots(browser, srv, tmp_path):
    token = srv.token("alice")
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors, dialogs, outside = [], [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((srv.url, "data:", "blob:", "about:")) else None)
    page.set_default_timeout(60_000)

    # log in: a wrong token is refused, the right one opens the jobs list
    page.goto(srv.url + "/")
    page.fill("#token-input", "not-a-token")
    page.click("#login-button")
    page.wait_for_function("document.getElementById('login-error').textContent.includes('refused')")
    page.fill("#token-input", token)
    page.click("#login-button")
    page.wait_for_selector("#jobs", state="visible")
    assert page.evaluate("sessionStorage.getItem('brainalign.token')") == token

    # the submit page writes a configuration from a dataset and a model
    page.goto(srv.url + "/submit")
    page.wait_for_selector("#pick-dataset option", state="attached")
    page.click("#fill-config")
    written = yaml.safe_load(page.input_value("#config-text"))
    assert written["data"]["source"]["kind"] == "bids" and written["models"][0]["path"] == "packaged:minilm"

    # submit the small demo (two participants) with a name made of markup
    cfg = small_demo_config(layers=(1, 5), n_folds=3)
    cfg["data"]["source"]["participants"] = ["01", "02"]
    page.fill("#config-text", yaml.safe_dump(cfg))
    page.fill("#job-name", NAME)
    page.click("#submit-button")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f]{32}$"))
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_function("document.getElementById('job-title').textContent !== 'Job'")
    assert page.text_content("#job-title") == f"Job {NAME}"  # the markup shown as text
    ended = ", ".join(f"#job-status[data-status='{s}']" for s in ("succeeded", "partial", "failed", "cancelled"))
    page.wait_for_selector(ended, timeout=JOB_TIMEOUT_MS)  # any end: a failed job fails the test now, with its page
    assert page.get_attribute("#job-status", "data-status") == "succeeded", page.inner_text("body")[:2000]

    # the layer curves: a Plotly svg with one trace per participant and the mean over participants
    # (the page reloads the outputs once the job is finished: wait for that, not for the first draw)
    page.wait_for_function("document.querySelectorAll('#curves svg.main-svg .scatterlayer .trace').length === 3")
    assert page.locator("#participants tbody tr").count() == 2

    # the brain map: nilearn's viewer, in a sandboxed frame, drew brain slices and the map on its canvas
    page.wait_for_function("(document.getElementById('brainmap').srcdoc || '').includes('group MiniLM layer')")
    assert page.is_visible("#brainmap")
    assert page.evaluate("document.getElementById('brainmap').contentDocument") is None  # no access across the sandbox
    canvas = page.frame_locator("#brainmap").locator("canvas").first
    canvas.wait_for(state="attached", timeout=60_000)
    page.wait_for_timeout(1000)  # brainsprite draws once its sprite image has loaded
    colours = canvas.evaluate("""c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set(); for (let i = 0; i < d.length; i += 16) seen.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);
        return c.width > 0 && c.height > 0 ? seen.size : 0; }""")
    assert colours > 20, colours  # slices of a brain and a colour map, not a blank canvas
    page.locator("#brainmap").screenshot(path=str(tmp_path / "brainmap.png"))

    # files: every output is listed; the group report opens in its frame
    links = page.locator("#files a")
    assert links.count() > 10
    page.locator("#files a[data-path='group.html']").click()
    page.wait_for_selector("#report", state="visible")
    assert "brainalign: group" in page.frame_locator("#report").locator("h1").inner_text()
    page.screenshot(path=str(tmp_path / "job.png"), full_page=True)
    assert (tmp_path / "job.png").stat().st_size > 10_000

    # the jobs list shows the name as text
    page.goto(srv.url + "/")
    link = page.locator(f"#jobs tr[data-job-id='{job_id}'] a.job-link")
    link.wait_for()
    assert link.text_content() == NAME
    assert page.locator(f"#jobs tr[data-job-id='{job_id}']").get_attribute("data-status") == "succeeded"
    page.screenshot(path=str(tmp_path / "jobs.png"))

    assert not dialogs, dialogs  # the markup in the name never ran
    assert not errors, errors
    assert not outside, outside  # nothing fetched from outside the server
