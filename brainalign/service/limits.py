"""Request body size limit (HTTP 413), as plain ASGI middleware.

A declared ``Content-Length`` over the limit is answered 413 without passing the
body on; a body sent without one (chunked) is counted as it arrives and the
request stops with :class:`BodyTooLarge` (answered 413 by the app's handler) once
it passes the limit. Either way no oversized body is held in memory: the rest is
read and thrown away (up to :data:`DRAIN_FACTOR` times the limit) so that a client
still sending reads the answer instead of a reset connection.
"""
from __future__ import annotations

import json

from fastapi import HTTPException


DRAIN_FACTOR = 16  # bodies up to 16 x the limit are read and discarded before the 413 (else the connection closes)


async def _drain(receive, cap: int | None = None) -> None:
    """Read and discard the rest of a request body (at most ``cap`` bytes)."""
    n = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        n += len(message.get("body", b""))
        if not message.get("more_body", False) or (cap is not None and n > cap):
            return


class BodyTooLarge(HTTPException):
    """A request body over the server's limit (an HTTPException, so FastAPI's body reader passes it on)."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


def _message(max_bytes: int) -> str:
    return f"request body too large: the limit is {max_bytes} bytes"


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` bytes."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.max_bytes):
            status = 413 if declared.strip().isdigit() else 400
            if status == 413 and int(declared) <= DRAIN_FACTOR * self.max_bytes:
                await _drain(receive)  # so the client, still sending, reads the answer
            text = _message(self.max_bytes) if status == 413 else "Content-Length is not a number"
            body = json.dumps({"detail": text}).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                    (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return None
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if message.get("more_body", False):
                        await _drain(receive, DRAIN_FACTOR * self.max_bytes)
                    raise BodyTooLarge(_message(self.max_bytes))
            return message

        return await self.app(scope, counted, send)
