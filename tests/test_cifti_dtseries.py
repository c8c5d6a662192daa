"""fMRIPrep fsLR CIFTI-2 dense time series, from the CLI: planted grayordinates found, dscalar maps on the input's axis."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from _surface_sim import write_cifti_dataset
from brainalign.errors import DataQualityWarning
from brainalign.io import load_bids
from brainalign.io.cifti import decode_axis, encode_axis

BIN = Path(sys.executable).parent / "brainalign"
ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2")
LAYERS = (1, 5)
MAP = "sub-01_task-story_space-fsLR_den-91k_desc-MiniLML{l:02d}_stat-r_statmap.dscalar.nii"


def cli(*args, cache, timeout=400):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          env=dict(ENV, BRAINALIGN_CACHE=str(cache)), timeout=timeout)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def cifti(tmp_path_factory, cache):
    root = tmp_path_factory.mktemp("cifti")
    truth = write_cifti_dataset(root, str(cache))
    cfg = root.parent / "cifti.yaml"
    cfg.write_text("data: {source: {kind: bids, root: ., task: story, space: fsLR}}\n"
                   "models: [{label: MiniLM, path: 'packaged:minilm', layers: [1, 5], context_words: 20}]\n"
                   "alignment: {trim: [3, 3]}\n"
                   "scoring: {methods: [encoding], inner_cv: 3, alphas: [10.0, 100.0, 1000.0, 10000.0, 100000.0],"
                   " permutations: 0}\n")  # no p is read here: no shift null
    out = tmp_path_factory.mktemp("cifti_out") / "out"
    flag = "--space" in cli(".", ".", "participant", "--help", cache=cache).stdout
    res = cli(root, out, "participant", "--config", cfg, *(["--space", "fsLR"] if flag else []), "--quiet", cache=cache)
    assert res.returncode == 0, res.stderr
    return root, truth, out


def _r(out: Path) -> pd.DataFrame:
    t = pd.read_csv(out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_scores.tsv", sep="\t",
                    dtype={"target": str})
    t = t[(t.metric == "r") & t.fold.isna() & (t.model == "MiniLM")].copy()
    t["target"] = t["target"].astype(int)  # the grayordinate index
    return t


def test_planted_grayordinates_are_found(cifti):
    _, truth, out = cifti
    r = _r(out)
    for layer in LAYERS:
        by = r[r.layer == layer].set_index("target")["value"]
        assert not set(truth["empty"]) & set(by.index)  # no data: not a target
        planted, noise = by[truth["planted"][str(layer)]], by[truth["noise"]]
        assert planted.mean() > np.quantile(noise, 0.95), (layer, planted.mean())
        assert abs(noise.mean()) < 0.05


def test_dscalar_names_axis_and_values_round_trip(cifti):
    root, truth, out = cifti
    func = out / "sub-01" / "func"
    assert sorted(p.name for p in func.glob("*statmap*")) == sorted(MAP.format(l=l) for l in LAYERS)
    r = _r(out)
    src = nib.load(root / "derivatives" / "fmriprep" / "sub-01" / "func" / "sub-01_task-story_run-1_space-fsLR_den-91k_bold.dtseries.nii")
    for layer in LAYERS:
        img = nib.load(func / MAP.format(l=layer))
        assert img.header.get_axis(1) == src.header.get_axis(1)  # the input's brain models axis
        assert img.nifti_header.get_intent()[0] == "ConnDenseScalar"
        vals = np.asarray(img.get_fdata())[0]
        by = r[r.layer == layer].set_index("target")["value"]
        np.testing.assert_allclose(vals[by.index.to_numpy(dtype=int)], by.to_numpy(), rtol=0, atol=1e-6)
        assert np.all(np.isnan(vals[truth["empty"]]))


def test_recording_keeps_structure_and_tr_from_the_series_axis(cifti):
    root, truth, _ = cifti
    rec, _ = load_bids(root, "01", "story", space="fsLR")
    axis = truth["axis"]
    g = rec["target"].values.astype(int)
    assert rec.attrs["tr"] == 2.0 and not any(s.endswith(".json") for s in rec.attrs["sources"])
    np.testing.assert_array_equal(rec["structure"].values, np.asarray(axis.name)[g])
    np.testing.assert_array_equal(rec["vertex"].values, np.asarray(axis.vertex)[g])
    vox = rec["cifti_voxel"].values
    on_vol = np.asarray(axis.volume_mask)[g]
    assert np.all(vox[~on_vol] == -1) and np.all(rec["vertex"].values[on_vol] == -1)
    ijk = np.asarray(axis.voxel)[g][on_vol]
    np.testing.assert_array_equal(vox[on_vol], np.ravel_multi_index(tuple(ijk.T), axis.volume_shape))
    assert decode_axis(encode_axis(axis)) == axis


def test_sidecar_tr_wins_over_the_series_axis_with_a_warning(cifti, tmp_path, cache):
    root = tmp_path / "c"
    write_cifti_dataset(root, str(cache), n_vol=40, tr=2.0, sidecar=True)
    for side in (root / "derivatives" / "fmriprep" / "sub-01" / "func").glob("*_bold.json"):
        side.write_text(json.dumps({"RepetitionTime": 2.5}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec, _ = load_bids(root, "01", "story", space="fsLR", clean=False, confounds=None)
    assert rec.attrs["tr"] == 2.5
    assert any(issubclass(w.category, DataQualityWarning) and "differs from the sidecar" in str(w.message)
               for w in caught)


def test_surface_figure_without_an_fslr_mesh_says_so(cifti):
    from brainalign.pipeline.outputs import read_result
    from brainalign.pipeline.surface_maps import surface_figure, surface_view_html

    ds = read_result(cifti[2] / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_result.nc")
    fig = surface_figure(ds["r"].sel(layer=1), ds.attrs, title="r, layer 1")
    text = " ".join(a.get_title() for a in fig.axes)
    assert "no fsLR mesh" in text and len(fig.axes) == 1
    assert "no fsLR mesh" in surface_view_html(ds["r"].sel(layer=1), ds.attrs)
    from brainalign.pipeline.surface_maps import map_file_view_html

    assert "no fsLR mesh" in map_file_view_html(cifti[2] / "sub-01" / "func" / MAP.format(l=1))


def test_group_dscalar_on_the_input_axis(cifti, cache, tmp_path):
    root, truth, out = cifti
    cfg = root.parent / "cifti.yaml"
    res = cli(root, out, "group", "--config", cfg, cache=cache)
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in (out / "group").glob("*statmap*"))
    assert names == sorted(f"task-story_space-fsLR_den-91k_desc-MiniLML{l:02d}_stat-r_statmap.dscalar.nii" for l in LAYERS)
    r = _r(out)
    img = nib.load(out / "group" / names[1])
    assert img.header.get_axis(1) == truth["axis"]
    by = r[r.layer == 5].set_index("target")["value"]  # one participant: the mean is its map
    np.testing.assert_allclose(np.asarray(img.get_fdata())[0][by.index.to_numpy(dtype=int)], by.to_numpy(), atol=1e-6)
