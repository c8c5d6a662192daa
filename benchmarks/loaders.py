"""Loading benchmark: a 50k-voxel x 1000-volume fMRI run, ours against a plain nibabel read.

Writes one int16 4-D run (64 x 64 x 40 voxels, 1000 volumes, with scl_slope) as
.nii and .nii.gz in a temporary folder, and a mask of ~50,000 voxels. Each
reader runs in a fresh subprocess, so its peak resident memory (ru_maxrss) is its
own; the reported peak is the high-water mark (VmHWM, reset through
/proc/self/clear_refs after imports) minus the RSS after imports. Rates are MB
of file per second. The files are freshly written, so they sit in the page
cache: "disk" here is the cached read of the same bytes, the floor for any reader.

Readers:
- bytes: read the file's bytes (decompressing .gz) and discard them: the floor.
- nibabel: ``nib.load(f).get_fdata(dtype=np.float32)[mask].T`` (the plain read).
- ours: ``brainalign.io.read_masked(f, mask)`` (streamed, float32, masked per chunk).
- load_bids: the whole loader, incl. nilearn cleaning (detrend, z-score, high-pass).

Usage: python benchmarks/loaders.py [--volumes 1000] [--out docs/benchmarks/loaders.md]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (64, 64, 40)
N_MASK = 50_000

CHILD = r'''
import json, os, resource, sys, time
import numpy as np, nibabel as nib
kind, f, mask_f, root = sys.argv[1:5]
mask = np.load(mask_f, allow_pickle=False)
import brainalign.io as bio
from brainalign.io.nifti import read_masked
import nilearn.image, nilearn.signal, nilearn.masking, nilearn.interfaces.fmriprep  # imports are not timed
def status_kb(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
import gc; gc.collect()
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the current RSS
    fh.write("5")
base = status_kb("VmRSS")
t0 = time.perf_counter()
if kind == "bytes":
    from nibabel.openers import ImageOpener
    buf = bytearray(64 << 20)
    with ImageOpener(f, "rb") as fh:
        while fh.readinto(buf):
            pass
    shape = None
elif kind == "nibabel":
    Y = nib.load(f).get_fdata(dtype=np.float32)[mask].T
    shape = Y.shape
elif kind == "ours":
    Y = read_masked(f, mask)
    shape = Y.shape
elif kind == "load_bids":
    rec, _ = bio.load_bids(root, "01", "bench", mask=mask_f.replace(".npy", ".nii.gz"))
    shape = rec.shape
dt = time.perf_counter() - t0
peak = status_kb("VmHWM")
print(json.dumps({"seconds": dt, "peak_above_base_mb": (peak - base) / 1024, "shape": shape}))
'''


def write_data(d: Path, n_vol: int) -> dict:
    import nibabel as nib

    rng = np.random.default_rng(0)
    grid = np.indices(SHAPE).astype(float)
    c = (np.array(SHAPE) - 1) / 2
    r2 = sum(((grid[i] - c[i]) / (SHAPE[i] / 2)) ** 2 for i in range(3))
    thr = np.sort(r2.ravel())[N_MASK - 1]
    mask = r2 <= thr
    affine = np.diag([3.0, 3.0, 3.5, 1.0])
    root = d / "bids"
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "bench", "BIDSVersion": "1.8.0"}))
    data = np.empty(SHAPE + (n_vol,), dtype=np.int16)
    for t in range(n_vol):  # a realistic range of int16 values
        data[..., t] = (8000 + 400 * rng.standard_normal(SHAPE)).astype(np.int16)
    img = nib.Nifti1Image(data, affine)
    img.header.set_slope_inter(0.25, 0.0)
    out = {}
    for ext in (".nii", ".nii.gz"):
        f = func / f"sub-01_task-bench_bold{ext}"
        t0 = time.perf_counter()
        nib.save(img, f)
        out[ext] = {"path": str(f), "bytes": f.stat().st_size, "write_s": time.perf_counter() - t0}
    (func / "sub-01_task-bench_events.tsv").write_text("onset\tduration\tword\n1.0\t0.3\thello\n")
    (func / "sub-01_task-bench_bold.json").write_text(json.dumps({"RepetitionTime": 2.0, "TaskName": "bench"}))
    mask_f = d / "mask.npy"
    np.save(mask_f, mask)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), d / "mask.nii.gz")
    del data, img
    return {"files": out, "mask": str(mask_f), "n_mask": int(mask.sum()), "root": str(root)}


def run_child(kind: str, f: str, mask: str, root: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    res = subprocess.run([sys.executable, "-c", CHILD, kind, f, mask, root], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--volumes", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        info = write_data(Path(tmp), args.volumes)
        data_mb = info["n_mask"] * args.volumes * 4 / 1e6
        rows = []
        for ext, meta in info["files"].items():
            if ext == ".nii":
                gz_root = None
            else:  # load_bids picks the .nii.gz: hide the .nii from it
                gz_root = info["root"]
            for kind in ("bytes", "nibabel", "ours") + (("load_bids",) if ext == ".nii.gz" else ()):
                if kind == "load_bids":
                    os.replace(info["files"][".nii"]["path"], Path(tmp) / "hidden.nii")
                best = None
                for _ in range(args.repeats):
                    r = run_child(kind, meta["path"], info["mask"], gz_root or info["root"])
                    if best is None or r["seconds"] < best["seconds"]:
                        best = r
                rows.append(dict(ext=ext, kind=kind, mb=meta["bytes"] / 1e6, **best))
                print(f"{ext:8s} {kind:10s} {best['seconds']:7.2f} s  {meta['bytes'] / 1e6 / best['seconds']:7.0f} MB/s  "
                      f"peak +{best['peak_above_base_mb']:6.0f} MB", flush=True)
    lines = [
        "# Loader benchmark (brainalign.io)",
        "",
        f"One fMRI run: {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} int16 voxels x {args.volumes} volumes, mask of "
        f"{info['n_mask']} voxels; the masked float32 data are {data_mb:.0f} MB. Best of {args.repeats} runs, each "
        "reader in its own subprocess (peak = VmHWM, reset after imports, minus the RSS after imports). Files were just written, so they "
        "are read from the page cache. Machine: 2 cores, shared with other jobs (noisy).",
        "",
        "| file | reader | file MB | seconds | MB/s (file) | vs bytes | peak MB above base | peak / data |",
        "|---|---|---|---|---|---|---|---|",
    ]
    floor = {r["ext"]: r["seconds"] for r in rows if r["kind"] == "bytes"}
    for r in rows:
        lines.append(
            f"| {r['ext']} | {r['kind']} | {r['mb']:.0f} | {r['seconds']:.2f} | {r['mb'] / r['seconds']:.0f} | "
            f"{r['seconds'] / floor[r['ext']]:.2f}x | {r['peak_above_base_mb']:.0f} | {r['peak_above_base_mb'] / data_mb:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        out = Path(args.out)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out)


if __name__ == "__main__":
    main()
