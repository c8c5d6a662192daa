"""The torch path of the geometry kernels: torch CPU float64 equals the numpy path.

Each kernel is called with numpy arrays and with the same values as float64 CPU
tensors, pairs and stacks (layers), and the two results must agree to 1e-10; the
result types follow the documented rule (a pair gives a float, a stack a tensor of
the working dtype on the inputs' device). The CUDA runs of the same checks are in
tests/test_geometry_cuda.py.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from brainalign.errors import InputError, NonFiniteError, ShapeMismatchError  # noqa: E402
from brainalign.geometry import (cka, cycle_knn, intrinsic_dimension, mutual_knn,  # noqa: E402
                                 shape_distance)


def _data(seed, n=120, p=24, q=16, layers=3):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(layers, n, p))
    b = np.tanh(a[:, :, :q] @ rng.normal(size=(q, q))) + 0.7 * rng.normal(size=(layers, n, q))
    return a, b


def _t(x):
    return torch.from_numpy(np.ascontiguousarray(x))


def _check_pair_and_stack(fn, a, b, tol=1e-10, **kw):
    ref = fn(a[0], b[0], **kw)
    got = fn(_t(a[0]), _t(b[0]), **kw)
    assert isinstance(got, float) and got == pytest.approx(ref, abs=tol)
    assert fn(_t(a[0]), b[0], **kw) == pytest.approx(ref, abs=tol)  # mixed: computed in torch
    ref_s = fn(a, b, **kw)
    got_s = fn(_t(a), _t(b), **kw)
    assert isinstance(got_s, torch.Tensor) and got_s.dtype == torch.float64 and got_s.device.type == "cpu"
    assert got_s.shape == ref_s.shape
    np.testing.assert_allclose(got_s.numpy(), ref_s, atol=tol, rtol=0)
    return ref, ref_s


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_mutual_and_cycle_knn(seed, k):
    a, b = _data(seed)
    ref, _ = _check_pair_and_stack(mutual_knn, a, b, k=k)
    assert 0 < ref < 1  # neither trivially equal nor unrelated neighbourhoods
    _check_pair_and_stack(cycle_knn, a, b, k=k)


def test_mutual_knn_row_blocks_match_one_block(monkeypatch):
    from brainalign.geometry import _torch as gt

    a, b = _data(5, n=300)
    whole = mutual_knn(_t(a[0]), _t(b[0]), 7)
    monkeypatch.setattr(gt, "BLOCK_BYTES", 37 * 300 * 8)  # 37-row blocks
    assert mutual_knn(_t(a[0]), _t(b[0]), 7) == whole == mutual_knn(a[0], b[0], 7)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [False, True])
def test_cka(kernel, debiased):
    a, b = _data(2)
    _check_pair_and_stack(cka, a, b, kernel=kernel, debiased=debiased)
    wide = np.random.default_rng(9).normal(size=(120, 300))  # the Gram route for a pair
    assert cka(_t(a[0]), _t(wide), kernel, debiased) == pytest.approx(cka(a[0], wide, kernel, debiased), abs=1e-10)
    assert cka(_t(a[0]), _t(b[0]), kernel, debiased, sigma=3.0) == pytest.approx(
        cka(a[0], b[0], kernel, debiased, sigma=3.0), abs=1e-10)


def test_cka_rbf_median_width_with_an_even_number_of_distances():
    # 4 items: 16 squared distances, the median is the mean of the 8th and 9th
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    assert cka(_t(a), _t(b), "rbf") == pytest.approx(cka(a, b, "rbf"), abs=1e-12)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("kind", ["angular", "euclidean"])
def test_shape_distance(alpha, kind):
    a, b = _data(3, q=24 if alpha == 0 else 16)
    ref, _ = _check_pair_and_stack(shape_distance, a, b, alpha=alpha, kind=kind)
    assert ref > 0.1
    wide = np.random.default_rng(8).normal(size=(3, 40, 90))  # wider than the items: the QR route
    wb = np.random.default_rng(9).normal(size=(3, 40, 70))
    if alpha > 0:
        # rank-deficient covariances: whitening scales their null directions (eigenvalues at
        # rounding level, clipped to 1e-7) by up to 1e3, so both paths carry ~1e-10 relative noise
        _check_pair_and_stack(shape_distance, wide, wb, tol=1e-10 if alpha == 1 else 1e-7, alpha=alpha, kind=kind)


@pytest.mark.parametrize("method,kw", [("twonn", {}), ("twonn", {"fit": "mle"}), ("gride", {"n1": 3})])
def test_intrinsic_dimension(method, kw):
    rng = np.random.default_rng(6)
    basis, _ = np.linalg.qr(rng.normal(size=(30, 6)))
    x = rng.uniform(size=(2, 500, 6)) @ basis.T
    ref = intrinsic_dimension(x[0], method, **kw)
    got = intrinsic_dimension(_t(x[0]), method, **kw)
    assert isinstance(got, float) and got == pytest.approx(ref, abs=1e-10) and 4 < ref < 8
    got_s = intrinsic_dimension(_t(x), method, **kw)
    assert isinstance(got_s, torch.Tensor) and got_s.dtype == torch.float64
    np.testing.assert_allclose(got_s.numpy(), intrinsic_dimension(x, method, **kw), atol=1e-10, rtol=0)


def test_float32_tensors_compute_in_float32_and_stay_close():
    a, b = _data(7)
    a32, b32 = _t(a).float(), _t(b).float()
    out = cka(a32, b32)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.double().numpy(), cka(a, b), atol=1e-4)
    assert shape_distance(a32, b32).dtype == torch.float32
    assert mutual_knn(a32, b32, 5).dtype == torch.float32
    assert mutual_knn(a32, _t(b), 5).dtype == torch.float64  # float64 wins


def test_errors_name_the_argument_as_the_numpy_path_does():
    a, b = _data(8)
    bad = _t(a[0]).clone()
    bad[3, 2] = float("nan")
    with pytest.raises(NonFiniteError, match=r"A holds a non-finite value at index \(3, 2\)"):
        mutual_knn(bad, _t(b[0]))
    zero = _t(b[0]).clone()
    zero[4] = 0
    with pytest.raises(InputError, match="B row 4 is all zeros"):
        mutual_knn(_t(a[0]), zero)
    with pytest.raises(ShapeMismatchError, match="A has 120 items but B has 100"):
        cka(_t(a[0]), _t(b[0][:100]))
    with pytest.raises(ShapeMismatchError, match="pass .items, features."):
        shape_distance(_t(a[0][0]), _t(b[0]))
    with pytest.raises(InputError, match="k=200 is outside"):
        mutual_knn(_t(a[0]), _t(b[0]), 200)


def test_knn_indices_of_a_tensor():
    from brainalign.geometry import knn_indices

    x = np.random.default_rng(10).normal(size=(200, 12))
    idx, val = knn_indices(_t(x), 6, return_values=True)
    ref, rval = knn_indices(x, 6, return_values=True)
    assert isinstance(idx, torch.Tensor)
    np.testing.assert_array_equal(np.sort(idx.numpy(), 1), np.sort(ref, 1))
    np.testing.assert_allclose(np.sort(val.numpy(), 1), np.sort(rval, 1), atol=1e-12)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    keep = knn_indices(_t(unit), 3, exclude_self=False)
    assert (keep == torch.arange(200)[:, None]).any(dim=1).all()  # a unit row is its own nearest
