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
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from secevents.server import db
from secevents.server.app import create_app
from secevents.server.http import auth
from secevents.server.settings import ApiSettings, DatabaseSettings, Settings
from tests.support import until
from tests.writing import incident_body

# Held by the change-feed trigger while a write's revision is stored (migration 0001): a test
# that holds it keeps a write in flight, inside its transaction, for as long as it wants.
CHANGE_FEED_LOCK = 7361029384756
CLIENT_TIMEOUT = 30.0  # a request that hangs fails the test instead of passing by accident


@dataclass
class Outage:
    client: httpx.AsyncClient
    server: db.EmbeddedPostgres
    url: str
    write_key: str

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.pause)

    async def start(self) -> None:
        await asyncio.to_thread(self.server.resume)

    async def wait_ready(self) -> None:
        async def ready() -> bool:
            return (await self.client.get("/health/ready")).status_code == 200

        await until(ready, interval=0.05)

    def write_headers(self, idempotency_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.write_key}", "Idempotency-Key": idempotency_key}


@asynccontextmanager
async def app_over_own_postgres() -> AsyncIterator[Outage]:
    with tempfile.TemporaryDirectory(prefix="secevents-faults-", dir="/tmp") as tmp:
        data_dir = Path(tmp) / "pg"
        settings = Settings(
            database=DatabaseSettings(url=None, embedded_dir=data_dir, pool_min_size=2, pool_max_size=4),
            api=ApiSettings(cursor_secret=b"faults", rate_limit_window_seconds=0),
        )
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.lifespan(),
            httpx.AsyncClient(
                transport=transport,
                base_url="http://faults.local",
                timeout=CLIENT_TIMEOUT,
            ) as client,
        ):
            # A second handle on the server the app started, to stop and restart it.
            server = db.EmbeddedPostgres(data_dir)
            url = await asyncio.to_thread(server.start)
            conn = await asyncpg.connect(url)
            try:
                write_key = (await auth.create_key(conn, name="faults", scopes=["write"])).key
            finally:
                await conn.close()
            yield Outage(client, server, url, write_key)


async def post_retrying(
    client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    """POST as a well-behaved client does: again, with the same Idempotency-Key, while the
    answer is 503 (right after a restart a pooled connection may still turn out dead)."""
    while True:
        response = await client.post(url, json=body, headers=headers)
        if response.status_code != 503:
            return response
        await asyncio.sleep(float(response.headers.get("retry-after", "0.1")) / 20)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["code"] in {"database_unavailable", "service_unavailable"}


async def test_outage_while_requests_flow(tmp_path: Path) -> None:
    async with app_over_own_postgres() as outage:
        client = outage.client
        results: list[tuple[str, httpx.Response]] = []
        phase = "before"
        stop_flow = asyncio.Event()

        async def reader() -> None:
            while not stop_flow.is_set():
                started_in = phase
                response = await client.get("/v1/incidents?limit=5")
                # A request that was in flight while the phase changed (e.g. started just before
                # the stop, answered after it) belongs to neither phase: 200 or 503 are both right.
                results.append((started_in if phase == started_in else "changing", response))
                await asyncio.sleep(0.01)

        conn = await asyncpg.connect(outage.url)
        await db.init_connection(conn)
        body = await incident_body(conn, title="Sent during the outage")
        await conn.close()
        readers = [asyncio.create_task(reader()) for _ in range(4)]
        await until(lambda: any(p == "before" for p, _ in results))

        phase = "stopping"  # requests in flight now may meet the shutdown: 200 or 503
        await outage.stop()
        phase = "down"
        # Requests that start while the database is down: each answered at once with a 503.
        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.headers["retry-after"]
        assert ready.json() == {"status": "unavailable", "database": "unavailable"}
        direct = [await client.get("/v1/incidents"), await client.get(f"/v1/incidents/{uuid.uuid4()}")]
        write = await client.post("/v1/incidents", json=body, headers=outage.write_headers("k-down"))
        await until(lambda: sum(p == "down" for p, _ in results) >= 20)

        phase = "restarting"  # requests from here on may be served again
        await outage.start()
        await outage.wait_ready()
        phase = "after"
        await until(lambda: sum(p == "after" for p, _ in results) >= 40)
        stop_flow.set()
        await asyncio.gather(*readers)

        for response in direct:
            assert_unavailable(response)
        assert_unavailable(write)
        assert (await count_incidents(outage.url, body["title"]))["incidents"] == 0
        by_phase: dict[str, list[int]] = {}
        for p, response in results:
            by_phase.setdefault(p, []).append(response.status_code)
            # Never a 500, never anything but data or "retry later".
            assert response.status_code in (200, 503), (p, response.text)
            if response.status_code == 503:
                assert_unavailable(response)
        assert set(by_phase["before"]) == {200}
        assert set(by_phase["down"]) == {503}
        # Recovered by itself: once ready again, every request is served.
        assert set(by_phase["after"]) == {200}


async def test_pooled_connections_that_died_are_replaced(tmp_path: Path) -> None:
    async with app_over_own_postgres() as outage:
        client = outage.client
        # Open every pooled connection, so all of them die in the restart.
        await asyncio.gather(*(client.get("/v1/incidents") for _ in range(8)))
        await outage.stop()
        await outage.start()
        statuses = [(await client.get("/v1/incidents")).status_code for _ in range(12)]
        # A connection that died may cost one request a 503 (never a 500); then it is replaced.
        assert set(statuses) <= {200, 503}
        assert statuses[-4:] == [200, 200, 200, 200]
        assert statuses.count(503) <= 4  # at most one per pooled connection


async def count_incidents(url: str, title: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            """SELECT count(DISTINCT i.id) AS incidents,
                      count(DISTINCT p.organisation_id) AS participants,
                      count(DISTINCT c.id) AS citations,
                      count(DISTINCT r.seq) AS revisions
                 FROM incidents i
                 LEFT JOIN incident_participants p ON p.incident_id = i.id
                 LEFT JOIN citations c ON c.incident_id = i.id
                 LEFT JOIN revisions r ON r.record_id = i.id
                WHERE i.title = $1""",
            title,
        )
        assert row is not None
        return dict(row)
    finally:
        await conn.close()


async def test_write_in_flight_when_the_database_dies(tmp_path: Path) -> None:
    async with app_over_own_postgres() as outage:
        client = outage.client
        conn = await asyncpg.connect(outage.url)
        await db.init_connection(conn)
        body = await incident_body(conn, title="Written while the database died")
        # Hold the change-feed lock: the write inserts its rows, then waits inside its
        # transaction for the lock — in flight.
        await conn.execute("SELECT pg_advisory_lock($1)", CHANGE_FEED_LOCK)
        headers = outage.write_headers("retry-me-1")
        first = asyncio.create_task(client.post("/v1/incidents", json=body, headers=headers))
        await until(
            lambda: conn.fetchval(
                "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ),
        )

        await outage.stop()  # kills the write's connection (and the lock holder's)
        failed = await first
        assert_unavailable(failed)
        await outage.start()
        await outage.wait_ready()
        # Nothing of the write survived: its transaction was never committed.
        assert await count_incidents(outage.url, body["title"]) == {
            "incidents": 0,
            "participants": 0,
            "citations": 0,
            "revisions": 0,
        }

        # The client retries with the same key, twice: one record, whole.
        retried = await post_retrying(client, "/v1/incidents", body, headers)
        assert retried.status_code == 201, retried.text
        again = await post_retrying(client, "/v1/incidents", body, headers)
        assert again.status_code == 201
        assert again.json()["id"] == retried.json()["id"]
        assert await count_incidents(outage.url, body["title"]) == {
            "incidents": 1,
            "participants": len(body["participants"]),
            "citations": len(body["citations"]),
            "revisions": 1,
        }


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
