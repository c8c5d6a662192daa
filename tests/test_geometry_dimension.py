"""Intrinsic dimension: TwoNN and GRIDE against written-out estimators and scikit-dimension."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.spatial.distance import cdist
from scipy.special import betaln

from brainalign.errors import DataQualityWarning, InputError
from brainalign.geometry import intrinsic_dimension, intrinsic_dimension_ci, neighbour_distances


def sorted_distances(x):
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)


def twonn_reference(x, discard=0.1):
    d = sorted_distances(x)
    mu = np.sort(d[:, 1] / d[:, 0])
    n = len(mu)
    keep = int(n * (1 - discard))
    xs = np.log(mu[:keep])
    ys = -np.log(1 - np.arange(1, keep + 1) / n)
    slope, *_ = np.linalg.lstsq(xs[:, None], ys, rcond=None)  # line through the origin
    return slope[0]


def gride_reference(x, n1, unbiased=False):
    """Maximise the GRIDE log-likelihood numerically (no outlier cut)."""
    n2 = 2 * n1
    d = sorted_distances(x)
    mu = d[:, n2 - 1] / d[:, n1 - 1]
    n = len(mu)
    m = n - 1 if unbiased else n

    def nll(dim):
        return -(m * np.log(dim) + (n2 - n1 - 1) * np.sum(np.log(mu ** dim - 1))
                 - ((n2 - 1) * dim + 1) * np.sum(np.log(mu)) - n * betaln(n2 - n1, n1))

    return minimize_scalar(nll, bounds=(0.1, 50), method="bounded", options={"xatol": 1e-10}).x


def plane(n, d, ambient, seed, noise=0.0):
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(ambient, d)))
    x = rng.uniform(size=(n, d)) @ basis.T + 5.0
    return x + noise * rng.normal(size=x.shape)


def test_neighbour_distances_exact():
    x = plane(400, 3, 30, 0)
    np.testing.assert_allclose(neighbour_distances(x, 6), sorted_distances(x)[:, :6], rtol=1e-12)


def test_twonn_matches_written_out_fit():
    x = plane(800, 4, 20, 1)
    assert intrinsic_dimension(x) == pytest.approx(twonn_reference(x), abs=1e-9)
    assert intrinsic_dimension(x, discard_fraction=0.05) == pytest.approx(twonn_reference(x, 0.05), abs=1e-9)
    d = sorted_distances(x)
    lm = np.log(d[:, 1] / d[:, 0])
    assert intrinsic_dimension(x, fit="mle", discard_fraction=0.0) == pytest.approx((len(lm) - 1) / lm.sum(), abs=1e-9)


@pytest.mark.parametrize("n1", [1, 3, 8])
def test_gride_matches_numerical_mle(n1):
    x = plane(600, 5, 40, 2)
    ours = intrinsic_dimension(x, "gride", n1=n1, unbiased=False, outlier_cut=False)
    assert ours == pytest.approx(gride_reference(x, n1), abs=1e-6)
    if n1 == 1:  # closed form: N / sum(log mu)
        d = sorted_distances(x)
        assert ours == pytest.approx(len(x) / np.log(d[:, 1] / d[:, 0]).sum(), abs=1e-9)


@pytest.mark.parametrize("d", [2, 5, 8])
@pytest.mark.parametrize("method", ["twonn", "gride"])
def test_recovers_plane_dimension(d, method):
    x = plane(3000, d, 60, 10 + d)
    est = intrinsic_dimension(x, method, n1=2)
    assert abs(est - d) < 0.15 * d + 0.2


def test_stack_gives_one_estimate_per_layer():
    layers = [plane(500, d, 30, 20 + d) for d in (2, 4, 6)]
    out = intrinsic_dimension(layers, "gride", n1=2)
    assert out.shape == (3,)
    np.testing.assert_array_equal(out, [intrinsic_dimension(x, "gride", n1=2) for x in layers])


def test_bootstrap_interval_covers_estimate():
    x = plane(2000, 4, 20, 3)
    est, lo, hi = intrinsic_dimension_ci(x, n_bootstrap=100, seed=0)
    assert est == intrinsic_dimension(x)
    assert lo < est < hi and hi - lo < 1.0
    assert intrinsic_dimension_ci(x, n_bootstrap=100, seed=0) == (est, lo, hi)  # seeded


def test_duplicates_are_dropped_with_a_warning():
    x = plane(300, 3, 10, 4)
    x[1] = x[0]
    with pytest.warns(DataQualityWarning, match="dropped 2 of 300"):
        est = intrinsic_dimension(x)
    assert np.isfinite(est)


def test_bad_inputs():
    x = plane(50, 2, 5, 5)
    with pytest.raises(InputError, match="method"):
        intrinsic_dimension(x, "mle")
    with pytest.raises(InputError, match="n1"):
        intrinsic_dimension(x, "gride", n1=40)
    with pytest.raises(InputError, match="discard_fraction"):
        intrinsic_dimension(x, discard_fraction=1.0)


skdim = pytest.importorskip("skdim")


@pytest.mark.parametrize("fit", ["linear", "mle"])
def test_twonn_equals_scikit_dimension(fit):
    x = plane(1500, 6, 50, 6, noise=0.01)
    theirs = skdim.id.TwoNN(method=fit).fit(x).dimension_
    assert intrinsic_dimension(x, fit=fit) == pytest.approx(theirs, abs=1e-6)


@pytest.mark.parametrize("n1", [1, 4])
def test_gride_equals_scikit_dimension(n1):
    x = plane(1500, 6, 50, 7, noise=0.01)
    theirs = skdim.id.GRIDE(n1=n1).fit(x).dimension_
    assert intrinsic_dimension(x, "gride", n1=n1) == pytest.approx(theirs, abs=1e-6)
