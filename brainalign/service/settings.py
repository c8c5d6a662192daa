"""The service's settings: where its state lives, which data and models jobs may read.

State folder layout (default ``$BRAINALIGN_STATE_DIR`` or ``./brainalign-state``)::

    <state>/brainalign.sqlite   the default database (sqlite:///<state>/brainalign.sqlite)
    <state>/jobs/<job id>/      each job's outputs (the BIDS derivative folder + group/)
    <state>/cache/              the activation cache shared by every job
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = "brainalign-state"
DATABASE_FILE = "brainalign.sqlite"


def default_state_dir() -> Path:
    """``$BRAINALIGN_STATE_DIR`` when set, else ``./brainalign-state`` (resolved)."""
    return Path(os.environ.get("BRAINALIGN_STATE_DIR") or DEFAULT_STATE_DIR).expanduser().resolve()


def default_database_url(state_dir: Path) -> str:
    """The SQLite database inside ``state_dir``."""
    return f"sqlite:///{Path(state_dir) / DATABASE_FILE}"


def _roots(values) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(Path(v).expanduser().resolve() for v in values or ()))


@dataclass(frozen=True)
class ServiceSettings:
    """Everything ``brainalign serve`` was told.

    Parameters
    ----------
    state_dir : Path
        Folder of the default database, the jobs' outputs and the shared cache (resolved).
    database_url : str
        SQLAlchemy URL of the job database (``sqlite:///...`` or ``postgresql://...``).
    data_roots : tuple of Path
        Folders whose datasets jobs may read (resolved, symlinks followed).
    model_roots : tuple of Path
        Folders whose model folders jobs may load (resolved).
    workers : int
        Local Dask workers when no ``scheduler`` is given.
    scheduler : str or None
        Address of an existing Dask scheduler.
    max_running_per_user : int
        Jobs of one user running at once; the others wait in the queue.
    allow_remote_code : bool
        Whether jobs may set ``trust_remote_code``.
    max_body_bytes : int
        Largest accepted request body, bytes.
    host, port : str, int
        Where the HTTP server listens.
    """

    state_dir: Path
    database_url: str
    data_roots: tuple[Path, ...]
    model_roots: tuple[Path, ...]
    workers: int = 2
    scheduler: str | None = None
    max_running_per_user: int = 2
    allow_remote_code: bool = False
    max_body_bytes: int = 1_000_000
    host: str = "127.0.0.1"
    port: int = 8765

    @property
    def jobs_dir(self) -> Path:
        """``<state>/jobs``: one output folder per job id."""
        return self.state_dir / "jobs"

    @property
    def cache_dir(self) -> Path:
        """``<state>/cache``: the activation cache every job uses."""
        return self.state_dir / "cache"

    def job_dir(self, job_id: str) -> Path:
        """The output folder of one job."""
        return self.jobs_dir / job_id

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ServiceSettings":
        """Settings from the ``serve`` (or ``token``) command line; missing options take their defaults.

        Paths are made absolute with symlinks resolved; the database defaults to
        SQLite in the state folder; with no ``--data-root`` the current folder is the
        only data root.
        """
        state = Path(args.state_dir).expanduser().resolve() if getattr(args, "state_dir", None) else default_state_dir()
        data_roots = getattr(args, "data_root", None) or [os.getcwd()]
        kw = dict(
            state_dir=state,
            database_url=getattr(args, "database", None) or default_database_url(state),
            data_roots=_roots(data_roots),
            model_roots=_roots(getattr(args, "model_root", None)),
            workers=int(getattr(args, "workers", None) or 2),
            scheduler=getattr(args, "scheduler", None),
            max_running_per_user=int(getattr(args, "max_running_per_user", None) or 2),
            allow_remote_code=bool(getattr(args, "allow_remote_code", False)),
        )
        if getattr(args, "max_body_bytes", None):
            kw["max_body_bytes"] = int(args.max_body_bytes)
        if getattr(args, "host", None):
            kw["host"] = args.host
        if getattr(args, "port", None) is not None:
            kw["port"] = int(args.port)
        return cls(**kw)
