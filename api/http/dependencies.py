"""Dependencies handed to handlers: a pooled connection, the settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import asyncpg
from litestar.datastructures import State
from litestar.di import NamedDependency

from secevents.server.http.errors import ServiceUnavailable
from secevents.server.settings import Settings

log = logging.getLogger("secevents.db")


async def provide_connection(
    state: State, settings: NamedDependency[Settings]
) -> AsyncGenerator[asyncpg.Connection, None]:
    """A connection from the pool for the request; 503 when none is free in time.

    It depends on ``settings`` only to be resolved *after* the first batch of dependencies
    (Litestar resolves each batch concurrently): when a dependency that validates query
    parameters fails next to it, Litestar 2.25 loses the generator and the connection is
    never released. Depending on ``settings`` puts the acquire in a later batch."""
    pool: asyncpg.Pool = state.pool
    try:
        conn = await pool.acquire(timeout=settings.database.pool_acquire_timeout)
    except TimeoutError as exc:
        raise ServiceUnavailable("No database connection became free in time; retry later.") from exc
    try:
        yield conn
    finally:
        await _release(pool, conn)


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """Give the connection back. When the database died under it, asyncpg cannot reset it,
    terminates it (the pool opens a new one on a later acquire) and raises: that error must
    not replace the request's own outcome (a 503 for the connection error, or the response
    already computed) with a 500."""
    try:
        await pool.release(conn)
    except Exception as exc:
        log.warning("dropped a pooled connection that could not be reset: %r", exc)


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings
