"""brainalign.validation.geometry: the planted-layer profiles and the nested band choice, on small synthetic layers."""
from __future__ import annotations

import numpy as np

from brainalign.rsa.gt_select import identification_accuracy
from brainalign.validation import geometry_trsa as T
from brainalign.validation.geometry import PLANTED, planted_study


def _layers(n_layers=7, n=40, p=16, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, p))
    out = []
    for _ in range(n_layers):
        base = 0.3 * base + rng.standard_normal((n, p))
        out.append(base.copy())
    return np.stack(out)


def test_planted_layer_is_found_at_low_noise_and_profiles_have_every_layer():
    df = planted_study(_layers(), sigmas=(0.2,), seeds=range(2), n_units=30)
    assert set(df["planted"]) == set(PLANTED) and {f"L{i}" for i in range(7)} <= set(df.columns)
    for m in ("cka", "cka_debiased", "rsa", "shape"):
        g = df[df["metric"] == m]
        assert (g["best"] == g["planted"]).all(), m


def test_noisy_rdms_identify_the_layer_at_low_noise_and_not_at_chance_data():
    layers = _layers()
    clean = T.noisy_rdms(layers, 0.05, seed=1)
    assert clean.shape == (T.N_PARTICIPANTS, 7, T.N_READOUTS, 40, 40)
    assert identification_accuracy(T._vectors(clean)) == 1.0
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((6, 7, 2, 30))  # no class information
    assert identification_accuracy(noise) < 0.5


def test_nested_band_choice_never_sees_the_held_out_participant():
    rng = np.random.default_rng(3)
    informative = np.repeat(np.eye(4)[None, :, None, :], 5, axis=0) + 0.1 * rng.standard_normal((5, 4, 2, 4))
    useless = rng.standard_normal((5, 4, 2, 4))
    acc, chosen = T.nested_cv({(0.0, 0.5): useless, (0.1, 0.6): informative})
    assert acc == 1.0 and chosen == [(0.1, 0.6)] * 5
    # a band that is informative only for participant 0 is not chosen when 0 is held out
    trap = useless.copy()
    trap[0] = informative[0]
    _, chosen = T.nested_cv({(0.0, 0.5): trap, (0.1, 0.6): informative})
    assert chosen[0] == (0.1, 0.6)
