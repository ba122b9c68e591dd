"""Helpers of the write-API tests: API keys, valid bodies built from the sample dataset, and a
snapshot of everything a failed write must leave unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from secevents.server.http import auth

# Every table a write may touch; a failed write leaves all of them as they were.
WRITTEN_TABLES = (
    "sources",
    "organisations",
    "organisation_aliases",
    "organisation_relationships",
    "incidents",
    "incident_participants",
    "incident_casualties",
    "statements",
    "statement_claims",
    "claim_organisations",
    "statement_figures",
    "statement_incidents",
    "citations",
    "revisions",
    "idempotency_keys",
)


@dataclass(frozen=True)
class Keys:
    read: str
    write: str
    admin: str

    @staticmethod
    def header(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


async def make_keys(conn: asyncpg.Connection) -> Keys:
    made = {}
    for scope in ("read", "write", "admin"):
        created = await auth.create_key(conn, name=f"test-{scope}", scopes=[scope])
        made[scope] = created.key
    return Keys(**made)


async def snapshot(conn: asyncpg.Connection) -> dict[str, Any]:
    """Row count and a digest of every written table, and the change feed's last seq."""
    state: dict[str, Any] = {}
    for table in WRITTEN_TABLES:
        state[table] = await conn.fetchval(
            f"SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"
        )
    return state


async def first(client: httpx.AsyncClient, resource: str) -> dict[str, Any]:
    response = await client.get(f"/v1/{resource}", params={"limit": 1})
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()["data"][0]
    return record


async def source_with_text(conn: asyncpg.Connection) -> tuple[str, str]:
    """(id, text) of the sample's source that holds the seed article."""
    row = await conn.fetchrow("SELECT id::text, text FROM sources WHERE text IS NOT NULL LIMIT 1")
    assert row is not None
    return row["id"], row["text"]


async def incident_body(conn: asyncpg.Connection, **overrides: Any) -> dict[str, Any]:
    """A valid new incident: real organisations and a quote taken from the source's text."""
    source_id, text = await source_with_text(conn)
    orgs = await conn.fetch("SELECT id::text FROM organisations WHERE deleted_at IS NULL ORDER BY id LIMIT 2")
    body: dict[str, Any] = {
        "title": "Test attack",
        "type": "battle",
        "occurred": {"start": "2023-12-12", "end": "2023-12-12", "precision": "day"},
        "location": {"country": "PK", "place": "Daraban", "precision": "admin2"},
        "participants": [
            {"organisation_id": orgs[0]["id"], "role": "perpetrator"},
            {"organisation_id": orgs[1]["id"], "role": "target"},
        ],
        "casualties": {"killed": {"low": 23, "best": 23}},
        "citations": [{"source_id": source_id, "quote": text[100:160]}],
    }
    body.update(overrides)
    return body


@contextlib.asynccontextmanager
async def live_server(database_url: str, **env: str) -> AsyncIterator[str]:
    """The app served by uvicorn in a process of its own over ``database_url``: requests from
    the test really run concurrently, each on its own pooled connection. Yields the base URL.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECEVENTS_MIGRATE_ON_START": "false",
        "SECEVENTS_SEED_ON_START": "false",
        "SECEVENTS_POOL_MIN_SIZE": "2",
        "SECEVENTS_POOL_MAX_SIZE": "16",
        "SECEVENTS_RATE_LIMIT_WINDOW_SECONDS": "0",
        "SECEVENTS_LOG_FORMAT": "text",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "secevents.server.asgi:app_from_env",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        env=environment,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        # Up as soon as it answers, however long that takes on a loaded machine (the test's
        # timeout is the only clock); a server that exits instead fails at once.
        async with httpx.AsyncClient(base_url=base_url) as probe:
            while True:
                assert process.returncode is None, "the server exited"
                try:
                    if (await probe.get("/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        await process.wait()
