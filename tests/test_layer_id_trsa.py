"""The tRSA selection methods of the layer-identification study (issue 13, docs/validation.md 3c)."""
import numpy as np

from brainalign import rsa
from brainalign.validation import layer_id_trsa as T


def _planted(seed: int, n: int = 60, p: int = 24, n_layers: int = 4, noise: float = 0.1):
    """Layers sharing a component plus their own; region l = a noisy random readout of layer l."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, p))
    layers = [shared + 1.5 * rng.standard_normal((n, p)) for _ in range(n_layers)]
    regions = []
    for X in layers:
        Y = X @ rng.standard_normal((p, 30))
        regions.append(Y + noise * Y.std() * rng.standard_normal(Y.shape))
    model = np.asarray(rsa.rdm(np.stack(layers), metric="correlation"))
    brains = np.asarray(rsa.rdm(np.stack(regions), metric="correlation"))
    return model, brains, layers


def test_topology_choices_run_and_p_shortest_finds_the_planted_layers():
    model, brains, layers = _planted(seed=3)
    out = T.topology_choices(model, brains, layers, seed=0)
    assert set(out) == set(T.METHODS)
    for name, res in out.items():
        assert res["chosen"].shape == (len(layers),), name
        assert np.all((res["chosen"] >= 0) & (res["chosen"] < len(layers))), name
    np.testing.assert_array_equal(out["trsa_p_shortest"]["chosen"], np.arange(len(layers)))
    lo, up = map(float, out["trsa_gt_select"]["band"].split("-"))
    assert 0 <= lo < up <= 1


def test_choose_band_is_seeded():
    _, _, layers = _planted(seed=4)
    a, b = T.choose_band(layers, seed=1), T.choose_band(layers, seed=1)
    assert (a.lower, a.upper, a.accuracy) == (b.lower, b.upper, b.accuracy)
    assert a.surface.shape == (round(1 / T.SELECT_STEP),) * 2
