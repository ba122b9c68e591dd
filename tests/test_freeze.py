"""A frozen database: PostgreSQL stopped by SIGSTOP (a hung host or a network partition, not a
clean stop) while reads and writes flow, then thawed by SIGCONT.

The kernel still accepts connections and bytes for the frozen server, and nothing answers: a
client that waits for an answer waits forever. What must hold (docs/DESIGN.md, "Failure"): every
request answers — 503 problem+json with ``Retry-After``, or success — within the request timeout
plus the rollback timeout (the promise is the request timeout ± 1 s), reads and writes alike,
without the database coming back; no acknowledged write is lost and none is half-written; after
the thaw the service recovers by itself, and a retry with the same ``Idempotency-Key`` creates
exactly one record.

How long answers take on a loaded machine is not asserted to the second here (the measured
latency is in bench/results/freeze.md): the test asserts that every request started during the
freeze was answered while the database was still frozen, within a bound far above the promise
and far below "forever".
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from secevents.server import db
from tests.own_postgres import (
    HOLD_REVISIONS,
    NOTHING,
    OwnPostgres,
    app_over_own_postgres,
    assert_unavailable,
    count_incidents,
    post_retrying,
    whole,
)
from tests.support import until
from tests.writing import incident_body

pytestmark = pytest.mark.own_servers  # the same with any SECEVENTS_TEST_DATABASE_URL

REQUEST_TIMEOUT = 3.0
ROLLBACK_TIMEOUT = 0.5
# Far above the promise (REQUEST_TIMEOUT + 1 s), so a loaded machine does not fail the test, and
# far below the freeze a hang would wait out.
NO_HANG = 3 * REQUEST_TIMEOUT
READERS = 3
WRITERS = 2


@dataclass
class Answer:
    kind: str  # "read" or "write"
    title: str | None  # the write's title (one per write)
    started_frozen: bool
    ended_frozen: bool
    seconds: float
    response: httpx.Response


async def test_every_request_answers_while_the_database_is_frozen() -> None:
    async with app_over_own_postgres(
        api={"request_timeout": REQUEST_TIMEOUT},
        database={"rollback_timeout": ROLLBACK_TIMEOUT, "pool_acquire_timeout": 5.0},
    ) as pg:
        conn = await asyncpg.connect(pg.url)
        await db.init_connection(conn)
        body = await incident_body(conn)
        answers: list[Answer] = []
        frozen = False
        flowing = True
        numbers = itertools.count()

        async def timed(kind: str, title: str | None, request: asyncio.Future[httpx.Response]) -> None:
            started_frozen, started = frozen, time.monotonic()
            response = await request
            answers.append(Answer(kind, title, started_frozen, frozen, time.monotonic() - started, response))

        async def reader() -> None:
            while flowing:
                await timed("read", None, asyncio.ensure_future(pg.client.get("/v1/incidents?limit=5")))

        async def writer() -> None:
            while flowing:
                title = f"Written around the freeze {next(numbers)}"
                post = pg.client.post(
                    "/v1/incidents", json={**body, "title": title}, headers=pg.write_headers(title)
                )
                await timed("write", title, asyncio.ensure_future(post))

        def answered_frozen(kind: str) -> int:
            return sum(a.kind == kind and a.started_frozen and a.ended_frozen for a in answers)

        workers = [asyncio.create_task(reader()) for _ in range(READERS)]
        workers += [asyncio.create_task(writer()) for _ in range(WRITERS)]
        await until(lambda: sum(a.response.status_code == 201 for a in answers) >= 2 * WRITERS)
        # Writes inside their transactions when the freeze comes: they wait to store their
        # revision, behind a lock on `revisions` this test holds on a connection that freezes with
        # the server. One of them is known to be waiting before the freeze.
        await conn.execute("BEGIN")
        await conn.execute(HOLD_REVISIONS)
        held_title = "In its transaction when the database froze"
        held_headers = pg.write_headers("held-write")
        held = asyncio.create_task(
            pg.client.post("/v1/incidents", json={**body, "title": held_title}, headers=held_headers)
        )
        await until(
            lambda: conn.fetchval(
                "SELECT count(*) > 0 FROM pg_locks WHERE relation = 'revisions'::regclass AND NOT granted"
            )
        )

        processes = pg.freeze()
        try:
            frozen = True
            # Without the database coming back: the held write is answered, and every worker's
            # requests keep being answered, reads and writes alike…
            async with asyncio.timeout(NO_HANG * 4):
                held_answer = await held
                await until(
                    lambda: answered_frozen("read") >= 2 * READERS and answered_frozen("write") >= 2 * WRITERS
                )
                # …and every request started during the freeze is answered before the thaw.
                flowing = False
                await asyncio.gather(*workers)
        finally:
            frozen = False
            pg.thaw(processes)
            for worker in workers:
                worker.cancel()  # only those still running when the test failed

        assert_unavailable(held_answer)  # its transaction could not commit: the lock holder froze
        await conn.close()  # thawed: its backend answers again and the lock is let go
        for answer in answers:
            if answer.response.status_code >= 300:
                assert_unavailable(answer.response)  # never a 500, never anything but a clear 503
            else:
                assert answer.response.status_code == (200 if answer.kind == "read" else 201)
            assert answer.ended_frozen or not answer.started_frozen  # answered before the thaw
            assert answer.seconds < NO_HANG, (answer.kind, answer.seconds, answer.response.text)
        during = [a.seconds for a in answers if a.ended_frozen]
        print(f"answered while frozen: {len(during)} requests, slowest {max(during):.2f} s")  # -s shows it

        # Recovered by itself after the thaw.
        await pg.wait_ready()
        await until(lambda: recovered(pg))
        await check_writes(pg, body, answers, held_title, held_headers)


async def recovered(pg: OwnPostgres) -> bool:
    statuses = [(await pg.client.get("/v1/incidents?limit=5")).status_code for _ in range(5)]
    return statuses == [200] * 5


async def check_writes(
    pg: OwnPostgres,
    body: dict[str, object],
    answers: list[Answer],
    held_title: str,
    held_headers: dict[str, str],
) -> None:
    """Every acknowledged write is present and whole; every other one left nothing or all of
    itself, and its retry with the same key leaves exactly one record."""
    writes = [(a.title, a.response) for a in answers if a.kind == "write"]
    writes.append((held_title, None))
    assert any(r is not None and r.status_code == 201 for _, r in writes)
    for title, response in writes:
        assert title is not None
        written = {**body, "title": title}
        stored = await count_incidents(pg.url, title)
        if response is not None and response.status_code == 201:
            assert stored == whole(written), title
            continue
        assert stored in (NOTHING, whole(written)), title
        headers = held_headers if response is None else pg.write_headers(title)
        retried = await post_retrying(pg.client, "/v1/incidents", written, headers)
        assert retried.status_code == 201, retried.text
        assert await count_incidents(pg.url, title) == whole(written), title
