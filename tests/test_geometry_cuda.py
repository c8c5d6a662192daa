"""The geometry kernels on a CUDA device: each equals the numpy float64 path.

Skipped on machines without CUDA (CI has none), as tests/test_cuda.py is; run with
``pytest tests/test_geometry_cuda.py`` on a GPU machine.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device on this machine", allow_module_level=True)

from brainalign.geometry import cka, cycle_knn, intrinsic_dimension, mutual_knn, shape_distance  # noqa: E402


def _data(seed, n=400, p=64, q=48, layers=3):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(layers, n, p))
    b = np.tanh(a[:, :, :q]) + 0.7 * rng.normal(size=(layers, n, q))
    return a, b


def _cuda(x):
    return torch.from_numpy(np.ascontiguousarray(x)).cuda()


@pytest.mark.parametrize("fn,kw", [(mutual_knn, {"k": 10}), (cycle_knn, {"k": 10}), (cka, {}),
                                   (cka, {"kernel": "rbf", "debiased": True}), (shape_distance, {}),
                                   (shape_distance, {"alpha": 0.5, "kind": "euclidean"})])
def test_cuda_float64_equals_numpy(fn, kw):
    a, b = _data(0)
    assert fn(_cuda(a[0]), _cuda(b[0]), **kw) == pytest.approx(fn(a[0], b[0], **kw), abs=1e-10)
    out = fn(_cuda(a), _cuda(b), **kw)
    assert out.device.type == "cuda" and out.dtype == torch.float64
    np.testing.assert_allclose(out.cpu().numpy(), fn(a, b, **kw), atol=1e-10, rtol=0)


def test_cuda_float32_mutual_knn_close_to_float64():
    a, b = _data(1, n=3000)
    ref = mutual_knn(a[0], b[0], 10)
    got = mutual_knn(_cuda(a[0]).float(), _cuda(b[0]).float(), 10)
    assert got == pytest.approx(ref, abs=2e-3)  # a few float32 near-ties may swap


def test_cuda_intrinsic_dimension_equals_numpy():
    rng = np.random.default_rng(2)
    basis, _ = np.linalg.qr(rng.normal(size=(40, 6)))
    x = rng.uniform(size=(2000, 6)) @ basis.T
    for method in ("twonn", "gride"):
        assert intrinsic_dimension(_cuda(x), method) == pytest.approx(intrinsic_dimension(x, method), abs=1e-10)
