"""brainalign.geometry and the tRSA geodesics against plain implementations and anchors.

Same process, same data, float64, best of ``--repeat`` runs (default 1 for the
large cases):

1. mutual k-NN (k = 10), 10,000 items x 4,096 features, two representations:
   ours (float32 half-GEMM blocks, running top-k, float64 certificate) against the
   plain construction platonic-rep uses (full n x n similarity, diagonal filled,
   full argsort), in numpy float64; and the floor, the similarity products alone
   (numpy computes x @ x.T with SYRK, already half the flops), float64 and float32.
2. CKA (linear, biased and debiased), 2,000 x 1,024 vs 2,000 x 512: ours (feature
   space) against the HSIC formula with explicit centring matrices on Gram matrices.
3. shape distance (alpha = 1 and 0.5), 1,000 stimuli x 512 units: ours against
   netrep's recipe written plainly (centre, whiten, scipy.linalg.orthogonal_procrustes,
   transform, angular distance).
4. intrinsic dimension, 10,000 points (d = 10 plane in 100 dims): ours against
   scikit-dimension's TwoNN and GRIDE (installed from PyPI), same numbers.
5. tRSA geodesics on 1,000 stimuli, each method: ours against rsatoolbox's
   geodesic_transform (networkx, the authors' twostep semantics) and a plain numpy
   Floyd-Warshall of the same graph.
6. the torch path on CPU tensors (float64) against our numpy path, same data and
   sizes as 1-4: mutual k-NN, CKA, shape distance, TwoNN.
7. the stochastic (Bures) shape distance: the low-rank form against the (N, N)
   form (Duong et al.'s alternating steps on per-stimulus N x N square roots,
   written plainly here), 32 units x 8 repeats x 50 stimuli end to end, and per
   step at 384 units x 8 repeats x 50 stimuli (the full form is hours end to end
   there), with the low-rank form's end-to-end time.

Usage: python benchmarks/geometry.py [--n-knn 10000] [--p-knn 4096] [--cases knn,cka,...] [--out FILE]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def timed(fn, repeat=1):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def plain_knn(x, k):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    np.fill_diagonal(s, -1e8)
    return np.argsort(-s, axis=1)[:, :k]


def plain_mutual(a, b, k):
    ia, ib = plain_knn(a, k), plain_knn(b, k)
    n = len(a)
    ma = np.zeros((n, n), bool)
    mb = np.zeros((n, n), bool)
    rows = np.arange(n)[:, None]
    ma[rows, ia] = True
    mb[rows, ib] = True
    return float((ma & mb).sum(axis=1).mean() / k)


def case_knn(rows, n, p):
    from brainalign.geometry import mutual_knn

    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, p))
    b = 0.5 * a + rng.normal(size=(n, p))
    t_p, ref = timed(lambda: plain_mutual(a, b, 10))
    t_o, ours = timed(lambda: mutual_knn(a, b, 10))
    t_g, _ = timed(lambda: [x @ x.T for x in (a, b)])
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    t_s, _ = timed(lambda: [x @ x.T for x in (a32, b32)])
    rows.append((f"mutual k-NN, k=10, {n:,} x {p:,}, two representations", "plain: full similarity + argsort",
                 t_p, t_o, f"equal: {ref == ours} ({ours:.4f}); similarity products alone (numpy's x @ x.T, "
                 f"SYRK): float64 {t_g:.1f} s, float32 {t_s:.1f} s"))


def case_cka(rows):
    from brainalign.geometry import cka

    rng = np.random.default_rng(1)
    a = rng.normal(size=(2000, 1024))
    b = np.tanh(a[:, :512]) + rng.normal(size=(2000, 512))

    def plain(debiased):
        ac, bc = a - a.mean(0), b - b.mean(0)
        K, L = ac @ ac.T, bc @ bc.T
        n = len(K)
        if not debiased:
            H = np.eye(n) - 1.0 / n
            h = lambda X, Y: np.trace(X @ H @ Y @ H)  # noqa: E731
        else:
            def h(X, Y):
                Xt, Yt = X - np.diag(np.diag(X)), Y - np.diag(np.diag(Y))
                one = np.ones(n)
                return (np.trace(Xt @ Yt) + (one @ Xt @ one) * (one @ Yt @ one) / ((n - 1) * (n - 2))
                        - 2 / (n - 2) * (one @ Xt @ Yt @ one))
        return h(K, L) / np.sqrt(h(K, K) * h(L, L))

    for debiased in (False, True):
        t_p, ref = timed(lambda: plain(debiased))
        t_o, ours = timed(lambda: cka(a, b, debiased=debiased), repeat=3)
        rows.append((f"linear CKA{' (debiased)' if debiased else ''}, 2,000 x 1,024 vs 2,000 x 512",
                     "plain: Gram HSIC with centring matrices", t_p, t_o, f"|diff| {abs(ref - ours):.1e}"))


def case_shape(rows):
    from scipy.linalg import orthogonal_procrustes

    from brainalign.geometry import shape_distance

    rng = np.random.default_rng(2)
    a = rng.normal(size=(1000, 512))
    b = a @ rng.normal(size=(512, 512)) / 20 + rng.normal(size=(1000, 512))

    def plain(alpha):
        def prep(x):
            x = x - x.mean(0)
            if alpha == 1:
                return x
            lam, v = np.linalg.eigh(x.T @ x)
            z = alpha * np.eye(x.shape[1]) + (1 - alpha) * (v / np.sqrt(lam)) @ v.T
            xw = x @ z
            return xw * np.sqrt(np.trace(x.T @ x) / np.sum(xw * xw))
        x, y = prep(a), prep(b)
        r, _ = orthogonal_procrustes(y, x)
        yr = y @ r
        return np.arccos(np.sum(x * yr) / (np.linalg.norm(x) * np.linalg.norm(yr)))

    for alpha in (1.0, 0.5):
        t_p, ref = timed(lambda: plain(alpha), repeat=3)
        t_o, ours = timed(lambda: shape_distance(a, b, alpha), repeat=3)
        rows.append((f"shape distance (angular, alpha={alpha}), 1,000 x 512", "plain netrep recipe (scipy Procrustes)",
                     t_p, t_o, f"|diff| {abs(ref - ours):.1e}"))


def case_id(rows):
    from brainalign.geometry import intrinsic_dimension

    rng = np.random.default_rng(3)
    basis, _ = np.linalg.qr(rng.normal(size=(100, 10)))
    x = rng.uniform(size=(10000, 10)) @ basis.T
    try:
        import skdim
    except ImportError:
        skdim = None
    for method, kw in (("twonn", {}), ("gride", {"n1": 4})):
        t_o, ours = timed(lambda: intrinsic_dimension(x, method, **kw))
        if skdim is None:
            rows.append((f"ID {method}, 10,000 x 100 (d=10)", "scikit-dimension (not installed)", np.nan, t_o,
                         f"ours {ours:.3f}"))
            continue
        est = skdim.id.TwoNN() if method == "twonn" else skdim.id.GRIDE(n1=4)
        t_a, ref = timed(lambda: est.fit(x).dimension_)
        rows.append((f"ID {method}{' n1=4' if kw else ''}, 10,000 x 100 (d=10 plane)", "scikit-dimension 0.5",
                     t_a, t_o, f"ours {ours:.4f}, theirs {ref:.4f}, |diff| {abs(ref - ours):.1e}"))


def numpy_fw(w):
    d = w.copy()
    np.fill_diagonal(d, 0.0)
    for m in range(len(d)):
        np.minimum(d, d[:, [m]] + d[[m], :], out=d)
    return d


def case_geodesic(rows):
    from rsatoolbox.rdm import RDMs
    from rsatoolbox.rdm.transform import geodesic_transform

    from brainalign.rsa import geodesic, gt_transform, rdm

    rng = np.random.default_rng(4)
    d = rdm(rng.normal(size=(1000, 20)) + 3 * rng.normal(size=(1000, 1)), "euclidean")
    g = gt_transform(d, 0.0, 0.075)
    vec = g[np.triu_indices(1000, 1)][None]
    t_a, theirs = timed(lambda: geodesic_transform(RDMs(vec.copy())).get_matrices()[0])
    t_o, ours = timed(lambda: geodesic(g, pretransformed=True, rank=False), repeat=3)
    w = np.where((g > 0) & (g < 1), g, np.inf)
    t_p, _ = timed(lambda: numpy_fw(w))
    fin = np.isfinite(theirs)
    err = float(np.abs(theirs[fin] - ours[fin]).max())
    rows.append(("geodesic twostep (l=0, u=0.075, zero_edges='drop'), n=1,000", "rsatoolbox geodesic_transform (networkx)",
                 t_a, t_o, f"max |diff| {err:.1e}; plain numpy Floyd-Warshall {t_p:.2f} s"))
    for label, kw in [("twostep l=0.2, u=0.8, zero_edges='keep'", dict(lower=0.2, upper=0.8, zero_edges="keep")),
                      ("twostep l=0.2, u=0.8, zero_edges='drop'", dict(lower=0.2, upper=0.8)),
                      ("p_shortest p=0.05", dict(method="p_shortest")),
                      ("p_nearest p=0.05", dict(method="p_nearest")),
                      ("k_nearest k=5", dict(method="k_nearest", k=5))]:
        t_o, _ = timed(lambda: geodesic(d, **kw), repeat=3)
        rows.append((f"geodesic {label}, n=1,000", "(absolute time)", np.nan, t_o, "ranks included"))


def case_torch(rows, n_knn, p_knn):
    """Torch on CPU tensors against our numpy path (both float64, same process)."""
    import torch

    from brainalign.geometry import cka, intrinsic_dimension, mutual_knn, shape_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(n_knn, p_knn))
    b = 0.5 * a + rng.normal(size=(n_knn, p_knn))
    c1 = rng.normal(size=(2000, 1024))
    c2 = np.tanh(c1[:, :512]) + rng.normal(size=(2000, 512))
    s1 = rng.normal(size=(1000, 512))
    s2 = s1 @ rng.normal(size=(512, 512)) / 20 + rng.normal(size=(1000, 512))
    basis, _ = np.linalg.qr(rng.normal(size=(100, 10)))
    pts = rng.uniform(size=(10000, 10)) @ basis.T
    t = torch.from_numpy
    cases = [(f"mutual k-NN, k=10, {n_knn:,} x {p_knn:,}", lambda x, y: mutual_knn(x, y, 10), a, b),
             ("linear CKA, 2,000 x 1,024 vs 2,000 x 512", lambda x, y: cka(x, y), c1, c2),
             ("linear CKA debiased, same", lambda x, y: cka(x, y, debiased=True), c1, c2),
             ("RBF CKA, same", lambda x, y: cka(x, y, "rbf"), c1, c2),
             ("shape distance alpha=1, 1,000 x 512", lambda x, y: shape_distance(x, y), s1, s2),
             ("shape distance alpha=0.5, same", lambda x, y: shape_distance(x, y, 0.5), s1, s2),
             ("ID TwoNN, 10,000 x 100", lambda x, y: intrinsic_dimension(x), pts, pts)]
    for label, fn, x, y in cases:
        t_n, ref = timed(lambda: fn(x, y))
        t_t, got = timed(lambda: fn(t(x), t(y)))
        rows.append((f"torch CPU float64: {label}", "our numpy path", t_n, t_t, f"|diff| {abs(ref - got):.1e}"))


def full_bures(x, y, n_init=0, max_iter=500, tol=1e-12, steps=None):
    """Duong et al.'s alternating method on per-stimulus (N, N) square roots (the form before the
    low-rank one); ``steps`` limits it to that many steps of one start (for timing a step)."""
    def polar(m):
        u, _, vt = np.linalg.svd(m)
        return u @ vt

    def sqrt_psd(c):
        w, v = np.linalg.eigh(c)
        w = np.where(w > w.max(axis=1, keepdims=True) * c.shape[1] * 1e-15, w, 0.0)
        return np.einsum("mij,mj,mkj->mik", v, np.sqrt(w), v)

    mx, my = x.mean(1) - x.mean((0, 1)), y.mean(1) - y.mean((0, 1))
    dx, dy = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    cx = np.einsum("mri,mrj->mij", dx, dx) / x.shape[1]
    cy = np.einsum("mri,mrj->mij", dy, dy) / y.shape[1]
    sx, sy = sqrt_psd(cx), sqrt_psd(cy)
    gain = lambda t: np.sum(mx * (my @ t)) + sum(np.linalg.svd(a @ t.T @ b, compute_uv=False).sum()  # noqa: E731
                                                 for a, b in zip(sx, sy))
    n = x.shape[2]
    rng = np.random.default_rng(0)
    starts = [polar(my.T @ mx), polar(np.matmul(sy, sx).sum(0)), np.eye(n)]
    starts += [polar(rng.normal(size=(n, n))) for _ in range(n_init)]
    best = -np.inf
    for t in starts[:1] if steps else starts:
        g = gain(t)
        for _ in range(steps or max_iter):
            u = np.stack([polar(a @ t.T @ b) for a, b in zip(sx, sy)])
            t_new = polar(my.T @ mx + np.matmul(np.matmul(sy, np.swapaxes(u, 1, 2)), sx).sum(0))
            g_new = gain(t_new)
            if g_new < g and not steps:
                break
            t, g, done = t_new, g_new, g_new - g <= tol * max(abs(g_new), 1.0)
            if done and not steps:
                break
        best = max(best, g)
    total = np.sum(mx ** 2) + np.sum(my ** 2) + np.trace(cx, axis1=1, axis2=2).sum() + np.trace(cy, axis1=1, axis2=2).sum()
    return float(np.sqrt(max(total - 2 * best, 0.0) / len(x)))


def case_bures(rows):
    from brainalign.geometry import _bures
    from brainalign.geometry import stochastic_shape_distance as ssd

    rng = np.random.default_rng(5)

    def pair(n):
        x = rng.normal(size=(50, 1, n)) + 0.3 * rng.normal(size=(50, 8, n))
        q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        return x, x @ q + 0.2 * rng.normal(size=(50, 8, n))

    x, y = pair(32)
    t_f, ref = timed(lambda: full_bures(x, y))
    t_o, ours = timed(lambda: ssd(x, y, n_init=0))
    rows.append(("Bures stochastic shape distance, 50 stimuli x 8 repeats x 32 units (3 starts)",
                 "(N, N) square-root form", t_f, t_o, f"|diff| {abs(ref - ours):.1e}"))
    x, y = pair(384)
    t_f, _ = timed(lambda: full_bures(x, y, steps=2))
    mx, fx, _, _ = _bures_moments(x)
    my, fy, _, _ = _bures_moments(y)
    mm = my.T @ mx
    t_l, _ = timed(lambda: _bures.ascend(mm, fx, fy, _bures.polar(mm), 1.0, 1.0, 2, 0.0))
    rows.append(("Bures, 50 x 8 x 384: two alternating steps (one start)", "(N, N) square-root form", t_f, t_l,
                 "per step: M SVDs of 384 x 384 against M SVDs of 7 x 7 and one 384 x 384"))
    calls = []
    orig = _bures.fidelity
    _bures.fidelity = lambda *a: (calls.append(1), orig(*a))[1]
    t_o, ours = timed(lambda: ssd(x, y))
    _bures.fidelity = orig
    rows.append(("Bures, 50 x 8 x 384, end to end (6 starts, the defaults)", "(absolute time)", np.nan, t_o,
                 f"{len(calls)} objective evaluations; d = {ours:.4f}"))


def _bures_moments(x):
    from brainalign.geometry.stochastic import _moments

    return _moments(x, x.shape[2])


CASES = ("knn", "cka", "shape", "id", "geodesic", "torch", "bures")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-knn", type=int, default=10000)
    ap.add_argument("--p-knn", type=int, default=4096)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    run = {"knn": lambda r: case_knn(r, args.n_knn, args.p_knn), "cka": case_cka, "shape": case_shape,
           "id": case_id, "geodesic": case_geodesic, "torch": lambda r: case_torch(r, args.n_knn, args.p_knn),
           "bures": case_bures}
    rows = []
    for name in args.cases.split(","):
        if name not in run:
            raise SystemExit(f"--cases: {name!r} is not one of {', '.join(CASES)}")
        run[name](rows)
        print(rows[-1], flush=True)
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "default")
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
             f"torch {torch.__version__}, OMP_NUM_THREADS={threads}.", "",
             "| case | baseline | baseline (s) | ours (s) | ratio | notes |", "|---|---|---|---|---|---|"]
    for name, base, t_b, t_o, note in rows:
        ratio = f"{t_b / t_o:.1f}x" if np.isfinite(t_b) else "-"
        tb = f"{t_b:.2f}" if np.isfinite(t_b) else "-"
        lines.append(f"| {name} | {base} | {tb} | {t_o:.3f} | {ratio} | {note} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
