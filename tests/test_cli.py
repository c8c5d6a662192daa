"""The command line: exit codes, one-line errors, --debug, cache and report commands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from brainalign.cli import EXIT_OK, EXIT_REFUSED, main
from brainalign.pipeline import outputs

BIN = Path(sys.executable).parent / "brainalign"


def test_help_lists_commands_and_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "participant" in out and "exit codes" in out and "simulate" in out


def test_bad_option_is_refused(capsys):
    assert main(["run"]) == 2  # missing CONFIG: argparse usage error


def test_config_error_is_one_line_exit_2(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {source: {kind: bids, root: /nowhere}}\nscoring: {methodz: [encoding]}\n")
    assert main(["run", str(cfg)]) == EXIT_REFUSED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scoring.methodz" in err[0] and "Traceback" not in err[0]


def test_missing_bids_dataset_is_refused_and_debug_shows_traceback(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    res = subprocess.run([str(BIN), str(tmp_path / "nope"), str(tmp_path / "out"), "participant"],
                         capture_output=True, text=True, env=env)
    assert res.returncode == EXIT_REFUSED
    assert "not a BIDS dataset" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([str(BIN), str(tmp_path / "nope"), str(tmp_path / "out"), "participant", "--debug"],
                         capture_output=True, text=True, env=env)
    assert res.returncode != 0 and "Traceback" in res.stderr
    assert not (tmp_path / "out").exists()


def test_cache_commands(tmp_path, capsys):
    assert main(["cache", "du", "--cache-dir", str(tmp_path)]) == EXIT_OK
    assert "MB" in capsys.readouterr().out
    assert main(["cache", "list", "--cache-dir", str(tmp_path)]) == EXIT_OK
    assert main(["cache", "ls", "--cache-dir", str(tmp_path)]) == EXIT_OK  # the spelling
    assert "0 entries" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == EXIT_OK


def _roi_result(subject, seed):
    rng = np.random.default_rng(seed)
    rf = rng.uniform(0, 0.4, (3, 4, 2))
    ds = xr.Dataset({"r_folds": (("layer", "fold", "target"), rf), "alpha": (("layer", "fold", "target"), np.ones(rf.shape)),
                     "r": (("layer", "target"), rf.mean(1)), "p": (("layer", "target"), np.full((3, 2), 0.01)),
                     "p_fdr": (("layer", "target"), np.full((3, 2), 0.02)),
                     "baseline_r_folds": (("fold", "target"), rf[0] / 2), "baseline_r": (("target",), rf[0].mean(0) / 2)},
                    coords={"layer": [1, 2, 3], "fold": range(4), "target": ["LATL", "LIFG"]})
    ds["delta_r"] = ds["r"] - ds["baseline_r"]
    ds.attrs.update(subject=subject, task="listening", model="MiniLM", modality="fmri", settings="{}", warnings="[]")
    return ds


def test_report_and_group_from_written_results(tmp_path, capsys):
    for i, s in enumerate(["s1", "s2", "s3"]):
        outputs.write_participant(_roi_result(s, i), tmp_path, config_hash="h")
    from brainalign.pipeline.group import run_group

    run_group(tmp_path)  # the group tables; `report` only re-renders HTML from what is on disk
    assert main(["report", str(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "sub-s1.html" in out and "group.html" in out
    html = (tmp_path / "group.html").read_text()
    assert "data:image/png;base64," in html
    import pandas as pd

    t = pd.read_csv(tmp_path / "group" / "task-listening_desc-MiniLM_scores.tsv", sep="\t")
    assert {"mean_r", "ci_low", "ci_high", "p_fdr", "mean_delta_r", "p_fdr_delta_r"} <= set(t.metric)
    assert set(t.model) == {"MiniLM", "baseline"}


def test_output_and_cache_folder_checks(tmp_path):
    """Outputs may go beside a dataset or under its derivatives/, never into it; checks create nothing."""
    from brainalign.errors import InputError
    from brainalign.pipeline.paths import check_cache_dir, check_output_dir

    ds = tmp_path / "ds"
    (ds / "sub-01").mkdir(parents=True)
    ok = [ds / "derivatives" / "brainalign", tmp_path / "out", tmp_path / "ds-derivatives"]
    for out in ok:
        assert check_output_dir(out, [ds]) == out.resolve()
    for bad, why in [(ds, "is the input dataset"), (ds / "sub-01" / "x", "inside the input dataset"),
                     (ds / "derivatives-not" / "x", "inside the input dataset")]:
        with pytest.raises(InputError, match=why):
            check_output_dir(bad, [ds])
    assert check_cache_dir(tmp_path / "cache" / "deep") == (tmp_path / "cache" / "deep").resolve()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="afile is a file"):
        check_cache_dir(tmp_path / "afile" / "cache")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["afile", "ds", "sub-01"]  # nothing created


def test_usage_errors_are_one_line(capsys):
    assert main(["run", "--output"]) == EXIT_REFUSED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--output" in err[0] and "brainalign run --help" in err[0]
