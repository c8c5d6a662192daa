"""Pipeline benchmark: wall time and peak memory, serial against two Dask workers.

Runs (each in a fresh child process, so imports and model loading count):
  1. the embedded demo (data/, pipelines/demo.yaml; 3 participants, ~550 voxels);
  2. a simulated 100k-voxel fMRI participant (2 runs x 150 volumes, MiniLM layers 1, 3, 5).
Each is run serially (one process, BLAS threads = all cores) and on a Dask
LocalCluster of two single-threaded worker processes, tasks = participant x model x
one layer. Peak memory is the highest summed RSS of the child's process tree (psutil
sampled every 0.1 s). The activation cache is warmed before timing. Results equal
the serial run (checked: max |r difference| is printed).

Usage: python benchmarks/pipeline.py [--skip-100k] [--out docs/benchmarks/pipeline.md]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import json, sys, time
    from brainalign.pipeline.config import load_config
    from brainalign.pipeline.plan import run_study
    cfg = load_config(sys.argv[1]); out = sys.argv[2]; mode = sys.argv[3]
    cfg.outputs.report = False
    t0 = time.perf_counter()
    if mode == "dask":
        from distributed import Client, LocalCluster
        cfg.execution.layers_per_task = 1
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, Client(lc) as c:
            s = run_study(cfg, out_dir=out, scheduler=c, progress=False)
    else:
        s = run_study(cfg, out_dir=out, progress=False)
    print(json.dumps({"seconds": time.perf_counter() - t0, "failed": s.failed, "done": len(s.done)}))
""")


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_child(cfg: Path, out: Path, mode: str, env: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(cfg), str(out), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} run failed: {stderr[-2000:]}")
    info = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "run_s": info["seconds"], "peak_mb": peak / 2**20, "failed": info["failed"]}


def max_diff(a: Path, b: Path) -> float:
    import numpy as np

    from brainalign.pipeline.outputs import find_results, read_result

    d = 0.0
    for fa, fb in zip(find_results(a), find_results(b)):
        ra, rb = read_result(fa), read_result(fb)
        d = max(d, float(np.nanmax(np.abs(ra["r"].values - rb["r"].values))))
    return d


def bench(name: str, cfg: Path, env: dict, tmp: Path) -> dict:
    rows = {}
    for mode in ("serial", "dask"):
        rows[mode] = run_child(cfg, tmp / f"{name}-{mode}", mode, env)
        print(name, mode, rows[mode], flush=True)
    rows["max_abs_r_diff"] = max_diff(tmp / f"{name}-serial", tmp / f"{name}-dask")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-100k", action="store_true")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "pipeline.md"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="brainalign-bench-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", BRAINALIGN_CACHE=str(tmp / "cache"))
    from brainalign.encoders import HFEncoder
    from brainalign.io import load_bids
    from brainalign.pipeline.config import load_config

    demo_cfg = REPO / "pipelines" / "demo.yaml"
    stim = load_bids(REPO / "data", "01", "story", mask=str(REPO / "data/derivatives/simulation/desc-brain_mask.nii.gz"))[1]
    m = load_config(demo_cfg).models[0]
    HFEncoder(context_words=m.context_words, cache_dir=str(tmp / "cache")).encode(stim)  # warm the cache
    results = {"demo": bench("demo", demo_cfg, env, tmp)}
    n_vox = None
    if not args.skip_100k:
        from brainalign.pipeline.simulate import simulate_bids

        big = tmp / "big"
        t0 = time.perf_counter()
        simulate_bids(big, "fmri", n_subjects=1, n_runs=2, n_volumes=150, grid=(64, 64, 48), layers=(1, 5),
                      targets_per_layer=2000, seed=1, cache_dir=str(tmp / "cache"))
        sim_s = time.perf_counter() - t0
        import nibabel as nib
        import numpy as np

        n_vox = int(np.asarray(nib.load(big / "derivatives/simulation/desc-brain_mask.nii.gz").dataobj).sum())
        cfg = tmp / "big.yaml"
        cfg.write_text(
            f"data: {{source: {{kind: bids, root: {big}, task: story, mask: {big}/derivatives/simulation/desc-brain_mask.nii.gz}}}}\n"
            "models: [{label: MiniLM, path: 'packaged:minilm', layers: [1, 3, 5], context_words: 20}]\n"
            "alignment: {trim: [5, 5]}\n"
            "scoring: {methods: [encoding], inner_cv: 3, alphas: [10.0, 100.0, 1000.0, 10000.0, 100000.0]}\n")
        results["100k"] = bench("100k", cfg, env, tmp)
        results["100k"]["simulate_s"] = sim_s
    write_md(Path(args.out), results, n_vox)
    print(f"wrote {args.out}")


def write_md(path: Path, res: dict, n_vox) -> None:
    lines = ["# Pipeline benchmark", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; "
             "other helpers' jobs were running concurrently, so wall times are noisy.",
             "Each run is a fresh child process (imports and model loading included); the activation cache is warm. "
             "Serial = one process (BLAS threads = all cores); Dask = LocalCluster, 2 single-threaded worker processes, "
             "tasks = participant x model x 1 layer. Peak memory = highest summed RSS of the process tree.", "",
             "| run | mode | wall (s) | peak memory (MiB) | max abs r difference vs serial |", "|---|---|---|---|---|"]
    for name, rows in res.items():
        label = "demo (3 participants, ~550 voxels, 7 layers, encoding + RSA)" if name == "demo" else \
            f"simulated fMRI, 1 participant, {n_vox} voxels, 300 volumes, 3 layers, encoding"
        for mode in ("serial", "dask"):
            r = rows[mode]
            diff = f"{rows['max_abs_r_diff']:.2e}" if mode == "dask" else "-"
            lines.append(f"| {label} | {mode} | {r['wall_s']:.1f} | {r['peak_mb']:.0f} | {diff} |")
    if "100k" in res:
        lines += ["", f"Writing the 100k-voxel dataset (`simulate_bids`) took {res['100k']['simulate_s']:.1f} s."]
    lines += ["", "Reproduce: `python benchmarks/pipeline.py` (add `--skip-100k` for the demo only).", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
