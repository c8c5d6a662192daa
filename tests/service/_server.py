"""A real ``brainalign serve`` process for the service tests (no mocks: HTTP over loopback).

``start_server(tmp_path)`` starts ``python -m brainalign.cli serve`` on a free
loopback port in its own process group (so ``kill()`` takes the Dask workers down
with it), waits until ``GET /api/v1/health`` answers, and returns a :class:`Server`.
Tokens come from a real ``brainalign token create`` against the same state folder
and database. A server that does not come up raises with its stderr.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import httpx

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "brainalign.cli"]
START_TIMEOUT_S = 180.0
_STARTED: list[subprocess.Popen] = []  # every server process started here, for the exit guard below


@atexit.register
def _kill_leftover_servers() -> None:
    """At interpreter exit (an interrupted run too), SIGKILL the group of any server still running: a
    server runs in its own session, so nothing else would take it (and its Dask workers) down."""
    for proc in _STARTED:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env() -> dict[str, str]:
    """The environment of every service subprocess: offline Hugging Face, no user cache."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("BRAINALIGN_STATE_DIR", None)
    return env


def store_args(state_dir: Path, database_url: str | None) -> list[str]:
    """``--state-dir`` (and ``--database``) as given to both ``serve`` and ``token create``."""
    return ["--state-dir", str(state_dir)] + (["--database", database_url] if database_url else [])


@dataclass
class Server:
    """A running ``brainalign serve`` process."""

    url: str
    proc: subprocess.Popen
    state_dir: Path
    database_url: str | None
    log_path: Path
    argv: list[str] = field(default_factory=list)

    def token(self, user: str, admin: bool = False) -> str:
        """A new API token for ``user``, made by ``brainalign token create`` (its output's last word)."""
        cmd = CLI + ["token", "create", user] + (["--admin"] if admin else []) + store_args(self.state_dir, self.database_url)
        res = subprocess.run(cmd, capture_output=True, text=True, env=service_env(), timeout=120)
        if res.returncode != 0 or not res.stdout.split():
            raise RuntimeError(f"token create {user} failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")
        return res.stdout.split()[-1]

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        """An httpx client on this server, with ``Authorization: Bearer token`` when given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def log(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for a clean exit (SIGKILL of the group after ``timeout`` s); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap_group()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the server's whole process group (the server and its Dask workers)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)

    def _reap_group(self) -> None:
        try:  # workers left behind by a server that exited
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def restart(self) -> "Server":
        """A new server on the same state folder, database and arguments (a fresh port)."""
        return _launch(self.argv, self.state_dir, self.database_url, self.log_path.parent)


def start_server(tmp_path: Path, *, database_url: str | None = None, data_roots: Sequence[Path] = (REPO / "data",),
                 model_roots: Sequence[Path] = (), extra_args: Sequence[str] = (), workers: int | None = 1,
                 state_dir: Path | None = None, seed_cache: Path | None = None) -> Server:
    """Start ``brainalign serve`` on a free loopback port and wait for ``/api/v1/health``.

    Parameters
    ----------
    tmp_path : path
        Folder for the state dir (``<tmp_path>/state`` unless ``state_dir``) and the server log.
    database_url : str, optional
        ``--database`` (default: the SQLite file in the state dir).
    data_roots, model_roots : paths
        ``--data-root`` / ``--model-root`` folders.
    extra_args : str
        More ``serve`` arguments.
    workers : int, optional
        ``--workers`` (one by default: the test machines have 2 cores); None leaves the default.
    seed_cache : path, optional
        An activation cache folder (``BRAINALIGN_CACHE`` layout) whose entries and model
        fingerprints are copied into the server's ``<state>/cache`` before it starts (its use
        counts are not), so that the server's jobs find the packaged model's activations of the
        demo story instead of computing them again (what a server that ran the demo before has).

    Raises
    ------
    RuntimeError
        If the server exits or does not answer within a few minutes (with its output).
    """
    tmp_path = Path(tmp_path)
    state = Path(state_dir) if state_dir is not None else tmp_path / "state"
    argv = [a for r in data_roots for a in ("--data-root", str(r))]
    argv += [a for r in model_roots for a in ("--model-root", str(r))]
    argv += (["--workers", str(workers)] if workers is not None else []) + list(extra_args)
    if seed_cache is not None:
        seed_activation_cache(Path(seed_cache), state / "cache")
    return _launch(argv, state, database_url, tmp_path)


def seed_activation_cache(source: Path, cache: Path) -> None:
    """Copy the entries (and model fingerprints) of the activation cache ``source`` into ``cache``; not its
    use counts (``stats/``). Raises if ``source`` holds no entry (a seed that seeds nothing)."""
    entries = [p for p in source.iterdir() if p.is_dir() and p.name != "stats"] if source.is_dir() else []
    if not any(any(p.rglob("meta.json")) for p in entries):
        raise RuntimeError(f"no activation cache entry under {source} to seed a server with")
    for p in entries:
        shutil.copytree(p, cache / p.name, dirs_exist_ok=True)


def _launch(argv: list[str], state: Path, database_url: str | None, log_dir: Path) -> Server:
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    cmd = CLI + ["serve", "--host", "127.0.0.1", "--port", str(port)] + store_args(state, database_url) + argv
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=service_env(), cwd=str(log_dir), start_new_session=True)
    _STARTED.append(proc)
    server = Server(url=f"http://127.0.0.1:{port}", proc=proc, state_dir=state, database_url=database_url,
                    log_path=log_path, argv=argv)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            server._reap_group()
            raise RuntimeError(f"brainalign serve exited with {proc.returncode}: {server.log()[-4000:]}")
        try:
            if httpx.get(server.url + "/api/v1/health", timeout=2.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"brainalign serve did not answer /api/v1/health in {START_TIMEOUT_S:.0f} s: {server.log()[-4000:]}")


def small_demo_config(data_root: Path = REPO / "data", *, layers=(1, 5), n_folds: int = 3, name: str = "demo",
                      permutations: int = 0) -> dict:
    """pipelines/demo.yaml made small (two layers, encoding only, 3 folds, no shift-null permutations:
    the p column is the fold t-test), data paths under ``data_root``.

    ``data_root`` is a data root of the server holding the demo's BIDS folder (the
    repository's ``data/`` or a copy of it).
    """
    import yaml

    cfg = yaml.safe_load((REPO / "pipelines" / "demo.yaml").read_text())
    cfg["name"] = name
    src = cfg["data"]["source"]
    src["root"] = str(Path(data_root))
    src["mask"] = str(Path(data_root) / "derivatives" / "simulation" / "desc-brain_mask.nii.gz")
    cfg["models"][0]["layers"] = list(layers)
    cfg["scoring"]["methods"] = ["encoding"]
    cfg["scoring"]["cv"]["n_folds"] = n_folds
    cfg["scoring"]["permutations"] = permutations
    return cfg


def wait_job(client: httpx.Client, job_id: str, timeout: float = 600.0, until=("succeeded", "partial", "failed",
                                                                            "cancelled")) -> dict:
    """Poll ``GET /api/v1/jobs/{id}`` until its status is in ``until``; the job's JSON."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/v1/jobs/{job_id}")
        r.raise_for_status()
        job = r.json()
        if job["status"] in until:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout:.0f} s: {job}")
        time.sleep(0.3)
