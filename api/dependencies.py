"""Dependencies handed to handlers: a pooled connection, the settings."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import asyncpg
from litestar.datastructures import State

from api.errors import ServiceUnavailable
from api.settings import Settings


async def provide_connection(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """A connection from the pool for the request; 503 when none is free in time."""
    settings: Settings = state.settings
    pool: asyncpg.Pool = state.pool
    try:
        conn = await pool.acquire(timeout=settings.database.pool_acquire_timeout)
    except TimeoutError as exc:
        raise ServiceUnavailable("No database connection became free in time; retry later.") from exc
    try:
        yield conn
    finally:
        await pool.release(conn)


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings
