"""The torch CUDA paths: ridge, banded ridge, RDMs and the encoder on a GPU.

Every test compares the GPU result with the CPU one (numpy float64 or the same
call on CPU) and with the anchors where one applies. They are skipped on
machines without CUDA (CI has none); run them with ``pytest tests/test_cuda.py``
on a GPU machine.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device on this machine", allow_module_level=True)

from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.model_selection import LeaveOneGroupOut  # noqa: E402

from brainalign.encoding import BandedRidgeCV, RidgeCV  # noqa: E402
from brainalign.encoding._backend import resolve_backend  # noqa: E402
from brainalign.rsa import rdm  # noqa: E402

ALPHAS = np.logspace(-2, 6, 13)


def make_data(n, p, T, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    W = rng.standard_normal((p, T)) / np.sqrt(p) * rng.uniform(0.05, 1.0, T)
    Y = X @ W + rng.standard_normal((n, T))
    return X - X.mean(0), Y - Y.mean(0)


def test_torch_backend_resolves_to_cuda():
    B = resolve_backend("torch", "float32")
    assert B.device.startswith("cuda")


@pytest.mark.parametrize("shape", [(240, 60), (160, 300), (1600, 1536)], ids=["primal", "dual", "bench"])
@pytest.mark.parametrize("with_groups", [False, True], ids=["kfold", "groups"])
def test_ridge_cuda_float32_agrees_with_cpu_float64(shape, with_groups):
    n, p = shape
    X, Y = make_data(n, p, 2000 if n > 1000 else 300, seed=1)
    groups = np.repeat(np.arange(4), n // 4) if with_groups else None
    gpu = RidgeCV(alphas=ALPHAS, cv=5, backend="torch", dtype="float32").fit(X.astype(np.float32), Y, groups=groups)
    cpu = RidgeCV(alphas=ALPHAS, cv=5, backend="numpy", dtype="float64").fit(X, Y, groups=groups)
    assert isinstance(gpu.coef_, np.ndarray) and gpu.coef_.dtype == np.float32
    same = np.isclose(gpu.alpha_, cpu.alpha_, rtol=1e-6)
    assert same.mean() >= 0.99
    pg, pc = gpu.predict(X.astype(np.float32)), cpu.predict(X)
    rel = np.linalg.norm(pg - pc, axis=0) / np.linalg.norm(pc, axis=0)
    assert rel[same].max() < 1e-3


def test_ridge_cuda_float64_equals_sklearn_at_fixed_alpha():
    X, Y = make_data(200, 80, 50, seed=2)
    ours = RidgeCV(alphas=[3.0], cv=4, backend="torch", dtype="float64").fit(X, Y)
    ref = Ridge(alpha=3.0).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_.T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-9, atol=1e-12)


def test_ridge_cuda_agrees_with_himalaya_cuda():
    hb = pytest.importorskip("himalaya.backend")
    from himalaya.ridge import RidgeCV as HRidgeCV

    X, Y = make_data(400, 120, 500, seed=3)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    groups = np.repeat(np.arange(4), 100)
    previous = hb.get_backend().name
    hb.set_backend("torch_cuda", on_error="raise")
    try:
        cv = list(LeaveOneGroupOut().split(X, groups=groups))
        theirs = HRidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=False, solver_params=dict(warn=False)).fit(X, Y)
    finally:
        hb.set_backend(previous, on_error="warn")
    ours = RidgeCV(alphas=ALPHAS, fit_intercept=False, backend="torch").fit(X, Y, groups=groups)
    same = np.isclose(ours.alpha_, theirs.best_alphas_.cpu().numpy(), rtol=1e-4)
    assert same.mean() >= 0.99
    pred_h = X @ theirs.coef_.cpu().numpy()
    rel = np.linalg.norm(ours.predict(X) - pred_h, axis=0) / np.linalg.norm(pred_h, axis=0)
    assert rel[same].max() < 1e-3


def test_ridge_cuda_small_memory_budget_gives_the_same_fit():
    X, Y = make_data(300, 100, 700, seed=4)
    full = RidgeCV(alphas=ALPHAS, backend="torch").fit(X, Y)
    tight = RidgeCV(alphas=ALPHAS, backend="torch", max_memory=2e6).fit(X, Y)
    np.testing.assert_array_equal(full.alpha_, tight.alpha_)
    np.testing.assert_allclose(full.coef_, tight.coef_, rtol=1e-4, atol=1e-6)


def test_banded_ridge_cuda_matches_cpu():
    rng = np.random.default_rng(5)
    Xa, Xb = rng.standard_normal((300, 40)), rng.standard_normal((300, 60))
    Y = Xa @ rng.standard_normal((40, 80)) * 0.2 + Xb @ rng.standard_normal((60, 80)) * 0.05
    Y += rng.standard_normal(Y.shape)
    kw = dict(alphas=np.logspace(-1, 5, 7), n_iter=8, random_state=0, dtype="float64")
    gpu = BandedRidgeCV(backend="torch", **kw).fit([Xa, Xb], Y)
    cpu = BandedRidgeCV(backend="numpy", **kw).fit([Xa, Xb], Y)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gpu.score([Xa, Xb], Y), cpu.score([Xa, Xb], Y), atol=1e-9)


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "sqeuclidean", "cosine"])
def test_rdm_on_cuda_tensor_matches_numpy(metric):
    x = np.random.default_rng(6).normal(size=(3, 150, 500))
    ref = rdm(x, metric)
    out = rdm(torch.as_tensor(x, device="cuda"), metric)
    assert out.device.type == "cuda"
    np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=1e-9, atol=1e-9)
    out32 = rdm(torch.as_tensor(x, device="cuda", dtype=torch.float32), metric).cpu().numpy()
    np.testing.assert_allclose(out32, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_encoder_on_cuda_matches_cpu(tmp_path):
    from test_encoders import WORDS, build_tiny_gpt2

    from brainalign.encoders import HFEncoder

    path = build_tiny_gpt2(tmp_path / "gpt2")
    kw = dict(model=path, context="run", context_words=8, cache_dir=False)
    cpu = HFEncoder(device="cpu", dtype="float32", **kw).encode(WORDS).values
    gpu = HFEncoder(device="cuda", dtype="float32", **kw).encode(WORDS).values
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4)
    for half in ("float16", "bfloat16"):
        h = HFEncoder(device="cuda", dtype=half, **kw).encode(WORDS).values
        assert h.dtype == np.float32 and np.isfinite(h).all()
        # half precision: agreement to a few parts in a hundred of the activation scale
        assert np.abs(h - cpu).max() <= 5e-2 * np.abs(cpu).max()
