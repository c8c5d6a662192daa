"""Shared machinery of the damaged-input corpus (tests/test_damaged_*.py).

Every case checks the contract of the command line: the exit code (2 for the user's
or the machine's mistakes), one line on stderr naming the culprit (file, field, flag
or value), no traceback, and nothing half-written (the output folder absent, or, when
participants were tried and all failed, holding nothing but the failure log; no
stray temporary files anywhere). The damaged datasets are built in ``tmp_path`` from
one small simulated dataset per session (``damaged_world`` in conftest.py); one
activation cache serves every case. A case builder gets (world, tmp) and returns a
:class:`Case`; :func:`run_cases` runs them as CLI processes a few at a time.

Each case of :func:`run_cases` is its own process: forked from a ``forkserver`` that
imported ``brainalign.cli`` and the pipeline (torch included) once, it gets the case's
environment, folder and argv, writes to its own stdout/stderr files and exits with
``main``'s exit code, as ``python -m brainalign.cli`` would; what is saved is the
5 s of imports per call (most of a call). :func:`cli` is the plain subprocess.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import yaml

from brainalign.pipeline.simulate import simulate_bids

EXIT_OK, EXIT_PARTIAL, EXIT_REFUSED = 0, 1, 2
STEM = "sub-01/func/sub-01_task-story_run-1"
LOG_ONLY = {"dataset_description.json", "logs/failures.json"}


@dataclass
class World:
    root: Path  # the pristine simulated dataset (never written by a case)
    cache: Path
    mask: Path


@dataclass
class Case:
    """What one damaged input should produce."""

    argv: list
    culprit: str | tuple  # text (or texts, any one) the error line must contain (case-insensitive)
    out: Path | None = None  # the output folder the call names
    code: int = EXIT_REFUSED
    tried: bool = False  # participants may be attempted: when they all fail, the failure log may be written
    guard: Path | None = None  # a folder that must come out byte-identical (an input, an existing output)
    env: dict = field(default_factory=dict)
    cwd: Path | None = None
    accept_run: bool = False  # a setting that may be accepted instead: then it must run for real


def make_world(tmp_path_factory) -> World:
    cache = tmp_path_factory.mktemp("activations")
    root = tmp_path_factory.mktemp("sim") / "ds"
    truth = simulate_bids(root, "fmri", n_subjects=2, n_runs=2, n_volumes=40, grid=(6, 6, 5), layers=(1,),
                          targets_per_layer=10, snr=1.5, n_words=80, seed=11, cache_dir=str(cache))
    return World(root=root, cache=cache, mask=root / truth["mask"])


# ---------------------------------------------------------------------------- helpers
def _case_env(case: Case, world: World) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", BRAINALIGN_CACHE=str(world.cache))
    env.update(case.env)
    return env


def cli(case: Case, world: World) -> subprocess.CompletedProcess:
    """The case as a plain ``python -m brainalign.cli`` subprocess."""
    return subprocess.run([sys.executable, "-m", "brainalign.cli", *map(str, case.argv)], capture_output=True,
                          text=True, env=_case_env(case, world), cwd=case.cwd, timeout=300)


# imported once by the fork server; this module too, whose _cli_child each case unpickles
PRELOAD = ["brainalign.cli", "brainalign.pipeline.study", "brainalign.pipeline.plan", "_damaged_cases"]
_FORKSERVER = None


def _forkserver():
    """The ``forkserver`` context whose server imported :data:`PRELOAD` (started once per session)."""
    global _FORKSERVER
    if _FORKSERVER is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _FORKSERVER = ctx
    return _FORKSERVER


def _cli_child(argv: list[str], env: dict, cwd: str | None, out: str, err: str) -> None:
    """In the forked process: the case's environment and folder, fds 1 and 2 to files, ``main(argv)``, exit."""
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    sys.argv = ["brainalign", *argv]
    try:
        from brainalign.cli import main

        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # what the interpreter does with an exception that escapes
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cli_forked(case: Case, world: World, tmp: Path) -> subprocess.CompletedProcess:
    """The case in a process forked from the preloaded server, as :func:`cli` returns it (its stdout and stderr
    pass through files beside ``tmp``, not in it)."""
    return run_forked(case.argv, _case_env(case, world), tmp.parent / tmp.name, cwd=case.cwd)


def forked_cli(argv: list, cache: Path, logs: Path) -> subprocess.CompletedProcess:
    """``brainalign ARGV`` offline with the activation cache ``cache``, forked (:func:`run_forked`); what
    ``_layouts.cli`` runs as a fresh interpreter."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", BRAINALIGN_CACHE=str(cache))
    return run_forked(argv, env, logs)


def run_forked(argv: list, env: dict, logs: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``brainalign ARGV`` in a process forked from the preloaded server with environment ``env`` (whole) and
    folder ``cwd``; stdout and stderr pass through ``<logs>.stdout`` / ``<logs>.stderr``. Not for calls whose
    environment changes what Python imports (``PYTHONPATH``): the server's interpreter is already set up."""
    out, err = logs.with_name(logs.name + ".stdout"), logs.with_name(logs.name + ".stderr")
    argv = list(map(str, argv))
    proc = _forkserver().Process(target=_cli_child, args=(argv, dict(env), None if cwd is None else str(cwd),
                                                          str(out), str(err)))
    proc.start()
    proc.join(300)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise TimeoutError(f"brainalign {' '.join(argv)} ran past 300 s")
    return subprocess.CompletedProcess(["brainalign", *argv], proc.exitcode, out.read_text(errors="replace"),
                                       err.read_text(errors="replace"))


def base_config(world: World, root: Path | None = None) -> dict:
    """A fast study: two layers, encoding only, two folds, no maps or reports."""
    return {"data": {"source": {"kind": "bids", "root": str(root or world.root), "mask": str(world.mask)}},
            "models": [{"label": "m", "path": "packaged:minilm", "layers": [0, 1], "context_words": 20}],
            "scoring": {"methods": ["encoding"], "inner_cv": 2, "alphas": [1.0, 100.0], "cv": {"n_folds": 2}},
            "statistics": {"n_bootstrap": 10, "group_test": "none"},
            "outputs": {"maps": False, "report": False},
            "execution": {"cache_dir": str(world.cache)}}


def write_config(tmp: Path, cfg: dict | str, name: str = "study.yaml") -> Path:
    p = tmp / name
    p.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return p


def copy_dataset(world: World, tmp: Path) -> Path:
    dst = tmp / "bids"
    shutil.copytree(world.root, dst)
    return dst


def participant(world: World, tmp: Path, root: Path, *extra, label: str | None = "01", cfg: dict | None = None) -> Case:
    """The BIDS-App call on ``root`` (participant ``label``, or everyone) with the fast configuration."""
    conf = write_config(tmp, cfg or base_config(world, root))
    out = tmp / "out"
    argv = [root, out, "participant", "--config", conf, "--quiet", *extra]
    if label:
        argv += ["--participant-label", label]
    return Case(argv=argv, culprit="", out=out)


def snapshot(folder: Path) -> dict | None:
    if not folder.exists():
        return None
    if folder.is_file():
        return {".": folder.read_bytes()}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stray_temp_files(*folders: Path) -> list[str]:
    out = []
    for f in folders:
        if f.is_dir():
            out += [str(p) for p in f.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".brainalign-probe")]
    return out


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("brainalign: warning:")]


def readonly_dir(tmp: Path) -> Path:
    """A folder this process cannot write: chmod 555, or (root ignores modes) a sysfs folder."""
    d = tmp / "readonly"
    d.mkdir()
    d.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    for cand in (d, Path("/sys/kernel")):
        try:
            fd, probe = tempfile.mkstemp(dir=cand)
        except OSError:
            return cand
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no folder here is read-only for this user (root without a read-only file system)")


def check_refused(case: Case, res: subprocess.CompletedProcess, tmp: Path, before: dict | None) -> None:
    both = res.stdout + res.stderr
    assert res.returncode == case.code, both
    assert "Traceback" not in both, both
    lines = error_lines(res.stderr)
    assert len(lines) == 1, res.stderr
    wanted = (case.culprit,) if isinstance(case.culprit, str) else case.culprit
    assert any(w.lower() in lines[0].lower() for w in wanted), (wanted, lines[0])
    assert "error" in lines[0] or "failed" in lines[0]
    if case.out is not None and case.guard != case.out:
        written = set(snapshot(case.out) or {})
        allowed = LOG_ONLY if case.tried and " failed: " in lines[0] else set()  # a refusal writes nothing
        assert written <= allowed, sorted(written - allowed)
    if case.guard is not None:
        assert snapshot(case.guard) == before, f"{case.guard} was changed"
    assert not stray_temp_files(tmp), stray_temp_files(tmp)


# ------------------------------------------------------------------ damage builders
def _events(root: Path, stem: str = STEM) -> Path:
    return root / f"{stem}_events.tsv"


def _edit_events(root: Path, fn: Callable[[pd.DataFrame], pd.DataFrame], stem: str = STEM) -> Path:
    p = _events(root, stem)
    fn(pd.read_csv(p, sep="\t")).to_csv(p, sep="\t", index=False)
    return p


def _bold(root: Path, stem: str = STEM) -> Path:
    return root / f"{stem}_bold.nii.gz"


def _rewrite_bold(root: Path, fn: Callable[[np.ndarray], np.ndarray], stem: str = STEM) -> None:
    import nibabel as nib

    p = _bold(root, stem)
    img = nib.load(p)
    data = fn(np.asarray(img.dataobj, dtype=np.float32))
    out = nib.Nifti1Image(data.astype(np.float32), img.affine)
    out.header.set_xyzt_units("mm", "sec")
    nib.save(out, p)


def _write_mask(tmp: Path, data: np.ndarray, world: World) -> Path:
    import nibabel as nib

    p = tmp / "mask.nii.gz"
    nib.save(nib.Nifti1Image(data, nib.load(world.mask).affine), p)
    return p



def _data_case(w, tmp, damage: Callable[[Path], None], culprit, **kw) -> Case:
    ds = copy_dataset(w, tmp)
    damage(ds)
    case = participant(w, tmp, ds, **kw)
    case.culprit, case.tried = culprit, True
    return case





@dataclass
class Ran:
    case: Case | None
    tmp: Path
    before: dict | None = None
    res: subprocess.CompletedProcess | None = None
    skip: str | None = None


def run_cases(cases: dict[str, Callable], world: World, tmp_path_factory) -> dict[str, Ran]:
    """Every case built, then run as CLI processes (:func:`cli_forked`) a few at a time."""
    done: dict[str, Ran] = {}
    for name, build in cases.items():
        tmp = tmp_path_factory.mktemp(name)
        try:
            case = build(world, tmp)
        except pytest.skip.Exception as exc:
            done[name] = Ran(None, tmp, skip=str(exc))
            continue
        done[name] = Ran(case, tmp, before=snapshot(case.guard) if case.guard is not None else None)
    todo = [r for r in done.values() if r.case is not None]
    with ThreadPoolExecutor(max_workers=3) as pool:
        for r, res in zip(todo, pool.map(lambda r: cli_forked(r.case, world, r.tmp), todo)):
            r.res = res
            (r.tmp / "cli.log").write_text(f"{' '.join(map(str, r.case.argv))}\nexit {res.returncode}\n"
                                           f"--- stdout\n{res.stdout}--- stderr\n{res.stderr}")
    return done

def check_case(r: Ran) -> None:
    """The verdict on one ran case (the kendall case may also be accepted and run for real)."""
    if r.skip:
        pytest.skip(r.skip)
    case, res, tmp_path, before = r.case, r.res, r.tmp, r.before
    if case.accept_run and res.returncode == EXIT_OK:  # accepted: then it must have run for real
        assert "1 done" in res.stdout and "Traceback" not in res.stderr, res.stderr
        assert list(case.out.rglob("*_scores.tsv"))
        return
    check_refused(case, res, tmp_path, before)


def collect(namespace: dict) -> dict[str, Callable]:
    """The case builders (functions named ``c_<case>``) of a test module."""
    return {name[2:]: fn for name, fn in sorted(namespace.items()) if name.startswith("c_") and callable(fn)}
