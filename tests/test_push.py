"""Pushing the change feed: long-poll (``/v1/changes?wait=``) and the Server-Sent Event stream
(``/v1/changes/stream``), woken by PostgreSQL ``NOTIFY``; a waiter holds no database connection;
a stream resumes with ``Last-Event-ID`` exactly after the last event received.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from httpx_sse import aconnect_sse
from litestar import Litestar
from litestar.testing import AsyncTestClient

from secevents import AsyncClient
from secevents.server import db
from secevents.server.app import create_app
from secevents.server.changes.push import ChangeHub
from secevents.server.settings import ChangesSettings
from tests.conftest import make_settings
from tests.support import until
from tests.test_changes import INSERT_REVISION, assert_per_record_commit_order, read_all
from tests.writing import incident_body, live_server, make_keys


@contextlib.asynccontextmanager
async def served(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this event loop (Litestar's test client blocks the loop while a request
    runs, so a test could not act while a long-poll waits)."""
    async with (
        app.lifespan(),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://push.local", timeout=120
        ) as client,
    ):
        yield client


async def _write_revision(conn: asyncpg.Connection) -> int:
    data = await conn.fetchval("SELECT data FROM revisions LIMIT 1")
    seq: int = await conn.fetchval(INSERT_REVISION, uuid.uuid4(), 1, data)
    return seq


async def test_long_poll_answers_when_a_change_commits_and_holds_no_connection_meanwhile(
    app: Litestar, conn: asyncpg.Connection
) -> None:
    async with served(app) as client:
        _, cursor = await read_all(client)
        waiting = asyncio.create_task(client.get("/v1/changes", params={"after": cursor, "wait": "60"}))
        hub = app.state.changes
        # Once the listener is in place (its connecting wakes everyone to read again) and no read
        # is under way, nothing should hold a pooled connection.
        await until(lambda: hub.waiting == 1 and hub.listener.connected.is_set() and not hub.reading)
        pool: asyncpg.Pool = app.state.pool
        assert pool.get_idle_size() == pool.get_size()  # the waiting request holds none of them
        assert not waiting.done()
        seq = await _write_revision(conn)
        response = await waiting
    assert response.status_code == 200, response.text
    page = response.json()
    assert [c["seq"] for c in page["data"]] == [seq]
    assert page["next_cursor"] == page["data"][0]["cursor"]
    assert hub.waiting == 0


async def test_a_commit_whose_notification_never_arrives_is_delivered_at_the_next_recheck(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """The listener here listens on another database, so no commit of this one wakes it: a
    long-poll waiting 20 s still answers with the change, read again at the recheck (0.3 s).
    (Without the recheck it would answer empty once its 20 s were up.)"""
    settings = make_settings(database_url)
    changes = dataclasses.replace(
        settings.changes, listen_url=db.url_with_database(database_url, "postgres"), recheck_seconds=0.3
    )
    app = create_app(dataclasses.replace(settings, changes=changes))
    async with served(app) as client:
        _, cursor = await read_all(client)
        waiting = asyncio.create_task(client.get("/v1/changes", params={"after": cursor, "wait": "20"}))
        hub = app.state.changes
        await until(lambda: hub.waiting == 1 and hub.listener.connected.is_set())
        seq = await _write_revision(conn)
        response = await waiting
    assert response.status_code == 200, response.text
    assert [c["seq"] for c in response.json()["data"]] == [seq]


async def test_long_poll_with_nothing_new_answers_empty_with_the_same_cursor(
    client: httpx.AsyncClient,
) -> None:
    _, cursor = await read_all(client)
    response = await client.get("/v1/changes", params={"after": cursor, "wait": "1"})
    assert response.status_code == 200
    assert response.json() == {"data": [], "next_cursor": cursor, "has_more": False}


async def test_long_poll_answers_at_once_when_changes_are_waiting(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    _, cursor = await read_all(client)
    seq = await _write_revision(conn)
    page = (await client.get("/v1/changes", params={"after": cursor, "wait": "60"})).json()
    assert [c["seq"] for c in page["data"]] == [seq]


async def test_a_long_poll_may_outlast_the_request_timeout(database_url: str) -> None:
    """``wait`` moves the request timeout (here 0.5 s) by that long: no 503 for waiting as asked."""
    app = create_app(make_settings(database_url, request_timeout=0.5))
    async with AsyncTestClient(app=app) as client:
        _, cursor = await read_all(client)
        response = await client.get("/v1/changes", params={"after": cursor, "wait": "2"})
        assert response.status_code == 200, response.text
        assert response.json()["data"] == []


@pytest.mark.parametrize("wait", ["-1", "61", "soon"])
async def test_bad_wait_is_400(client: httpx.AsyncClient, wait: str) -> None:
    response = await client.get("/v1/changes", params={"wait": wait})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_stream_sends_changes_as_they_commit_and_heartbeats(
    database_url: str, conn: asyncpg.Connection
) -> None:
    async with (
        live_server(database_url, SECEVENTS_STREAM_HEARTBEAT_SECONDS="0.2") as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=60) as client,
    ):
        _, cursor = await read_all(client)
        async with client.stream("GET", "/v1/changes/stream", params={"after": cursor}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            # Nothing happens: a comment comes anyway.
            async for line in lines:
                if line == ": heartbeat":
                    break
            seq = await _write_revision(conn)
            event: dict[str, str] = {}
            async for line in lines:
                if not line:
                    if event:
                        break
                    continue
                field, _, value = line.partition(": ")
                if not field.startswith(":") and field:
                    event[field] = value
        change = httpx.Response(200, content=event["data"]).json()
        assert event["event"] == "change"
        assert change["seq"] == seq
        assert event["id"] == change["cursor"]
        # The event's id resumes right after it: from there, nothing yet.
        page = (await client.get("/v1/changes", params={"after": event["id"]})).json()
        assert page["data"] == []


async def test_stream_resumes_after_last_event_id(database_url: str, conn: asyncpg.Connection) -> None:
    async with (
        live_server(database_url) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=60) as client,
    ):
        _, cursor = await read_all(client)
        written = [await _write_revision(conn) for _ in range(5)]

        async def first_events(headers: dict[str, str], params: dict[str, str], count: int) -> list[Any]:
            got = []
            async with aconnect_sse(
                client, "GET", "/v1/changes/stream", params=params, headers=headers
            ) as source:
                async for sse in source.aiter_sse():
                    if sse.event != "change":
                        continue  # the opening block sets `retry`
                    got.append(sse)
                    if len(got) == count:
                        return got
            raise AssertionError("the stream ended")

        events = await first_events({}, {"after": cursor}, 2)
        assert [sse.json()["seq"] for sse in events] == written[:2]
        # Last-Event-ID wins over the `after` a reconnecting EventSource repeats.
        resumed = await first_events({"Last-Event-ID": events[-1].id}, {"after": cursor}, 3)
        assert [sse.json()["seq"] for sse in resumed] == written[2:]
        bad = await client.get("/v1/changes/stream", headers={"Last-Event-ID": "A" * 40})
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")


async def test_streams_at_one_cursor_share_one_reader_and_each_gets_every_change_in_order(
    app: Litestar, conn: asyncpg.Connection
) -> None:
    """200 streams at one cursor wait as one group with one reader (a commit wakes that reader,
    not 200 streams); 3 more start further back and read on their own first. When changes
    commit — one alone, then two in one transaction — every stream gets each change it has
    not seen once, in feed order, each event's id the cursor right after it."""
    caught_up_streams, behind_streams = 200, 3
    async with served(app) as client:
        hub: ChangeHub = app.state.changes
        known = await hub.feed_state()
        _, older = await read_all(client)
        for _ in range(2):
            await _write_revision(conn)
        _, cursor = await read_all(client)
        received: list[list[tuple[int, str]]] = []

        async def follow(after: str, count: int) -> list[tuple[int, str]]:
            got: list[tuple[int, str]] = []
            received.append(got)
            async with contextlib.aclosing(hub.events(known.resolve(after), None, known.codec)) as events:
                async for message in events:
                    if message.event == "change":
                        assert isinstance(message.data, bytes) and message.id is not None
                        got.append((json.loads(message.data)["seq"], message.id))
                        if len(got) == count:
                            return got
            raise AssertionError("the stream ended")

        caught_up = [asyncio.create_task(follow(cursor, 3)) for _ in range(caught_up_streams)]
        behind = [asyncio.create_task(follow(older, 5)) for _ in range(behind_streams)]
        # Everyone waits: the streams behind have read what they lacked (and may have joined
        # the others' group, their cursor being the same), the rest never had anything to read.
        await until(
            lambda: (
                hub.streams == caught_up_streams + behind_streams
                and all(len(got) == 2 for got in received[caught_up_streams:])
                and hub.readers <= 2
            )
        )
        assert hub.readers >= 1
        await _write_revision(conn)
        async with conn.transaction():
            await _write_revision(conn)
            await _write_revision(conn)
        results = await asyncio.gather(*caught_up, *behind)
        feed, _ = await read_all(client, older)
        expected = [c["seq"] for c in feed]
        # Each event's id resumes right after it (ids differ with the batches the reads saw).
        for got in {tuple(got) for got in results}:
            for n, (_, event_id) in enumerate(got):
                rest, _ = await read_all(client, event_id)
                assert [c["seq"] for c in rest] == [seq for seq, _ in got[n + 1 :]]
    assert len(expected) == 5
    assert all([seq for seq, _ in got] == expected[2:] for got in results[:caught_up_streams])
    assert all([seq for seq, _ in got] == expected for got in results[caught_up_streams:])
    assert hub.streams == 0 and hub.readers == 0


@contextlib.asynccontextmanager
async def cutting_proxy(upstream: str, rng: random.Random) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP proxy to ``upstream`` that cuts each connection after a random number of bytes
    from the server (2–30 kB): a dropped stream at a random point. Yields its URL and the list
    of cuts made."""
    host, port = upstream.removeprefix("http://").split(":")
    cuts: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, budget: int | None) -> None:
        sent = 0
        try:
            while data := await reader.read(4096):
                if budget is not None and sent + len(data) > budget:
                    writer.write(data[: budget - sent])
                    cuts.append(budget)
                    break
                writer.write(data)
                sent += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        up = asyncio.create_task(pipe(client_reader, server_writer, None))
        await pipe(server_reader, client_writer, rng.randint(2_000, 30_000))
        server_writer.close()
        up.cancel()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", cuts
    finally:
        server.close()


async def test_sdk_stream_resumes_after_random_disconnects_and_sees_every_change_once(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """The SDK reads 1,000 changes from the stream while 4 writers write; a proxy cuts the
    connection at random points. ``client.changes.stream`` reconnects by itself with
    Last-Event-ID: it ends with every change exactly once, each record's in commit order."""
    keys = await make_keys(conn)
    body = await incident_body(conn)
    per_writer = 250
    async with (
        live_server(database_url) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=60) as http,
        cutting_proxy(base_url, random.Random(20261130)) as (proxy_url, cuts),
        AsyncClient(base_url=proxy_url, max_retries=10) as api,
    ):
        _, cursor = await read_all(http)
        auth = {"Authorization": f"Bearer {keys.write}"}

        async def writer(n: int) -> None:
            for k in range(per_writer):
                created = await http.post("/v1/incidents", json={**body, "title": f"w{n}.{k}"}, headers=auth)
                assert created.status_code == 201, created.text
                if k % 5 == 0:
                    patched = await http.patch(
                        created.headers["location"],
                        json={"summary": "again"},
                        headers={**auth, "If-Match": created.headers["etag"]},
                    )
                    assert patched.status_code == 200, patched.text

        writers = asyncio.gather(*(writer(n) for n in range(4)))
        expected = 4 * per_writer + 4 * (per_writer // 5)
        seen: list[Any] = []
        async for change in api.changes.stream(after=cursor, reconnect_delay=0.05):
            seen.append(change)
            if len(seen) == expected:
                break
        await writers
    committed = await conn.fetchval("SELECT count(*) FROM revisions WHERE actor = 'key:test-write'")
    assert committed == expected
    assert len(cuts) >= 3  # it really was cut, several times
    assert len({c.seq for c in seen}) == expected
    assert_per_record_commit_order([{"id": str(c.id), "version": c.version} for c in seen])


def test_the_feed_recheck_is_read_from_the_environment_and_must_be_positive() -> None:
    assert ChangesSettings.from_env({"SECEVENTS_FEED_RECHECK_SECONDS": "2.5"}).recheck_seconds == 2.5
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ValueError, match="SECEVENTS_FEED_RECHECK_SECONDS"):
            ChangesSettings.from_env({"SECEVENTS_FEED_RECHECK_SECONDS": bad})
