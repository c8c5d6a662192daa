"""Run task functions serially, in local processes, or on a Dask cluster.

Every backend calls the same pure function on the same plain-dict task specs and
yields ``(index, result, error)`` as tasks finish, so results equal the serial run.
"""
from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Iterator, Sequence

from ..encoding._backend import thread_limit
from ..errors import BrainAlignError, ConfigError


def _call(fn: Callable, spec: dict) -> tuple[Any, str | None]:
    """Run one task; a failure becomes a one-line reason (the run goes on).

    The task computes with ``spec["threads"]`` torch and BLAS threads, whatever the
    executor: floating-point sums depend on the thread count, so this is what makes
    serial, process and Dask runs bit-identical. The limit is the encoding kernels'
    own :class:`~brainalign.encoding._backend.thread_limit` (BLAS set before torch
    and restored first, the order it documents), so there is one thread limiter.
    """
    try:
        with thread_limit(None, spec.get("threads")):
            return fn(spec), None
    except BrainAlignError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - one failing participant must not stop the others
        if spec.get("debug"):
            raise
        return None, f"internal error {type(exc).__name__}: {exc}"


def _init_worker(threads: int) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except Exception:  # noqa: BLE001
        pass


def run_tasks(fn: Callable[[dict], Any], specs: Sequence[dict], *, n_jobs: int = 1, scheduler: str | None = None,
              ) -> Iterator[tuple[int, Any, str | None]]:
    """Yield ``(i, result, error)`` for every spec, in completion order.

    Parameters
    ----------
    fn : callable
        Top-level (importable) function taking one spec dict.
    specs : sequence of dict
        Task specifications (JSON-like values only).
    n_jobs : int
        Local worker processes (1 = run in this process).
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``), or an
        existing ``distributed.Client``; takes precedence over ``n_jobs``.
    """
    if scheduler is not None:
        yield from _run_dask(fn, specs, scheduler)
    elif n_jobs <= 1 or len(specs) <= 1:
        for i, spec in enumerate(specs):
            res, err = _call(fn, spec)
            yield i, res, err
    else:
        yield from _run_processes(fn, specs, n_jobs)


def _run_processes(fn, specs, n_jobs):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    ctx = mp.get_context("spawn")  # torch and fork do not mix
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        futs = {pool.submit(_call, fn, spec): i for i, spec in enumerate(specs)}
        for fut in as_completed(futs):
            res, err = fut.result()
            yield futs[fut], res, err


def _run_dask(fn, specs, scheduler):
    try:
        from distributed import Client, as_completed
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError("--scheduler needs dask.distributed (pip install 'dask[distributed]')") from None
    own = not hasattr(scheduler, "submit")
    try:
        client = Client(scheduler, timeout="20s") if own else scheduler
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from None
    run = uuid.uuid4().hex[:12]  # keys unique per run: two runs sharing a cluster (the service) never share a task
    try:
        futs = [client.submit(_call, fn, spec, pure=False, key=f"brainalign-{run}-{i}-{spec.get('key', '')}")
                for i, spec in enumerate(specs)]
        index = {f.key: i for i, f in enumerate(futs)}
        for fut in as_completed(futs):
            res, err = fut.result()
            yield index[fut.key], res, err
    finally:
        if own:
            client.close()
