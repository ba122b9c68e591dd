"""Every endpoint through a real PgBouncer (the Debian package, 1.18) in transaction pooling
mode, with asyncpg's statement cache off (``SECEVENTS_STATEMENT_CACHE_SIZE=0``): PgBouncer 1.18
hands each transaction whichever server connection is free, where a prepared statement of
another transaction does not exist. Requests run concurrently so that they do get mixed.

This module is the documented subset of the suite that runs through PgBouncer: it calls every
operation of the API (reads, stats, the change feed, exports, imports, writes, revisions,
health). The migrations run over a direct connection, as in production.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from secevents.server import db
from secevents.server.app import create_app
from secevents.server.settings import ApiSettings, DatabaseSettings, Settings
from tests.pg_servers import one_server, pgbouncer
from tests.writing import Keys, incident_body, make_keys

pytestmark = pytest.mark.own_servers  # the same with any SECEVENTS_TEST_DATABASE_URL

RESOURCES = ("incidents", "organisations", "statements", "sources")
PATCHES = {
    "incidents": {"title": "Renamed through PgBouncer"},
    "organisations": {"description": "Described through PgBouncer"},
    "statements": {"title": "Retitled through PgBouncer"},
    "sources": {"title": "Retitled through PgBouncer"},
}


@dataclass
class Bounced:
    client: httpx.AsyncClient
    direct_url: str
    keys: Keys


@asynccontextmanager
async def bounced_app() -> AsyncIterator[Bounced]:
    with one_server() as server:
        await asyncio.to_thread(db.upgrade, server.url)
        async with db.connect(server.url) as conn:
            keys = await make_keys(conn)
        with pgbouncer(server) as bouncer_url:
            settings = Settings(
                database=DatabaseSettings(
                    url=bouncer_url,
                    pool_min_size=2,
                    pool_max_size=8,
                    statement_cache_size=0,
                    migrate_on_start=False,
                ),
                api=ApiSettings(cursor_secret=b"pgbouncer", rate_limit_window_seconds=0),
            )
            app = create_app(settings)
            async with (
                app.lifespan(),  # seeds the sample dataset through PgBouncer
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bounced.local", timeout=60
                ) as client,
            ):
                yield Bounced(client, server.url, keys)


async def _ok(client: httpx.AsyncClient, url: str, **kwargs: object) -> httpx.Response:
    response = await client.get(url, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, (url, response.text)
    return response


async def test_every_endpoint_through_pgbouncer_in_transaction_mode() -> None:
    async with bounced_app() as bounced:
        await every_read_many_at_once(bounced)
        await every_write(bounced)
        await an_import(bounced)


async def every_read_many_at_once(bounced: Bounced) -> None:
    c = bounced.client
    # The probes first, alone: under the load below the readiness probe's own short bound on a
    # free connection may rightly answer 503.
    for probe in ("/health/live", "/health/ready"):
        await _ok(c, probe)
    urls = ["/v1/changes", "/v1/incidents/stats?group_by=country"]
    exports: list[str] = []
    for resource in RESOURCES:
        page = (await _ok(c, f"/v1/{resource}", params={"limit": 5})).json()["data"]
        record = page[0]["id"]
        urls += [
            f"/v1/{resource}?limit=50",
            f"/v1/{resource}/{record}",
            f"/v1/{resource}/{record}/revisions",
            f"/v1/{resource}/{record}/revisions/1",
        ]
        exports += [f"/v1/exports/{resource}?format=ndjson", f"/v1/exports/{resource}?format=csv"]
        if resource == "organisations":
            urls += [f"/v1/organisations/{record}/incidents", f"/v1/organisations/{record}/statements"]
    # Three rounds of everything at once: many transactions over PgBouncer's few server
    # connections, in no particular order.
    await asyncio.gather(*(_ok(c, url) for _ in range(3) for url in urls))
    # Exports one after the other (a client may run only a few at once).
    for url in exports:
        await _ok(c, url)


async def every_write(bounced: Bounced) -> None:
    c, keys = bounced.client, bounced.keys
    write = Keys.header(keys.write)
    async with db.connect(bounced.direct_url) as conn:
        body = await incident_body(conn, title="Written through PgBouncer")
    created = await c.post("/v1/incidents", json=body, headers={**write, "Idempotency-Key": uuid.uuid4().hex})
    assert created.status_code == 201, created.text
    assert created.headers["secevents-read-after"]
    for resource, patch in PATCHES.items():
        record = (await _ok(c, f"/v1/{resource}", params={"limit": 1})).json()["data"][0]
        url = f"/v1/{resource}/{record['id']}"
        etag = (await _ok(c, url)).headers["etag"]
        patched = await c.patch(url, json=patch, headers={**write, "If-Match": etag})
        assert patched.status_code == 200, patched.text
    url = created.headers["location"]
    etag = (await _ok(c, url)).headers["etag"]
    assert (await c.delete(url, headers={**write, "If-Match": etag})).status_code == 204
    assert (await c.get(url)).status_code in {404, 410}


async def an_import(bounced: Bounced) -> None:
    line = {"type": "source", "record": {"id": str(uuid.uuid4()), "kind": "news_article", "title": "Bounced"}}
    imported = await bounced.client.post(
        "/v1/imports",
        content=json.dumps(line).encode() + b"\n",
        headers={**Keys.header(bounced.keys.admin), "Content-Type": "application/x-ndjson"},
    )
    assert imported.status_code == 200, imported.text
