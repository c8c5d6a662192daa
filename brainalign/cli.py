"""``brainalign``: the command line (argparse only; the work is in :mod:`brainalign.pipeline`).

BIDS App form::

    brainalign BIDS_DIR OUTPUT_DIR participant [--participant-label 01 02] [--task T] ...
    brainalign BIDS_DIR OUTPUT_DIR group

Sub-commands::

    brainalign run CONFIG.yaml [--output DIR]
    brainalign demo [--output DIR]
    brainalign simulate OUT_DIR [--modality fmri|meg|ieeg] ...
    brainalign cache list|du|clear [--cache-dir DIR]
    brainalign report OUTPUT_DIR
    brainalign serve [--port 8765] [--state-dir DIR] [--data-root DIR ...] [--database URL] ...
    brainalign token create USER [--admin]
    brainalign submit CONFIG --server URL [--wait]
    brainalign jobs --server URL

Exit codes: 0 everything done; 1 partial (some participants failed, the others
finished; see OUTPUT_DIR/logs/failures.json); 2 input refused (bad option,
configuration or data; nothing written for it); 3 internal error (a bug: rerun
with ``--debug`` and report the traceback); 130 interrupted.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
import warnings
from pathlib import Path

from . import errors
from .errors import BrainAlignError

EXIT_OK, EXIT_PARTIAL, EXIT_REFUSED, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
SUBCOMMANDS = ("run", "demo", "simulate", "cache", "report", "serve", "token", "submit", "jobs")
_MACHINE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                   errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG, errno.EMFILE}
_SEEN_WARNINGS: set[str] = set()
EPILOG = ("exit codes: 0 all done, 1 partial (some participants failed), 2 input refused, "
          "3 internal error (rerun with --debug), 130 interrupted")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) that point to ``--help``."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(EXIT_REFUSED, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _exec_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-jobs", type=int, default=None, metavar="N", help="local worker processes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask distributed scheduler address")


def bids_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="brainalign", epilog=EPILOG,
        description="Layer-wise alignment of a language model with brain recordings (BIDS App). "
                    f"Other commands: {', '.join(SUBCOMMANDS)} (brainalign COMMAND --help).")
    p.add_argument("bids_dir", help="BIDS dataset root")
    p.add_argument("output_dir", help="output folder (a BIDS derivative dataset)")
    p.add_argument("analysis_level", choices=["participant", "group"])
    p.add_argument("--participant-label", "--participant_label", nargs="+", metavar="LABEL",
                   help="participants to run, without 'sub-' (default: all)")
    p.add_argument("--task", help="BIDS task label")
    p.add_argument("--datatype", choices=["func", "meg", "eeg", "ieeg"], help="default: detected")
    p.add_argument("--model", default=None, metavar="PATH_OR_ID", help="Hugging Face model (default: packaged MiniLM)")
    p.add_argument("--model-label", default=None, metavar="NAME", help="label used in file names")
    p.add_argument("--mask", metavar="NIFTI", help="brain mask (volumetric fMRI)")
    p.add_argument("--atlas", metavar="NIFTI", help="integer atlas: ROIs for RSA and reports")
    p.add_argument("--config", metavar="YAML", help="configuration file; options given here override it")
    p.add_argument("--methods", nargs="+", choices=["encoding", "rsa", "geometry"], default=None)
    d = p.add_argument_group("data layout (each sets the data.source / data.preprocess field of the same name)")
    d.add_argument("--session", metavar="LABEL", help="session to run, without 'ses-' (data.source.session)")
    d.add_argument("--pool-sessions", action="store_true",
                   help="fit every session together, session x run as the CV runs (data.source.pool_sessions)")
    d.add_argument("--derivatives", metavar="PATH|auto|none",
                   help="fMRIPrep folder (default auto: BIDS_DIR/derivatives/fmriprep when it exists; none: raw BOLD)")
    d.add_argument("--space", metavar="SPACE", help="fMRIPrep output space, e.g. MNI152NLin2009cAsym")
    d.add_argument("--confounds", choices=["auto", "simple", "compcor", "scrubbing", "none"],
                   help="confound strategy (nilearn load_confounds_strategy; data.preprocess.confounds; default auto)")
    d.add_argument("--word-column", metavar="COLUMN", help="events.tsv column of the words (default word)")
    d.add_argument("--trial-type", nargs="+", metavar="TYPE", help="keep only events of these trial types")
    d.add_argument("--high-gamma", action="store_true", help="iEEG: high-gamma envelope (70-150 Hz, 100 Hz)")
    _exec_opts(p)
    _common(p)
    return p


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def _open_unit(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not -1.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in (-1, 1)")
    return v


def _simulate_generator_opts(s: argparse.ArgumentParser) -> None:
    from .pipeline.sim_generator import FAMILIES, NOISES, RESPONSES

    g = s.add_argument_group("generator (every choice is written into derivatives/simulation/truth.json)")
    g.add_argument("--generator", choices=list(FAMILIES), default="classic", metavar="NAME",
                   help=f"generator family: {', '.join(FAMILIES)} (default classic)")
    g.add_argument("--response", choices=list(RESPONSES), default=None,
                   help="override the response model (random and fir use word-onset impulses)")
    g.add_argument("--noise", nargs="+", choices=list(NOISES), default=None, metavar="KIND",
                   help=f"override the noise components: any of {', '.join(NOISES)}")
    g.add_argument("--ar-phi", type=_open_unit, default=None, metavar="PHI", help="override the AR(1) coefficient, in (-1, 1)")
    g.add_argument("--features", choices=["zscore", "raw"], default=None, help="override the feature transform")
    g.add_argument("--rank", type=_positive_int, default=None, metavar="R", help="override the readout rank")
    g.add_argument("--generator-context", type=_positive_int, default=None, metavar="N",
                   help="override the generator's encoder window (words)")
    g.add_argument("--generator-pooling", choices=["last", "mean"], default=None, help="override its pooling")


def _simulate_generator(args):
    """The Generator named by --generator with the override flags applied (name gets '+custom' when changed)."""
    from dataclasses import replace

    from .pipeline.sim_generator import FAMILIES

    gen = FAMILIES[args.generator]
    over = {"response": args.response, "noise": tuple(args.noise) if args.noise else None, "ar_phi": args.ar_phi,
            "features": args.features, "rank": args.rank, "context_words": args.generator_context,
            "pooling": args.generator_pooling}
    over = {k: v for k, v in over.items() if v is not None and v != getattr(gen, k)}
    if over.get("response") in ("random", "fir"):
        over["impulses"] = True
    return replace(gen, name=f"{gen.name}+custom", **over) if over else gen


def sub_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="brainalign", epilog=EPILOG)
    sp = p.add_subparsers(dest="command", required=True)
    r = sp.add_parser("run", help="run a study from a YAML configuration (participant and group levels)")
    r.add_argument("config")
    r.add_argument("--output", metavar="DIR")
    r.add_argument("--participant-label", nargs="+", metavar="LABEL")
    r.add_argument("--skip-group", action="store_true")
    _exec_opts(r)
    _common(r)
    d = sp.add_parser("demo", help="run the embedded demo dataset and print where the report is")
    d.add_argument("--output", metavar="DIR", default="brainalign-out/demo")
    _exec_opts(d)
    _common(d)
    s = sp.add_parser("simulate", help="write a simulated BIDS dataset with planted layer-specific signal")
    s.add_argument("out_dir")
    s.add_argument("--modality", choices=["fmri", "meg", "ieeg"], default="fmri")
    s.add_argument("--subjects", type=int, default=2)
    s.add_argument("--runs", type=int, default=2)
    s.add_argument("--volumes", type=int, default=150, help="fMRI volumes per run")
    s.add_argument("--tr", type=float, default=2.0)
    s.add_argument("--grid", type=int, nargs=3, default=(12, 12, 10), metavar=("X", "Y", "Z"))
    s.add_argument("--seconds", type=float, default=150.0, help="MEG/iEEG run length (s)")
    s.add_argument("--sfreq", type=float, default=100.0)
    s.add_argument("--channels", type=int, default=16)
    s.add_argument("--layers", type=int, nargs="+", default=[1, 5])
    s.add_argument("--targets-per-layer", type=int, default=None)
    s.add_argument("--snr", type=float, default=1.0)
    s.add_argument("--n-words", type=int, default=None)
    s.add_argument("--task", default="story")
    s.add_argument("--story", default=None, help="text file of the story (default: data/story.txt)")
    s.add_argument("--seed", type=int, default=0)
    _simulate_generator_opts(s)
    _common(s)
    c = sp.add_parser("cache", help="inspect or clear the activation cache")
    c.add_argument("action", choices=["ls", "list", "du", "clear"], help="ls (or list), du, clear")
    c.add_argument("--cache-dir", default=None)
    _common(c)
    rp = sp.add_parser("report", help="(re)write the HTML reports of an output folder")
    rp.add_argument("output_dir")
    _common(rp)
    from .service.commands import add_parsers

    add_parsers(sp, _common)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    debug = "--debug" in argv
    shown = warnings.showwarning
    _SEEN_WARNINGS.clear()
    if not debug:
        warnings.showwarning = _show_warning
    try:
        if argv and argv[0] in SUBCOMMANDS:
            args = sub_parser().parse_args(argv)
            code = _dispatch(args)
        else:
            args = bids_parser().parse_args(argv)
            code = _bids_app(args)
    except KeyboardInterrupt:
        print("brainalign: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # argparse: 2 for bad options
        return int(exc.code or 0)
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        if debug:
            raise
        return _report_error(exc)
    finally:
        warnings.showwarning = shown
    return code


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _report_error(exc: Exception) -> int:
    """Print one line for an exception; the exit code: 2 for the user's or machine's mistakes, 3 for our bugs."""
    if isinstance(exc, BrainAlignError):
        print(f"brainalign: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:  # the machine's: permissions, disk full...
        where = f" {exc.filename}" if exc.filename else ""
        print(f"brainalign: error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"brainalign: internal error: {type(exc).__name__}: {_one_line(exc)} (rerun with --debug for the traceback)",
          file=sys.stderr)
    return EXIT_INTERNAL


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``brainalign: warning:`` line each, each said once."""
    text = _one_line(str(message).splitlines()[0] if str(message) else category.__name__)
    if text in _SEEN_WARNINGS:
        return
    _SEEN_WARNINGS.add(text)
    print(f"brainalign: warning: {text}", file=sys.stderr if file is None else file)


def _quiet_libraries() -> None:
    """Silence the libraries' chatter through their environment variables (importing transformers takes ~1 s)."""
    import logging

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' weight-loading bar reads it too
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    hf = sys.modules.get("transformers.utils.logging")
    if hf is not None:  # already imported: its settings were read at import time
        hf.set_verbosity_error()
        hf.disable_progress_bar()


def _plain_reason(reason: str) -> str:
    """A failure reason without the Python class name of our own errors (kept for bugs)."""
    name, sep, rest = str(reason).partition(": ")
    cls = getattr(errors, name, None)
    if sep and isinstance(cls, type) and issubclass(cls, BrainAlignError):
        return _one_line(rest)
    return _one_line(reason)


def _finish(summary, what: str) -> int:
    for s, reason in summary.failed.items():
        print(f"brainalign: sub-{s} failed: {_plain_reason(reason)}", file=sys.stderr)
    n_done, n_skip = len(summary.done), len(summary.skipped)
    print(f"{what}: {n_done} done, {n_skip} already up to date, {len(summary.failed)} failed -> {summary.out_dir}")
    for r in summary.reports:
        print(f"report: {r}")
    return summary.exit_code


def _bids_app(args) -> int:
    _quiet_libraries()
    from .pipeline.bids_app import bids_config
    from .pipeline.paths import check_output_dir, check_study_paths

    # the configuration and the folders are checked before the heavy imports: a refusal takes a second
    if args.analysis_level == "group":
        cfg = bids_config(args, check_data=False)
        check_output_dir(args.output_dir, [args.bids_dir])
        from .pipeline.group import run_group
        from .pipeline.report import group_report

        res = run_group(args.output_dir, cfg)
        print(f"group: {len(res.tables)} table(s) -> {Path(args.output_dir).resolve() / 'group'}")
        if cfg.outputs.report:
            print(f"report: {group_report(args.output_dir)}")
        return EXIT_OK
    cfg = bids_config(args)
    check_study_paths(cfg, args.output_dir)
    from .pipeline import plan

    summary = plan.run_study(cfg, out_dir=args.output_dir, participants=args.participant_label,
                             n_jobs=args.n_jobs, scheduler=args.scheduler, progress=not args.quiet, debug=args.debug)
    return _finish(summary, "participant level")


def _dispatch(args) -> int:
    _quiet_libraries()
    from .service.commands import SERVICE_COMMANDS, dispatch

    if args.command in SERVICE_COMMANDS:
        return dispatch(args)
    if args.command == "run":
        from .pipeline.study import run_config

        return run_config(args.config, out_dir=args.output, participants=args.participant_label, n_jobs=args.n_jobs,
                          scheduler=args.scheduler, progress=not args.quiet, debug=args.debug, group=not args.skip_group,
                          finish=_finish)
    if args.command == "demo":
        from .pipeline.study import run_demo

        return run_demo(args.output, n_jobs=args.n_jobs, scheduler=args.scheduler, progress=not args.quiet,
                        debug=args.debug, finish=_finish)
    if args.command == "simulate":
        from .pipeline.simulate import simulate_bids

        n_targets = args.targets_per_layer or (40 if args.modality == "fmri" else max(1, args.channels // 4))
        truth = simulate_bids(args.out_dir, args.modality, n_subjects=args.subjects, n_runs=args.runs,
                              n_volumes=args.volumes, tr=args.tr, grid=tuple(args.grid), sfreq=args.sfreq,
                              run_seconds=args.seconds, n_channels=args.channels, layers=args.layers,
                              targets_per_layer=n_targets, snr=args.snr, task=args.task, story=args.story,
                              n_words=args.n_words, seed=args.seed, generator=_simulate_generator(args))
        root = Path(args.out_dir).resolve()
        print(f"simulated {args.modality} BIDS dataset: {root} ({truth['n_subjects']} participants, task {truth['task']}, "
              f"generator {truth['generator']['name']})")
        print(f"truth: {root / 'derivatives/simulation/truth.json'}")
        if "mask" in truth:
            print(f"mask: {root / truth['mask']}")
        return EXIT_OK
    if args.command == "cache":
        from .encoders import cache

        if args.action in ("ls", "list"):
            rows = cache.list_entries(args.cache_dir)
            for r in rows:
                print(f"{r['key'][:12]}  {r['model']}  context={r['context']}:{r['context_words']}  "
                      f"pooling={r['pooling']}  words={r['n_words']}  layers={len(r['layers'])}  {r['bytes'] / 1e6:.1f} MB")
            print(f"{len(rows)} entries in {cache.default_cache_dir() if args.cache_dir is None else args.cache_dir}")
        elif args.action == "du":
            print(f"{cache.disk_usage(args.cache_dir) / 1e6:.1f} MB")
        else:
            res = cache.clear(args.cache_dir)
            print(f"removed {res['entries']} entries, {res['bytes'] / 1e6:.1f} MB")
        return EXIT_OK
    if args.command == "report":
        from .pipeline.report import write_all_reports

        for p in write_all_reports(args.output_dir):
            print(f"report: {p}")
        return EXIT_OK
    return EXIT_REFUSED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
