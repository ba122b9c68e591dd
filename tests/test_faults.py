"""Database faults: PostgreSQL stops and starts again while requests flow.

Each test runs the app over an embedded PostgreSQL of its own (``DATABASE_URL`` unset, data in a
temporary folder), which it stops and restarts through a second handle on the same data folder
— never the machine's shared server nor the test suite's shared one.

What must hold: during the outage every request gets a 503 problem with ``Retry-After`` (no
hang, no 500), readiness is red, and the service recovers by itself; a write in flight when its
connection dies is committed whole or not at all, and retrying it with the same
``Idempotency-Key`` creates exactly one record.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from secevents.server import db
from tests.own_postgres import (
    HOLD_REVISIONS,
    NOTHING,
    POOL_MAX_SIZE,
    app_over_own_postgres,
    assert_unavailable,
    count_incidents,
    post_retrying,
    whole,
)
from tests.support import until
from tests.writing import incident_body

pytestmark = pytest.mark.own_servers  # the same with any SECEVENTS_TEST_DATABASE_URL


async def test_outage_while_requests_flow(tmp_path: Path) -> None:
    async with app_over_own_postgres() as outage:
        client = outage.client
        # Each answer with the phases its request started and ended in. Only a request that
        # started and ended within one phase says something about that phase: one that spanned
        # a change (sent just before the stop, answered after it) may get either answer.
        results: list[tuple[str, str, httpx.Response]] = []
        phase = "before"
        stop_flow = asyncio.Event()

        async def reader() -> None:
            while not stop_flow.is_set():
                started_in = phase
                response = await client.get("/v1/incidents?limit=5")
                results.append((started_in, phase, response))
                await asyncio.sleep(0.01)

        def answered_within(p: str) -> list[int]:
            return [r.status_code for started, ended, r in results if started == ended == p]

        conn = await asyncpg.connect(outage.url)
        await db.init_connection(conn)
        body = await incident_body(conn, title="Sent during the outage")
        await conn.close()
        readers = [asyncio.create_task(reader()) for _ in range(4)]
        await until(lambda: answered_within("before"))

        phase = "stopping"
        await outage.stop()
        phase = "down"
        # Requests that start while the database is down: each answered with a 503.
        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.headers["retry-after"]
        assert ready.json() == {"status": "unavailable", "database": "unavailable"}
        direct = [await client.get("/v1/incidents"), await client.get(f"/v1/incidents/{uuid.uuid4()}")]
        write = await client.post("/v1/incidents", json=body, headers=outage.write_headers("k-down"))
        await until(lambda: len(answered_within("down")) >= 20)

        phase = "restarting"
        await outage.start()
        await outage.wait_ready()
        phase = "after"
        # Recovered by itself: the readers, which never stopped, are served again — the test's
        # own timeout is the only clock.
        await until(lambda: answered_within("after")[-20:] == [200] * 20)
        stop_flow.set()
        await asyncio.gather(*readers)

        for response in direct:
            assert_unavailable(response)
        assert_unavailable(write)
        assert (await count_incidents(outage.url, body["title"]))["incidents"] == 0
        for _, _, response in results:
            # Never a 500, never anything but data or "retry later".
            assert response.status_code in (200, 503), response.text
            if response.status_code == 503:
                assert_unavailable(response)
        assert set(answered_within("before")) == {200}
        assert set(answered_within("down")) == {503}
        # Once ready, a pooled connection that died in the outage may cost one request a 503
        # when it is first used again; then it is replaced.
        assert answered_within("after").count(503) <= POOL_MAX_SIZE


async def test_pooled_connections_that_died_are_replaced(tmp_path: Path) -> None:
    async with app_over_own_postgres() as outage:
        client = outage.client
        # Open every pooled connection, so all of them die in the restart.
        await asyncio.gather(*(client.get("/v1/incidents") for _ in range(2 * POOL_MAX_SIZE)))
        await outage.stop()
        await outage.start()
        statuses: list[int] = []

        async def served_again() -> bool:
            statuses.append((await client.get("/v1/incidents")).status_code)
            return statuses[-4:] == [200] * 4

        await until(served_again, interval=0)
        # A connection that died may cost one request a 503 (never a 500); then it is replaced.
        assert set(statuses) <= {200, 503}
        assert statuses.count(503) <= POOL_MAX_SIZE


async def test_write_in_flight_when_the_database_dies(tmp_path: Path) -> None:
    async with app_over_own_postgres() as outage:
        client = outage.client
        conn = await asyncpg.connect(outage.url)
        await db.init_connection(conn)
        body = await incident_body(conn, title="Written while the database died")
        # Hold a lock on `revisions`: the write inserts its rows, then waits inside its
        # transaction to store its revision — in flight.
        holding = conn.transaction()
        await holding.start()
        await conn.execute(HOLD_REVISIONS)
        headers = outage.write_headers("retry-me-1")
        first = asyncio.create_task(client.post("/v1/incidents", json=body, headers=headers))
        await until(
            lambda: conn.fetchval(
                "SELECT count(*) > 0 FROM pg_locks WHERE relation = 'revisions'::regclass AND NOT granted"
            ),
        )

        # The fast shutdown kills the write's connection and the lock holder's. Which goes first
        # is up to the server: when the holder's goes first, the write gets the lock and may
        # commit before its own connection is killed, so the write either committed (201, or a
        # 503 whose commit acknowledgement was lost) or left nothing at all.
        await outage.stop()
        answered = await first
        assert answered.status_code in (201, 503), answered.text
        if answered.status_code == 503:
            assert_unavailable(answered)
        await outage.start()
        await outage.wait_ready()
        survived = await count_incidents(outage.url, body["title"])
        assert survived in (NOTHING, whole(body))  # never half a write
        if answered.status_code == 201:
            assert survived == whole(body)  # an acknowledged write is never lost

        # The client retries with the same key, twice: one record, whole — the one acknowledged
        # before, if any.
        retried = await post_retrying(client, "/v1/incidents", body, headers)
        assert retried.status_code == 201, retried.text
        again = await post_retrying(client, "/v1/incidents", body, headers)
        assert again.status_code == 201
        assert again.json()["id"] == retried.json()["id"]
        if answered.status_code == 201:
            assert retried.json()["id"] == answered.json()["id"]
        assert await count_incidents(outage.url, body["title"]) == whole(body)


async def test_write_committed_before_the_database_died_is_replayed(tmp_path: Path) -> None:
    async with app_over_own_postgres() as outage:
        client = outage.client
        conn = await asyncpg.connect(outage.url)
        await db.init_connection(conn)
        body = await incident_body(conn, title="Committed before the outage")
        await conn.close()
        headers = outage.write_headers("retry-me-2")
        first = await client.post("/v1/incidents", json=body, headers=headers)
        assert first.status_code == 201
        await outage.stop()
        await outage.start()
        await outage.wait_ready()
        # The client never saw the answer (say) and retries: the same record comes back.
        retried = await post_retrying(client, "/v1/incidents", body, headers)
        assert retried.status_code == 201
        assert retried.json()["id"] == first.json()["id"]
        assert (await count_incidents(outage.url, body["title"]))["incidents"] == 1
