"""Argument parsers of the service commands: ``serve``, ``token``, ``submit``, ``jobs``.

Only argparse here (importing this module must stay cheap: the CLI imports it for
every command); each command's work is imported when it runs:
``serve`` -> :func:`brainalign.service.server.serve_command`, ``token`` ->
:func:`brainalign.service.tokens.token_command`, ``submit`` / ``jobs`` ->
:func:`brainalign.client.submit_command` / :func:`brainalign.client.jobs_command`.
Each takes the parsed ``argparse.Namespace`` and returns an exit code.
"""
from __future__ import annotations

import argparse
from typing import Callable

SERVICE_COMMANDS = ("serve", "token", "submit", "jobs")


def _store_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=None, metavar="DIR",
                   help="server state folder (SQLite database, job outputs, activation cache); "
                        "default $BRAINALIGN_STATE_DIR or ./brainalign-state")
    p.add_argument("--database", default=None, metavar="URL",
                   help="SQLAlchemy database URL (postgresql://...); default: SQLite in the state folder")


def _client_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", required=True, metavar="URL", help="service address, e.g. http://127.0.0.1:8765")
    p.add_argument("--token", default=None, help="API token (default: $BRAINALIGN_TOKEN)")


def add_parsers(sp, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the service sub-commands to the CLI's sub-parser group ``sp``."""
    s = sp.add_parser("serve", help="run the alignment service (HTTP job API, dashboard, Dask workers)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8765)
    _store_opts(s)
    s.add_argument("--data-root", action="append", default=None, metavar="DIR",
                   help="folder whose datasets jobs may read (repeatable)")
    s.add_argument("--model-root", action="append", default=None, metavar="DIR",
                   help="folder whose model folders jobs may load (repeatable)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, metavar="N", help="local Dask workers (default 2)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS", help="an existing Dask scheduler")
    s.add_argument("--max-running-per-user", type=int, default=2, metavar="K")
    s.add_argument("--allow-remote-code", action="store_true",
                   help="let jobs set trust_remote_code (runs code shipped with a model)")
    common(s)
    t = sp.add_parser("token", help="create an API token for a user of the service")
    t.add_argument("action", choices=["create"])
    t.add_argument("user")
    t.add_argument("--admin", action="store_true", help="the user sees every job")
    _store_opts(t)
    common(t)
    b = sp.add_parser("submit", help="submit a study configuration to a brainalign service")
    b.add_argument("config", help="YAML or JSON study configuration")
    _client_opts(b)
    b.add_argument("--name", default=None)
    b.add_argument("--force", action="store_true", help="run again even if the same configuration ran")
    b.add_argument("--wait", action="store_true", help="wait for the job to finish, with a progress bar")
    common(b)
    j = sp.add_parser("jobs", help="list your jobs on a brainalign service")
    _client_opts(j)
    j.add_argument("--status", default=None)
    common(j)


def dispatch(args: argparse.Namespace) -> int:
    """Run one service command; returns its exit code."""
    if args.command == "serve":
        from .server import serve_command

        return serve_command(args)
    if args.command == "token":
        from .tokens import token_command

        return token_command(args)
    from .. import client

    return client.submit_command(args) if args.command == "submit" else client.jobs_command(args)
