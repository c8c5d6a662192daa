"""identify_layer on simulated layers with a known best match."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.errors import InputError, ShapeMismatchError
from brainalign.rsa import compare, geodesic, gt_grid, gt_transform, identify_layer, rdm


@pytest.fixture(scope="module")
def sim():
    rng = np.random.default_rng(0)
    n, p, n_layers, target = 24, 10, 5, 2
    latent = rng.normal(size=(n, p))
    # layer k shares less of the latent geometry the further it is from the target
    layers = np.stack([
        (1 - 0.2 * abs(k - target)) * latent + 0.2 * abs(k - target) * rng.normal(size=(n, p)) * 1.5
        for k in range(n_layers)
    ])
    brain = latent[None] + 0.7 * rng.normal(size=(6, n, p))
    return rdm(brain, "correlation"), rdm(layers, "correlation"), target


def test_finds_the_simulated_layer_under_rsa_and_gt(sim):
    brain, layers, target = sim
    names = [f"L{k}" for k in range(layers.shape[0])]
    res = identify_layer(brain, layers, gt=[(0.2, 0.8), (0.1, 0.5)], layer_names=names,
                         n_bootstrap=100, seed=0)
    assert [s.transform for s in res.settings] == ["none", "gt", "gt"]
    assert res.plain.lower is None and res.get(0.1, 0.5).upper == 0.5
    for s in res.settings:
        assert s.best_layer == f"L{target}" and s.best_index == target
        assert s.p_best.sum() == pytest.approx(1.0) and np.argmax(s.p_best) == target
        assert s.samples.shape == (100, 5) and s.ci.shape == (5, 2)
        assert s.participant_best.shape == (6,)
    np.testing.assert_allclose(res.plain.scores, compare(brain, layers).mean(0), atol=1e-12)
    g = res.get(0.2, 0.8)
    np.testing.assert_allclose(
        g.scores, compare(gt_transform(brain, 0.2, 0.8), gt_transform(layers, 0.2, 0.8)).mean(0), atol=1e-12
    )
    frame = res.to_frame()
    assert len(frame) == 15 and frame["is_best"].sum() == 3
    assert set(frame.loc[frame["is_best"], "layer"]) == {f"L{target}"}


def test_reproducible_and_geodesic_variant(sim):
    brain, layers, target = sim
    a = identify_layer(brain, layers, "pearson", n_bootstrap=30, seed=5)
    b = identify_layer(brain, layers, "pearson", n_bootstrap=30, seed=5)
    np.testing.assert_array_equal(a.settings[1].samples, b.settings[1].samples)
    geo = identify_layer(brain, layers, gt=[(0.05, 0.6)], transform="geodesic", n_bootstrap=20, seed=0)
    expected = compare(geodesic(brain, 0.05, 0.6, fill="max"), geodesic(layers, 0.05, 0.6, fill="max")).mean(0)
    np.testing.assert_allclose(geo.settings[1].scores, expected, atol=1e-12)
    assert geo.settings[1].transform == "geodesic" and np.isfinite(geo.settings[1].samples).all()


def test_gt_grid_is_the_papers():
    grid = gt_grid(0.05)
    assert len(grid) == 21 * 20 // 2
    assert all(0 <= lo < up <= 1 for lo, up in grid)
    assert (0.0, 1.0) in grid and (0.95, 1.0) in grid
    with pytest.raises(InputError):
        gt_grid(0.3)


def test_bad_inputs(sim):
    brain, layers, _ = sim
    with pytest.raises(InputError, match="at least 2"):
        identify_layer(brain, layers[0])
    with pytest.raises(ShapeMismatchError):
        identify_layer(brain, layers, layer_names=["a", "b"])
    with pytest.raises(InputError, match="lower > upper"):
        identify_layer(brain, layers, gt=[(0.8, 0.2)])
    with pytest.raises(InputError, match="transform"):
        identify_layer(brain, layers, transform="mds")
