"""Pooled connections carry no session state from one request to the next.

A page or record read hands its connection back without asyncpg's reset query (``pg_advisory_
unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``: a round trip per read); every other request
gets it (``secevents.server.db.reset_session``). Both run here on a pool of one connection,
whose every statement is logged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
from litestar import Litestar

from secevents.server.settings import Settings
from tests.support import create_test_app, with_database
from tests.writing import Keys, incident_body, make_keys

SESSION_STATE = """
SELECT (SELECT coalesce(array_agg(name ORDER BY name), '{}') FROM pg_settings
         WHERE source = 'session' AND setting IS DISTINCT FROM reset_val) AS settings,
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks,
       (SELECT count(*) FROM pg_listening_channels()) AS channels,
       (SELECT count(*) FROM pg_cursors WHERE name <> '') AS cursors
"""
RESET_QUERY = "RESET ALL"


@asynccontextmanager
async def one_connection_app(settings: Settings) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    app = create_test_app(with_database(settings, pool_min_size=1, pool_max_size=1))
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://db.local") as client,
    ):
        yield app, client


async def test_reads_go_back_without_the_reset_query_and_the_rest_with_it(
    settings: Settings, conn: asyncpg.Connection
) -> None:
    keys = await make_keys(conn)
    async with one_connection_app(settings) as (app, client):
        pool: asyncpg.Pool = app.state.pool
        statements: list[str] = []
        async with pool.acquire() as pooled:
            pooled.add_query_logger(lambda record: statements.append(record.query))

        async def sent_by(method: str, path: str, **kwargs: object) -> list[str]:
            statements.clear()
            response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
            assert response.status_code < 300, response.text
            return list(statements)

        body = await incident_body(conn)
        written = await sent_by("POST", "/v1/incidents", json=body, headers=keys.header(keys.write))
        assert any(RESET_QUERY in s for s in written)
        created = await client.get("/v1/incidents", params={"limit": 1})
        incident_id = created.json()["data"][0]["id"]
        for path in ("/v1/incidents", f"/v1/incidents/{incident_id}", "/v1/organisations"):
            read = await sent_by("GET", path)
            assert len(read) == 1 and RESET_QUERY not in read[0], (path, read)
        stats = await sent_by("GET", "/v1/incidents/stats", params={"group_by": "country"})
        assert any(RESET_QUERY in s for s in stats)  # not a one-read handler: reset as ever


async def every_kind_of_request(client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys) -> None:
    write = {**keys.header(keys.write), "Idempotency-Key": str(uuid.uuid4())}
    created = await client.post("/v1/incidents", json=await incident_body(conn), headers=write)
    assert created.status_code == 201, created.text
    source = {"type": "source", "record": {"id": str(uuid.uuid4()), "kind": "report", "title": "Imported"}}
    imported = await client.post(
        "/v1/imports",
        content=json.dumps(source).encode() + b"\n",
        headers={"Content-Type": "application/x-ndjson", **keys.header(keys.admin)},
    )
    assert imported.status_code in (200, 201), imported.text
    for path in ("/v1/incidents", f"/v1/incidents/{created.json()['id']}", "/v1/exports/incidents"):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
    failed = await client.get("/v1/incidents", params={"cursor": "forged"})
    assert failed.status_code == 400


async def test_requests_leave_no_session_state(settings: Settings, conn: asyncpg.Connection) -> None:
    keys = await make_keys(conn)
    async with one_connection_app(settings) as (app, client):
        pool: asyncpg.Pool = app.state.pool
        async with pool.acquire() as pooled:
            backend = await pooled.fetchval("SELECT pg_backend_pid()")
            fresh = dict(await pooled.fetchrow(SESSION_STATE))
        await every_kind_of_request(client, conn, keys)
        async with pool.acquire() as pooled:
            # The same connection (a pool of one), as every request left it.
            assert await pooled.fetchval("SELECT pg_backend_pid()") == backend
            after = dict(await pooled.fetchrow(SESSION_STATE))
    assert fresh == {"settings": [], "advisory_locks": 0, "channels": 0, "cursors": 0}
    assert after == fresh
