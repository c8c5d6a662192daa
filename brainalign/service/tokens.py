"""``brainalign token create USER [--admin] [--state-dir DIR | --database URL]``."""
from __future__ import annotations

import argparse

from .settings import ServiceSettings
from .store import JobStore


def token_command(args: argparse.Namespace) -> int:
    """Create an API token for ``args.user`` and print it once, as the last word of the output.

    The database (the state folder's SQLite file, or ``--database``) is created or
    upgraded first; only the token's SHA-256 is stored. Returns the exit code (0).
    """
    settings = ServiceSettings.from_args(args)
    store = JobStore(settings.database_url)
    try:
        token = store.create_token(args.user, admin=bool(getattr(args, "admin", False)))
    finally:
        store.close()
    role = " (admin: sees every job)" if getattr(args, "admin", False) else ""
    print(f"API token for {args.user}{role}; it is shown only this once: {token}")
    return 0
