"""The default BIDS-App run on unseen simulated datasets, as a new user would make it (issue 14).

``python -m brainalign.validation.defaults_check --out DIR`` writes, per generator
family x SNR x seed, a raw BIDS dataset (1 participant, 3 runs, TR 1.5 s, a brain
mask, layers 1 and 5 of the packaged MiniLM planted in two regions) with
:func:`brainalign.pipeline.simulate.simulate_bids`, and runs ``brainalign BIDS_DIR
OUT participant`` with nothing but the data's own files:

- ``atlas``: ``--atlas`` a label image of the two planted regions (what a lab with
  ROIs passes), so each region is one target: the named layer is that target's
  best layer (its window chosen with it, ``context_words: auto``) and its 90 %
  credible set is read directly;
- ``mask`` (SNR 1, first seed): ``--mask`` only, voxel targets; a region's layer is
  the best (window, layer) mean r over its voxels (the ``r_context<W>`` rows of the
  scores table), and the reported answer is the "significant" summary's.

It prints a Markdown table (also ``defaults_check.md`` in ``--out``): per family and
SNR, exact accuracy, mean signed error (chosen - planted) and the credible set's
coverage and size over regions.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import xarray as xr

from ..cli import main as cli_main
from ..pipeline.simulate import simulate_bids

FAMILIES = ("classic", "spm_ar1_drift", "random_hrf", "fir_pink", "raw_lowrank")
PLANTED = (1, 5)


def _atlas(root: Path, truth: dict) -> Path:
    """A label image (1, 2, ... per planted layer, in truth's order) on the mask's grid."""
    mask_img = nib.load(root / truth["mask"])
    mask = np.asarray(mask_img.dataobj) > 0
    flat = np.zeros(int(mask.sum()), dtype=np.int16)
    for i, (_, idx) in enumerate(sorted(truth["planted"].items(), key=lambda kv: int(kv[0])), 1):
        flat[np.asarray(idx)] = i
    vol = np.zeros(mask.shape, dtype=np.int16)
    vol[mask] = flat
    path = root.parent / f"{root.name}_atlas.nii.gz"
    nib.save(nib.Nifti1Image(vol, mask_img.affine), path)
    return path


def _run(root: Path, out: Path, *opts: str) -> xr.Dataset:
    code = cli_main([str(root), str(out), "participant", *opts])
    if code not in (0,):
        raise RuntimeError(f"the BIDS-App run on {root} exited with {code}")
    return xr.load_dataset(next(out.rglob("sub-01_*_result.nc")))


def _atlas_rows(ds: xr.Dataset, truth: dict) -> list[dict]:
    layers = ds["layer"].values
    planted = sorted(int(k) for k in truth["planted"])
    rows = []
    for i, want in enumerate(planted):
        r = ds["r"].isel(target=i).values
        chosen = int(layers[int(np.nanargmax(r))])
        cs = ds["in_credible_set"].isel(target=i).values.astype(bool)
        rows.append({"planted": want, "chosen": chosen, "window": int(ds["context_words"].values[i]),
                     "covered": bool(cs[list(layers).index(want)]), "set_size": int(cs.sum())})
    return rows


def _mask_rows(ds: xr.Dataset, truth: dict) -> list[dict]:
    rows = []
    for want, idx in sorted(truth["planted"].items(), key=lambda kv: int(kv[0])):
        wr = ds["window_r"].values[:, :, idx].mean(2)
        w, layer = np.unravel_index(np.nanargmax(wr), wr.shape)
        rows.append({"planted": int(want), "chosen": int(ds["layer"].values[layer]),
                     "window": int(ds["window"].values[w])})
    s = list(ds["summary"].values).index("significant") if "significant" in ds["summary"].values else 0
    cs = ds["summary_in_credible_set"].values[:, s].astype(bool)
    answer = {"summary": str(ds["summary"].values[s]), "best": int(ds["layer"].values[np.nanargmax(ds["summary_r"].values[:, s])]),
              "set": [int(l) for l, m in zip(ds["layer"].values, cs) if m],
              "window": int(ds["summary_context_words"].values[s])}
    return [dict(r, answer=json.dumps(answer)) for r in rows]


def run(out: Path, seeds: int = 2, snrs=(1.0, 0.25), families=FAMILIES) -> pd.DataFrame:
    rows = []
    for family in families:
        for snr in snrs:
            for seed in range(seeds):
                root = out / f"{family}_snr{snr:g}_seed{seed}"
                truth = simulate_bids(root, "fmri", n_subjects=1, n_runs=3, tr=1.5, layers=PLANTED, snr=snr,
                                      seed=seed, generator=family)
                t0 = time.perf_counter()
                ds = _run(root, out / f"{root.name}_atlas_out", "--atlas", str(_atlas(root, truth)))
                meta = {"family": family, "snr": snr, "seed": seed}
                rows += [dict(meta, targets="atlas", seconds=time.perf_counter() - t0, **r) for r in _atlas_rows(ds, truth)]
                if snr == max(snrs) and seed == 0:
                    ds = _run(root, out / f"{root.name}_mask_out", "--mask", str(root / truth["mask"]))
                    rows += [dict(meta, targets="mask", **r) for r in _mask_rows(ds, truth)]
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> str:
    """Markdown: per targets x SNR x family, exact accuracy, mean signed error, coverage and set size."""
    df = df.assign(exact=df["chosen"] == df["planted"], error=df["chosen"] - df["planted"])
    lines = ["| targets | SNR | family | regions | exact | mean signed error | coverage (90 % set) | mean set size |",
             "|---|---|---|---|---|---|---|---|"]
    for (targets, snr), g in df.groupby(["targets", "snr"], sort=False):
        for fam, h in [*g.groupby("family", sort=False), ("pooled", g)]:
            cov = f"{h['covered'].mean():.2f}" if "covered" in h and h["covered"].notna().all() else ""
            size = f"{h['set_size'].mean():.1f}" if "set_size" in h and h["set_size"].notna().all() else ""
            lines.append(f"| {targets} | {snr:g} | {fam} | {len(h)} | {h['exact'].mean():.2f} | "
                         f"{h['error'].mean():+.2f} | {cov} | {size} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    df = run(args.out, seeds=args.seeds, families=args.families)
    df.to_csv(args.out / "defaults_check.tsv", sep="\t", index=False)
    text = table(df) + f"\n\nTotal {time.perf_counter() - t0:.0f} s.\n"
    (args.out / "defaults_check.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
