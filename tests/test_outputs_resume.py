"""Resume by content: outputs are reused only when configuration, input files and model are unchanged."""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.encoders.model import default_model_path
from brainalign.pipeline.config import validate_config
from brainalign.pipeline.plan import run_study
from brainalign.pipeline.provenance import file_sha256
from brainalign.pipeline.simulate import simulate_bids

FUNC = "sub-01/func"
SIDE = f"{FUNC}/sub-01_task-story_desc-MiniLM_scores.json"
TSV = f"{FUNC}/sub-01_task-story_desc-MiniLM_scores.tsv"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    root, cache = tmp / "bids", tmp / "cache"
    truth = simulate_bids(root, "fmri", n_subjects=1, n_runs=2, n_volumes=60, grid=(7, 7, 5), layers=(1, 3),
                          targets_per_layer=10, snr=1.5, n_words=150, seed=7, cache_dir=str(cache))
    return root, root / truth["mask"], cache


def _cfg(root, mask, cache, model="packaged:minilm"):
    return validate_config({
        "data": {"source": {"kind": "bids", "root": str(root), "mask": str(mask)}},
        "models": [{"label": "MiniLM", "path": str(model), "layers": [1, 3], "context_words": 20}],
        "alignment": {"trim": [3, 3]}, "scoring": {"methods": ["encoding"], "inner_cv": 3, "alphas": [10.0, 1000.0, 100000.0],
                                                 "permutations": 0},  # no p is read here
        "execution": {"cache_dir": str(cache)}, "outputs": {"report": False}})


def _run(cfg, out, monkeypatch, cache):
    monkeypatch.setenv("BRAINALIGN_CACHE", str(cache))
    s = run_study(cfg, out_dir=out, progress=False)
    assert not s.failed, s.failed
    return "done" if s.done else "skipped"


def test_inputs_changed_means_recomputed(dataset, tmp_path, monkeypatch):
    src, mask, cache = dataset
    root = tmp_path / "bids"
    shutil.copytree(src, root)
    cfg, out = _cfg(root, mask, cache), tmp_path / "out"
    assert _run(cfg, out, monkeypatch, cache) == "done"
    side = json.loads((out / SIDE).read_text())
    events = root / FUNC / "sub-01_task-story_run-1_events.tsv"
    bold = root / FUNC / "sub-01_task-story_run-2_bold.nii.gz"
    for f in (events, bold, root / FUNC / "sub-01_task-story_run-1_bold.json", mask):
        assert side["InputHashes"][str(f.resolve())] == file_sha256(f)
    assert side["Model"]["fingerprint"] and side["Model"]["label"] == "MiniLM"
    before = (out / SIDE).read_bytes()
    assert _run(cfg, out, monkeypatch, cache) == "skipped"  # nothing changed
    assert (out / SIDE).read_bytes() == before

    table = pd.read_csv(events, sep="\t")
    table["onset"] += 1.0  # onsets shifted by one second
    table.to_csv(events, sep="\t", index=False)
    scores = (out / TSV).read_bytes()
    assert _run(cfg, out, monkeypatch, cache) == "done"
    assert (out / TSV).read_bytes() != scores
    assert json.loads((out / SIDE).read_text())["InputHashes"][str(events.resolve())] == file_sha256(events)
    assert _run(cfg, out, monkeypatch, cache) == "skipped"

    img = nib.load(bold)  # the BOLD file replaced: same grid, other values
    data = np.asarray(img.get_fdata(), dtype=np.float32)
    data += np.random.default_rng(1).standard_normal(data.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, img.affine, img.header), bold)
    scores = (out / TSV).read_bytes()
    assert _run(cfg, out, monkeypatch, cache) == "done"
    assert (out / TSV).read_bytes() != scores
    assert _run(cfg, out, monkeypatch, cache) == "skipped"


def test_model_files_changed_means_recomputed(dataset, tmp_path, monkeypatch):
    root, mask, cache = dataset
    model = tmp_path / "model"
    shutil.copytree(default_model_path(), model)
    cfg, out = _cfg(root, mask, cache, model=model), tmp_path / "out"
    assert _run(cfg, out, monkeypatch, cache) == "done"
    assert json.loads((out / SIDE).read_text())["Model"]["path"] == str(model.resolve())
    assert _run(cfg, out, monkeypatch, cache) == "skipped"
    conf = model / "config.json"  # same path, same settings, other model files
    conf.write_text(json.dumps(json.loads(conf.read_text()), indent=4) + "\n")
    assert _run(cfg, out, monkeypatch, cache) == "done"
    assert _run(cfg, out, monkeypatch, cache) == "skipped"
