"""``brainalign run CONFIG`` and ``brainalign demo``: participant then group level."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import MissingDataError
from .config import REPO_ROOT, load_config

DEMO_CONFIG = REPO_ROOT / "pipelines" / "demo.yaml"


def run_config(path, *, out_dir=None, participants=None, n_jobs=None, scheduler=None, progress=True, debug=False,
               group=True, finish=None) -> int:
    """Run a study file; returns the exit code (0 done, 1 partial, 2 nothing done)."""
    cfg = load_config(path)  # before the heavy imports: a refused file takes a second
    from .group import run_group
    from .plan import run_study
    from .report import group_report

    summary = run_study(cfg, out_dir=out_dir, participants=participants, n_jobs=n_jobs, scheduler=scheduler,
                        progress=progress, debug=debug)
    code = finish(summary, "participant level") if finish else summary.exit_code
    if group and (summary.done or summary.skipped):
        res = run_group(summary.out_dir, cfg)
        print(f"group level: {len(res.tables)} table(s) -> {summary.out_dir / 'group'}")
        if cfg.outputs.report:
            print(f"report: {group_report(summary.out_dir)}")
    return code


def run_demo(out_dir="brainalign-out/demo", **kw) -> int:
    """The embedded demo (data/ + pipelines/demo.yaml), participant and group levels."""
    if not DEMO_CONFIG.is_file() or not (REPO_ROOT / "data" / "dataset_description.json").is_file():
        raise MissingDataError(f"the demo needs {DEMO_CONFIG} and {REPO_ROOT / 'data'} (run from a source checkout)")
    os.environ.setdefault("BRAINALIGN_CACHE", str(REPO_ROOT / "brainalign-out" / "cache"))
    return run_config(DEMO_CONFIG, out_dir=Path(out_dir).resolve(), **kw)
