"""Who is calling: the bearer-token dependency of every authenticated route, and the job lookup.

Both the core API (:mod:`.app`) and the dashboard's routes (:mod:`.dashboard_api`)
use :func:`caller` and :func:`visible_job`, so a token is checked and a job hidden
from other users in one place. The app provides ``app.state.store``.
"""
from __future__ import annotations

from typing import Optional

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .store import User

bearer = HTTPBearer(auto_error=False, description="an API token from `brainalign token create USER`")


def caller(request: Request, creds: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> User:
    """The user of the request's bearer token; 401 without a valid one."""
    store = request.app.state.store
    user = store.authenticate(creds.credentials) if creds is not None and creds.credentials else None
    if user is None:
        raise HTTPException(401, "missing or invalid API token: send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


def visible_job(store, user: User, job_id: str) -> dict:
    """The job ``user`` may see; 404 (as if it did not exist) otherwise."""
    job = store.get_job(user, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job
