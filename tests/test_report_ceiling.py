"""The split-half noise ceiling across repeated runs (one participant)."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.errors import InputError
from brainalign.pipeline.ceiling import split_half_runs


def _repeats(rng, n_runs, n=2000, t=3, noise=(0.5, 1.0, 2.0)):
    signal = rng.standard_normal((n, t))
    data = np.concatenate([signal + np.asarray(noise) * rng.standard_normal((n, t)) for _ in range(n_runs)])
    return signal, data, np.repeat([str(i) for i in range(n_runs)], n)


@pytest.mark.parametrize("n_runs", [2, 4])
def test_ceiling_is_the_best_any_model_of_one_run_can_do(n_runs):
    rng = np.random.default_rng(n_runs)
    signal, data, runs = _repeats(rng, n_runs)
    got = split_half_runs(data, runs)
    first = data[runs == "0"]
    best = [np.corrcoef(signal[:, j], first[:, j])[0, 1] for j in range(3)]  # the true signal as the model
    np.testing.assert_allclose(got, best, atol=0.03)
    assert got[0] > got[1] > got[2]


def test_ceiling_refuses_runs_that_are_not_repeats():
    with pytest.raises(InputError, match="equal lengths"):
        split_half_runs(np.zeros((30, 2)), np.repeat(["1", "2"], [10, 20]))
    with pytest.raises(InputError, match="two or more runs"):
        split_half_runs(np.zeros((30, 2)), np.repeat(["1"], 30))
