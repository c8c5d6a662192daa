"""End to end: the CLI as a subprocess on simulated BIDS fMRI, MEG and iEEG."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from _damaged_cases import forked_cli

from brainalign.pipeline.simulate import simulate_bids

BIN = Path(sys.executable).parent / "brainalign"
ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2")
FAST = ["--config"]


def cli(*args, cache, timeout=400):
    env = dict(ENV, BRAINALIGN_CACHE=str(cache))
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def fast_cfg(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "fast.yaml"
    p.write_text("data: {source: {kind: bids, root: .}}\n"
                 "models: [{label: MiniLM, path: 'packaged:minilm', layers: [1, 3, 5], context_words: 20}]\n"
                 "alignment: {trim: [3, 3]}\n"
                 "scoring: {methods: [encoding, rsa], inner_cv: 3, alphas: [10.0, 100.0, 1000.0, 10000.0, 100000.0],"
                 " permutations: 20}\n"  # the shift null runs (and must agree under Dask), 20 shifts not 200
                 "statistics: {n_bootstrap: 100}\n")
    return p


@pytest.fixture(scope="module")
def fmri(tmp_path_factory, cache):
    root = tmp_path_factory.mktemp("fmri")
    truth = simulate_bids(root, "fmri", n_subjects=2, n_runs=2, n_volumes=80, grid=(9, 9, 7), layers=(1, 5),
                          targets_per_layer=25, snr=1.5, n_words=260, seed=3, cache_dir=str(cache))
    return root, truth


def _voxel_positions(root, truth, scores):
    mask = np.asarray(nib.load(root / truth["mask"]).dataobj).astype(bool)
    return np.argwhere(mask)


def _map_values(path, root, truth, idx):
    vol = np.asarray(nib.load(path).dataobj)
    ijk = _voxel_positions(root, truth, None)[idx]
    return vol[ijk[:, 0], ijk[:, 1], ijk[:, 2]]


@pytest.fixture(scope="module")
def fmri_out(fmri, cache, fast_cfg, tmp_path_factory):
    """The CLI run on participant 01 (serial): the reference for the Dask test too."""
    root, truth = fmri
    out = tmp_path_factory.mktemp("fmri_out") / "out"
    res = cli(root, out, "participant", "--participant-label", "01", "--mask", root / truth["mask"],
              "--config", fast_cfg, "--quiet", cache=cache)
    assert res.returncode == 0, res.stderr
    return out


def test_fmri_cli_finds_planted_signal_and_resumes(fmri, fmri_out, cache, fast_cfg, tmp_path):
    root, truth = fmri
    out = tmp_path / "out"
    shutil.copytree(fmri_out, out)
    func = out / "sub-01" / "func"
    for layer in (1, 5):
        m = func / f"sub-01_task-story_desc-MiniLML{layer:02d}_stat-r_statmap.nii.gz"
        planted = _map_values(m, root, truth, truth["planted"][str(layer)])
        noise = _map_values(m, root, truth, truth["noise"])
        assert np.nanmean(planted) > 0.2, (layer, np.nanmean(planted))
        assert abs(np.nanmean(noise)) < 0.05
        assert np.nanmean(planted) > np.nanquantile(noise, 0.95)
    vol = np.asarray(nib.load(func / "sub-01_task-story_desc-MiniLML01_stat-r_statmap.nii.gz").dataobj)
    mask = np.asarray(nib.load(root / truth["mask"]).dataobj).astype(bool)
    assert np.all(np.isnan(vol[~mask]))
    table = pd.read_csv(func / "sub-01_task-story_desc-MiniLM_scores.tsv", sep="\t")
    assert {"subject", "task", "model", "layer", "target", "method", "metric", "value"} <= set(table.columns)
    assert set(table.method) == {"encoding", "rsa"}
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix in (".tsv", ".gz", ".json")}
    # rerun with both participants: 01 is skipped (identical bytes), 02 runs
    res = cli(root, out, "participant", "--mask", root / truth["mask"], "--config", fast_cfg, "--quiet", cache=cache)
    assert res.returncode == 0, res.stderr
    assert "1 done, 1 already up to date" in res.stdout
    assert all(p.read_bytes() == b for p, b in before.items())
    res = cli(root, out, "group", "--config", fast_cfg, cache=cache)
    assert res.returncode == 0, res.stderr
    assert (out / "group.html").is_file() and (out / "group" / "task-story_desc-MiniLM_scores.tsv").is_file()
    assert (out / "group" / "task-story_desc-MiniLML05_stat-r_statmap.nii.gz").is_file()


def _damage(src: Path, dst: Path, how: str) -> None:
    shutil.copytree(src, dst)
    func = dst / "sub-01" / "func"
    if how == "truncated":
        f = func / "sub-01_task-story_run-1_bold.nii.gz"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif how == "no_word":
        f = func / "sub-01_task-story_run-1_events.tsv"
        t = pd.read_csv(f, sep="\t").drop(columns=["word"])
        t.to_csv(f, sep="\t", index=False)
    elif how == "no_tr":
        for f in func.glob("*_bold.json"):
            f.write_text(json.dumps({"TaskName": "story"}))
        for f in func.glob("*_bold.nii.gz"):
            img = nib.load(f)
            hdr = img.header.copy()
            hdr["pixdim"][4] = 0
            data = np.asarray(img.dataobj)
            nib.save(nib.Nifti1Image(data, img.affine, hdr), f)


@pytest.mark.parametrize("how, culprit", [("truncated", "run-1_bold"), ("no_word", "word"),
                                          ("no_tr", "RepetitionTime"), ("unknown", "99")])
def test_damaged_input_is_refused_in_one_line(fmri, cache, fast_cfg, tmp_path, how, culprit):
    root, truth = fmri
    bad = tmp_path / "bids"
    _damage(root, bad, how)
    out = tmp_path / "out"
    label = "99" if how == "unknown" else "01"
    res = forked_cli([bad, out, "participant", "--participant-label", label, "--mask", root / truth["mask"],
                      "--config", fast_cfg, "--quiet"], cache, tmp_path / "cli")  # forked: the imports once
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("brainalign")]
    assert lines and culprit in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not list(out.rglob("*statmap.nii.gz")) and not list(out.rglob("*_scores.tsv"))


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["meg", "ieeg"])
def test_meeg_cli_finds_planted_channels(tmp_path, cache, fast_cfg, modality):
    root = tmp_path / "bids"
    truth = simulate_bids(root, modality, n_subjects=1, n_runs=2, run_seconds=90, n_channels=12, layers=(1, 5),
                          targets_per_layer=3, snr=2.0, n_words=300, seed=5, cache_dir=str(cache))
    out = tmp_path / "out"
    res = cli(root, out, "participant", "--config", fast_cfg, "--quiet", cache=cache)
    assert res.returncode == 0, res.stderr
    t = pd.read_csv(out / "sub-01" / modality / f"sub-01_task-story_desc-MiniLM_scores.tsv", sep="\t")
    r = t[(t.metric == "r") & t.fold.isna() & (t.method == "encoding")]
    per_ch = r.groupby("target")["value"].max()
    names = sorted(per_ch.index)
    planted = [names[i] for L in truth["planted"].values() for i in L]
    noise = [names[i] for i in truth["noise"]]
    assert per_ch[planted].mean() > 0.2
    assert per_ch[planted].min() > per_ch[noise].max()


@pytest.mark.slow
def test_kill_and_resume(fmri, fmri_out, cache, fast_cfg, tmp_path):
    root, truth = fmri
    out = tmp_path / "out"
    env = dict(ENV, BRAINALIGN_CACHE=str(cache))
    args = [str(BIN), str(root), str(out), "participant", "--mask", str(root / truth["mask"]), "--config",
            str(fast_cfg), "--quiet"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_scores.json"
    t0 = time.time()
    while not first.exists() and proc.poll() is None and time.time() - t0 < 400:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # nothing half-written: every map and table present is complete (readable)
    for p in out.rglob("*.nii.gz"):
        nib.load(p).get_fdata()
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    assert "already up to date" in res.stdout
    assert (out / "sub-02" / "func" / "sub-02_task-story_desc-MiniLM_scores.json").is_file()
    # a fresh computation in another process gives the same bytes as the reference run
    for name in ("sub-01_task-story_desc-MiniLM_scores.tsv", "sub-01_task-story_desc-MiniLML03_stat-r_statmap.nii.gz"):
        assert (out / "sub-01" / "func" / name).read_bytes() == (fmri_out / "sub-01" / "func" / name).read_bytes()


def test_dask_local_cluster_equals_serial(fmri, fmri_out, cache, fast_cfg, tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    from brainalign.pipeline.config import load_config
    from brainalign.pipeline.outputs import find_results, read_result
    from brainalign.pipeline.plan import run_study

    root, truth = fmri
    monkeypatch.setenv("BRAINALIGN_CACHE", str(cache))
    cfg = load_config(fast_cfg)
    cfg.data.source.root = str(root)
    cfg.data.source.mask = str(root / truth["mask"])
    cfg.execution.layers_per_task = 2  # participant x model x chunk of layers
    cfg.outputs.report = False
    # two worker processes, layer chunks of 2. Worker threads in one process would share
    # torch's process-wide thread setting, which the kernels change for small solves.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, Client(lc) as c:
        d = run_study(cfg, out_dir=tmp_path / "dask", participants=["01"], scheduler=c, progress=False)
    assert d.exit_code == 0, d.failed
    a = read_result(find_results(fmri_out, model="MiniLM")[0])
    b = read_result(find_results(tmp_path / "dask")[0])
    assert a.attrs["subject"] == b.attrs["subject"] == "01"
    # Equal to float32 rounding: the ridge kernels run in float32 and the Dask run splits
    # the layers into other task shapes (GEMM blocking differs in the last bits).
    np.testing.assert_array_equal(a["alpha"].values, b["alpha"].values)
    for v in ("r", "r_folds", "p_fdr", "rsa"):
        np.testing.assert_allclose(a[v].values, b[v].values, rtol=0, atol=1e-5, err_msg=v)
