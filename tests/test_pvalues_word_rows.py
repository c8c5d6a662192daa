"""The shift null on word / epoch rows: items are shifted over the whole sequence, so a
run (sentence) holding one word no longer fails the participant (Frank 2015 did)."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.encoding import make_folds
from brainalign.errors import InputError
from brainalign.pipeline.prepare import Prepared
from brainalign.pipeline.pvalues import encoding_pvalues
from brainalign.pipeline.specs import AlignSpec


def _prepared(method: str, seed: int = 0) -> tuple[Prepared, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, p = 240, 6
    X = rng.standard_normal((n, p))
    Y = np.column_stack([X @ rng.standard_normal(p) + rng.standard_normal(n), rng.standard_normal(n)])
    runs = np.repeat(np.arange(40), 6)
    runs[-6:] = [38, 38, 38, 38, 38, 39]  # the last run holds a single item
    folds = tuple(make_folds("contiguous", n, runs, 5))
    P = Prepared(method=method, modality="erp" if method == "word" else "fmri", Y=Y, runs=runs,
                 keep=np.ones(n, bool), folds=folds, B=None, targets=np.array(["signal", "noise"]),
                 regions={"all": np.arange(2)}, recording=None, stimulus=None, align=AlignSpec(method=method))
    return P, X


def test_word_rows_are_shifted_over_the_whole_sequence():
    P, X = _prepared("word")
    p, p_emp = encoding_pvalues(P, X, np.full((5, 2), 10.0), 99, seed=1, with_baseline=False, banded=False)
    assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))
    assert p[0] < 0.01 < p[1]  # the planted target is found, the noise one is not
    assert p_emp[0] == pytest.approx(1 / 100)


def test_frame_runs_too_short_to_shift_still_name_the_setting():
    P, X = _prepared("hrf")
    with pytest.raises(InputError, match="scoring.permutations"):
        encoding_pvalues(P, X, np.full((5, 2), 10.0), 99, seed=1, with_baseline=False, banded=False)
