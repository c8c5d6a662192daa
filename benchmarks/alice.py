"""Alice fMRI end to end: this checkout against a baseline worktree, same data, same cache state.

Runs ``brainalign run pipelines/alice_fmri.yaml`` (28 participants x 362 volumes x 6 ROIs,
MiniLM 7 layers, two-band baseline + layer ridge, loo_isc ceiling) once with the code of
this checkout and once with the code of ``--baseline`` (a ``git worktree`` of an older
commit), back to back, each in a fresh child process (imports, data loading, model
loading, ceilings, group level and report all count). Each code base gets its own
activation cache folder, warmed before timing by a one-participant run of the same
code, so both timed runs find the model's activations cached. Then every score TSV
(participant and group level) of the two runs is compared: the chosen alphas must be
identical and every other value equal to float rounding (the largest differences are
printed and written down).

Usage::

    git worktree add /tmp/base <commit>
    python benchmarks/alice.py --baseline /tmp/base [--repeats 2] [--work /tmp/alice-bench]

Writes ``docs/benchmarks/alice.md`` and the Alice section of ``docs/benchmarks.md``.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "pipelines/alice_fmri.yaml"
START, END = "<!-- alice-benchmark:start -->", "<!-- alice-benchmark:end -->"
NOTES = """\
**Why some values differ.** (1) *Tied band weightings.* The two-band ridge keeps, per
target, the first (weighting, alpha) whose mean validation score beats the earlier ones by
more than float32's epsilon. For targets without signal the best alpha is the top of the
grid (1e10), predictions are close to zero and the four weightings' validation scores
agree to about 1e-7 of their size: the old path, computing in float32, chose among them
by rounding noise; the new one computes the scores in float64 (to about 1e-15) and so
keeps the first weighting unless another is really better by epsilon. A different
weighting at alpha 1e10 changes the direction of the (near-zero) predictions, and the
fold's r is scale-free, so those folds' r can change by a lot (they are noise either
way). (2) *Float32 rounding* of the old path: per-fold r of the other folds differ by
5e-8 (median) and up to a few 1e-4 for near-zero predictions at alpha 1e10. (3) *Selected
layers* (`layer_id`, `layer_id_score`) changed with this issue's fix of the layer-
identification kernel scale (encoding/layer_id.py: kernels X X^T, so the config's alphas
mean what RidgeCV's do), not with the speed work; group statistics that use the
selected layer move with them. The ceilings and the baseline-alone scores are identical.
"""
KEY = ("subject", "task", "model", "layer", "target", "method", "metric", "fold")


def code_env(root: Path, cache: Path, data: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root), BRAINALIGN_SHARED_DATA=str(data), BRAINALIGN_CACHE=str(cache),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def run_cli(root: Path, out: Path, env: dict, extra: list[str] = ()) -> float:
    """Wall seconds of one ``brainalign run`` of ``root``'s code and configuration."""
    cmd = [sys.executable, "-m", "brainalign.cli", "run", str(root / CONFIG), "--output", str(out), "--quiet", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{root}: brainalign run exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall


def read_scores(out: Path) -> dict:
    """Every row of every ``*_scores.tsv`` under ``out``, keyed by its identifying columns."""
    rows = {}
    for path in sorted(out.rglob("*_scores.tsv")):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                key = (path.relative_to(out).parent.as_posix(),) + tuple(row.get(k, "") for k in KEY)
                rows[key] = row["value"]
    return rows


def compare(a: Path, b: Path) -> dict:
    """Differences between two output trees' score tables.

    ``alpha_diff``: chosen (layer-band) penalties that differ, of ``alpha_n``;
    ``r_fold_same_alpha``: the largest |r| difference of the per-fold scores
    whose alpha is the same in both; ``max_abs``: the largest difference of
    every other value, by metric; ``layer_id_diff``: participants x targets
    whose selected layer differs.
    """
    ra, rb = read_scores(a), read_scores(b)
    common = ra.keys() & rb.keys()
    moved = {k[:7] + k[8:] for k in common if k[7] == "alpha" and ra[k] != rb[k]}
    out = {"rows_old": len(ra), "rows_new": len(rb), "rows_common": len(common), "alpha_diff": len(moved),
           "alpha_n": sum(k[7] == "alpha" for k in common), "r_fold_same_alpha": 0.0,
           "layer_id_diff": sum(k[7] == "layer_id" and ra[k] != rb[k] for k in common),
           "max_abs": {}, "n_nan_mismatch": 0}
    for k in common:
        metric, va, vb = k[7], ra[k], rb[k]
        if metric == "alpha":
            continue
        try:
            fa, fb = float(va), float(vb)
        except ValueError:
            out["n_nan_mismatch"] += va != vb
            continue
        if (fa != fa) or (fb != fb):
            out["n_nan_mismatch"] += (fa != fa) != (fb != fb)
            continue
        d = abs(fa - fb)
        out["max_abs"][metric] = max(out["max_abs"].get(metric, 0.0), d)
        if metric == "r" and k[8] not in ("", "n/a") and k[:7] + k[8:] not in moved:
            out["r_fold_same_alpha"] = max(out["r_fold_same_alpha"], d)
    return out


def warm(root: Path, cache: Path, data: Path, work: Path, label: str) -> float:
    """A one-participant run that fills ``cache`` (untimed for the comparison)."""
    return run_cli(root, work / f"warm-{label}", code_env(root, cache, data), ["--participant-label", "s18", "--skip-group"])


def git_rev(root: Path) -> str:
    r = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h"], capture_output=True, text=True)
    rev = r.stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return rev + (" (+ uncommitted changes)" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, type=Path, help="worktree of the commit to compare against")
    ap.add_argument("--repeats", type=int, default=1, help="old/new pairs, run back to back")
    ap.add_argument("--work", type=Path, default=Path("/tmp/alice-bench"), help="outputs and caches go here")
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (default: ../shared/data beside the repo)")
    ap.add_argument("--out", type=Path, default=REPO / "docs/benchmarks/alice.md")
    ap.add_argument("--no-docs", action="store_true", help="print only")
    ap.add_argument("--skip-warm", action="store_true", help="WORK/cache-old and WORK/cache-new are already warm")
    args = ap.parse_args(argv)
    base = args.baseline.resolve()
    data = (args.data or Path(os.environ.get("BRAINALIGN_SHARED_DATA", REPO.parent / "shared/data"))).resolve()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    codes = {"old": base, "new": REPO}
    caches = {k: work / f"cache-{k}" for k in codes}
    for k, root in codes.items():
        if args.skip_warm:
            continue
        print(f"warming the {k} cache: {warm(root, caches[k], data, work, k):.1f} s", flush=True)
    runs = []
    for i in range(args.repeats):
        pair = {}
        for k, root in codes.items():
            out = work / f"{k}-{i}"
            shutil.rmtree(out, ignore_errors=True)  # a fresh folder: nothing "already up to date"
            load0 = os.getloadavg()[0]
            pair[k] = run_cli(root, out, code_env(root, caches[k], data))
            pair[f"load_{k}"] = (load0, os.getloadavg()[0])
            print(f"run {i + 1} {k}: {pair[k]:.1f} s (load average {load0:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)
        pair["ratio"] = pair["old"] / pair["new"]
        pair["diff"] = compare(work / f"old-{i}", work / f"new-{i}")
        print(f"run {i + 1}: {pair['ratio']:.2f}x; {pair['diff']}", flush=True)
        runs.append(pair)
    if not args.no_docs:
        write_docs(args.out, runs, git_rev(base), git_rev(REPO))
    return 0


def _page(runs: list[dict], old: str, new: str) -> str:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Alice fMRI end to end", "",
        f"`python benchmarks/alice.py --baseline WORKTREE`, {when}; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. Old code: `{old}`; new code: `{new}`.",
        "Each run is `brainalign run pipelines/alice_fmri.yaml` in a fresh process (27 usable participants x "
        "362 volumes x 6 ROIs, MiniLM 7 layers, two-band ridge, loo_isc ceiling, group level and report), "
        "each code with its own activation cache, warm before timing (a one-participant run of the same code, or "
        "an earlier run with --skip-warm); old and new back to back.",
        "",
        "| pair | old (s) | new (s) | speed-up | load average old / new (start -> end) | fold alphas differing "
        "| largest abs r difference, same alpha | selected layers differing |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs):
        d = r["diff"]
        lo, ln = r["load_old"], r["load_new"]
        lines.append(f"| {i + 1} | {r['old']:.1f} | {r['new']:.1f} | **{r['ratio']:.2f}x** | "
                     f"{lo[0]:.1f}->{lo[1]:.1f} / {ln[0]:.1f}->{ln[1]:.1f} | {d['alpha_diff']} of {d['alpha_n']} | "
                     f"{d['r_fold_same_alpha']:.1e} | {d['layer_id_diff']} |")
    last = runs[-1]["diff"]["max_abs"] if runs else {}
    lines += ["", "Largest absolute difference of every value (last pair): "
              + ", ".join(f"{k} {v:.2g}" for k, v in sorted(last.items())) + ".", "", NOTES, ""]
    return "\n".join(lines)


def write_docs(page: Path, runs: list[dict], old: str, new: str) -> None:
    text = _page(runs, old, new)
    page.write_text(text)
    ratios = ", ".join(f"{r['ratio']:.2f}x" for r in runs)
    section = "\n".join([
        START, "## Alice fMRI end to end (`benchmarks/alice.py`)", "",
        f"`brainalign run pipelines/alice_fmri.yaml` against a worktree of `{old}`: **{ratios}** "
        f"(old/new wall time, pairs run back to back; target >= 3x). Details, load and the score comparison: "
        f"[alice](benchmarks/alice.md).", END,
    ])
    index = REPO / "docs/benchmarks.md"
    body = index.read_text()
    if START in body and END in body:
        head, rest = body.split(START, 1)
        body = head + section + rest.split(END, 1)[1]
    else:
        body = body.rstrip("\n") + "\n\n" + section + "\n"
    index.write_text(body)


if __name__ == "__main__":
    sys.exit(main())
