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

Usage: python benchmarks/geometry.py [--n-knn 10000] [--p-knn 4096] [--out FILE]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-knn", type=int, default=10000)
    ap.add_argument("--p-knn", type=int, default=4096)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for case in (lambda r: case_knn(r, args.n_knn, args.p_knn), case_cka, case_shape, case_id, case_geodesic):
        case(rows)
        print(rows[-1], flush=True)
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}.", "",
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
