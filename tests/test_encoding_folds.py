"""The one fold factory: same folds, same order, from every caller."""
import numpy as np
import pytest

from brainalign.encoding import folds_to_splits, make_folds
from brainalign.encoding._splits import make_splits
from brainalign.encoding.layer_id import contiguous_folds, group_folds
from brainalign.errors import InputError


def _as_lists(folds):
    return [list(map(int, f)) for f in folds]


def test_contiguous_matches_kfold_blocks():
    from sklearn.model_selection import KFold

    folds = make_folds("contiguous", 23, n_folds=5)
    expect = [t for _, t in KFold(5).split(np.empty((23, 1)))]
    assert _as_lists(folds) == _as_lists(expect)


def test_runs_in_order_of_first_appearance():
    runs = np.repeat(["run-10", "run-2", "run-1"], [4, 3, 5])
    folds = make_folds("leave_one_run_out", runs.size, runs=runs)
    assert _as_lists(folds) == [list(range(0, 4)), list(range(4, 7)), list(range(7, 12))]


def test_group_blocks_in_order_of_first_appearance():
    groups = np.repeat([5, 3, 9, 1], 2)  # sorted order would be 1, 3, 5, 9
    folds = make_folds("group", groups.size, groups=groups, n_folds=2)
    assert _as_lists(folds) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_every_caller_gives_the_same_group_folds():
    """Regression: layer_id sorted the groups, _splits used LeaveOneGroupOut (sorted), api first appearance."""
    groups = np.repeat([2, 0, 1], 4)
    ref = _as_lists(make_folds("group", groups.size, groups=groups, n_folds=3))
    assert _as_lists(group_folds(groups, 3)) == ref
    assert _as_lists(t for _, t in make_splits(3, groups.size, groups)) == ref
    assert _as_lists(contiguous_folds(12, 3)) == _as_lists(make_folds("contiguous", 12, n_folds=3))


def test_splits_cover_everything_once():
    folds = make_folds("contiguous", 17, n_folds=4)
    for train, test in folds_to_splits(folds, 17):
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).tolist() == list(range(17))


@pytest.mark.parametrize(
    "kind, kw",
    [
        ("contiguous", dict(n_folds=1)),
        ("contiguous", dict(n_folds=30)),
        ("leave_one_run_out", dict(runs=np.zeros(10))),
        ("leave_one_run_out", dict()),
        ("group", dict(groups=np.arange(9))),
        ("shuffle", dict()),
    ],
)
def test_bad_requests_are_input_errors(kind, kw):
    with pytest.raises(InputError):
        make_folds(kind, 10, **kw)
