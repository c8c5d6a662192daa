"""fMRIPrep fsaverage5 GIFTI surfaces, from the CLI: planted vertices found, maps named and round-tripping, group level."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from _surface_sim import N_FS5, write_gifti_dataset
from brainalign.errors import InputError, MissingDataError
from brainalign.io import load_bids

BIN = Path(sys.executable).parent / "brainalign"
ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2")
LAYERS = (1, 5)
MAP = "sub-{s}_task-story_hemi-{h}_space-fsaverage5_desc-MiniLML{l:02d}_stat-r_statmap.func.gii"


def cli(*args, cache, timeout=400):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          env=dict(ENV, BRAINALIGN_CACHE=str(cache)), timeout=timeout)


def has_space_flag(cache) -> bool:
    """Whether the BIDS App has ``--space`` (else the YAML's data.source.space is used alone)."""
    return "--space" in cli(".", ".", "participant", "--help", cache=cache).stdout


def space_args(space: str, cache) -> list[str]:
    return ["--space", space] if has_space_flag(cache) else []


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def surf(tmp_path_factory, cache):
    """Two participants on fsaverage5 with different vertices carrying data (the union is joined on identity)."""
    root = tmp_path_factory.mktemp("gifti")
    truth = {s: write_gifti_dataset(root, str(cache), sub=s, seed=seed, snr=3.0) for s, seed in (("01", 3), ("02", 8))}
    cfg = root.parent / "surface.yaml"
    cfg.write_text("data: {source: {kind: bids, root: ., task: story, space: fsaverage5}}\n"
                   "models: [{label: MiniLM, path: 'packaged:minilm', layers: [1, 5], context_words: 20}]\n"
                   "alignment: {trim: [3, 3]}\n"
                   "scoring: {methods: [encoding], inner_cv: 3, alphas: [10.0, 100.0, 1000.0, 10000.0, 100000.0],"
                   " permutations: 0}\n"  # no p is read here: no shift null over 20484 vertices
                   "statistics: {n_bootstrap: 50}\n")
    out = tmp_path_factory.mktemp("gifti_out") / "out"
    res = cli(root, out, "participant", "--config", cfg, *space_args("fsaverage5", cache), "--quiet", cache=cache)
    assert res.returncode == 0, res.stderr
    return root, truth, out, cfg


def _r(out: Path, sub: str) -> pd.DataFrame:
    t = pd.read_csv(out / f"sub-{sub}" / "func" / f"sub-{sub}_task-story_desc-MiniLM_scores.tsv", sep="\t",
                    dtype={"target": str})
    return t[(t.metric == "r") & t.fold.isna() & (t.model == "MiniLM")]


def test_planted_vertices_are_found(surf):
    _, truth, out, _ = surf
    for sub in ("01", "02"):
        r = _r(out, sub)
        for layer in LAYERS:
            by = r[r.layer == layer].set_index("target")["value"]
            planted = by[truth[sub]["planted"][str(layer)]]
            noise = by[truth[sub]["noise"]]
            assert set(by.index) == set(truth[sub]["ids"])  # every vertex with data scored, by identity
            assert planted.mean() > np.quantile(noise, 0.95), (sub, layer, planted.mean())
            assert abs(noise.mean()) < 0.05


def test_map_names_are_exact_and_round_trip(surf):
    _, truth, out, _ = surf
    func = out / "sub-01" / "func"
    maps = sorted(p.name for p in func.glob("*statmap*"))
    assert maps == sorted(MAP.format(s="01", h=h, l=l) for h in "LR" for l in LAYERS)
    r = _r(out, "01")
    for layer in LAYERS:
        by = r[r.layer == layer].set_index("target")["value"]
        for h, name in (("L", "CortexLeft"), ("R", "CortexRight")):
            img = nib.load(func / MAP.format(s="01", h=h, l=layer))
            vals = img.darrays[0].data
            assert vals.shape == (N_FS5,) and img.meta["AnatomicalStructurePrimary"] == name
            own = by[[t for t in by.index if t.startswith(h + "_")]]
            idx = np.asarray([int(t[2:]) for t in own.index])
            np.testing.assert_allclose(vals[idx], own.to_numpy(), rtol=0, atol=1e-6)
            rest = np.setdiff1d(np.arange(N_FS5), idx)
            assert np.all(np.isnan(vals[rest]))
    side = json.loads((func / "sub-01_task-story_desc-MiniLM_scores.json").read_text())
    assert set(maps) <= {Path(f).name for f in side["Files"]}
    assert any(s.endswith("hemi-L_space-fsaverage5_bold.func.gii") for s in side["Sources"])


def test_group_level_joins_vertices_on_identity(surf, cache):
    _, truth, out, cfg = surf
    res = cli(surf[0], out, "group", "--config", cfg, cache=cache)
    assert res.returncode == 0, res.stderr
    group = out / "group"
    names = sorted(p.name for p in group.glob("*statmap*"))
    assert names == sorted(f"task-story_hemi-{h}_space-fsaverage5_desc-MiniLML{l:02d}_stat-r_statmap.func.gii"
                           for h in "LR" for l in LAYERS)
    per = {s: _r(out, s) for s in ("01", "02")}
    table = pd.read_csv(group / "task-story_desc-MiniLM_scores.tsv", sep="\t", dtype={"target": str})
    for layer in (5,):
        both = pd.concat([per[s][per[s].layer == layer].set_index("target")["value"] for s in per], axis=1)
        expect = both.mean(axis=1, skipna=True)  # the union of the two participants' vertices
        img = nib.load(group / f"task-story_hemi-R_space-fsaverage5_desc-MiniLML{layer:02d}_stat-r_statmap.func.gii")
        vals = img.darrays[0].data
        right = expect[[t for t in expect.index if t.startswith("R_")]]
        np.testing.assert_allclose(vals[[int(t[2:]) for t in right.index]], right.to_numpy(), atol=1e-6)
        n = table[(table.metric == "mean_r") & (table.layer == layer)].set_index("target")["n_subjects"]
        assert set(n.index) == set(expect.index)
        assert (n[both.notna().sum(axis=1).index] == both.notna().sum(axis=1)).all()
        assert set(n.unique()) == {1, 2}  # some vertices in one participant only


def _rename_old_order(src: Path, dst: Path) -> None:
    """fMRIPrep < 21 order: ``space-fsaverage5_hemi-L`` (and no suffix on the GIFTI)."""
    shutil.copytree(src, dst)
    for p in (dst / "derivatives" / "fmriprep" / "sub-01" / "func").iterdir():
        if "_hemi-" in p.name:
            h = p.name.split("_hemi-")[1][0]
            new = p.name.replace(f"_hemi-{h}_space-fsaverage5", f"_space-fsaverage5_hemi-{h}")
            p.rename(p.with_name(new.replace("_bold.func.gii", ".func.gii")))


def test_both_entity_orders_read_alike(surf, tmp_path):
    root = surf[0]
    _rename_old_order(root, tmp_path / "old")
    new_rec, new_stim = load_bids(root, "01", "story", space="fsaverage5")
    old_rec, old_stim = load_bids(tmp_path / "old", "01", "story", space="fsaverage5")
    assert new_rec.attrs["confounds"] == old_rec.attrs["confounds"] == "simple"
    np.testing.assert_array_equal(new_rec.values, old_rec.values)
    assert list(new_rec["target"].values) == list(old_rec["target"].values)
    assert set(new_rec["hemi"].values) == {"L", "R"}
    np.testing.assert_array_equal(new_rec["vertex"].values, [int(t[2:]) for t in new_rec["target"].values])
    assert new_rec.attrs["tr"] == 2.0 and new_rec.attrs["n_empty_targets"] == 2 * N_FS5 - new_rec.sizes["target"]


def test_missing_space_names_what_it_looked_for(surf, cache, tmp_path):
    root, _, _, cfg = surf
    with pytest.raises(MissingDataError) as exc:
        load_bids(root, "01", "story", space="fsaverage6")
    msg = str(exc.value)
    assert "space-fsaverage6_bold.func.gii" in msg and "hemi-L_space-fsaverage5_bold.func.gii" in msg
    with pytest.raises(MissingDataError) as exc:  # a volumetric request on surface-only derivatives
        load_bids(root, "01", "story", derivatives=True)
    assert "surface BOLD files" in str(exc.value) and "--space fsaverage5" in str(exc.value)
    if has_space_flag(cache):
        res = cli(root, tmp_path / "o", "participant", "--participant-label", "01", "--config", cfg,
                  "--space", "fsaverage6", "--quiet", cache=cache)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert "fsaverage6" in res.stderr.strip().splitlines()[-1]


def test_volumetric_mask_is_refused_on_surfaces(surf):
    with pytest.raises(InputError, match="--mask"):
        load_bids(surf[0], "01", "story", space="fsaverage5", mask=str(surf[0] / "mask.nii.gz"))


def test_surface_figure_and_viewer(surf):
    from brainalign.pipeline.outputs import read_result
    from brainalign.pipeline.surface_maps import surface_figure, surface_view_html

    out = surf[2]
    ds = read_result(out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_result.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = surface_figure(ds["r"].sel(layer=5), ds.attrs, title="r, layer 5")
    assert len([a for a in fig.axes if a.name == "3d"]) == 4
    html = surface_view_html(ds["r"].sel(layer=5), ds.attrs, "right")
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500].lower()


@pytest.mark.parametrize("space", ["fsaverage6", "fsnative"])
def test_figure_of_other_fsaverage_meshes(space):
    """fsaverage6 is drawn on fsaverage5 (its first 10242 vertices); fsnative has no shipped mesh: said so."""
    import xarray as xr

    from brainalign.pipeline.surface_maps import surface_figure

    n = 40962 if space == "fsaverage6" else 150000
    targets = [f"{h}_{v}" for h in "LR" for v in range(0, 20000, 50)]
    stat = xr.DataArray(np.linspace(-0.3, 0.5, len(targets)), dims=("target",), coords={"target": targets})
    meta = {"surface_geometry": json.dumps({"kind": "gifti", "space": space, "n_vertices": {"L": n, "R": n}})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = surface_figure(stat, meta, title="r", cmap="viridis", symmetric=False)
    if space == "fsaverage6":
        assert len(fig.axes) >= 4 and "first 10242 vertices of fsaverage6" in fig._suptitle.get_text()
    else:
        assert len(fig.axes) == 1 and "no fsnative mesh" in fig.axes[0].get_title()


def test_volume_viewer_on_fsaverage5_offline():
    from brainalign.pipeline.surface_maps import view_img_on_surf_html

    aff = np.diag([8.0, 8.0, 8.0, 1.0])
    aff[:3, 3] = [-80, -112, -64]
    vol = np.random.default_rng(0).standard_normal((21, 27, 20)).astype(np.float32)
    vol[0] = np.nan
    html = view_img_on_surf_html(nib.Nifti1Image(vol, aff), title="r")
    assert "<html" in html[:1000].lower() and len(html) > 10_000


def test_viewer_from_a_written_map_file(surf):
    from brainalign.pipeline.surface_maps import map_file_view_html

    path = surf[2] / "sub-01" / "func" / MAP.format(s="01", h="R", l=5)
    html = map_file_view_html(path, title="r")
    assert "<html" in html[:1000].lower() and len(html) > 10_000


def test_group_surface_report_renders_in_chromium(surf, cache, tmp_path):
    """The fsaverage5 group report (issue 15's browser check: volume, surface and iEEG reports)."""
    from test_report_figures import _non_blank, _screenshot, parse

    _, _, out, cfg = surf
    if not (out / "group.html").is_file():  # written by the group level (also run by the test above)
        res = cli(surf[0], out, "group", "--config", cfg, cache=cache)
        assert res.returncode == 0, res.stderr
    page = out / "group.html"
    figures = parse(page).figures
    kinds = {f["kind"] for f in figures}
    assert {"group-profile", "group-map"} <= kinds, kinds
    assert any("on the surface" in f["caption"] for f in figures if f["kind"] == "group-map")
    info = _screenshot(page, tmp_path / "surface-group.png")
    assert {f["kind"] for f in info["figures"]} == kinds and len(info["figures"]) == len(figures)
    for fig in info["figures"]:
        assert (fig["img"] or 0) > 100 or (fig["iframe"] or 0) > 100, fig
    assert _non_blank(tmp_path / "surface-group.png") > 0.03
