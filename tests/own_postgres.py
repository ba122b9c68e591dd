"""The app over an embedded PostgreSQL of the test's own, which the test may stop, restart,
freeze (SIGSTOP) and thaw (SIGCONT) — never the machine's shared server nor the suite's shared
one. Used by the database fault tests (tests/test_faults.py, tests/test_freeze.py).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from secevents.server import db
from secevents.server.app import create_app
from secevents.server.http import auth
from secevents.server.settings import ApiSettings, DatabaseSettings, Settings
from tests.support import until

# A write stores its revision last: a test that holds this lock on ``revisions`` (it conflicts
# with the insert's ROW EXCLUSIVE, not with reads) keeps a write in flight, inside its
# transaction, for as long as it wants.
HOLD_REVISIONS = "LOCK TABLE revisions IN SHARE MODE"
CLIENT_TIMEOUT = 60.0  # a request that hangs fails the test instead of passing by accident
POOL_MAX_SIZE = 4


@dataclass
class OwnPostgres:
    client: httpx.AsyncClient
    server: db.EmbeddedPostgres
    url: str
    write_key: str

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.pause)

    async def start(self) -> None:
        await asyncio.to_thread(self.server.resume)

    def freeze(self) -> list[int]:
        return self.server.freeze()

    def thaw(self, frozen: list[int]) -> None:
        self.server.thaw(frozen)

    async def wait_ready(self) -> None:
        async def ready() -> bool:
            return (await self.client.get("/health/ready")).status_code == 200

        await until(ready, interval=0.05)

    def write_headers(self, idempotency_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.write_key}", "Idempotency-Key": idempotency_key}


@asynccontextmanager
async def app_over_own_postgres(
    api: dict[str, Any] | None = None, database: dict[str, Any] | None = None
) -> AsyncIterator[OwnPostgres]:
    """The app (its settings changed by ``api`` and ``database``) over a PostgreSQL it starts in
    a temporary folder; requests go through ASGI in the test's event loop."""
    with tempfile.TemporaryDirectory(prefix="secevents-faults-", dir="/tmp") as tmp:
        data_dir = Path(tmp) / "pg"
        base = DatabaseSettings(url=None, embedded_dir=data_dir, pool_min_size=2, pool_max_size=POOL_MAX_SIZE)
        settings = Settings(
            database=replace(base, **(database or {})),
            api=replace(ApiSettings(cursor_secret=b"faults", rate_limit_window_seconds=0), **(api or {})),
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
            yield OwnPostgres(client, server, url, write_key)


async def post_retrying(
    client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    """POST as a well-behaved client does: again, with the same Idempotency-Key, while the
    answer says "retry later" — a 503 (right after a restart a pooled connection may still turn
    out dead), or a 409 with ``Retry-After`` (an earlier attempt with the key is still in flight
    in a server process that has not yet noticed its client is gone)."""
    while True:
        response = await client.post(url, json=body, headers=headers)
        if response.status_code not in (409, 503) or "retry-after" not in response.headers:
            return response
        await asyncio.sleep(float(response.headers.get("retry-after", "0.1")) / 20)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["code"] in {"database_unavailable", "service_unavailable", "request_timeout"}


async def count_incidents(url: str, title: str) -> dict[str, Any]:
    """How much of the write(s) titled ``title`` the database holds."""
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


NOTHING = {"incidents": 0, "participants": 0, "citations": 0, "revisions": 0}


def whole(body: dict[str, Any]) -> dict[str, int]:
    """What ``count_incidents`` finds once the write ``body`` is stored, all of it."""
    return {
        "incidents": 1,
        "participants": len(body["participants"]),
        "citations": len(body["citations"]),
        "revisions": 1,
    }
