"""Read-your-writes across replicas, at the ASGI level.

- A write (any method but GET/HEAD) that succeeded answers with ``Secevents-Read-After``: the
  primary's WAL position read after the handler has committed (the response starts only after
  the handler's connection went back to the pool, so its transaction is over).
- A read that a replica failed under (connection lost, replica shut down) is answered again, by
  the primary, before anything reached the client: a replica going away costs a retry, never a
  5xx.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from secevents.server.http.dependencies import PRIMARY_ONLY, READ_METHODS, REPLICA_FAILED
from secevents.server.replicas import READ_AFTER_HEADER, WAL_POSITION

log = logging.getLogger("secevents.replicas")

_HEADER = READ_AFTER_HEADER.lower().encode()
_TOKEN_TIMEOUT = 2.0


class ReadRoutingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        method = scope.get("method")
        if method in READ_METHODS:
            await self._read(scope, receive, send)
        elif method == "OPTIONS":  # a preflight writes nothing
            await self.app(scope, receive, send)
        else:
            await self._write(scope, receive, send)

    async def _write(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["litestar_app"].state

        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                pool = state.get("pool")
                if pool is not None:
                    try:
                        # Bounded as a whole: a pool with no free connection must not hold
                        # up an answer whose write is already committed.
                        token = await asyncio.wait_for(pool.fetchval(WAL_POSITION), _TOKEN_TIMEOUT)
                    except Exception as exc:  # the write itself succeeded: answer without a token
                        log.warning("no %s token for a write: %r", READ_AFTER_HEADER, exc)
                    else:
                        message["headers"] = [*message.get("headers", []), (_HEADER, token.encode())]
            await send(message)

        await self.app(scope, receive, send_with_token)

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["litestar_app"].state.get("replicas") is None:
            await self.app(scope, receive, send)
            return
        # A pristine copy to answer again from (Litestar keeps per-request state in the scope).
        retry_scope: Any = {**scope, "state": dict(scope.get("state", {}))}
        held: list[Message] = []

        async def send_or_hold(message: Message) -> None:
            if held or (
                message["type"] == "http.response.start"
                and message["status"] >= 500
                and scope.get(REPLICA_FAILED)
            ):
                held.append(message)
                return
            await send(message)

        await self.app(scope, receive, send_or_hold)
        if held:
            log.warning("a replica failed under a read of %s: answering from the primary", scope["path"])
            retry_scope[PRIMARY_ONLY] = True
            await self.app(retry_scope, receive, send)


_TOKEN_DESCRIPTION = (
    "Read-your-writes across read replicas: the primary's WAL position after this write "
    "committed (like `0/16B3748`). Send it back as the `Secevents-Read-After` header of a later "
    "read to see this write (the SDK does so by itself)."
)
_READ_AFTER_PARAMETER = {
    "name": READ_AFTER_HEADER,
    "in": "header",
    "required": False,
    "description": "The `Secevents-Read-After` token of an earlier write: the read is answered by "
    "a replica only once it has replayed past it (waiting briefly), else by the primary. "
    "Malformed: 400 `invalid_header`.",
    "schema": {"type": "string", "pattern": "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"},
}


def document_read_after(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare the token in the spec: a response header of every API write that succeeds, an
    optional request header of every API read."""
    for path, operations in spec.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            if method.upper() in READ_METHODS:
                parameters = operation.setdefault("parameters", [])
                if all(p.get("name") != READ_AFTER_HEADER for p in parameters):
                    parameters.append(dict(_READ_AFTER_PARAMETER))
                continue
            for status, response in operation.get("responses", {}).items():
                if str(status).startswith("2") and isinstance(response, dict):
                    headers = response.setdefault("headers", {})
                    headers[READ_AFTER_HEADER] = {
                        "description": _TOKEN_DESCRIPTION,
                        "schema": {"type": "string"},
                    }
    return spec
