"""Regenerate the report screenshots of docs/user-guide.md (Chromium via Playwright; a few minutes).

    python docs/img/screenshots.py [WORK_DIR]

Three small simulated studies (the ones tests/test_report_figures.py and
tests/test_surface_gifti.py run): volumetric fMRI, 3 participants, MiniLM layers 1 and
3 planted; iEEG, 2 participants, MNI electrode positions and one bad channel; fMRIPrep
fsaverage5 GIFTI surfaces, 2 participants, layers 1 and 5 planted (group report). Each
page is cropped to its top and scaled to 700 px wide. ``--only surface`` (or fmri,
ieeg) redraws one study's pages.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))

from _surface_sim import write_gifti_dataset  # noqa: E402
from test_report_figures import CHROMIUM, CHROMIUM_ARGS, FMRI, IEEG, Q, _electrodes  # noqa: E402

from brainalign.pipeline.simulate import simulate_bids  # noqa: E402
from brainalign.pipeline.study import run_config  # noqa: E402

PAGES = {"report-participant.png": ("fmri", "sub-01.html", 1900), "report-group.png": ("fmri", "group.html", 1500),
         "report-ieeg.png": ("ieeg", "sub-01.html", 2000), "report-surface-group.png": ("surface", "group.html", 1500)}
SURFACE = ("data: {{source: {{kind: bids, root: {root}, task: story, space: fsaverage5}}}}\n"
           "models: [{{label: MiniLM, path: 'packaged:minilm', layers: [1, 5], context_words: 20}}]\n"
           "alignment: {{trim: [3, 3]}}\nscoring: {{methods: [encoding], inner_cv: 3, permutations: 0}}\n"
           "statistics: {{n_bootstrap: 200}}\nexecution: {{cache_dir: {cache}}}\n")


def surface_study(work: Path, cache: Path) -> Path:
    """Two fsaverage5 participants (tests/_surface_sim.py), participant and group level."""
    for sub, seed in (("01", 3), ("02", 8)):
        write_gifti_dataset(work / "surface", str(cache), sub=sub, seed=seed, snr=3.0)
    (work / "surface.yaml").write_text(SURFACE.format(root=work / "surface", cache=cache))
    run_config(work / "surface.yaml", out_dir=work / "out-surface", progress=False)
    return work / "out-surface"


def studies(work: Path, only: str | None = None) -> dict:
    cache = work / "cache"
    if only == "surface":
        return {"surface": surface_study(work, cache)}
    truth = simulate_bids(work / "fmri", "fmri", n_subjects=3, n_runs=2, n_volumes=60, grid=(7, 7, 5), layers=(1, 3),
                          targets_per_layer=10, snr=1.5, n_words=150, seed=11, cache_dir=str(cache))
    (work / "fmri.yaml").write_text(FMRI.format(root=work / "fmri", mask=work / "fmri" / truth["mask"], q=Q,
                                                cache=cache))
    simulate_bids(work / "ieeg", "ieeg", n_subjects=2, n_runs=2, run_seconds=60.0, sfreq=50.0, n_channels=10,
                  layers=(1, 3), targets_per_layer=3, snr=1.5, n_words=150, seed=5, cache_dir=str(cache))
    _electrodes(work / "ieeg", np.random.default_rng(0))
    (work / "ieeg.yaml").write_text(IEEG.format(root=work / "ieeg", q=Q, cache=cache))
    out = {}
    for kind in ("fmri", "ieeg"):
        run_config(work / f"{kind}.yaml", out_dir=work / f"out-{kind}", progress=False)
        out[kind] = work / f"out-{kind}"
    out["surface"] = surface_study(work, cache)
    return out


def shoot(outs: dict) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        for name, (kind, html, height) in PAGES.items():
            if kind not in outs:
                continue
            page.goto((outs[kind] / html).as_uri())
            page.wait_for_load_state("load")
            tmp = HERE / f".{name}"
            page.screenshot(path=str(tmp), full_page=True)
            im = Image.open(tmp).convert("RGB")
            im = im.crop((0, 0, im.width, min(im.height, height)))
            im = im.resize((700, round(im.height * 700 / im.width)), Image.LANCZOS).quantize(colors=128)
            im.save(HERE / name, optimize=True)
            tmp.unlink()
        browser.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    only = args[args.index("--only") + 1] if "--only" in args else None
    rest = [a for i, a in enumerate(args) if a != "--only" and (i == 0 or args[i - 1] != "--only")]
    work = Path(rest[0]) if rest else Path(tempfile.mkdtemp(prefix="brainalign-shots-"))
    shoot(studies(work, only) if only == "surface" else {k: v for k, v in studies(work).items()
                                                         if only is None or k == only})
