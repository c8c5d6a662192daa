"""HFEncoder(stochastic=True): the model's own dropout, seeded, cached by content, a sample dimension."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.encoders import HFEncoder
from brainalign.encoders.model import load_model, resolve_dtype, resolve_model
from brainalign.encoders.stochastic import dropout_active, sample_seed
from brainalign.geometry import stochastic_shape_distance

WORDS = "the old man walked slowly to the river and sat down on a cold stone near the water".split()


def _enc(**kw):
    return HFEncoder(layers=[0, 3, 6], context_words=5, device="cpu", **kw)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, _enc(stochastic=True, n_samples=3, seed=1, cache_dir=cache).encode(WORDS)


def test_samples_have_their_own_dimension_and_differ(drawn):
    _, a = drawn
    assert a.dims == ("layer", "sample", "word", "feature") and a.shape[:3] == (3, 3, len(WORDS))
    assert list(a["sample"].values) == [0, 1, 2] and a.attrs["stochastic"] == "true"
    det = _enc(cache_dir=False).encode(WORDS)
    for li in range(3):
        s = a.values[li]
        assert not np.allclose(s[0], s[1]) and not np.allclose(s[0], det.values[li])
        # dropout noise is a perturbation of the deterministic pass, not a different model
        spread = np.abs(s - det.values[li][None]).mean() / np.abs(det.values[li]).mean()
        assert 0.01 < spread < 1.0


def test_same_seed_same_draws_other_seed_other_draws(drawn):
    _, a = drawn
    again = _enc(stochastic=True, n_samples=3, seed=1, cache_dir=False).encode(WORDS)
    np.testing.assert_array_equal(a.values, again.values)
    other = _enc(stochastic=True, n_samples=3, seed=2, cache_dir=False).encode(WORDS)
    assert not np.allclose(a.values, other.values)
    # more draws with the same seed: the first three are the same draws (sample s has its own seed)
    five = _enc(stochastic=True, n_samples=5, seed=1, cache_dir=False).encode(WORDS)
    np.testing.assert_array_equal(five.values[:, :3], a.values)


def test_cache_key_holds_the_stochastic_settings(drawn):
    cache, a = drawn
    e = _enc(stochastic=True, n_samples=3, seed=1, cache_dir=cache)
    hit = e.encode(WORDS)
    assert e.cache_hit_ and np.array_equal(hit.values, a.values) and hit.dims == a.dims
    for kw in (dict(stochastic=True, n_samples=2, seed=1), dict(stochastic=True, n_samples=3, seed=7), {}):
        e = _enc(cache_dir=cache, **kw)
        e.encode(WORDS)
        assert not e.cache_hit_, kw


def test_the_model_and_the_global_rng_are_left_as_they_were(drawn):
    ref = resolve_model(None, None, False)
    loaded = load_model(ref, torch.device("cpu"), resolve_dtype(None, torch.device("cpu")), False)
    state = torch.get_rng_state()
    _enc(stochastic=True, n_samples=2, seed=3, cache_dir=False).encode(WORDS[:6])
    assert torch.equal(state, torch.get_rng_state())
    assert not any(m.training for m in loaded.model.modules())


def test_dropout_active_switches_dropout_and_its_owners_only():
    class Attn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dropout = torch.nn.Dropout(0.5)
            self.norm = torch.nn.LayerNorm(4)

    net = torch.nn.Sequential(Attn(), torch.nn.BatchNorm1d(4)).eval()
    with dropout_active(net) as n:
        assert n == 1 and net[0].training and net[0].dropout.training
        assert not net[0].norm.training and not net[1].training and not net.training
    assert not any(m.training for m in net.modules())
    assert sample_seed(1, 0) != sample_seed(0, 1) and sample_seed(1, 2) == sample_seed(1, 2)


def test_the_samples_feed_the_stochastic_shape_distance(drawn):
    _, a = drawn
    # all 384 units: the Bures terms work on the rank-2 covariance factors of the 3 draws
    x = a.sel(layer=6).transpose("word", "sample", "feature").values.astype(np.float64)
    y = a.sel(layer=3).transpose("word", "sample", "feature").values.astype(np.float64)
    assert x.shape == (len(WORDS), 3, 384)
    assert stochastic_shape_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert stochastic_shape_distance(x, y) > 0.1
