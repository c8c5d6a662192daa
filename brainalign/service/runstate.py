"""The runner's side of the job store: claiming queued jobs, recording progress, finishing.

A mixin of :class:`~brainalign.service.store.JobStore` (it uses the store's
``_write`` / ``_read`` transactions); each method is one short transaction.
"""
from __future__ import annotations

import time
from collections import Counter

import sqlalchemy as sa

from . import db
from .jobjson import one_line

_J = db.jobs.c
_P = db.job_participants.c


class RunState:
    """Methods the :class:`~brainalign.service.runner.JobRunner` calls."""

    def requeue_running(self) -> list[str]:
        """Put jobs left ``running`` (by a crash) back in the queue; returns their ids.

        A job whose cancel had been asked is cancelled instead.
        """
        with self._write() as conn:
            rows = conn.execute(sa.select(_J.id, _J.cancel_requested, _J.cancelled_by)
                                .where(_J.status == "running")).all()
            for r in rows:
                if r.cancel_requested:
                    values = dict(status="cancelled", finished_at=time.time(),
                                  reason=f"cancelled by {r.cancelled_by} (the server stopped while it ran)")
                else:
                    values = dict(status="queued", started_at=None, reason="re-queued after a server restart")
                conn.execute(db.jobs.update().where(_J.id == r.id, _J.status == "running").values(**values))
        return [r.id for r in rows if not r.cancel_requested]

    def release(self, job_id: str, reason: str) -> None:
        """Put one running job back in the queue (the server is stopping), with a one-line reason."""
        with self._write() as conn:
            conn.execute(db.jobs.update().where(_J.id == job_id, _J.status == "running").values(
                status="queued", started_at=None, reason=one_line(reason)))

    def claim_next(self, max_running_per_user: int) -> str | None:
        """Mark the oldest queued job whose user runs fewer than ``max_running_per_user`` jobs as running.

        Returns its id, or None when no job may start now.
        """
        with self._write() as conn:
            running = Counter(dict(conn.execute(sa.select(_J.user_name, sa.func.count())
                                                .where(_J.status == "running").group_by(_J.user_name)).all()))
            q = sa.select(_J.id, _J.user_name).where(_J.status == "queued").order_by(_J.seq)
            for r in conn.execute(q).all():
                if running[r.user_name] >= max_running_per_user:
                    continue
                done = conn.execute(db.jobs.update().where(_J.id == r.id, _J.status == "queued").values(
                    status="running", started_at=time.time(), finished_at=None, attempts=_J.attempts + 1))
                if done.rowcount == 1:
                    return r.id
        return None

    def record_plan(self, job_id: str, event: dict, layers: dict[str, int]) -> None:
        """The run's plan (the ``planned`` event of :func:`~brainalign.pipeline.plan.run_study`).

        ``layers`` is the number of layers scored per participant of each model label.
        Pending participants become ``pending``, those already written ``skipped``, those
        refused while warming the cache ``failed`` with their reason.
        """
        failed = {str(s): one_line(r) for s, r in (event.get("failed") or {}).items()}
        rows = [(s, m, "failed" if s in failed else "pending", failed.get(s)) for s, m in event.get("pending", [])]
        rows += [(s, m, "skipped", None) for s, m in event.get("skipped", [])]
        layers_total = sum(int(layers.get(m, 0)) for s, m, st, _ in rows if st == "pending")
        with self._write() as conn:
            conn.execute(db.job_participants.delete().where(_P.job_id == job_id))
            if rows:
                conn.execute(db.job_participants.insert(), [
                    dict(job_id=job_id, subject=str(s), model=str(m), status=st, reason=r) for s, m, st, r in rows])
            conn.execute(db.jobs.update().where(_J.id == job_id).values(
                tasks_total=int(event.get("tasks", 0)), tasks_done=0, participants_total=len(rows),
                participants_done=sum(st == "skipped" for *_, st, _ in rows), layers_total=layers_total,
                layers_done=0))

    def record_task(self, job_id: str, event: dict) -> None:
        """One finished task (the ``task`` event): tasks and layers done; a failure's reason."""
        with self._write() as conn:
            values = dict(tasks_done=int(event["done"]))
            if event.get("error") is None:
                values["layers_done"] = _J.layers_done + len(event.get("layers") or ())
            else:
                self._fail_rows(conn, job_id, {str(event["subject"]): event["error"]}, model=str(event["model"]))
            conn.execute(db.jobs.update().where(_J.id == job_id).values(**values))

    def record_participant(self, job_id: str, subject: str, model: str, status: str = "done",
                           reason: str | None = None) -> None:
        """One participant x model's status (``done`` when its outputs are written)."""
        with self._write() as conn:
            conn.execute(db.job_participants.update().where(
                _P.job_id == job_id, _P.subject == subject, _P.model == model).values(
                status=status, reason=None if reason is None else one_line(reason)))
            self._count_done(conn, job_id)

    def is_cancel_requested(self, job_id: str) -> str | None:
        """The user who asked to cancel the job, or None."""
        with self._read() as conn:
            r = conn.execute(sa.select(_J.cancel_requested, _J.cancelled_by).where(_J.id == job_id)).first()
        return (r.cancelled_by or "?") if r is not None and r.cancel_requested else None

    def finish(self, job_id: str, status: str, reason: str | None = None,
               failed: dict[str, str] | None = None) -> None:
        """End a running job with ``status`` and a one-line ``reason``.

        Participants of ``failed`` (subject -> reason) still pending are marked failed.
        """
        with self._write() as conn:
            if failed:
                self._fail_rows(conn, job_id, failed)
            self._count_done(conn, job_id)
            conn.execute(db.jobs.update().where(_J.id == job_id, _J.status == "running").values(
                status=status, finished_at=time.time(), reason=None if reason is None else one_line(reason)))

    # ------------------------------------------------------------- helpers
    @staticmethod
    def _fail_rows(conn, job_id: str, failed: dict, model: str | None = None) -> None:
        for s, why in failed.items():
            q = db.job_participants.update().where(_P.job_id == job_id, _P.subject == str(s),
                                                   _P.status == "pending")
            if model is not None:
                q = q.where(_P.model == model)
            conn.execute(q.values(status="failed", reason=one_line(why)))

    @staticmethod
    def _count_done(conn, job_id: str) -> None:
        n = conn.execute(sa.select(sa.func.count()).select_from(db.job_participants).where(
            _P.job_id == job_id, _P.status.in_(("done", "skipped")))).scalar()
        conn.execute(db.jobs.update().where(_J.id == job_id).values(participants_done=int(n)))
