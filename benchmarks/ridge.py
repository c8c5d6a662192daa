"""Ridge benchmark: brainalign.encoding.RidgeCV against himalaya's RidgeCV.

Both run in one process on the same data (float32, torch backend on CPU,
5 contiguous folds, 13 alphas, no intercept so the two solve the identical
problem), for each target count. Peak memory is measured in a fresh child
process per implementation (RSS sampled every 2 ms, minus the RSS once the
data exist). Also reported: this machine's float32 GEMM peak (torch and numpy, best of
5 square 2048 products) and the GEMM throughput our fit reaches.

Usage::

    python benchmarks/ridge.py                      # n=1600, p=1536, 6000 and 20000 targets
    python benchmarks/ridge.py --targets 2000 --no-memory
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_data(n: int, p: int, T: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 X (n, p), Y (n, T) with signal in every target (SNR varies), X_test (200, p).

    Built chunk by chunk so that making the data adds no large temporaries.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p), dtype=np.float32)
    X -= X.mean(0)
    Xt = rng.standard_normal((200, p), dtype=np.float32)
    Y = np.empty((n, T), dtype=np.float32)
    for s in range(0, T, 2000):
        e = min(s + 2000, T)
        W = rng.standard_normal((p, e - s), dtype=np.float32) * (
            rng.uniform(0.1, 1.0, e - s).astype(np.float32) / np.sqrt(p, dtype=np.float32)
        )
        Y[:, s:e] = X @ W
        Y[:, s:e] += rng.standard_normal((n, e - s), dtype=np.float32)
    Y -= Y.mean(0)
    return X, Y, Xt


def numpy_gemm_peak(repeats: int = 5, size: int = 2048) -> float:
    """Best float32 GFLOP/s of numpy's matmul (its own BLAS) on this machine."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def gemm_peak(repeats: int = 5, size: int = 2048, device: str = "cpu") -> float:
    """Best float32 GFLOP/s of torch matmul on this machine (current thread setting)."""
    import torch

    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    sync(device)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def basis_sizes(X: np.ndarray, alphas: np.ndarray, n_folds: int, dtype=np.float32) -> list[int]:
    """Rows of each fold's alpha basis (see ``brainalign.encoding._solver.alpha_basis``)."""
    from brainalign.encoding._alphas import alpha_basis, basis_tolerance

    n = X.shape[0]
    edges = np.linspace(0, n, n_folds + 1).astype(int)
    out = []
    for k in range(n_folds):
        train = np.r_[0:edges[k], edges[k + 1]:n]
        s2 = np.linalg.svd(X[train].astype(np.float64), compute_uv=False) ** 2
        s2 = s2[s2 > s2[0] * 1e-6]
        basis = alpha_basis(s2, alphas, basis_tolerance(np.dtype(dtype), s2.size))
        out.append(len(alphas) if basis is None else basis[0].shape[0])
    return out


def our_gemm_flops(n: int, p: int, T: int, n_alphas: int, n_folds: int, basis: list[int] | None = None) -> float:
    """GEMM floating-point operations our fit performs (eigh and elementwise work not counted).

    ``basis`` gives the size of each fold's alpha basis (default: no basis,
    ``n_alphas`` rows). The small ``(n_alphas, k + 1)`` mixing products that
    rebuild every alpha's residuals are counted too.
    """
    from brainalign.encoding._solver import fold_is_cheaper

    total = 0.0
    n_val = n // n_folds
    n_tr = n - n_val
    r = min(n_tr, p)
    basis = basis or [n_alphas] * n_folds
    for m in basis:
        if p <= n_tr:  # primal per fold: gram, W, A
            total += 2 * n_tr * p * p + 2 * n_tr * p * r + 2 * n_val * p * r
        else:  # dual: kernel, test kernel, A
            total += 2 * n_tr * n_tr * p + 2 * n_val * p * n_tr + 2 * n_val * n_tr * r
        if fold_is_cheaper(m, n_val, n_tr, r, T):  # validation map folded with W.T once per fold
            total += 2 * m * n_val * r * n_tr + T * 2 * m * n_val * n_tr
        else:
            total += T * (2 * n_tr * r + 2 * m * n_val * r)
        if m < n_alphas:
            total += T * 2 * n_alphas * (m + 1) * n_val
    rf = min(n, p)
    total += 2 * n * p * rf + (2 * n * p * rf if p <= n else 2 * p * n * n)  # refit gram + W or M
    total += T * (2 * n * rf + 2 * p * rf)
    return total


def sync(device: str) -> None:
    if device != "cpu":
        import torch

        torch.cuda.synchronize()


def fit_ours(X, Y, alphas, folds):
    from brainalign.encoding import RidgeCV

    return RidgeCV(alphas=alphas, cv=folds, fit_intercept=False, backend="torch", dtype="float32").fit(X, Y)


def fit_himalaya(X, Y, alphas, folds, device: str = "cpu"):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HRidgeCV

    set_backend("torch" if device == "cpu" else "torch_cuda", on_error="raise")
    return HRidgeCV(alphas=alphas, cv=folds, fit_intercept=False, solver_params=dict(warn=False)).fit(X, Y)


def to_numpy(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


class PeakRSS:
    """Sample this process's RSS in a thread; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.002):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def memory_child(impl: str, n: int, p: int, T: int, n_alphas: int, folds: int) -> None:
    import psutil
    import torch  # noqa: F401  (import before the baseline so both pay it)

    import himalaya.ridge  # noqa: F401
    import brainalign.encoding  # noqa: F401

    X, Y, _ = make_data(n, p, T)
    alphas = np.logspace(-2, 10, n_alphas)
    fit = fit_ours if impl == "brainalign" else fit_himalaya
    fit(X[:200, :50], Y[:200, :20], alphas, folds)  # warm up libraries
    base = psutil.Process().memory_info().rss
    with PeakRSS() as m:
        t = time.perf_counter()
        fit(X, Y, alphas, folds)
        dt = time.perf_counter() - t
    print(json.dumps(dict(impl=impl, base=base, peak=m.peak, seconds=dt)))


def measure_memory(impl: str, args, T: int) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", impl, "--n", str(args.n), "--p", str(args.p),
           "--targets", str(T), "--alphas", str(args.alphas), "--folds", str(args.folds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1600, help="training samples")
    ap.add_argument("--p", type=int, default=1536, help="features")
    ap.add_argument("--targets", type=int, nargs="+", default=[6000, 20000])
    ap.add_argument("--alphas", type=int, default=13)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--no-memory", action="store_true", help="skip the child-process memory runs")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each; the best is kept")
    ap.add_argument("--device", default="cpu", help="'cpu' or a CUDA device such as 'cuda'")
    ap.add_argument("--memory-child", choices=["brainalign", "himalaya"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.n, args.p, args.targets[0], args.alphas, args.folds)
        return

    import torch

    dev = args.device
    if dev != "cpu":
        os.environ["BRAINALIGN_DEVICE"] = dev
    alphas = np.logspace(-2, 10, args.alphas)
    where = (torch.cuda.get_device_name(0) if dev != "cpu" else f"threads={torch.get_num_threads()}")
    print(f"# ridge benchmark: n={args.n} p={args.p} alphas={args.alphas} folds={args.folds} float32, "
          f"torch {torch.__version__} on {dev} ({where}), cpus={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}, best of {args.repeats} interleaved runs")
    peak = gemm_peak(device=dev, size=2048 if dev == "cpu" else 8192)
    print(f"torch float32 GEMM peak ({'2048' if dev == 'cpu' else '8192'}^3, best of 5): {peak:.0f} GFLOP/s")
    if dev == "cpu":  # our many-target fits run their batch products through numpy's BLAS
        npeak = numpy_gemm_peak()
        print(f"numpy float32 GEMM peak (2048^3, best of 5): {npeak:.0f} GFLOP/s; the larger is the peak used below")
        peak = max(peak, npeak)
    Xw, Yw, _ = make_data(300, 100, 50, seed=1)
    fit_ours(Xw, Yw, alphas, args.folds)
    fit_himalaya(Xw, Yw, alphas, args.folds, dev)
    sync(dev)
    rows = []
    for T in args.targets:
        X, Y, Xt = make_data(args.n, args.p, T)
        k = basis_sizes(X, alphas, args.folds)
        t_ours = t_him = np.inf
        for _ in range(args.repeats):
            t = time.perf_counter()
            ours = fit_ours(X, Y, alphas, args.folds)
            sync(dev)
            t_ours = min(t_ours, time.perf_counter() - t)
            theirs = None  # free the previous fit first
            t = time.perf_counter()
            theirs = fit_himalaya(X, Y, alphas, args.folds, dev)
            sync(dev)
            t_him = min(t_him, time.perf_counter() - t)
        a_h = to_numpy(theirs.best_alphas_)
        same = np.isclose(ours.alpha_, a_h, rtol=1e-4)
        p_o, p_h = ours.predict(Xt), Xt @ to_numpy(theirs.coef_)
        rel = np.linalg.norm(p_o - p_h, axis=0) / np.linalg.norm(p_h, axis=0)
        gflops = our_gemm_flops(args.n, args.p, T, args.alphas, args.folds, k) / t_ours / 1e9
        row = dict(T=T, himalaya_s=t_him, ours_s=t_ours, speedup=t_him / t_ours, gflops=gflops,
                   basis=float(np.mean(k)),
                   frac_peak=gflops / peak, same_alpha=same.mean(), pred_rel_max_same=rel[same].max(),
                   pred_rel_median=np.median(rel))
        row = {k: (int(v) if k == "T" else float(v)) for k, v in row.items()}
        del theirs, ours
        if not args.no_memory and dev == "cpu":
            for impl in ("brainalign", "himalaya"):
                m = measure_memory(impl, args, T)
                row[f"{impl}_peak_gb"] = m["peak"] / 1e9
                row[f"{impl}_work_gb"] = (m["peak"] - m["base"]) / 1e9
                row[f"{impl}_child_s"] = m["seconds"]
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    print()
    print("| targets | himalaya (s) | brainalign (s) | speed-up | our GEMM GFLOP/s (% of peak) | same alpha | "
          "max rel. pred. diff | peak RSS him. / ours (GB) | working set him. / ours (GB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mem = (f"{r['himalaya_peak_gb']:.2f} / {r['brainalign_peak_gb']:.2f} | "
               f"{r['himalaya_work_gb']:.2f} / {r['brainalign_work_gb']:.2f}") if "himalaya_peak_gb" in r else "- | -"
        print(f"| {r['T']} | {r['himalaya_s']:.1f} | {r['ours_s']:.1f} | {r['speedup']:.1f}x | "
              f"{r['gflops']:.0f} ({100 * r['frac_peak']:.0f}%) | {100 * r['same_alpha']:.2f}% | "
              f"{r['pred_rel_max_same']:.1e} | {mem} |")


if __name__ == "__main__":
    main()
