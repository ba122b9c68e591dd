"""Read benchmark: list pages of stored documents through the whole app, against a bare asyncpg
loop reading the same documents with the same SQL (the physical limit), against the page's own
work as one bare ASGI function (the floor of any app), and against the path this project read by
before documents were stored (rendered per row by ``incident_doc()``, commit 24d2193) — all in
one run; PostgreSQL's CPU per page; page 1 against page 1,000; renaming an organisation that
10,000 incidents name while reads go on; page 1 again with one process per core (``--workers``),
as ``secevents serve --workers N`` uses the machine.

    python -m bench.read                 # embedded PostgreSQL in /tmp/secevents-bench-pg
    DATABASE_URL=postgresql://… python -m bench.read --incidents 1000000

Requests go through the ASGI app in this process (middleware, routing, validation, handler,
ETag) without an HTTP server; ``bench.serve`` measures the served app (granian, uvloop). The
data: ``bench.read_data``. Results: ``bench/results/read.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import multiprocessing
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import msgspec
from litestar import Litestar

from bench import read_data
from secevents.server import db
from secevents.server.app import create_app
from secevents.server.http import auth
from secevents.server.http.caching import cache_headers, page_etag
from secevents.server.http.responses import EncodedResponse, json_page
from secevents.server.reads.pagination import cursor_codec
from secevents.server.resources.incidents import queries
from secevents.server.resources.incidents.filters import IncidentFilters
from secevents.server.settings import ApiSettings, DatabaseSettings, Settings

EMBEDDED_DIR = Path("/tmp/secevents-bench-pg")
RESULTS = Path(__file__).resolve().parent / "results" / "read.md"
FILTERED = "country=PK&type=battle&min_killed=1&limit=50"
UNFILTERED = "limit=50"
FILTERED_FILTERS = IncidentFilters(country=("PK",), type=("battle",), min_killed=1)  # FILTERED's
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STORED_PATH = queries.list_query
T = TypeVar("T")


async def asgi(
    app: Litestar,
    path: str,
    query: str = "",
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """One request through the whole ASGI app, no HTTP server or client in between; the
    response's status, body and raw headers (left undecoded: the load generator runs in the
    measured process, and the app, not the client, is being measured)."""
    status, chunks, answer = 0, [], []
    raw_headers = [
        (b"host", b"bench"),
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    scope: Any = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "root_path": "", "headers": raw_headers, "client": ("127.0.0.1", 1), "server": ("bench", 80),
    }  # fmt: skip

    async def receive() -> Any:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            answer.extend(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks), answer


@dataclass
class Rate:
    operations: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    pg_cpu: float | None = None
    """Seconds of CPU PostgreSQL's backends spent meanwhile (None: not readable here)."""
    own_cpu: float = 0.0
    """Seconds of CPU this process (the app or the bare loop, and the load generator) spent."""

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98] * 1000

    @property
    def pg_ms_per_op(self) -> float | None:
        return None if self.pg_cpu is None else self.pg_cpu * 1000 / self.operations

    @property
    def own_ms_per_op(self) -> float:
        return self.own_cpu * 1000 / self.operations

    def __add__(self, other: Rate) -> Rate:
        cpu = None if self.pg_cpu is None or other.pg_cpu is None else self.pg_cpu + other.pg_cpu
        return Rate(self.operations + other.operations, self.seconds + other.seconds,
                    self.latencies + other.latencies, cpu, self.own_cpu + other.own_cpu)  # fmt: skip


async def backend_cpu(pool: asyncpg.Pool) -> float | None:
    """CPU seconds the bench database's backends have used so far (from /proc: a local server)."""
    async with pool.acquire() as conn:
        pids = [
            r[0]
            for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ]
    return _cpu_seconds(pids)


def _cpu_seconds(pids: list[int]) -> float | None:
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None
    return total / CLOCK_TICKS


async def measure(
    pool: asyncpg.Pool, operation: Callable[[], Awaitable[None]], *, concurrency: int, seconds: float
) -> Rate:
    """``operation`` under load, with the CPU the bench database's backends spent meanwhile."""
    cpu_before: float | None = None

    async def read_cpu() -> None:
        nonlocal cpu_before
        cpu_before = await backend_cpu(pool)

    rate = await timed_load(operation, concurrency=concurrency, seconds=seconds, before=read_cpu)
    cpu_after = await backend_cpu(pool)
    rate.pg_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return rate


async def timed_load(
    operation: Callable[[], Awaitable[None]],
    *,
    concurrency: int,
    seconds: float,
    before: Callable[[], Awaitable[None]],
) -> Rate:
    """``concurrency`` loops running ``operation`` for ``seconds``, once warmed up and
    ``before`` has run; this process's CPU over them."""
    for _ in range(concurrency):  # warm caches and prepared statements
        await operation()
    await before()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            await operation()
            latencies.append(time.perf_counter() - began)

    started, own_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, own = time.perf_counter() - started, time.process_time() - own_started
    return Rate(len(latencies), elapsed, latencies, None, own)


async def main_async(args: argparse.Namespace) -> str:
    url = os.environ.get("DATABASE_URL")
    embedded = None if url else db.EmbeddedPostgres(EMBEDDED_DIR)
    server_url = url or embedded.start()  # type: ignore[union-attr]
    try:
        bench_url, backfill_seconds = await read_data.prepare_database(
            server_url, args.incidents, args.database
        )
        return await measure_all(bench_url, backfill_seconds, args)
    finally:
        if embedded is not None:
            embedded.stop()


async def measure_all(url: str, backfill_seconds: float | None, args: argparse.Namespace) -> str:
    c, s = args.concurrency, args.seconds
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    app = create_app(bench_settings(url, c))
    async with app.lifespan():
        logging.getLogger("secevents.access").setLevel(logging.WARNING)  # measure the app, not the log
        pool: asyncpg.Pool = app.state.pool
        async with pool.acquire() as conn:
            await conn.execute(read_data.legacy_renderer_sql())
            total = await conn.fetchval("SELECT count(*) FROM incidents")
            version = await conn.fetchval("SHOW server_version")
        cases = {name: operation(name, app, pool) for name in CASES}
        rates = await in_turns(
            CASES, args.rounds, lambda name: measure(pool, cases[name], concurrency=c, seconds=s)
        )
        queries.list_query = STORED_PATH

        cursor = None
        for _ in range(999):
            _, body, _ = await asgi(
                app, "/v1/incidents", UNFILTERED + (f"&cursor={cursor}" if cursor else "")
            )
            cursor = msgspec.json.decode(body)["next_cursor"]
        first = _via_app(app, UNFILTERED, STORED_PATH)
        thousandth = _via_app(app, f"{UNFILTERED}&cursor={cursor}", STORED_PATH)
        pages = {"page 1": first, "page 1,000": thousandth}
        by_page = await in_turns(
            tuple(pages), args.rounds, lambda name: measure(pool, pages[name], concurrency=c, seconds=s)
        )
        page_1, page_1000 = by_page["page 1"], by_page["page 1,000"]

        plans = {}
        sort = queries.SORTS["-occurred"]
        async with pool.acquire() as conn:
            for label, path in (("stored documents (this build)", STORED_PATH),
                                ("per-row rendering, `= ANY` filters (commit 24d2193)", read_data.legacy_list_query)):  # fmt: skip
                sql, sql_args = path(FILTERED_FILTERS, sort, None, 50)
                rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *sql_args)
                plans[label] = "\n".join(r[0] for r in rows)
        rename = await measure_rename(app, pool, concurrency=max(2, c // 2), seconds=s)

        served = await in_turns(
            SERVED_CASES, args.rounds,
            lambda name: measure_in_workers(pool, url, name, workers=args.workers, concurrency=c, seconds=s,
                                            loop=args.loop),
            label=f", {args.workers} processes",
        )  # fmt: skip

    return report(total, version, c, s, args.rounds, rates, page_1, page_1000, plans, rename, backfill_seconds,
                  served, workers=args.workers, loop=args.loop, load=load)  # fmt: skip


async def in_turns(
    cases: tuple[str, ...], rounds: int, read: Callable[[str], Awaitable[Rate]], *, label: str = ""
) -> dict[str, Rate]:
    """Each case read ``rounds`` times, the cases taking turns (in reverse order every other
    round), its readings added up: this machine's speed drifts by tens of percent within
    minutes, and a ratio must compare the same minutes."""
    rates: dict[str, Rate] = {}
    for n in range(rounds):
        for name in cases if n % 2 == 0 else cases[::-1]:
            rate = await read(name)
            rates[name] = rates[name] + rate if name in rates else rate
            print(f"{name}{label}: {rate.per_second:,.0f}/s", flush=True)
    return rates


def bench_settings(url: str, concurrency: int) -> Settings:
    # The rename rewrites 10,000 documents in one request: on a loaded machine that outlasts the
    # default request and statement timeouts (30 s, 15 s), which would measure the timeout.
    return Settings(
        database=DatabaseSettings(url=url, pool_min_size=concurrency, pool_max_size=concurrency,
                                  migrate_on_start=False, seed_on_start=False, statement_timeout_ms=600_000,
                                  command_timeout=600),
        api=ApiSettings(cursor_secret=b"bench", rate_limit_window_seconds=0, request_timeout=600),
    )  # fmt: skip


# What each measurement runs: the app on this build's path or on commit 24d2193's (documents
# rendered per row), the bare loop, or the floor of any app (``_floor``), unfiltered or on the
# filtered page.
CASES = ("app", "bare", "floor", "legacy", "app filtered", "bare filtered", "legacy filtered")
SERVED_CASES = ("app", "bare", "legacy")


def operation(case: str, app: Litestar, pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    query = FILTERED if case.endswith("filtered") else UNFILTERED
    if case.startswith("bare"):
        return _bare(pool, FILTERED_FILTERS if query == FILTERED else IncidentFilters())
    if case == "floor":
        return _floor(app, pool)
    return _via_app(app, query, read_data.legacy_list_query if case.startswith("legacy") else STORED_PATH)


def _via_app(
    app: Litestar, query: str, path: Callable[..., tuple[str, list[Any]]]
) -> Callable[[], Awaitable[None]]:
    async def operation() -> None:
        queries.list_query = path  # the path being measured
        status, body, _ = await asgi(app, "/v1/incidents", query)
        assert status == 200, body[:300]

    return operation


async def _fetch_bare(pool: asyncpg.Pool, sql: str, sql_args: list[Any]) -> list[asyncpg.Record]:
    """``sql``'s rows on a connection of ``pool``, handed back as the app's reads hand theirs
    (``unchanged``: without asyncpg's reset query, a second round trip that the release of
    ``pool.acquire()``'s context manager adds — and that the bare loop paid, and the app did
    not, from 2026-11-30 until 2026-12-02, bench/results/read.md)."""
    conn, held = await pool.acquire(), db.HeldConnections()
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *sql_args)
    except BaseException:
        await held.release(pool, conn)
        raise
    await held.release(pool, conn, unchanged=True)
    return rows


def _bare(pool: asyncpg.Pool, filters: IncidentFilters) -> Callable[[], Awaitable[None]]:
    """The physical limit: the page's statement on the app's pool, and its documents joined."""
    sql, sql_args = STORED_PATH(filters, queries.SORTS["-occurred"], None, 50)

    async def operation() -> None:
        rows = await _fetch_bare(pool, sql, sql_args)
        b"".join((b'{"data":[', b",".join([r[0] for r in rows[:50]]), b'],"next_cursor":null}'))

    return operation


def _floor(app: Litestar, pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    """The unfiltered page's own work as one bare ASGI function, called like the app: the
    bare loop's connection, statement and release, plus the page's cut, body, signed next
    cursor, ETag, caching and ``Link`` headers and the two ``send`` messages, with the app's
    own functions. No middleware, routing, parameters, authentication, request id, metrics
    or timeout: what an app that answers this page over ASGI and does nothing else costs, the
    ceiling of app / bare loop for any app."""
    settings: Settings = app.state.settings
    sort = queries.SORTS["-occurred"]
    codec = cursor_codec(settings.api.cursor_secret)
    shape = "0123456789abcdef"  # the query's digest, fixed: it is worked out once per query string

    async def page(scope: Any, receive: Any, send: Any) -> None:
        sql, sql_args = STORED_PATH(IncidentFilters(), sort, None, 50)
        rows = (await _fetch_bare(pool, sql, sql_args))[:50]
        next_cursor = codec.encode(shape, sort.key_of(rows[-1]))
        body = json_page([row[0] for row in rows], next_cursor)
        etag = page_etag([row[-1] for row in rows], [row[1] for row in rows], next_cursor)
        link = f'</v1/incidents?{UNFILTERED}&cursor={next_cursor}>; rel="next"'
        headers = [*cache_headers(settings), (b"etag", etag.encode()), (b"link", link.encode())]
        await EncodedResponse(body, headers=headers)(scope, receive, send)

    async def operation() -> None:
        status, body, _ = await asgi(page, "/v1/incidents", UNFILTERED)  # type: ignore[arg-type]
        assert status == 200, body[:300]

    return operation


async def measure_in_workers(
    pool: asyncpg.Pool, url: str, case: str, *, workers: int, concurrency: int, seconds: float, loop: str
) -> Rate:
    """``case`` run by ``workers`` processes at once, each with its own app (or bare loop) and
    pool and ``concurrency / workers`` requests in flight — the way ``secevents serve
    --workers N`` uses the machine's cores. PostgreSQL's CPU is read here, over all of them."""
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    start, finish = context.Event(), context.Event()
    share = max(1, concurrency // workers)
    processes = [
        context.Process(
            target=_worker_process, args=(url, case, share, seconds, loop, ready, start, finish, results)
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            await asyncio.to_thread(ready.get, True, 300)
        cpu_before = await backend_cpu(pool)
        start.set()
        parts: list[Rate] = [await asyncio.to_thread(results.get, True, seconds + 300) for _ in processes]
        cpu_after = await backend_cpu(pool)  # before the workers close their connections
    finally:
        finish.set()
        for process in processes:
            process.join(timeout=60)
    rate = Rate(sum(p.operations for p in parts), max(p.seconds for p in parts),
                [latency for p in parts for latency in p.latencies], None, sum(p.own_cpu for p in parts))  # fmt: skip
    rate.pg_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return rate


def _worker_process(url: str, case: str, concurrency: int, seconds: float, loop: str, ready: Any,
                    start: Any, finish: Any, results: Any) -> None:  # fmt: skip
    run_on(loop, _worker(url, case, concurrency, seconds, ready, start, finish, results))


async def _worker(url: str, case: str, concurrency: int, seconds: float, ready: Any, start: Any,
                  finish: Any, results: Any) -> None:  # fmt: skip
    app = create_app(bench_settings(url, concurrency))
    async with app.lifespan():
        logging.getLogger("secevents.access").setLevel(logging.WARNING)

        async def ready_then_start() -> None:
            ready.put(True)
            await asyncio.to_thread(start.wait)

        work = operation(case, app, app.state.pool)
        results.put(await timed_load(work, concurrency=concurrency, seconds=seconds, before=ready_then_start))
        await asyncio.to_thread(finish.wait, 300)


def run_on(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """``main`` on the event loop named ``loop`` (``uvloop`` or ``asyncio``)."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


@dataclass
class Rename:
    seconds: float
    incidents: int
    revisions: int
    quiet: Rate
    during: Rate


async def measure_rename(app: Litestar, pool: asyncpg.Pool, *, concurrency: int, seconds: float) -> Rename:
    """Rename the organisation that 10,000 incidents name (through the app), while readers list
    page 1; their latencies against the same readers without the rename."""
    async with pool.acquire() as conn:
        key = (await auth.create_key(conn, name=f"bench-{time.time_ns()}", scopes=["write"])).key
        org_id = await conn.fetchval(
            "SELECT id FROM organisations WHERE name LIKE $1 || '%'", read_data.RENAME_TARGET
        )
        seq = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM revisions")

    async def read() -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        return await asgi(app, "/v1/incidents", UNFILTERED)

    quiet = await measure(pool, _ok(read), concurrency=concurrency, seconds=seconds)
    _, _, headers = await asgi(app, f"/v1/organisations/{org_id}")
    etag = next(value.decode() for name, value in headers if name == b"etag")
    done = asyncio.Event()
    latencies: list[float] = []

    async def reader() -> None:
        while not done.is_set():
            began = time.perf_counter()
            await read()
            latencies.append(time.perf_counter() - began)

    readers = [asyncio.create_task(reader()) for _ in range(concurrency)]
    await asyncio.sleep(0.5)
    began = time.perf_counter()
    status, body, _ = await asgi(
        app, f"/v1/organisations/{org_id}", method="PATCH",
        body=msgspec.json.encode({"name": f"{read_data.RENAME_TARGET} {dt.datetime.now(dt.UTC):%H:%M:%S}"}),
        headers={"Authorization": f"Bearer {key}", "If-Match": etag, "Content-Type": "application/json"},
    )  # fmt: skip
    elapsed = time.perf_counter() - began
    done.set()
    await asyncio.gather(*readers)
    assert status == 200, body[:300]
    async with pool.acquire() as conn:
        revisions = await conn.fetchval("SELECT count(*) FROM revisions WHERE seq > $1", seq)
        incidents = await conn.fetchval(
            "SELECT count(*) FROM revisions WHERE seq > $1 AND record_type = 'incident'", seq
        )
    return Rename(elapsed, incidents, revisions, quiet, Rate(len(latencies), elapsed, latencies))


def _ok(
    request: Callable[[], Awaitable[tuple[int, bytes, list[tuple[bytes, bytes]]]]],
) -> Callable[[], Awaitable[None]]:
    async def operation() -> None:
        assert (await request())[0] == 200

    return operation


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _times(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.1f}×"


def report(
    total: int, version: str, c: int, s: float, rounds: int, r: dict[str, Rate], page_1: Rate, page_1000: Rate,
    plans: dict[str, str], rename: Rename, backfill_seconds: float | None, served: dict[str, Rate], *,
    workers: int, loop: str, load: str,
) -> str:  # fmt: skip
    def row(label: str, rate: Rate) -> str:
        return (f"| {label} | {rate.per_second:,.0f} | {rate.p50_ms:.2f} | {rate.own_ms_per_op:.2f} "
                f"| {_ms(rate.pg_ms_per_op)} |")  # fmt: skip

    lines = [
        "# Read benchmark",
        "",
        f"Generated by `python -m bench.read` on {dt.date.today().isoformat()}: {total:,} incidents "
        f"(COPY), PostgreSQL {version}, {os.cpu_count()} CPU(s) shared by PostgreSQL, the app and other "
        f"work on the machine, concurrency {c}; each case of a table, and page 1 and page 1,000, read "
        f"{rounds} times for {s:g} s, the cases taking turns (in reverse order every other round). "
        "Requests go through the whole ASGI app in process (middleware, routing, validation, handler, "
        f"ETag) on {loop}; no HTTP server; the access log is off. This process, CPU "
        "ms/page: the CPU time of the process that runs the app (or the bare loop) and the load, over "
        "the pages served. PostgreSQL ms/page: CPU time of the bench database's backends (/proc) over "
        f"the pages served. Load average at the start: {load}. Absolute numbers move with the machine's "
        "load; the ratios are from the same run.",
        "",
        "| page of 50 | pages/s | p50 ms | this process, CPU ms/page | PostgreSQL ms/page |",
        "|---|---:|---:|---:|---:|",
        row("app, stored documents", r["app"]),
        row("bare asyncpg loop, same SQL, same stored documents", r["bare"]),
        row(
            "floor: the page's own work as one bare ASGI function (no middleware, routing, parameters)",
            r["floor"],
        ),
        row("app, per-row rendering (commit 24d2193)", r["legacy"]),
        row(f"app, stored documents, `{FILTERED}`", r["app filtered"]),
        row("bare asyncpg loop, same filtered SQL", r["bare filtered"]),
        row("app, per-row rendering, filtered (commit 24d2193)", r["legacy filtered"]),
        "",
        f"- **App / bare loop: {r['app'].per_second / r['bare'].per_second:.2f}** unfiltered, "
        f"{r['app filtered'].per_second / r['bare filtered'].per_second:.2f} filtered (target ≥ 0.8); "
        f"the floor / bare loop: {r['floor'].per_second / r['bare'].per_second:.2f} (no app that answers "
        "the page over ASGI can do better than the floor).",
        f"- **Page 1, stored / per-row rendering: {_times(r['app'].per_second, r['legacy'].per_second)}** (target ≥ 8×).",
        f"- **PostgreSQL CPU per page, per-row rendering / stored: "
        f"{_times(r['legacy'].pg_ms_per_op, r['app'].pg_ms_per_op)}** unfiltered, "
        f"{_times(r['legacy filtered'].pg_ms_per_op, r['app filtered'].pg_ms_per_op)} filtered (target ≥ 5×).",
        f"- **Filtered page, stored / per-row rendering: "
        f"{_times(r['app filtered'].per_second, r['legacy filtered'].per_second)}** (target ≥ 3×); filtered "
        f"p50 / unfiltered p50: {r['app filtered'].p50_ms / r['app'].p50_ms:.2f}× (target ≤ 2×).",
        f"- **Page 1,000 / page 1 (p50): {page_1000.p50_ms / page_1.p50_ms:.2f}×** "
        f"({page_1000.p50_ms:.2f} / {page_1.p50_ms:.2f} ms; target ≤ 1.2×).",
        "",
        "The per-row path is measured on this build's indexes, so its filtered numbers include the new "
        "`incidents_country_type_occurred_idx`; its query keeps commit 24d2193's `= ANY` arrays.",
        "",
        f"## Page 1 with {workers} processes",
        "",
        "One process serves at most what one core can: above, the app's Python is the limit of the "
        "stored path, PostgreSQL's CPU the limit of the per-row path. Served by "
        f"`secevents serve --workers {workers}`, the app uses the machine's cores; here {workers} "
        f"processes, each with its own app (or bare loop), pool and {c // workers} requests in flight, "
        "run at once (CPU ms/page: all of them):",
        "",
        "| page of 50 | pages/s | p50 ms | these processes, CPU ms/page | PostgreSQL ms/page |",
        "|---|---:|---:|---:|---:|",
        row("app, stored documents", served["app"]),
        row("bare asyncpg loop, same SQL, same stored documents", served["bare"]),
        row("app, per-row rendering (commit 24d2193)", served["legacy"]),
        "",
        f"- **App / bare loop: {served['app'].per_second / served['bare'].per_second:.2f}** (target ≥ 0.8).",
        f"- **Page 1, stored / per-row rendering: {_times(served['app'].per_second, served['legacy'].per_second)}** "
        "(target ≥ 8×).",
        "",
        f"## Renaming an organisation that {rename.incidents:,} incidents name",
        "",
        f"`PATCH /v1/organisations/{{id}}` (new name) through the app took **{rename.seconds:.2f} s** and "
        f"wrote {rename.incidents:,} incidents and 1 organisation (new versions, documents re-rendered) and "
        f"{rename.revisions:,} revisions (one change-feed entry each), in one transaction. "
        f"{len(rename.during.latencies):,} page-1 reads ran meanwhile (in the same process and event loop):",
        "",
        "| page-1 reads | reads | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| without the rename | {rename.quiet.operations:,} | {rename.quiet.p50_ms:.2f} | {rename.quiet.p99_ms:.2f} |",
        f"| during the rename | {rename.during.operations:,} | {rename.during.p50_ms:.2f} | {rename.during.p99_ms:.2f} |",
        "",
        "## Migration 0005 on this set",
        "",
        "Backfilling the stored documents of every record (batches of 5,000, one transaction each) took "
        + (
            f"**{backfill_seconds:,.0f} s** for {total:,} incidents."
            if backfill_seconds
            else "— (not measured in this run: the database was built earlier)."
        ),
        "",
        "## Plans of the filtered page (`EXPLAIN (ANALYZE, BUFFERS)`)",
        "",
    ]
    for label, plan in plans.items():
        lines += [f"{label}:", "", "```", plan, "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read", description=__doc__)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one reading")
    parser.add_argument("--rounds", type=int, default=5, help="readings of each case, taking turns")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--database", default=read_data.BENCH_DB, help="the bench database's name")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="processes of the page-1 run served as by serve --workers",
    )
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="the event loop (secevents serve: uvloop)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, not {args.workers}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, not {args.rounds}")
    text = run_on(args.loop, main_async(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
