"""``brainalign serve``: the database, the Dask cluster, the job runner and the HTTP server, together.

Start-up order: settings, the listening socket (a port in use is refused before
anything else starts), the database schema (alembic upgrade), the Dask cluster (a
``LocalCluster`` of ``--workers`` single-threaded worker processes, or a
``Client`` of ``--scheduler``), the job runner (which first re-queues the jobs a
crash left running), then uvicorn. SIGTERM or SIGINT stops uvicorn, then the
runner (running jobs stop at a task boundary and go back to the queue), then the
cluster. Every refusal is one line and exit code 2.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys

from ..errors import ServiceError
from .settings import ServiceSettings

log = logging.getLogger("brainalign.service")
SCHEDULER_TIMEOUT_S = 15
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket on ``host:port`` (uvicorn serves on it).

    Raises
    ------
    ServiceError
        When the address is in use or cannot be bound.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServiceError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = "is in use (another server runs there?)" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
        raise ServiceError(f"--port {port}: {host}:{port} {why}") from None
    sock.set_inheritable(True)
    return sock


def start_dask(settings: ServiceSettings):
    """``(client, cluster)``: a client of ``settings.scheduler``, or of a new LocalCluster (cluster None otherwise).

    Raises
    ------
    ServiceError
        When the scheduler cannot be reached or the workers cannot start.
    """
    from distributed import Client, LocalCluster

    if settings.scheduler:
        try:
            return Client(settings.scheduler, timeout=SCHEDULER_TIMEOUT_S), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ServiceError(f"--scheduler {settings.scheduler}: cannot reach the Dask scheduler "
                               f"({type(exc).__name__}: {' '.join(str(exc).split()) or 'timed out'})") from None
    if settings.workers < 1:
        raise ServiceError(f"--workers {settings.workers}: give at least one worker")
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    try:
        cluster = LocalCluster(n_workers=settings.workers, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    except (OSError, TimeoutError, RuntimeError) as exc:
        raise ServiceError(f"--workers {settings.workers}: the local Dask workers did not start ({exc})") from None
    finally:
        _restore_env(saved)
    return Client(cluster), cluster


def _restore_env(saved: dict[str, str | None]) -> None:
    """Undo the thread variables the Dask nanny sets in *this* process (OMP_NUM_THREADS=1...).

    The server's own process computes activations when a job warms the cache; with
    them left at 1 it would use one torch thread where ``brainalign run`` uses the
    machine's count, and floating-point sums (so the cached activations) would
    differ from the CLI's in the last bits. Tasks set their own thread count.
    """
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _check(settings: ServiceSettings) -> None:
    if settings.max_running_per_user < 1:
        raise ServiceError(f"--max-running-per-user {settings.max_running_per_user}: give at least 1")
    for root in settings.data_roots + settings.model_roots:
        if not root.is_dir():
            flag = "--data-root" if root in settings.data_roots else "--model-root"
            raise ServiceError(f"{flag} {root}: not a folder")
    try:
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"--state-dir {settings.state_dir}: cannot be written ({exc.strerror})") from None


def serve_command(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM/SIGINT; returns the exit code (0 after a clean stop)."""
    settings = ServiceSettings.from_args(args)
    _check(settings)
    sock = listen_socket(settings.host, settings.port)
    from .store import JobStore

    store = JobStore(settings.database_url)  # creates or upgrades the schema (alembic)
    client = cluster = runner = None
    try:
        client, cluster = start_dask(settings)
        from .runner import JobRunner

        runner = JobRunner(store, settings, client)
        requeued = runner.start()
        _serve(settings, store, runner, sock, requeued)
    finally:
        _shutdown(runner, client, cluster, store, sock)
    return 0


def _serve(settings: ServiceSettings, store, runner, sock: socket.socket, requeued: list[str]) -> None:
    import uvicorn

    from .app import create_app

    app = create_app(settings, store, runner)
    where = f"http://{settings.host}:{settings.port}"
    workers = settings.scheduler or f"{settings.workers} local worker(s)"
    print(f"brainalign serve: {where} (state {settings.state_dir}, {workers}"
          f"{f', {len(requeued)} job(s) re-queued' if requeued else ''})", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=10)
    # uvicorn stops on SIGTERM, then raises the signal again once it has stopped; with this
    # handler in place that second delivery is a no-op and the runner and cluster stop cleanly.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.Server(config).run(sockets=[sock])


def _shutdown(runner, client, cluster, store, sock: socket.socket) -> None:
    """Stop in reverse order; each step even when an earlier one failed."""
    for step in (lambda: runner and runner.stop(), lambda: client and client.close(),
                 lambda: cluster and cluster.close(), lambda: store.close(), sock.close):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - shutting down: say it and go on
            log.warning("while stopping: %s: %s", type(exc).__name__, exc)
