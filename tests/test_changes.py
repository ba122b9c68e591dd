"""The change feed: creates, updates and deletes; a consumer following cursors sees every change
exactly once, changes of one record in commit order, also while many writers commit concurrently
and out of order — and no writer waits for the feed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from bench.import_export import generate_ndjson
from secevents.server import db
from secevents.server.app import create_app
from secevents.server.importers import ndjson
from tests.conftest import make_settings
from tests.writing import Keys, incident_body, live_server, make_keys


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


async def read_all(
    client: httpx.AsyncClient, after: str | None = None, **params: str
) -> tuple[list[Any], str]:
    """Every change after ``after`` (from the start when None), page by page, and the cursor
    that follows the last one."""
    seen: list[Any] = []
    while True:
        query = {"limit": "1000", **params} | ({"after": after} if after else {})
        response = await client.get("/v1/changes", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["data"]
        after = page["next_cursor"]
        if not page["has_more"]:
            assert after is not None
            return seen, after


async def test_feed_lists_creates_updates_and_tombstones(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    _, start = await read_all(client)
    auth = keys.header(keys.write)
    created = await client.post("/v1/incidents", json=await incident_body(conn), headers=auth)
    url = created.headers["location"]
    updated = await client.patch(
        url, json={"title": "Renamed"}, headers={**auth, "If-Match": created.headers["etag"]}
    )
    assert (
        await client.delete(url, headers={**auth, "If-Match": updated.headers["etag"]})
    ).status_code == 204
    page = await client.get("/v1/changes", params={"after": start})
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
    assert feed["next_cursor"] == changes[-1]["cursor"]
    assert feed["has_more"] is False
    # Caught up: the same cursor comes back, with nothing new.
    again = (await client.get("/v1/changes", params={"after": feed["next_cursor"]})).json()
    assert again == {"data": [], "next_cursor": feed["next_cursor"], "has_more": False}
    # Each change's own cursor resumes right after it.
    rest = (await client.get("/v1/changes", params={"after": changes[0]["cursor"]})).json()["data"]
    assert [c["seq"] for c in rest] == [c["seq"] for c in changes[1:]]


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
    # The sample was written before any read: one batch, in seq order.
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
    # The same changes; each `cursor` names the snapshot of its read, which moves between reads.
    assert _without_cursors(repeated.json()["data"]) == _without_cursors(by_type)
    # Resuming from any change's cursor gives exactly the changes after it.
    middle = seen[len(seen) // 2]
    rest, _ = await read_all(client, middle["cursor"])
    assert [c["seq"] for c in rest] == [c["seq"] for c in seen[len(seen) // 2 + 1 :]]


def _without_cursors(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in change.items() if k != "cursor"} for change in changes]


def _tampered(cursor: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[3] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


async def test_bad_and_altered_cursors_are_400(client: httpx.AsyncClient) -> None:
    _, cursor = await read_all(client)
    for after in (_tampered(cursor), cursor[:-2], "A" * 40, "12345678901234567"):
        response = await client.get("/v1/changes", params={"after": after})
        assert response.status_code == 400, (after, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    # A number beyond the last seq written before cursors became snapshots says what to do.
    numeric = (await client.get("/v1/changes", params={"after": "5"})).json()
    assert "numeric cursors are no longer issued" in str(numeric)


@pytest.mark.parametrize(
    "params",
    [
        {"after": "-1"},
        {"after": "abc"},
        {"after": "not a cursor"},
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


INSERT_REVISION = (
    "INSERT INTO revisions (record_type, record_id, version, operation, data, actor)"
    " VALUES ('source', $1, $2, 'update', $3::json, 'test') RETURNING seq"
)


async def test_a_transaction_that_commits_late_is_not_missed(
    database_url: str, client: httpx.AsyncClient
) -> None:
    """The first transaction draws the smaller seq but commits last. The second one neither
    waits for it nor hides it: the feed lists the second, then — once it commits — the first."""
    first = await asyncpg.connect(database_url)
    second = await asyncpg.connect(database_url)
    try:
        _, start = await read_all(client)
        data = await first.fetchval("SELECT data::text FROM revisions LIMIT 1")
        slow = first.transaction()
        await slow.start()
        early = await first.fetchval(INSERT_REVISION, uuid.uuid4(), 1, data)
        # Commits while the first is still open: no lock is shared by writers of other records.
        late = await second.fetchval(INSERT_REVISION, uuid.uuid4(), 1, data)
        assert early < late
        seen, cursor = await read_all(client, start)
        assert [c["seq"] for c in seen] == [late]
        await slow.commit()
        seen, _ = await read_all(client, cursor)
        assert [c["seq"] for c in seen] == [early]
    finally:
        await first.close()
        await second.close()


async def test_a_rolled_back_transaction_never_appears(database_url: str, client: httpx.AsyncClient) -> None:
    writer = await asyncpg.connect(database_url)
    try:
        _, start = await read_all(client)
        data = await writer.fetchval("SELECT data::text FROM revisions LIMIT 1")
        tx = writer.transaction()
        await tx.start()
        await writer.fetchval(INSERT_REVISION, uuid.uuid4(), 1, data)
        seen, cursor = await read_all(client, start)
        assert seen == [] and cursor == start
        await tx.rollback()
        kept = await writer.fetchval(INSERT_REVISION, uuid.uuid4(), 1, data)
        seen, _ = await read_all(client, cursor)
        assert [c["seq"] for c in seen] == [kept]
    finally:
        await writer.close()


async def test_a_large_batch_is_paged_whole_while_others_commit(
    database_url: str, client: httpx.AsyncClient
) -> None:
    """One transaction of 2,500 revisions, paged 100 at a time while single writes commit in
    between: every row once, the batch whole and in seq order, each single write after it."""
    writer = await asyncpg.connect(database_url)
    try:
        _, cursor = await read_all(client)
        data = await writer.fetchval("SELECT data::text FROM revisions LIMIT 1")
        bulk = await writer.fetch(
            "INSERT INTO revisions (record_type, record_id, version, operation, data, actor)"
            " SELECT 'source', gen_random_uuid(), 1, 'update', $1::json, 'test'"
            " FROM generate_series(1, 2500) RETURNING seq",
            data,
        )
        singles = []
        seen: list[int] = []
        while True:
            singles.append(await writer.fetchval(INSERT_REVISION, uuid.uuid4(), 1, data))
            page = (await client.get("/v1/changes", params={"after": cursor, "limit": "100"})).json()
            seen += [c["seq"] for c in page["data"]]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        rest, _ = await read_all(client, cursor)
        seen += [c["seq"] for c in rest]
        # The first read found the bulk and the first single write committed: one batch.
        assert seen == sorted(r["seq"] for r in bulk) + singles
    finally:
        await writer.close()


def assert_per_record_commit_order(seen: list[dict[str, Any]]) -> None:
    """Versions of each record only go up, one at a time, in the order the consumer saw them."""
    versions: dict[str, list[int]] = defaultdict(list)
    for change in seen:
        versions[change["id"]].append(change["version"])
    for record, listed in versions.items():
        assert listed == list(range(listed[0], listed[0] + len(listed))), (record, listed)


WRITES = 120


async def test_consumer_sees_every_change_exactly_once_under_concurrent_writers(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """8 writers create, update and delete through a real server (until they have written
    ``WRITES`` revisions between them) while a consumer follows the feed. Afterwards the
    consumer has seen exactly the revisions the table holds, each once, each record's in
    commit order.
    """
    keys = await make_keys(conn)
    start = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM revisions")
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

    seen: list[dict[str, Any]] = []

    async with (
        live_server(database_url, SECEVENTS_POOL_MAX_SIZE="12") as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=60) as client,
    ):
        _, cursor = await read_all(client)

        async def read_once() -> bool:
            nonlocal cursor
            page = await client.get("/v1/changes", params={"after": cursor, "limit": "50"})
            assert page.status_code == 200, page.text
            feed = page.json()
            seen.extend(feed["data"])
            cursor = feed["next_cursor"]
            return bool(feed["has_more"])

        async def consumer() -> None:
            while writing:
                await read_once()

        tasks = [asyncio.create_task(writer(client, n)) for n in range(8)]
        reader = asyncio.create_task(consumer())
        # A count of writes, not a time: on a loaded machine the writers are slower, not fewer.
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            writing = False
            await reader
        while await read_once():
            pass
        await read_once()

    committed = [r["seq"] for r in await conn.fetch("SELECT seq FROM revisions WHERE seq > $1", start)]
    assert writes >= WRITES
    assert len(committed) == writes
    assert sorted(c["seq"] for c in seen) == sorted(committed)
    assert len({c["seq"] for c in seen}) == len(seen)
    assert_per_record_commit_order(seen)


async def test_numeric_cursors_from_before_snapshots_still_work(database_url: str) -> None:
    """Revisions written before migration 0006 had seqs in commit order: a bare seq handed out
    then still resumes exactly after it; a larger number is a 400."""
    await asyncio.to_thread(db.downgrade, database_url, "0005_stored_documents")
    async with db.connect(database_url) as writer:
        data = await writer.fetchval("SELECT data FROM revisions LIMIT 1")
        old = [await writer.fetchval(INSERT_REVISION, uuid.uuid4(), 1, data) for _ in range(3)]
    await asyncio.to_thread(db.upgrade, database_url)
    async with db.connect(database_url) as writer:
        new = await writer.fetchval(INSERT_REVISION, uuid.uuid4(), 1, data)
        total = await writer.fetchval("SELECT count(*) FROM revisions")
    async with AsyncTestClient(app=create_app(make_settings(database_url))) as client:
        seen, _ = await read_all(client, str(old[0]))
        assert [c["seq"] for c in seen] == [*old[1:], new]
        everything, _ = await read_all(client, "0")
        assert len(everything) == total
        beyond = await client.get("/v1/changes", params={"after": str(old[-1] + 1)})
        assert beyond.status_code == 400
        assert "numeric cursors are no longer issued" in beyond.text


async def test_a_write_commits_while_an_import_is_open(
    conn: asyncpg.Connection, client: httpx.AsyncClient, keys: Keys
) -> None:
    """An import's transaction, written and not committed, makes no API writer wait; the feed
    shows the write at once and the import whole when it commits."""
    _, start = await read_all(client)
    lines = [
        {"type": "incident", "record": {**await incident_body(conn), "title": f"Imported {n}"}}
        for n in range(50)
    ]

    async def chunks() -> AsyncIterator[bytes]:
        yield b"".join(json.dumps(line).encode() + b"\n" for line in lines)

    importing = conn.transaction()
    await importing.start()
    await ndjson.import_lines(conn, chunks(), actor="test")  # written, not committed
    created = await client.post(
        "/v1/incidents",
        json=await incident_body(conn, title="Written meanwhile"),
        headers=keys.header(keys.write),
    )
    assert created.status_code == 201, created.text
    seen, cursor = await read_all(client, start)
    assert [c["data"]["title"] for c in seen] == ["Written meanwhile"]
    await importing.commit()
    seen, _ = await read_all(client, cursor)
    assert sorted(c["data"]["title"] for c in seen) == sorted(f"Imported {n}" for n in range(50))


IMPORT_ROWS = 30_000  # long enough that the writers commit while it runs


async def test_every_change_once_while_writers_and_a_large_import_run(
    database_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    """8 writers write through a real server while ``secevents import ndjson`` loads 30,000
    incidents in one transaction and a consumer follows the feed: in the end the consumer has
    seen every committed change exactly once, each record's in commit order, the import whole.
    The writers keep committing while the import runs: none of them waits for it."""
    keys = await make_keys(conn)
    start = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM revisions")
    body = await incident_body(conn)
    auth = keys.header(keys.write)
    path = tmp_path / "import.ndjson"
    await asyncio.to_thread(generate_ndjson, path, IMPORT_ROWS)
    seen: list[dict[str, Any]] = []
    writes = 0
    written_during_import = 0
    importing = True

    async with (
        live_server(database_url, SECEVENTS_POOL_MAX_SIZE="12") as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=120) as client,
    ):
        _, cursor = await read_all(client)

        async def writer(n: int) -> None:
            nonlocal writes, written_during_import
            while importing:
                created = await client.post("/v1/incidents", json={**body, "title": f"w{n}"}, headers=auth)
                assert created.status_code == 201, created.text
                updated = await client.patch(
                    created.headers["location"],
                    json={"summary": "s"},
                    headers={**auth, "If-Match": created.headers["etag"]},
                )
                assert updated.status_code == 200, updated.text
                writes += 2
                written_during_import += 2 if importing else 0

        async def read_once() -> bool:
            nonlocal cursor
            page = await client.get("/v1/changes", params={"after": cursor, "limit": "1000"})
            assert page.status_code == 200, page.text
            feed = page.json()
            seen.extend(feed["data"])
            cursor = feed["next_cursor"]
            return bool(feed["has_more"])

        async def consumer() -> None:
            while importing:
                await read_once()

        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "secevents.server.cli.main",
            "import",
            "ndjson",
            str(path),
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        tasks = [asyncio.create_task(writer(n)) for n in range(8)]
        reader = asyncio.create_task(consumer())
        _, stderr = await process.communicate()
        importing = False
        assert process.returncode == 0, stderr.decode()
        await asyncio.gather(*tasks, reader)
        while await read_once():
            pass

    committed = await conn.fetchval("SELECT count(*) FROM revisions WHERE seq > $1", start)
    imported = await conn.fetchval(
        "SELECT count(*) FROM revisions WHERE seq > $1 AND actor NOT LIKE 'key:%'", start
    )
    assert imported == IMPORT_ROWS + 21  # the incidents, their source and 20 organisations
    assert written_during_import > 0
    assert committed == writes + imported
    assert len(seen) == committed
    assert len({c["seq"] for c in seen}) == committed
    assert_per_record_commit_order(seen)
