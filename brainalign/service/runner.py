"""The job runner: claims queued jobs from the store and runs each as ``brainalign run`` would.

One claim thread takes queued jobs in submission order, at most
``settings.max_running_per_user`` running per user, and runs each in its own thread:
:func:`~brainalign.pipeline.plan.run_study` with the shared Dask client as the
scheduler, the job's folder ``<state>/jobs/<id>`` as the output and
``<state>/cache`` as the activation cache, then the group level and the reports, in
the order of :func:`~brainalign.pipeline.study.run_config`. Progress is written to
the database from ``run_study``'s ``on_event`` hook; the same hook stops the run at
a task boundary when the job's cancel was asked (or the server stops). Jobs warm
the activation cache one at a time (up to their ``planned`` event), so two jobs
needing the same activations compute them once and load one model at a time.

Whatever happens, a job ends ``succeeded``, ``partial``, ``failed`` (with a one-line
reason, never a traceback) or ``cancelled``, or goes back to the queue when the
server stops; on start, jobs left ``running`` by a crash are queued again and resume
from the participants already written (run_study's resume by content).
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from ..errors import BrainAlignError, JobCancelled, JobInterrupted
from .jobjson import one_line
from .settings import ServiceSettings
from .store import JobStore

log = logging.getLogger("brainalign.service")
_PLOT_LOCK = threading.Lock()  # reports draw with matplotlib's pyplot, which is not thread-safe
_WARM_LOCK = threading.Lock()  # one job at a time loads models and warms the cache in this process


def preload() -> None:
    """Import the pipeline, the Hugging Face classes and the plotting stack once, in one thread.

    transformers resolves its names lazily, and two job threads doing that first
    import at once fail (``cannot import name 'AutoConfig'``); so does a first import
    of matplotlib's pyplot in a report thread while a dashboard request draws a
    nilearn viewer (``partially initialized module 'matplotlib.pyplot'``).
    """
    from nilearn import plotting  # noqa: F401
    from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: F401

    from ..pipeline import group, plan, report  # noqa: F401
    from ..pipeline.report_html import plt

    plt()  # pyplot on the Agg backend, imported here and not first in a job thread


class JobRunner:
    """Run the store's queued jobs on a Dask cluster.

    Parameters
    ----------
    store : JobStore
        Where the jobs, their progress and statuses live.
    settings : ServiceSettings
        The state folder (job outputs, shared cache) and ``max_running_per_user``.
    dask_client : distributed.Client or None
        The cluster the tasks run on; None runs them in the job's thread.
    max_jobs : int
        Jobs running at once, all users together.
    poll_s : float
        Seconds between looks at the queue when nothing wakes the runner.
    """

    def __init__(self, store: JobStore, settings: ServiceSettings, dask_client: Any, *, max_jobs: int = 8,
                 poll_s: float = 0.5) -> None:
        self.store, self.settings, self.client = store, settings, dask_client
        self.max_jobs, self.poll_s = max(1, int(max_jobs)), float(poll_s)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._jobs: dict[str, threading.Thread] = {}
        self._loop: threading.Thread | None = None
        self.requeued: list[str] = []

    # ---------------------------------------------------------------- control
    def start(self) -> list[str]:
        """Queue again the jobs a crash left ``running``, then start claiming; returns the re-queued ids."""
        self.requeued = self.store.requeue_running()
        preload()
        self._stop.clear()
        self._loop = threading.Thread(target=self._claim_loop, name="brainalign-runner", daemon=True)
        self._loop.start()
        return self.requeued

    def wake(self) -> None:
        """Look at the queue now (call after a submit)."""
        self._wake.set()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop claiming; running jobs stop at their next task boundary and go back to the queue."""
        self._stop.set()
        self._wake.set()
        if self._loop is not None:
            self._loop.join(timeout)
        for t in list(self._jobs.values()):
            t.join(timeout)

    def running(self) -> list[str]:
        """Ids of the jobs this runner is running now."""
        return [j for j, t in self._jobs.items() if t.is_alive()]

    def _claim_loop(self) -> None:
        while not self._stop.is_set():
            self._jobs = {j: t for j, t in self._jobs.items() if t.is_alive()}
            job_id = None
            if len(self._jobs) < self.max_jobs:
                try:
                    job_id = self.store.claim_next(self.settings.max_running_per_user)
                except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop the runner
                    log.warning("brainalign service: cannot claim a job: %s", one_line(exc))
            if job_id is not None:
                t = threading.Thread(target=self._run_job, args=(job_id,), name=f"job-{job_id[:8]}", daemon=True)
                self._jobs[job_id] = t
                t.start()
                continue
            self._wake.wait(self.poll_s)
            self._wake.clear()

    # -------------------------------------------------------------------- a job
    def _run_job(self, job_id: str) -> None:
        """Run one claimed job and record how it ended; never leaves it ``running``."""
        try:
            status, reason, failed = self._execute(job_id)
        except JobCancelled as exc:
            status, reason, failed = "cancelled", str(exc), None
        except JobInterrupted as exc:
            self._safely(self.store.release, job_id, str(exc))
            return
        except BrainAlignError as exc:
            status, reason, failed = "failed", str(exc), None
        except Exception as exc:  # noqa: BLE001 - a bug or a dead worker: the job fails with the reason
            status, reason, failed = "failed", f"internal error {type(exc).__name__}: {exc}", None
            log.exception("brainalign service: job %s", job_id)
        self._safely(self.store.finish, job_id, status, one_line(reason) if reason else None, failed)
        self.wake()

    def _safely(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001
            log.error("brainalign service: cannot record job %s: %s", args[0], one_line(exc))

    def _execute(self, job_id: str) -> tuple[str, str | None, dict]:
        """Participant level, group level and reports of one job; returns (status, reason, failed)."""
        from ..pipeline.config import validate_config
        from ..pipeline.plan import run_study

        raw = self.store.job_config(job_id)
        raw = {**raw, "execution": {**(raw.get("execution") or {}), "cache_dir": str(self.settings.cache_dir)}}
        cfg = validate_config(raw)
        report = cfg.outputs.report
        study_cfg = cfg.model_copy(deep=True)
        study_cfg.outputs.report = False  # reports are drawn below, one job at a time (outputs not in the hash)
        out = self.settings.job_dir(job_id)
        hook = _ProgressHook(self, job_id, cfg)
        _WARM_LOCK.acquire()  # until the plan is known: the model is loaded and the cache warm (see the hook)
        try:
            summary = run_study(study_cfg, out_dir=out, scheduler=self.client, progress=False, on_event=hook)
        finally:
            hook.release_warm()
        self._finish_outputs(cfg, summary, report)
        return _outcome(summary, hook.total)

    def _finish_outputs(self, cfg, summary, report: bool) -> None:
        """Participant reports, group level and group report, as ``brainalign run`` writes them."""
        from ..pipeline.group import run_group
        from ..pipeline.report import group_report, write_participant_reports

        subjects = sorted({s for s, _ in summary.done + summary.skipped} - set(summary.failed))
        with _PLOT_LOCK:
            if report:
                summary.reports = write_participant_reports(summary.out_dir, subjects)
            if summary.done or summary.skipped:
                run_group(summary.out_dir, cfg)
                if report:
                    group_report(summary.out_dir)

    def check_stop(self, job_id: str) -> None:
        """Raise at a task boundary when the server stops or the job's cancel was asked."""
        if self._stop.is_set():
            raise JobInterrupted("re-queued: the server stopped while the job ran")
        who = self.store.is_cancel_requested(job_id)
        if who is not None:
            raise JobCancelled(f"cancelled by {who} at a task boundary")


class _ProgressHook:
    """``run_study``'s ``on_event``: progress to the database, then the cancel check."""

    def __init__(self, runner: JobRunner, job_id: str, cfg) -> None:
        self.runner, self.job_id, self.cfg = runner, job_id, cfg
        self.total = 0
        self._warm_held = True

    def release_warm(self) -> None:
        """Let the next job warm its cache (once this one's activations are in it)."""
        if self._warm_held:
            self._warm_held = False
            _WARM_LOCK.release()

    def __call__(self, event: dict) -> None:
        store, kind = self.runner.store, event.get("kind")
        if kind == "planned":
            self.total = len({s for s, _ in list(event.get("pending", [])) + list(event.get("skipped", []))})
            try:
                store.record_plan(self.job_id, event, layer_counts(self.cfg))
            finally:
                self.release_warm()
        elif kind == "task":
            store.record_task(self.job_id, event)
        elif kind == "written":
            store.record_participant(self.job_id, str(event["subject"]), str(event["model"]), "done")
        self.runner.check_stop(self.job_id)


def layer_counts(cfg) -> dict[str, int]:
    """Layers scored per participant of each model label (``all``: read from the model's config)."""
    from ..encoders.model import n_hidden_states, resolve_model
    from ..pipeline.config import PACKAGED_MODEL

    out = {}
    for m in cfg.models:
        if m.layers != "all":
            out[m.label] = len(m.layers)
            continue
        try:
            ref = resolve_model(None if m.path == PACKAGED_MODEL else m.path, m.revision, cfg.execution.cache_dir)
            out[m.label] = n_hidden_states(ref.path, m.trust_remote_code)
        except Exception:  # noqa: BLE001 - the count is for the progress bar only
            out[m.label] = 0
    return out


def _outcome(summary, total: int) -> tuple[str, str | None, dict]:
    """(status, job-level reason, failed participants) of a finished run."""
    failed = dict(summary.failed)
    if not failed:
        return "succeeded", None, failed
    first = next(iter(failed.items()))
    detail = f"sub-{first[0]}: {first[1]}"
    if not (summary.done or summary.skipped):
        return "failed", f"every participant failed ({len(failed)}); {detail}", failed
    return "partial", f"{len(failed)} of {total or len(failed)} participants failed; {detail}", failed
