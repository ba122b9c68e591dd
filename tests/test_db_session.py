"""Pooled connections carry no session state from one request to the next.

The pool hands connections back without asyncpg's reset query (``db.keep_session``: it saves a
round trip per request), which is right only while nothing the server does leaves state on the
session. Every kind of request that sets something (an idempotent write, which sets a lock
timeout; an import, which turns JIT off; an export, which reads through a cursor) runs here on a
pool of one connection, which must then look like a fresh one.
"""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx

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
    app = create_test_app(with_database(settings, pool_min_size=1, pool_max_size=1))
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://db.local") as client,
    ):
        pool: asyncpg.Pool = app.state.pool
        async with pool.acquire() as pooled:
            backend = await pooled.fetchval("SELECT pg_backend_pid()")
            fresh = dict(await pooled.fetchrow(SESSION_STATE))
        await every_kind_of_request(client, conn, keys)
        async with pool.acquire() as pooled:
            # The same connection (a pool of one), as every request left it.
            assert await pooled.fetchval("SELECT pg_backend_pid()") == backend
            after = dict(await pooled.fetchrow(SESSION_STATE))
    assert fresh == {
        "settings": [],
        "advisory_locks": 0,
        "channels": 0,
        "cursors": 0,
    }
    assert after == fresh
