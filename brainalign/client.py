"""Python client of a brainalign service, and the ``brainalign submit`` / ``brainalign jobs`` commands.

>>> from brainalign.client import Client
>>> client = Client("http://127.0.0.1:8765")          # token from $BRAINALIGN_TOKEN
>>> job = client.submit("study.yaml", name="pilot")   # a YAML/JSON file, a dict or a YAML string
>>> job.wait()                                        # a progress bar of tasks done / total
>>> table = job.scores()                              # the long score table (pandas)
>>> res = job.result(subject="01")                    # an AlignmentResult, read from the job's outputs
>>> job.download("outputs/")                          # every output file, reports included

Every refusal is a one-line :class:`~brainalign.errors.ClientError` that names the
server's answer (its HTTP status and ``detail``). Paths inside a configuration are
the server's business: it reads them relative to its data roots.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import httpx

from .errors import ClientError

TERMINAL = ("succeeded", "partial", "failed", "cancelled")
EXIT_OF_STATUS = {"succeeded": 0, "partial": 1, "failed": 2, "cancelled": 2}
RESULT_NAME = re.compile(r"sub-(?P<subject>[^_/]+)_(?:ses-(?P<session>[^_/]+)_)?task-(?P<task>[^_/]+)_"
                         r"desc-(?P<model>[^_/]+)_result\.nc")
TSV = "text/tab-separated-values"


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _detail(resp: httpx.Response) -> str:
    """The server's one-line reason: its JSON ``detail`` (FastAPI's lists joined), else the body's start."""
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI's own validation errors
        detail = "; ".join(f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg', '')}" if isinstance(d, dict)
                           else str(d) for d in detail)
    return _one_line(detail if detail is not None else resp.text[:300]) or resp.reason_phrase


def config_payload(config_or_path: Any) -> dict | str:
    """What ``POST /api/v1/jobs`` carries as ``config``: a dict, or YAML text for the server to parse.

    Parameters
    ----------
    config_or_path : mapping, path or str
        A configuration dict, a path to a ``.yaml``/``.yml``/``.json`` file, or YAML text.

    Raises
    ------
    ClientError
        For a file that does not exist, cannot be read, or is not valid JSON.
    """
    if isinstance(config_or_path, Mapping):
        return dict(config_or_path)
    text = str(config_or_path)
    looks_like_path = isinstance(config_or_path, os.PathLike) or (
        "\n" not in text and (text.lower().endswith((".yaml", ".yml", ".json")) or Path(text).is_file()))
    if not looks_like_path:
        return text
    path = Path(text).expanduser()
    try:
        body = path.read_text()
    except OSError as exc:
        raise ClientError(f"cannot read the configuration file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ClientError(f"configuration file {path} is not valid JSON: {_one_line(exc)}") from None
    return body


def safe_target(dest: Path, rel: str) -> Path:
    """Where a server file ``rel`` goes under ``dest``; refuses a name that would land outside it.

    Raises
    ------
    ClientError
        For an absolute name, a ``..`` part, a backslash, or a target that resolves outside ``dest``.
    """
    parts = PurePosixPath(rel).parts
    if not rel or "\\" in rel or "\x00" in rel or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise ClientError(f"the server listed a file {rel!r} that would land outside {dest}: refused, nothing written")
    target = (dest / Path(*parts)).resolve()
    if not target.is_relative_to(dest):
        raise ClientError(f"the server listed a file {rel!r} that resolves outside {dest}: refused, nothing written")
    return target


class Client:
    """A connection to a brainalign service.

    Parameters
    ----------
    url : str
        The service address, e.g. ``http://127.0.0.1:8765``.
    token : str, optional
        API token; default ``$BRAINALIGN_TOKEN``.
    timeout : float
        Seconds to wait for each HTTP answer.

    Raises
    ------
    ClientError
        Without a token, or for an address that is not ``http(s)://...``.
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0):
        if not re.match(r"https?://[^/\s]+", str(url or "")):
            raise ClientError(f"--server {url!r} is not a service address: give http://HOST:PORT")
        token = token or os.environ.get("BRAINALIGN_TOKEN")
        if not token:
            raise ClientError("no API token: set --token or BRAINALIGN_TOKEN (brainalign token create USER makes one)")
        self.url = str(url).rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        """One HTTP call; a :class:`ClientError` naming the answer for anything but a 2xx."""
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the brainalign service at {self.url}: {_one_line(exc) or type(exc).__name__}") from None
        self._check(resp, method, path)
        return resp

    def _check(self, resp: httpx.Response, method: str, path: str) -> None:
        if resp.status_code == 401:
            raise ClientError(f"the server refused the token: set --token or BRAINALIGN_TOKEN ({self.url} answered 401)")
        if resp.status_code >= 400:
            raise ClientError(f"{self.url} answered {resp.status_code} to {method} {path}: {_detail(resp)}")

    def submit(self, config_or_path: Any, name: str | None = None, force: bool = False) -> "Job":
        """Submit a study configuration; the new job, or the existing one for the same configuration.

        ``job.created`` tells which (``force=True`` always runs again).
        """
        body = {"config": config_payload(config_or_path), "name": name, "force": bool(force)}
        resp = self.request("POST", "/api/v1/jobs", json=body)
        return Job(self, resp.json(), created=resp.status_code == 201)

    def jobs(self, status: str | None = None) -> list["Job"]:
        """The caller's jobs, newest first (all jobs for an admin), optionally of one status."""
        answer = self.request("GET", "/api/v1/jobs", params={"status": status} if status else None).json()
        return [Job(self, j) for j in (answer if isinstance(answer, list) else answer.get("jobs", []))]

    def job(self, job_id: str) -> "Job":
        """One job by id."""
        return Job(self, self.request("GET", f"/api/v1/jobs/{job_id}").json())

    def datasets(self) -> Any:
        """``GET /api/v1/datasets``: the datasets under the server's data roots."""
        return self.request("GET", "/api/v1/datasets").json()

    def models(self) -> Any:
        """``GET /api/v1/models``: the models jobs may use."""
        return self.request("GET", "/api/v1/models").json()


class Job:
    """A job on the service (``data`` holds its last JSON, see docs/service.md)."""

    def __init__(self, client: Client, data: dict, created: bool | None = None):
        self._client, self.data, self.created = client, dict(data), created

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def name(self) -> str | None:
        return self.data.get("name")

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, name={self.name!r}, status={self.data.get('status')!r})"

    def refresh(self) -> dict:
        """Fetch the job again; its JSON."""
        self.data = self._client.request("GET", f"/api/v1/jobs/{self.id}").json()
        return self.data

    def status(self) -> str:
        """The current status: queued, running, succeeded, partial, failed or cancelled."""
        return str(self.refresh()["status"])

    def wait(self, progress: bool = True, poll: float = 1.0, timeout: float | None = None) -> "Job":
        """Poll until the job is finished (succeeded, partial, failed or cancelled); returns itself.

        Parameters
        ----------
        progress : bool
            Show a tqdm bar of tasks done out of total.
        poll : float
            Seconds between two status requests.
        timeout : float, optional
            Give up after this many seconds (:class:`ClientError`; the job keeps running).
        """
        from tqdm.auto import tqdm

        start = time.monotonic()
        with tqdm(total=None, desc=f"job {self.id[:8]}", unit="task", disable=not progress, leave=True) as bar:
            while True:
                data = self.refresh()
                p = data.get("progress") or {}
                bar.total = p.get("tasks_total") or None
                bar.n = p.get("tasks_done", 0)
                bar.set_postfix_str(data["status"], refresh=True)
                if data["status"] in TERMINAL:
                    return self
                if timeout is not None and time.monotonic() - start > timeout:
                    raise ClientError(f"job {self.id} is still {data['status']} after {timeout:g} s (it keeps running)")
                time.sleep(poll)

    def cancel(self) -> "Job":
        """Ask the server to cancel the job (it stops at the next task boundary)."""
        self.data = self._client.request("POST", f"/api/v1/jobs/{self.id}/cancel").json()
        return self

    def scores(self):
        """The job's long score table (``GET .../scores`` as TSV) as a :class:`pandas.DataFrame`."""
        import io

        import pandas as pd

        text = self._client.request("GET", f"/api/v1/jobs/{self.id}/scores", headers={"Accept": TSV}).text
        return pd.read_csv(io.StringIO(text), sep="\t", dtype={"target": str, "subject": str, "task": str, "model": str},
                           keep_default_na=False, na_values=["n/a"])

    def files(self) -> list[str]:
        """The job's output files, as paths relative to its output folder."""
        answer = self._client.request("GET", f"/api/v1/jobs/{self.id}/files").json()
        items = answer if isinstance(answer, list) else answer.get("files", [])
        return [str(f["path"] if isinstance(f, dict) else f) for f in items]

    def download(self, dest: str | os.PathLike, files: Iterable[str] | None = None) -> list[Path]:
        """Download the job's output files (all, or those in ``files``) into ``dest``; the paths written.

        Every name is checked before anything is written: one that would land
        outside ``dest`` (absolute, ``..``, a symlink out) is refused.
        """
        root = Path(dest).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        names = list(self.files() if files is None else files)
        targets = [safe_target(root, rel) for rel in names]
        return [self._fetch(rel, target) for rel, target in zip(names, targets)]

    def _fetch(self, rel: str, target: Path) -> Path:
        path = f"/api/v1/jobs/{self.id}/files/{rel}"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                try:
                    with self._client._http.stream("GET", path) as resp:
                        if resp.status_code >= 400:
                            resp.read()
                        self._client._check(resp, "GET", path)
                        for chunk in resp.iter_bytes():
                            fh.write(chunk)
                except httpx.HTTPError as exc:
                    raise ClientError(f"cannot download {rel} from {self._client.url}: {_one_line(exc)}") from None
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def _result_files(self) -> list[tuple[dict, str]]:
        found = []
        for rel in self.files():
            m = RESULT_NAME.fullmatch(PurePosixPath(rel).name)
            if m:
                found.append((m.groupdict(), rel))
        return found

    def results(self, subject: str | None = None, model: str | None = None, task: str | None = None) -> dict:
        """Every participant x model result of the job (optionally filtered): (subject, task, model) -> AlignmentResult."""
        from .pipeline.outputs import read_result
        from .pipeline.result import AlignmentResult

        want = {"subject": subject and str(subject).removeprefix("sub-"), "model": model, "task": task}
        chosen = [(k, rel) for k, rel in self._result_files() if all(v is None or k[f] == v for f, v in want.items())]
        out = {}
        with tempfile.TemporaryDirectory(prefix="brainalign-result-") as tmp:
            for key, path in zip(chosen, self.download(tmp, [rel for _, rel in chosen])):
                out[(key[0]["subject"], key[0]["task"], key[0]["model"])] = AlignmentResult.from_dataset(read_result(path))
        return out

    def result(self, subject: str | None = None, model: str | None = None, task: str | None = None):
        """One participant x model :class:`~brainalign.pipeline.result.AlignmentResult` of the job.

        Raises
        ------
        ClientError
            When no result matches, or several do and ``subject`` / ``model`` / ``task``
            do not say which (the message lists them).
        """
        keys = [k for k, _ in self._result_files()]
        want = {"subject": subject and str(subject).removeprefix("sub-"), "model": model, "task": task}
        match = [k for k in keys if all(v is None or k[f] == v for f, v in want.items())]
        if len(match) != 1:
            have = ", ".join(f"subject={k['subject']} task={k['task']} model={k['model']}" for k in keys) or "none yet"
            what = "no result matches" if not match else f"{len(match)} results match"
            raise ClientError(f"job {self.id}: {what} (subject={subject}, model={model}, task={task}); "
                              f"its results: {have}")
        k = match[0]
        return next(iter(self.results(subject=k["subject"], model=k["model"], task=k["task"]).values()))


# ----------------------------------------------------------------------------- CLI
def _print_outcome(job: Job) -> None:
    d = job.data
    for part in d.get("participants") or []:
        if part.get("status") == "failed":
            print(f"brainalign: sub-{part['subject']} ({part['model']}) failed: {_one_line(part.get('reason') or '')}",
                  file=sys.stderr)
    p = d.get("progress") or {}
    line = (f"job {job.id} {d['status']}: {p.get('participants_done', 0)}/{p.get('participants_total', 0)} participants, "
            f"{p.get('tasks_done', 0)}/{p.get('tasks_total', 0)} tasks")
    print(line + (f" ({_one_line(d['reason'])})" if d.get("reason") else ""))


def submit_command(args) -> int:
    """``brainalign submit CONFIG --server URL [--token T] [--name N] [--force] [--wait]``.

    Exit code: 0 accepted (with ``--wait``: succeeded), 1 partial, 2 refused, failed or cancelled.
    """
    with Client(args.server, args.token) as client:
        job = client.submit(args.config, name=args.name, force=args.force)
        how = "submitted" if job.created else "already submitted with this configuration (--force runs it again)"
        print(f"job {job.id} {how}: {job.data['status']}  {client.url}/jobs/{job.id}")
        if not getattr(args, "wait", False):
            return 0
        job.wait(progress=not getattr(args, "quiet", False))
        _print_outcome(job)
        return EXIT_OF_STATUS.get(job.data["status"], 2)


def jobs_command(args) -> int:
    """``brainalign jobs --server URL [--token T] [--status S]``: one line per job, newest first."""
    with Client(args.server, args.token) as client:
        jobs = client.jobs(status=args.status)
    print(f"{'id':32}  {'status':9}  {'tasks':>9}  {'participants':>12}  {'created (UTC)':19}  name")
    for job in jobs:
        d, p = job.data, job.data.get("progress") or {}
        created = str(d.get("created_at") or "")[:19].replace("T", " ")
        print(f"{job.id:32}  {d['status']:9}  {p.get('tasks_done', 0):>4}/{p.get('tasks_total', 0):<4}  "
              f"{p.get('participants_done', 0):>6}/{p.get('participants_total', 0):<5}  {created:19}  {d.get('name') or ''}")
    return 0
