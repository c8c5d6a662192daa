"""The job as the HTTP API shows it: one dictionary built from a ``jobs`` row and its participants."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

STATUSES = ("queued", "running", "succeeded", "partial", "failed", "cancelled")
FINISHED = ("succeeded", "partial", "failed", "cancelled")
PROGRESS_COLUMNS = ("tasks_done", "tasks_total", "participants_done", "participants_total", "layers_done",
                    "layers_total")
PARTICIPANT_STATUSES = ("pending", "done", "skipped", "failed")


def iso(t: float | None) -> str | None:
    """Seconds since the epoch -> ISO-8601 in UTC (milliseconds), None stays None."""
    if t is None:
        return None
    return datetime.fromtimestamp(float(t), timezone.utc).isoformat(timespec="milliseconds")


def one_line(text: Any, limit: int = 500) -> str:
    """``text`` on one line (whitespace collapsed), at most ``limit`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def timings(row, now: float) -> dict:
    """``queued_s`` (created -> started, or -> now while queued) and ``running_s`` (started -> finished or now)."""
    if row.started_at is not None:
        queued = row.started_at - row.created_at
        running = (row.finished_at if row.finished_at is not None else now) - row.started_at
    else:
        queued = (row.finished_at if row.finished_at is not None else now) - row.created_at
        running = None
    return {"queued_s": max(0.0, float(queued)), "running_s": None if running is None else max(0.0, float(running))}


def job_json(row, participants: Iterable, now: float) -> dict:
    """The API's job dictionary (keys as in the service contract).

    Parameters
    ----------
    row : Row
        A row of the ``jobs`` table.
    participants : iterable of Row
        Its ``job_participants`` rows, in the order to show.
    now : float
        The current time (seconds since the epoch), for the timings of unfinished jobs.
    """
    return {
        "id": row.id,
        "name": row.name,
        "user": row.user_name,
        "status": row.status,
        "config_hash": row.config_hash,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "cancel_requested": bool(row.cancel_requested),
        "reason": row.reason,
        "progress": {c: int(getattr(row, c) or 0) for c in PROGRESS_COLUMNS},
        "participants": [{"subject": p.subject, "model": p.model, "status": p.status, "reason": p.reason}
                         for p in participants],
        "timings": timings(row, now),
    }
