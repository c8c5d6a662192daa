"""The reports hold their figures (issue 15) and show the answer's uncertainty (issue 14).

Two small simulated studies are run end to end (a 3-participant volumetric fMRI
study and a 2-participant iEEG study with electrodes.tsv positions and one bad
channel); the HTML is parsed (figures, captions, thresholds, credible sets), the
expected numbers are derived from the written tables, and Chromium renders the
pages (skipped when it is missing unless BRAINALIGN_REQUIRE_BROWSER=1).
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign.pipeline import report
from brainalign.pipeline.simulate import simulate_bids
from brainalign.pipeline.study import run_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
Q = 0.2
FMRI = """data: {{source: {{kind: bids, root: '{root}', mask: '{mask}'}}}}
models: [{{label: MiniLM, path: 'packaged:minilm', layers: [1, 3], context_words: 20}}]
alignment: {{trim: [3, 3]}}
scoring: {{methods: [encoding], inner_cv: 3, alphas: [10.0, 1000.0, 100000.0]}}
statistics: {{n_bootstrap: 50, group_test: ttest, q: {q}}}
execution: {{cache_dir: '{cache}'}}
"""
IEEG = """data: {{source: {{kind: bids, root: '{root}', datatype: ieeg}}}}
models: [{{label: MiniLM, path: 'packaged:minilm', layers: [1, 3], context_words: 20}}]
scoring: {{methods: [encoding], inner_cv: 3, alphas: [10.0, 1000.0, 100000.0]}}
statistics: {{n_bootstrap: 50, group_test: ttest, q: {q}}}
execution: {{cache_dir: '{cache}'}}
"""


class Figures(HTMLParser):
    """Collects each <figure>: its data-kind, img src / iframe srcdoc and caption text; and the <p> texts."""

    def __init__(self):
        super().__init__()
        self.figures, self.paragraphs, self._fig, self._in, self._p = [], [], None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure":
            self._fig = {"kind": a.get("data-kind"), "img": None, "iframe": None, "caption": ""}
        elif tag == "img" and self._fig is not None:
            self._fig["img"] = a.get("src")
        elif tag == "iframe" and self._fig is not None:
            self._fig["iframe"] = a.get("srcdoc")
        elif tag == "figcaption":
            self._in = "caption"
        elif tag == "p":
            self._p = ""

    def handle_endtag(self, tag):
        if tag == "figure" and self._fig is not None:
            self.figures.append(self._fig)
            self._fig = None
        elif tag == "figcaption":
            self._in = None
        elif tag == "p" and self._p is not None:
            self.paragraphs.append(self._p)
            self._p = None

    def handle_data(self, data):
        if self._in == "caption" and self._fig is not None:
            self._fig["caption"] += data
        if self._p is not None:
            self._p += data


def parse(path: Path) -> Figures:
    f = Figures()
    f.feed(path.read_text())
    return f


def kinds(f: Figures) -> dict:
    out: dict = {}
    for fig in f.figures:
        out.setdefault(fig["kind"], []).append(fig)
    return out


def png_pixels(src: str) -> np.ndarray:
    from PIL import Image

    assert src.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L"))


@pytest.fixture(scope="module")
def fmri_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_fmri")
    cache, root = tmp / "cache", tmp / "bids"
    truth = simulate_bids(root, "fmri", n_subjects=3, n_runs=2, n_volumes=60, grid=(7, 7, 5), layers=(1, 3),
                          targets_per_layer=10, snr=1.5, n_words=150, seed=11, cache_dir=str(cache))
    cfg = tmp / "study.yaml"
    cfg.write_text(FMRI.format(root=root, mask=root / truth["mask"], q=Q, cache=cache))
    old = os.umask(0o022)
    try:
        assert run_config(cfg, out_dir=tmp / "out", progress=False) == 0
    finally:
        os.umask(old)
    return tmp / "out"


def _electrodes(root: Path, rng) -> dict:
    """Replace the electrodes.tsv mne-bids wrote by MNI positions in mm; mark the last channel bad."""
    bad = {}
    for sub in sorted(p.name[4:] for p in root.glob("sub-*")):
        d = root / f"sub-{sub}" / "ieeg"
        for old in [*d.glob("*_electrodes.*"), *d.glob("*_coordsystem.json")]:
            old.unlink()
        chans = sorted(d.glob("*_channels.tsv"))
        names = pd.read_csv(chans[0], sep="\t")["name"].astype(str).tolist()
        xyz = np.column_stack([rng.uniform(-60, 60, len(names)), rng.uniform(-80, 40, len(names)),
                               rng.uniform(-20, 50, len(names))])
        pd.DataFrame({"name": names, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "size": 1.0}).to_csv(
            d / f"sub-{sub}_space-MNI152NLin2009cAsym_electrodes.tsv", sep="\t", index=False)
        (d / f"sub-{sub}_space-MNI152NLin2009cAsym_coordsystem.json").write_text(json.dumps(
            {"iEEGCoordinateSystem": "MNI152NLin2009cAsym", "iEEGCoordinateUnits": "mm"}))
        for f in chans:
            t = pd.read_csv(f, sep="\t")
            t.loc[t.index[-1], "status"] = "bad"
            t.to_csv(f, sep="\t", index=False, na_rep="n/a")
        bad[sub] = names[-1]
    return bad


@pytest.fixture(scope="module")
def ieeg_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_ieeg")
    cache, root = tmp / "cache", tmp / "bids"
    truth = simulate_bids(root, "ieeg", n_subjects=2, n_runs=2, run_seconds=60.0, sfreq=50.0, n_channels=10,
                          layers=(1, 3), targets_per_layer=3, snr=1.5, n_words=150, seed=5, cache_dir=str(cache))
    bad = _electrodes(root, np.random.default_rng(0))
    cfg = tmp / "study.yaml"
    cfg.write_text(IEEG.format(root=root, q=Q, cache=cache))
    assert run_config(cfg, out_dir=tmp / "out", progress=False) == 0
    return tmp / "out", truth, bad


@pytest.fixture(scope="module")
def surface_report(tmp_path_factory):
    """A participant report of an fsaverage5 result (300 scored vertices, layer 2 planted in 100, layer 4 in 60)."""
    import xarray as xr

    rng = np.random.default_rng(0)
    verts = np.sort(rng.choice(10242, 300, replace=False))
    targets = [f"L_{v}" for v in verts[:150]] + [f"R_{v}" for v in verts[150:]]
    r = 0.05 * rng.standard_normal((3, 300))
    r[1, :100] += 0.3
    r[2, 100:160] += 0.3
    ds = xr.Dataset({"r": (("layer", "target"), r), "p_fdr": (("layer", "target"), np.where(r > 0.2, 1e-3, 0.5))},
                    coords={"layer": [0, 2, 4], "target": targets})
    ds.attrs.update(subject="01", task="story", model="toy", modality="fmri", settings=json.dumps({"statistics": {"q": Q}}),
                    surface_geometry=json.dumps({"kind": "gifti", "space": "fsaverage5",
                                                 "n_vertices": {"L": 10242, "R": 10242}}))
    return report.participant_report([ds], tmp_path_factory.mktemp("report_surface") / "sub-01.html"), ds


def test_surface_report_has_surface_maps_and_a_viewer(surface_report):
    path, ds = surface_report
    k = kinds(parse(path))
    assert {"layer-profile", "r-map", "preference-map", "viewer"} <= set(k)
    assert "on the surface, unthresholded" in k["r-map"][0]["caption"]
    n_pref = int((ds["p_fdr"] < Q).any("layer").sum())
    assert f"each of the {n_pref} targets" in k["preference-map"][0]["caption"]
    assert "(no mesh" not in k["preference-map"][0]["caption"]  # drawn with one colour per layer
    thr = float(ds["r"].sel(layer=2).where(ds["p_fdr"].sel(layer=2) < Q).min())
    assert "view_surf" in k["viewer"][0]["caption"] and f"|r| >= {thr:.3f}" in k["viewer"][0]["caption"]


def _table(out: Path, sub: str, datatype: str = "func") -> pd.DataFrame:
    t = pd.read_csv(out / f"sub-{sub}" / datatype / f"sub-{sub}_task-story_desc-MiniLM_scores.tsv", sep="\t",
                    dtype={"target": str})
    return t[(t.method == "encoding") & t.fold.isna() & (t.model == "MiniLM")]


def _written_set(t: pd.DataFrame, target: str) -> list[int]:
    rows = t[(t.metric == "mean_in_credible_set") & (t.target == target)]
    return sorted(int(l) for l in rows[rows.value == 1]["layer"])


def test_participant_report_has_its_figures_and_the_answer(fmri_study):
    f = parse(fmri_study / "sub-01.html")
    k = kinds(f)
    for kind in ("layer-profile", "p-best", "r-map", "preference-map", "viewer"):
        assert kind in k, (kind, list(k))
        assert all(fig["caption"].strip() for fig in k[kind])
    for fig in f.figures:
        if fig["img"]:
            px = png_pixels(fig["img"])
            assert px.size > 10_000 and px.std() > 5  # a drawn figure, not a blank one
    assert "view_img" in k["viewer"][0]["caption"] and "brainsprite" in k["viewer"][0]["iframe"].lower()
    t = _table(fmri_study, "01")
    answer = [p for p in f.paragraphs if p.startswith("Mean r over all targets")]
    want = "{" + ", ".join(map(str, _written_set(t, "all"))) + "}"
    assert len(answer) == 1 and answer[0].rstrip(".").endswith(want)
    assert want in k["layer-profile"][0]["caption"]
    prof = t[t.metric == "r"].groupby("layer")["value"].mean()
    assert f"all targets: best layer {int(prof.idxmax())}," in k["layer-profile"][0]["caption"]


def test_maps_say_their_threshold(fmri_study):
    k = kinds(parse(fmri_study / "sub-01.html"))
    assert "unthresholded" in k["r-map"][0]["caption"]
    t = _table(fmri_study, "01")
    r, p = (t[t.metric == m].pivot(index="target", columns="layer", values="value") for m in ("r", "p_fdr"))
    n_pref = int((p < Q).any(axis=1).sum())
    assert f"each of the {n_pref} targets with p_fdr < {Q:g}" in k["preference-map"][0]["caption"]
    best = int(r.mean().idxmax())
    sig = p[best] < Q
    cap = k["viewer"][0]["caption"]
    if sig.any():
        assert f"threshold |r| >= {r.loc[sig, best].min():.3f}" in cap
    else:
        assert "unthresholded" in cap


def test_group_report_has_a_labelled_group_test(fmri_study):
    k = kinds(parse(fmri_study / "group.html"))
    for kind in ("group-profile", "group-map", "group-test", "group-preference-map"):
        assert kind in k, (kind, list(k))
    cap = k["group-test"][0]["caption"]
    n = 3
    assert "non_parametric_inference" in cap and "FWE p < 0.05" in cap
    assert f"{min(1000, 2 ** n)} permutations" in cap and f"smallest attainable p is {1 / 2 ** n:.3g}" in cap
    assert "unthresholded" in k["group-map"][0]["caption"]
    assert "credible set" in k["group-profile"][0]["caption"]


def test_ieeg_report_has_channel_profiles_electrodes_and_bad_channels(ieeg_study):
    out, truth, bad = ieeg_study
    f = parse(out / "sub-01.html")
    k = kinds(f)
    for kind in ("layer-profile", "target-profiles", "electrodes", "r-bars"):
        assert kind in k, (kind, list(k))
    assert "preference-map" not in k and "viewer" not in k
    n_pos = 10 - 1  # every channel has a position; the bad one is dropped
    assert f"Electrodes ({n_pos} with positions, MNI152NLin2009cAsym" in k["electrodes"][0]["caption"]
    assert f"Bad channels dropped: {bad['01']}." in f.paragraphs
    t = _table(out, "01", "ieeg")
    r = t[t.metric == "r"].pivot(index="target", columns="layer", values="value")
    planted = {f"SEEG{i:03d}": int(l) for l, idx in truth["planted"].items() for i in idx}
    best = r.idxmax(axis=1)
    assert sum(best[ch] == l for ch, l in planted.items()) >= len(planted) - 1  # the simulation is found
    k_group = kinds(parse(out / "group.html"))
    assert {"group-profile", "group-bars", "group-target-profiles"} <= set(k_group)


def test_report_files_are_readable_by_the_group(fmri_study):
    for p in [*fmri_study.glob("*.html"), *fmri_study.rglob("*.tsv"), *fmri_study.rglob("*.nii.gz")]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def test_report_files_follow_the_umask(fmri_study, tmp_path):
    dsets = [report.outputs.read_result(report.outputs.find_results(fmri_study)[0])]
    old = os.umask(0o002)
    try:
        path = report.participant_report(dsets, tmp_path / "sub-01.html")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664


def test_extra_profile_panels_are_drawn(fmri_study, monkeypatch):
    ds = report.outputs.read_result(report.outputs.find_results(fmri_study)[0])

    def panel(d, q):
        fig, ax = report.plt().subplots()
        ax.plot(d["layer"].values, d["r"].max("target").values)
        return fig, f"max r per layer at q {q:g}"

    monkeypatch.setattr(report, "PROFILE_PANELS", [*report.PROFILE_PANELS, ("Max profile", panel)])
    f = Figures()
    f.feed(report.participant_report_html([ds]))
    caps = [x["caption"] for x in f.figures if x["kind"] == "panel"]
    assert caps[-1] == f"Max profile. max r per layer at q {Q:g}"
    assert len(caps) == 1 + ("r_norm" in ds)  # after the ceiling-normalised panel when the result has a ceiling


# ------------------------------------------------------------------- browser
def _browser():
    if not CHROMIUM.exists():
        if os.environ.get("BRAINALIGN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing and BRAINALIGN_REQUIRE_BROWSER=1")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def _screenshot(page_path: Path, png: Path) -> dict:
    with _browser() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(page_path.resolve().as_uri())
            page.wait_for_load_state("load")
            info = page.evaluate("""() => ({
                figures: Array.from(document.querySelectorAll('figure')).map(f => ({
                    kind: f.dataset.kind, caption: f.querySelector('figcaption').textContent,
                    img: f.querySelector('img') ? f.querySelector('img').naturalWidth : null,
                    iframe: f.querySelector('iframe') ? f.querySelector('iframe').getBoundingClientRect().height : null,
                })),
                height: document.body.scrollHeight})""")
            page.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()
    return info


def _non_blank(png: Path) -> float:
    from PIL import Image

    px = np.asarray(Image.open(png).convert("L"))
    return float(np.mean(px < 200))


@pytest.mark.parametrize("which", ["fmri-participant", "fmri-group", "ieeg-participant", "ieeg-group",
                                   "surface-participant"])
def test_reports_render_in_chromium(which, request, tmp_path):
    if which.startswith("surface"):
        page = request.getfixturevalue("surface_report")[0]
    else:
        out = request.getfixturevalue("fmri_study") if which.startswith("fmri") else request.getfixturevalue("ieeg_study")[0]
        page = out / ("group.html" if which.endswith("group") else "sub-01.html")
    want = {kind for kind in (fig["kind"] for fig in parse(page).figures)}
    info = _screenshot(page, tmp_path / f"{which}.png")
    got = {f["kind"] for f in info["figures"]}
    assert got == want and len(info["figures"]) == len(parse(page).figures)
    for fig in info["figures"]:
        assert (fig["img"] or 0) > 100 or (fig["iframe"] or 0) > 100, fig  # decoded images, laid-out viewers
    assert _non_blank(tmp_path / f"{which}.png") > 0.03
    if not which.startswith("surface"):  # the hand-made surface result has no bootstrap
        assert re.search(r"credible set", " ".join(f["caption"] for f in info["figures"]))
