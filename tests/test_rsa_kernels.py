"""Property tests of the private kernels: Kendall tau-a and weighted ranks."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from brainalign.rsa import _kernels as K

small_ints = st.lists(st.integers(0, 4), min_size=2, max_size=40)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.data())
def test_tau_a_equals_the_pair_count_definition(data):
    x = data.draw(small_ints)
    y = data.draw(st.lists(st.integers(0, 4), min_size=len(x), max_size=len(x)))
    x, y = np.array(x, float), np.array(y, float)
    s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i in range(len(x)) for j in range(i + 1, len(x)))
    expected = s / (len(x) * (len(x) - 1) / 2)
    assert abs(K.kendall_tau_a_pairs(x[None], y[None])[0] - expected) < 1e-12


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.data())
def test_weighted_ranks_equal_ranks_of_the_repeated_vector(data):
    v = np.array(data.draw(small_ints), float)
    w = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(v), max_size=len(v))), float)
    if w.sum() == 0:
        w[0] = 1
    ranks = K.weighted_rank(v[None], w[None])[0]
    repeated = np.repeat(v, w.astype(int))
    ref = rankdata(repeated)
    first = np.concatenate([[0], np.cumsum(w.astype(int))[:-1]])
    for e in np.flatnonzero(w > 0):
        assert abs(ranks[e] - ref[first[e]]) < 1e-12
