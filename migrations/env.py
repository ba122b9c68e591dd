"""Alembic environment: runs the DDL migrations over SQLAlchemy's asyncpg dialect.

The database URL comes from ``config.attributes["url"]`` (set by ``secevents.server.db``), never from
``alembic.ini``: a ``%`` in a password would break ini interpolation. ``command.upgrade`` runs
this file synchronously and it calls ``asyncio.run``, so async callers go through a thread.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config


def _asyncpg_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if scheme in {"postgres", "postgresql"}:
        return f"postgresql+asyncpg{sep}{rest}"
    return url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(_asyncpg_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


asyncio.run(_run_async(config.attributes["url"]))
