"""brainalign.rsa against rsatoolbox, same process, same data.

Cases (issue 3):
1. correlation RDM, n = 1000 stimuli, p = 4096 channels (float64);
2. GT transform + geodesic, n = 400 (rsatoolbox: geotopological_transform then
   geodesic_transform; ours: geodesic(), which ranks, transforms and runs Dijkstra);
3. bootstrap evaluation: 200 conditions, 20 participants, 5 models, 1000 samples
   over stimuli and participants with a noise ceiling per sample (rsatoolbox:
   eval_bootstrap(..., boot_noise_ceil=True)), for cosine (rsatoolbox's default),
   corr/pearson and spearman.

rsatoolbox's bootstrap is a Python loop whose cost per sample is constant, so by
default it runs ``--anchor-samples`` samples and its time is scaled to 1000 (said
so in the output); ``--full`` runs all 1000.

Usage: python benchmarks/rsa.py [--full] [--anchor-samples 25] [--out FILE]
"""
from __future__ import annotations

import argparse
import os
import platform
import threading
import time
import warnings

import numpy as np
import psutil

warnings.filterwarnings("ignore")


class PeakRSS:
    """Peak resident memory above the starting level while the block runs (MiB)."""

    def __enter__(self):
        self.proc = psutil.Process(os.getpid())
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.mib = (self.peak - self.base) / 2**20


def timed(fn, repeat=1):
    """Best wall time of ``repeat`` runs, the largest peak RSS rise (MiB), the output."""
    best, out, mem = np.inf, None, 0.0
    for _ in range(repeat):
        with PeakRSS() as pk:
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
        best, mem = min(best, dt), max(mem, pk.mib)
    return best, mem, out


def case_correlation(rows, device: str = "cpu"):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    from brainalign.rsa import rdm

    x = np.random.default_rng(0).normal(size=(1000, 4096))
    t_a, m_a, ref = timed(lambda: calc_rdm(Dataset(x), method="correlation").get_matrices()[0])
    t_o, m_o, ours = timed(lambda: rdm(x, "correlation"), repeat=3)
    err = float(np.abs(ref - ours).max())
    rows.append(("correlation RDM, n=1000, p=4096 (float64)", t_a, m_a, t_o, m_o, f"max |diff| {err:.1e}"))
    if device != "cpu":  # the same RDM from a tensor on the GPU (transfer in and out included)
        import torch

        def on_gpu(dtype):
            out = rdm(torch.as_tensor(x, device=device, dtype=dtype), "correlation").cpu().numpy()
            torch.cuda.synchronize()
            return out

        for dtype in (torch.float64, torch.float32):
            on_gpu(dtype)  # warm-up (CUDA context, cuBLAS handles)
            t_g, m_g, g = timed(lambda: on_gpu(dtype), repeat=5)
            err = float(np.abs(ref - g).max())
            name = str(dtype).replace("torch.", "")
            rows.append((f"correlation RDM, n=1000, p=4096, torch {name} on {torch.cuda.get_device_name(0)}",
                         t_a, m_a, t_g, m_g, f"max |diff| {err:.1e}; host copies included"))


def case_geodesic(rows):
    from rsatoolbox.rdm import RDMs
    from rsatoolbox.rdm.transform import geodesic_transform, geotopological_transform

    from brainalign.rsa import geodesic, rdm

    rng = np.random.default_rng(1)
    d = rdm(rng.normal(size=(400, 20)) + 3 * rng.normal(size=(400, 1)), "euclidean")
    vec = d[np.triu_indices(400, 1)][None]  # a fresh RDMs per run: rsatoolbox's GT edits its input
    for lo, up, why in [(0.2, 0.8, "zero-cost components contracted"),
                        (0.0, 0.8, "no zero edges: plain Floyd-Warshall")]:
        t_a, m_a, _ = timed(lambda: geodesic_transform(geotopological_transform(RDMs(vec.copy()), lo, up)),
                            repeat=3)
        t_o, m_o, _ = timed(lambda: geodesic(d, lo, up), repeat=3)
        rows.append((f"GT transform + geodesic, n=400, (l, u) = ({lo}, {up})", t_a, m_a, t_o, m_o,
                     f"ours also ranks (authors' GT); {why}"))


def case_bootstrap(rows, full: bool, anchor_samples: int):
    from rsatoolbox.inference import eval_bootstrap
    from rsatoolbox.model import ModelFixed
    from rsatoolbox.rdm import RDMs

    from brainalign.rsa import bootstrap, rdm

    rng = np.random.default_rng(2)
    n, n_part, n_models, n_samples = 200, 20, 5, 1000
    latent = rng.normal(size=(n, 40))
    data = rdm(latent[None] + 1.5 * rng.normal(size=(n_part, n, 40)), "correlation")
    models = rdm(latent[None] + 2.5 * rng.normal(size=(n_models, n, 40)), "correlation")
    iu = np.triu_indices(n, 1)
    data_r = RDMs(data[:, iu[0], iu[1]])
    models_r = [ModelFixed(f"m{i}", RDMs(models[i][iu][None])) for i in range(n_models)]
    for theirs, ours in [("cosine", "cosine"), ("corr", "pearson"), ("spearman", "spearman")]:
        n_anchor = n_samples if full else anchor_samples
        np.random.seed(0)
        t_a, m_a, res_a = timed(lambda: eval_bootstrap(models_r, data_r, method=theirs, N=n_anchor))
        t_a_full = t_a * n_samples / n_anchor
        t_o, m_o, res_o = timed(lambda: bootstrap(data, models, ours, n_samples=n_samples, seed=0))
        note = (f"rsatoolbox ran {n_anchor} samples" + ("" if n_anchor == n_samples else
                f" ({t_a:.1f} s), scaled x{n_samples / n_anchor:g}"))
        mean_a = np.nanmean(res_a.evaluations, axis=0).ravel()
        note += f"; mean score diff {np.abs(mean_a - res_o.samples.mean(0)).max():.3f}"
        print(f"{ours}: rsatoolbox {t_a_full:.1f} s, ours {t_o:.2f} s", flush=True)
        rows.append((f"bootstrap eval {ours}: 200 cond, 20 part, 5 models, 1000 samples + NC",
                     t_a_full, m_a, t_o, m_o, note))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="run rsatoolbox's bootstrap for all 1000 samples")
    ap.add_argument("--anchor-samples", type=int, default=25)
    ap.add_argument("--out", default=None, help="also write the markdown table to this file")
    ap.add_argument("--device", default="cpu", help="also time the RDM on this torch device (e.g. 'cuda')")
    args = ap.parse_args()
    from importlib.metadata import version

    import rsatoolbox  # noqa: F401
    import torch  # noqa: F401  (import cost outside the timings)

    rows: list = []
    case_correlation(rows, args.device)
    case_geodesic(rows)
    case_bootstrap(rows, args.full, args.anchor_samples)
    head = (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load average at end {os.getloadavg()[0]:.1f}; rsatoolbox {version('rsatoolbox')}, "
            f"numpy {np.__version__}.")
    lines = [head, "", "| case | rsatoolbox (s) | peak MiB | brainalign (s) | peak MiB | speed-up | note |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, t_a, m_a, t_o, m_o, note in rows:
        lines.append(f"| {name} | {t_a:.2f} | {m_a:.0f} | {t_o:.3f} | {m_o:.0f} | {t_a / t_o:.1f}x | {note} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text + "\n")
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
