"""A participant that loses voxels: targets keep their identity up to the group level, and the
loader's warning reaches that participant's sidecar and reports once."""
from __future__ import annotations

import html
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.pipeline import outputs
from brainalign.pipeline.config import validate_config
from brainalign.pipeline.group import run_group
from brainalign.pipeline.plan import run_study
from brainalign.pipeline.report import group_report
from brainalign.pipeline.simulate import simulate_bids

N_LOST = 6


def _config(root, mask, cache) -> dict:
    return {"data": {"source": {"kind": "bids", "root": str(root), "mask": str(mask)}},
            "models": [{"label": "MiniLM", "path": "packaged:minilm", "layers": [1, 3], "context_words": 20}],
            "alignment": {"trim": [3, 3]},
            "scoring": {"methods": ["encoding"], "inner_cv": 3, "alphas": [10.0, 1000.0, 100000.0]},
            "statistics": {"n_bootstrap": 20, "group_test": "ttest"}, "execution": {"cache_dir": str(cache)}}


@pytest.fixture(scope="module")
def study(tmp_path_factory, ):
    """Two simulated participants; sub-01 has NaN in 6 voxels of run 1."""
    tmp = tmp_path_factory.mktemp("lost")
    root, cache = tmp / "bids", tmp / "cache"
    truth = simulate_bids(root, "fmri", n_subjects=2, n_runs=2, n_volumes=60, grid=(7, 7, 5), layers=(1, 3),
                          targets_per_layer=10, snr=1.5, n_words=150, seed=5, cache_dir=str(cache))
    mask = np.asarray(nib.load(root / truth["mask"]).dataobj).astype(bool)
    ijk = np.argwhere(mask)[np.random.default_rng(0).choice(int(mask.sum()), N_LOST, replace=False)]
    bold = root / "sub-01" / "func" / "sub-01_task-story_run-1_bold.nii.gz"
    img = nib.load(bold)
    data = np.asarray(img.get_fdata(), dtype=np.float32)
    data[ijk[:, 0], ijk[:, 1], ijk[:, 2], 7] = np.nan
    out_img = nib.Nifti1Image(data, img.affine, img.header)
    out_img.set_data_dtype(np.float32)
    nib.save(out_img, bold)
    cfg = validate_config(_config(root, root / truth["mask"], cache))
    out = tmp / "out"
    summary = run_study(cfg, out_dir=out, progress=False)
    assert summary.exit_code == 0 and not summary.failed, summary.failed
    run_group(out, cfg)
    group_report(out)
    lost = np.ravel_multi_index(tuple(ijk.T), mask.shape)
    return out, lost, mask


def _r(out, subject) -> pd.DataFrame:
    t = pd.read_csv(out / f"sub-{subject}" / "func" / f"sub-{subject}_task-story_desc-MiniLM_scores.tsv", sep="\t",
                    dtype={"target": str})
    return t[(t.metric == "r") & t.fold.isna() & (t.model == "MiniLM")].pivot(index="target", columns="layer", values="value")


def test_group_joins_participants_on_voxel_identity(study):
    out, lost, mask = study
    r1, r2 = _r(out, "01"), _r(out, "02")
    lost = {str(v) for v in lost}
    assert len(r2) == mask.sum() and len(r1) == mask.sum() - N_LOST
    assert set(r2.index) - set(r1.index) == lost  # sub-01 lost exactly those voxels, the others keep their index
    g = pd.read_csv(outputs.group_scores_path(out, "story", "MiniLM"), sep="\t", dtype={"target": str})
    g = g[(g.metric == "mean_r") & (g.model == "MiniLM")]
    mean = g.pivot(index="target", columns="layer", values="value")
    n = g.pivot(index="target", columns="layer", values="n_subjects")
    expected = pd.concat([r1, r2]).groupby(level=0).mean()  # mean over the participants that have the voxel
    assert set(mean.index) == set(r2.index)
    np.testing.assert_allclose(mean.loc[expected.index].to_numpy(), expected.to_numpy(), rtol=1e-6, atol=1e-7)
    assert (n.loc[sorted(lost)] == 1).all().all() and (n.drop(index=sorted(lost)) == 2).all().all()
    # the group map puts each voxel's value at that voxel
    vol = np.asarray(nib.load(outputs.map_path(out, None, "story", "MiniLM", 3, "r")).dataobj).ravel()
    for t in sorted(lost):
        assert vol[int(t)] == pytest.approx(r2.loc[t, 3], rel=1e-5)


def test_dropped_targets_warning_recorded_once(study):
    out, _, mask = study
    side = json.loads((out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_scores.json").read_text())
    msg = f"sub-01 task-story: dropped {N_LOST} of {int(mask.sum())} targets (0 constant within a run, {N_LOST} with NaN/inf values)"
    assert side["Warnings"].count(msg) == 1
    assert not [w for w in side["Warnings"] if "dropped" in w and w != msg]
    other = json.loads((out / "sub-02" / "func" / "sub-02_task-story_desc-MiniLM_scores.json").read_text())
    assert not [w for w in other["Warnings"] if "dropped" in w]
    assert (out / "sub-01.html").read_text().count(html.escape(msg)) == 1
    assert (out / "group.html").read_text().count(html.escape(msg)) == 1
