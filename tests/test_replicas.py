"""Reads from a real streaming replica: routing, read-your-writes with the
``Secevents-Read-After`` token, and fallback to the primary while the replica is down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from secevents import AsyncClient
from secevents.server import db
from secevents.server.app import create_app
from secevents.server.http import auth
from secevents.server.settings import ApiSettings, DatabaseSettings, Settings
from tests.client_helpers import incident_body as sdk_incident_body
from tests.pg_servers import Server, primary_and_replica
from tests.support import until
from tests.test_changes import INSERT_REVISION, read_all
from tests.writing import incident_body

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.own_servers]


@dataclass
class Cluster:
    client: httpx.AsyncClient
    primary: Server
    replica: Server
    headers: dict[str, str]
    key: str
    app: Litestar

    def write_headers(self) -> dict[str, str]:
        return {**self.headers, "Idempotency-Key": uuid.uuid4().hex}

    async def on_replica(self, sql: str) -> Any:
        conn = await asyncpg.connect(self.replica.url)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    async def replica_state(self) -> str:
        ready = (await self.client.get("/health/ready")).json()
        state: str = ready["replicas"][0]["state"]
        return state


@asynccontextmanager
async def cluster(**database: Any) -> AsyncIterator[Cluster]:
    with primary_and_replica() as (primary, replica):
        settings = Settings(
            database=DatabaseSettings(
                url=primary.url,
                replica_urls=(replica.url,),
                pool_min_size=1,
                pool_max_size=4,
                replica_check_interval=0.1,
                replica_check_timeout=1.0,
                connect_timeout=1.0,
                **database,
            ),
            api=ApiSettings(cursor_secret=b"replicas", rate_limit_window_seconds=0),
        )
        app = create_app(settings)
        async with (
            app.lifespan(),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://replicas.local", timeout=60
            ) as client,
        ):
            async with db.connect(primary.url) as conn:
                key = (await auth.create_key(conn, name="replicas", scopes=["write"])).key
            c = Cluster(client, primary, replica, {"Authorization": f"Bearer {key}"}, key, app)
            await until(lambda: _state_is(c, "up"), interval=0.05)
            yield c


async def _state_is(c: Cluster, state: str) -> bool:
    return await c.replica_state() == state


async def _create(c: Cluster, title: str) -> httpx.Response:
    async with db.connect(c.primary.url) as conn:
        body = await incident_body(conn, title=title)
    created = await c.client.post("/v1/incidents", json=body, headers=c.write_headers())
    assert created.status_code == 201, created.text
    return created


async def test_token_reads_see_the_write_while_plain_reads_come_from_the_paused_replica() -> None:
    async with cluster(read_after_wait=0.2) as c:
        created = await _create(c, "Before the pause")
        url = created.headers["location"]
        token = created.headers["secevents-read-after"]
        # With the token, the record is there at once (from the replica once it has replayed the
        # write, or from the primary).
        assert (await c.client.get(url, headers={"Secevents-Read-After": token})).json()[
            "title"
        ] == "Before the pause"
        await until(lambda: _replica_has(c, url), interval=0.05)

        await c.on_replica("SELECT pg_wal_replay_pause()")
        try:
            renamed = await c.client.patch(
                url,
                json={"title": "After the pause"},
                headers={**c.write_headers(), "If-Match": created.headers["etag"]},
            )
            assert renamed.status_code == 200, renamed.text
            token = renamed.headers["secevents-read-after"]
            # Without the token: the paused replica answers, with what it has replayed.
            plain = await c.client.get(url)
            assert plain.status_code == 200 and plain.json()["title"] == "Before the pause"
            listed = await c.client.get("/v1/incidents", params={"limit": 50})
            assert "After the pause" not in {r["title"] for r in listed.json()["data"]}
            # With it: the replica cannot answer it (still paused), the primary does.
            fresh = await c.client.get(url, headers={"Secevents-Read-After": token})
            assert fresh.status_code == 200 and fresh.json()["title"] == "After the pause"
            # A read waiting for the replica while it resumes: the new title either way.
            waiting = asyncio.create_task(c.client.get(url, headers={"Secevents-Read-After": token}))
            await c.on_replica("SELECT pg_wal_replay_resume()")
            assert (await waiting).json()["title"] == "After the pause"
        finally:
            await c.on_replica("SELECT pg_wal_replay_resume()")
        await until(lambda: _title_is(c, url, "After the pause"), interval=0.05)


async def test_the_sdk_sends_its_latest_token_with_every_read() -> None:
    async with cluster(read_after_wait=0.2) as c:
        sdk = AsyncClient(base_url="http://replicas.local", api_key=c.key, http_client=c.client)
        source = await anext(s async for s in sdk.sources.list() if s.text)
        await c.on_replica("SELECT pg_wal_replay_pause()")
        try:
            created = await sdk.incidents.create(sdk_incident_body(source, title="SDK: written while paused"))
            assert sdk.read_after.token is not None and "/" in sdk.read_after.token
            # The paused replica has not got it: a read without the token does not find it …
            assert (await c.client.get(f"/v1/incidents/{created.id}")).status_code == 404
            # … the SDK's reads carry the token and do, as does a copy made by with_options.
            assert (await sdk.incidents.get(created.id)).title == "SDK: written while paused"
            assert (await sdk.with_options(timeout=30).incidents.get(created.id)).id == created.id
        finally:
            await c.on_replica("SELECT pg_wal_replay_resume()")


async def test_a_malformed_token_is_a_400() -> None:
    async with cluster() as c:
        response = await c.client.get("/v1/incidents", headers={"Secevents-Read-After": "yesterday"})
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_header"


async def test_replica_stopped_under_load_reads_go_on_from_the_primary_and_it_comes_back() -> None:
    async with cluster() as c:
        created = await _create(c, "Stable record")
        url = created.headers["location"]
        await until(lambda: _replica_has(c, url), interval=0.05)
        statuses: list[int] = []
        failures: list[tuple[str, str]] = []
        stop = asyncio.Event()

        async def reader() -> None:
            while not stop.is_set():
                for target in (
                    url,
                    "/v1/incidents?limit=50",
                    "/v1/incidents/stats?group_by=country",
                    "/v1/changes",
                ):
                    statuses.append((await c.client.get(target)).status_code)
                    if statuses[-1] != 200:
                        failures.append((target, (await c.client.get(target)).text))

        readers = [asyncio.create_task(reader()) for _ in range(4)]
        await until(lambda: len(statuses) >= 20)
        await asyncio.to_thread(c.replica.stop, "fast")
        await until(lambda: _state_is(c, "down"), interval=0.05)
        before_restart = len(statuses)
        await until(lambda: len(statuses) >= before_restart + 20)
        await asyncio.to_thread(c.replica.start)
        await until(lambda: _state_is(c, "up"), interval=0.05)
        stop.set()
        await asyncio.gather(*readers)
        assert set(statuses) == {200}, failures[:3]

        # Back in rotation: with replay paused, a plain read shows the replica's (old) title.
        await c.on_replica("SELECT pg_wal_replay_pause()")
        try:
            renamed = await c.client.patch(
                url,
                json={"title": "Renamed later"},
                headers={**c.write_headers(), "If-Match": created.headers["etag"]},
            )
            assert renamed.status_code == 200
            assert (await c.client.get(url)).json()["title"] == "Stable record"
        finally:
            await c.on_replica("SELECT pg_wal_replay_resume()")
        metrics = (await c.client.get("/metrics")).text
        assert 'secevents_db_replica_state{replica="127.0.0.1:' in metrics
        assert "secevents_db_replica_lag_bytes" in metrics


async def test_a_replica_further_behind_than_the_bound_leaves_the_rotation() -> None:
    async with cluster(replica_max_lag_bytes=1024) as c:
        await c.on_replica("SELECT pg_wal_replay_pause()")
        try:
            created = await _create(c, "Written while the replica lags")
            await until(lambda: _state_is(c, "lagging"), interval=0.05)
            # Out of rotation: plain reads come from the primary.
            assert (await c.client.get(created.headers["location"])).status_code == 200
        finally:
            await c.on_replica("SELECT pg_wal_replay_resume()")
        await until(lambda: _state_is(c, "up"), interval=0.05)


async def _replica_has(c: Cluster, url: str) -> bool:
    return (await c.client.get(url)).status_code == 200


async def _title_is(c: Cluster, url: str, title: str) -> bool:
    return bool((await c.client.get(url)).json()["title"] == title)


async def _replayed_past(c: Cluster, lsn: str) -> bool:
    return bool(await c.on_replica(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"))


async def _replica_caught_up(c: Cluster) -> None:
    """Wait until the replica has replayed everything the primary has committed (the sample
    data seeded at start-up included), so that a feed read from it starts after all of it."""
    async with db.connect(c.primary.url) as conn:
        committed = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
    await until(lambda: _replayed_past(c, committed), interval=0.05)


async def test_the_feed_read_from_the_replica_never_skips_a_transaction_that_commits_late() -> None:
    """Two writers on the primary: the first draws the smaller seq and commits last. A consumer
    paging the feed from the replica meanwhile is held back (the standby cannot list the
    primary's running transactions, so it pages only up to the oldest one), and in the end
    receives both changes, each once."""
    async with cluster() as c:
        first = await asyncpg.connect(c.primary.url)
        second = await asyncpg.connect(c.primary.url)
        try:
            await _late_commit_seen_once(c, first, second)
        finally:
            await first.close()
            await second.close()


async def _late_commit_seen_once(c: Cluster, first: asyncpg.Connection, second: asyncpg.Connection) -> None:
    await _replica_caught_up(c)
    _, cursor = await read_all(c.client)
    data = await first.fetchval("SELECT data::text FROM revisions LIMIT 1")
    slow = first.transaction()
    await slow.start()
    try:
        early = await first.fetchval(INSERT_REVISION, uuid.uuid4(), 1, data)
        late = await second.fetchval(INSERT_REVISION, uuid.uuid4(), 1, data)
        assert early < late
        written = await second.fetchval("SELECT pg_current_wal_lsn()::text")
        await until(lambda: _replayed_past(c, written), interval=0.05)
        # The replica has the late commit, but the early transaction still runs: nothing yet
        # (the primary would list the late one already).
        held_back, cursor = await read_all(c.client, cursor)

        assert held_back == []
    finally:
        await slow.commit()
    committed = await first.fetchval("SELECT pg_current_wal_lsn()::text")
    await until(lambda: _replayed_past(c, committed), interval=0.05)
    seen, _ = await read_all(c.client, cursor)
    assert [change["seq"] for change in seen] == [early, late]


async def test_a_long_poll_served_by_the_replica_answers_with_the_commit_that_woke_it() -> None:
    """The wake-up comes from the primary (NOTIFY); the read after it waits for a replica that has
    replayed that far or falls back to the primary, so the waiter gets the change instead of
    an empty page from a replica that is behind (here: paused)."""
    async with cluster(read_after_wait=0.2) as c:
        await _replica_caught_up(c)
        _, cursor = await read_all(c.client)
        await c.on_replica("SELECT pg_wal_replay_pause()")
        try:
            waiting = asyncio.create_task(
                c.client.get("/v1/changes", params={"after": cursor, "wait": "30", "types": "incident"})
            )
            hub = c.app.state.changes
            await until(lambda: hub.waiting == 1 and hub.listener.connected.is_set(), interval=0.05)
            created = await _create(c, "Woke the long-poll")
            answer = await waiting
        finally:
            await c.on_replica("SELECT pg_wal_replay_resume()")
        assert answer.status_code == 200, answer.text
        assert [change["id"] for change in answer.json()["data"]] == [created.json()["id"]]
