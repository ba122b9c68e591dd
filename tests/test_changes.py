"""The change feed: creates, updates and deletes in commit order; a consumer following cursors
sees every change exactly once, also while many writers commit concurrently.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest

from tests.writing import Keys, incident_body, live_server, make_keys


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


async def _last_seq(conn: asyncpg.Connection) -> int:
    seq: int = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM revisions")
    return seq


async def test_feed_lists_creates_updates_and_tombstones(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    start = await _last_seq(conn)
    auth = keys.header(keys.write)
    created = await client.post("/v1/incidents", json=await incident_body(conn), headers=auth)
    url = created.headers["location"]
    updated = await client.patch(
        url, json={"title": "Renamed"}, headers={**auth, "If-Match": created.headers["etag"]}
    )
    assert (
        await client.delete(url, headers={**auth, "If-Match": updated.headers["etag"]})
    ).status_code == 204
    page = await client.get("/v1/changes", params={"after": str(start)})
    assert page.status_code == 200
    feed = page.json()
    changes = feed["data"]
    assert [(c["operation"], c["version"], c["deleted"]) for c in changes] == [
        ("create", 1, False),
        ("update", 2, False),
        ("delete", 3, True),
    ]
    assert changes[0]["data"] == created.json()
    assert changes[1]["data"]["title"] == "Renamed"
    assert changes[2]["data"] is None
    assert {c["type"] for c in changes} == {"incident"}
    assert feed["next_cursor"] == str(changes[-1]["seq"])
    assert feed["has_more"] is False
    # Caught up: the same cursor comes back, with nothing new.
    again = (await client.get("/v1/changes", params={"after": feed["next_cursor"]})).json()
    assert again == {"data": [], "next_cursor": feed["next_cursor"], "has_more": False}


async def test_feed_from_the_beginning_pages_and_filters(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    total = await conn.fetchval("SELECT count(*) FROM revisions")
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "5"} | ({"after": cursor} if cursor else {})
        page = (await client.get("/v1/changes", params=params)).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert len(seen) == total
    assert [c["seq"] for c in seen] == sorted(c["seq"] for c in seen)
    by_type = (await client.get("/v1/changes", params={"types": "incident,source", "limit": "1000"})).json()[
        "data"
    ]
    expected = await conn.fetchval(
        "SELECT count(*) FROM revisions WHERE record_type IN ('incident', 'source')"
    )
    assert len(by_type) == expected
    assert {c["type"] for c in by_type} == {"incident", "source"}
    repeated = await client.get(
        "/v1/changes", params=[("types", "incident"), ("types", "source"), ("limit", "1000")]
    )
    assert repeated.json()["data"] == by_type


@pytest.mark.parametrize(
    "params",
    [
        {"after": "-1"},
        {"after": "abc"},
        {"types": "incident,person"},
        {"types": ""},  # (schemathesis: an empty value; the spec now lists the types as an enum)
        {"limit": "0"},
        {"limit": "1001"},
        {"since": "1"},
    ],
)
async def test_bad_feed_parameters_are_400(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get("/v1/changes", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


WRITES = 120


async def test_consumer_sees_every_change_exactly_once_under_concurrent_writers(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """8 writers create, update and delete through a real server (until they have written
    ``WRITES`` revisions between them) while a consumer follows the feed. Afterwards the
    consumer has seen exactly the revisions the table holds, each once, in seq order.
    """
    keys = await make_keys(conn)
    start = await _last_seq(conn)
    body = await incident_body(conn)
    auth = keys.header(keys.write)
    writing = True
    writes = 0

    async def writer(client: httpx.AsyncClient, n: int) -> None:
        nonlocal writes
        while writes < WRITES:
            created = await client.post("/v1/incidents", json={**body, "title": f"w{n}"}, headers=auth)
            assert created.status_code == 201, created.text
            url, etag = created.headers["location"], created.headers["etag"]
            updated = await client.patch(url, json={"summary": "s"}, headers={**auth, "If-Match": etag})
            assert updated.status_code == 200, updated.text
            writes += 2
            if n % 2:
                deleted = await client.delete(url, headers={**auth, "If-Match": updated.headers["etag"]})
                assert deleted.status_code == 204
                writes += 1

    seen: list[int] = []
    cursor = str(start)

    async def read_once(client: httpx.AsyncClient) -> bool:
        nonlocal cursor
        page = await client.get("/v1/changes", params={"after": cursor, "limit": "50"})
        assert page.status_code == 200, page.text
        feed = page.json()
        seen.extend(c["seq"] for c in feed["data"])
        cursor = feed["next_cursor"]
        return bool(feed["has_more"])

    async def consumer(client: httpx.AsyncClient) -> None:
        while writing:
            await read_once(client)

    async with (
        live_server(database_url, SECEVENTS_POOL_MAX_SIZE="12") as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=60) as client,
    ):
        tasks = [asyncio.create_task(writer(client, n)) for n in range(8)]
        reader = asyncio.create_task(consumer(client))
        # A count of writes, not a time: on a loaded machine the writers are slower, not fewer.
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            writing = False
            await reader
        while await read_once(client):
            pass
        await read_once(client)

    committed = [
        r["seq"] for r in await conn.fetch("SELECT seq FROM revisions WHERE seq > $1 ORDER BY seq", start)
    ]
    assert writes >= WRITES
    assert len(committed) == writes
    assert seen == committed
