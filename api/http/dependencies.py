"""Dependencies handed to handlers: a pooled connection (from the primary or a read replica:
the one place reads and writes are routed), the settings."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import asyncpg
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from secevents.server import db
from secevents.server.http.errors import CONNECTION_ERRORS, InvalidHeader, ServiceUnavailable
from secevents.server.http.headers import scope_header
from secevents.server.replicas import READ_AFTER_HEADER, Replica, Replicas, parse_lsn
from secevents.server.settings import Settings


async def acquire_held(scope: Any, pool: asyncpg.Pool, settings: Settings) -> asyncpg.Connection:
    """A connection from ``pool`` for the request of ``scope``, held where its request timeout
    can terminate it; 503 when none is free in time."""
    try:
        return await db.held_connections(scope).acquire(pool, settings.database.pool_acquire_timeout)
    except TimeoutError as exc:
        raise ServiceUnavailable("No database connection became free in time; retry later.") from exc


READ_METHODS = frozenset({"GET", "HEAD"})
_READ_AFTER = READ_AFTER_HEADER.lower().encode()
# Set in the scope when a replica failed under a read: the read is answered again by the primary
# (secevents.server.http.consistency.ReadRoutingMiddleware).
REPLICA_FAILED = "secevents.replica_failed"
PRIMARY_ONLY = "secevents.primary_only"


def read_after(request: Request[Any, Any, Any]) -> int | None:
    """The ``Secevents-Read-After`` token a read carries, as a WAL position; 400 if malformed."""
    raw = scope_header(request.scope, _READ_AFTER)
    if raw is None:
        return None
    try:
        return parse_lsn(raw)
    except ValueError:
        raise InvalidHeader(
            f"{READ_AFTER_HEADER}: expected a WAL position as sent by a write (like 0/16B3748), got {raw[:40]!r}"
        ) from None


async def acquire(
    request: Request[Any, Any, Any], settings: Settings
) -> tuple[asyncpg.Pool, asyncpg.Connection, Replica | None]:
    """A connection for the request: a read (GET, HEAD) from a replica in rotation (one that has
    replayed past the request's ``Secevents-Read-After``), anything else — and every read when
    no replica can serve it — from the primary; 503 when none is free in time."""
    state = request.app.state
    timeout = settings.database.pool_acquire_timeout
    replicas: Replicas | None = state.get("replicas")
    try:
        if replicas is not None and request.method in READ_METHODS and not request.scope.get(PRIMARY_ONLY):
            token = read_after(request)
            return await replicas.acquire_for_read(token, timeout)
        pool: asyncpg.Pool = state.pool
        return pool, await db.acquire_within(pool, timeout), None
    except TimeoutError as exc:
        raise ServiceUnavailable("No database connection became free in time; retry later.") from exc


def replica_failure(exc: BaseException) -> bool:
    """Whether an error met on a replica connection means the replica, not the request, failed
    (connection lost, shut down, recovery conflict)."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    return sqlstate.startswith(("08", "57P")) or sqlstate == "40001"


class RequestConnection:
    """``async with RequestConnection(request, settings) as conn``: a connection for the request
    (:func:`acquire`), held where its request timeout can terminate it, and given back at the
    end of the block. An error on a replica's connection that means the replica failed marks it
    down and tells the read-routing middleware to answer again from the primary.

    ``one_read``: the block runs one ``SELECT`` outside a transaction and nothing else; when it
    ends without an error the connection goes back without asyncpg's reset query
    (:func:`secevents.server.db.reset_session`).

    A class rather than an ``asynccontextmanager``: every read enters one, and the generator
    machinery cost a list page more than this whole class does."""

    __slots__ = ("_conn", "_held", "_one_read", "_pool", "_replica", "_request", "_settings")

    def __init__(
        self, request: Request[Any, Any, Any], settings: Settings, *, one_read: bool = False
    ) -> None:
        self._request = request
        self._settings = settings
        self._one_read = one_read

    async def __aenter__(self) -> asyncpg.Connection:
        self._pool, self._conn, self._replica = await acquire(self._request, self._settings)
        self._held = db.held_connections(self._request.scope)
        self._held.hold(self._conn)
        return self._conn

    async def __aexit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        try:
            if isinstance(exc, Exception) and self._replica is not None and replica_failure(exc):
                replicas: Replicas = self._request.app.state.replicas
                replicas.mark_down(self._replica, exc)
                self._request.scope[REPLICA_FAILED] = True  # type: ignore[literal-required]
        finally:
            await self._held.release(self._pool, self._conn, unchanged=self._one_read and exc is None)


async def provide_connection(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> AsyncGenerator[asyncpg.Connection, None]:
    """A connection for the request (:class:`RequestConnection`), returned after the handler.

    It depends on ``settings`` only to be resolved *after* the first batch of dependencies
    (Litestar resolves each batch concurrently): when a dependency that validates query
    parameters fails next to it, Litestar 2.25 loses the generator and the connection is
    never released. Depending on ``settings`` puts the acquire in a later batch.

    The reads (``secevents.server.reads.listing``) take their connection in the handler instead:
    a dependency batch of more than one runs as tasks of its own (an anyio task group per
    request), which cost a list page more CPU than the rest of its handler."""
    async with RequestConnection(request, settings) as conn:
        yield conn


def request_settings(request: Request[Any, Any, Any]) -> Settings:
    """The settings, for code that runs without the ``settings`` dependency."""
    settings: Settings = request.app.state.settings
    return settings


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings
