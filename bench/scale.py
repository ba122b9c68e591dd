"""Scale-out benchmark: page-of-50 throughput with 1, 2 and 4 workers against the primary only
and against the primary plus one streaming replica; and what turning asyncpg's statement cache
off (for PgBouncer < 1.21 in transaction mode) costs per request.

    python -m bench.scale --incidents 100000 --seconds 5

It starts its own PostgreSQL primary and a replica made by ``pg_basebackup -R`` (Debian
PostgreSQL 15 binaries, as the ``postgres`` user: see tests/pg_servers.py), fills the primary
with COPY (bench.read's generator), serves the API with ``secevents serve --workers N``
(granian) and drives it over HTTP from this process (httpx, ``--concurrency`` requests in
flight). The client shares the machine's CPUs with the servers, so the numbers are ratios on
*this* machine, not capacity figures. Results are written to ``bench/results/scale.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

from bench.read import asgi
from bench.read_data import build
from bench.serve import wrk_rate
from secevents.server import db
from secevents.server.app import create_app
from secevents.server.settings import ApiSettings, DatabaseSettings, Settings
from tests.pg_servers import free_port, pgbouncer, primary_and_replica

RESULTS = Path(__file__).resolve().parent / "results" / "scale.md"
PAGE = "/v1/incidents?limit=50"


def serve(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {
        **os.environ,
        **env,
        "SECEVENTS_PORT": str(port),
        "SECEVENTS_WORKERS": str(workers),
        "SECEVENTS_MIGRATE_ON_START": "false",
        "SECEVENTS_SEED_ON_START": "false",
        "SECEVENTS_RATE_LIMIT_WINDOW_SECONDS": "0",
        "SECEVENTS_LOG_FORMAT": "text",
        "SECEVENTS_CURSOR_SECRET": "bench",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "secevents.server.cli.main", "-q", "serve"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


async def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError("the server exited")
            try:
                if (await client.get("/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def measure(operation: Callable[[], Awaitable[None]], *, concurrency: int, seconds: float) -> float:
    """Operations per second with ``concurrency`` of them in flight, after a warm-up round."""
    for _ in range(concurrency):
        await operation()
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await operation()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def http_rate(base: str, concurrency: int, seconds: float, path: str = PAGE) -> float:
    """Requests per second over HTTP: by wrk when installed (Debian ``wrk``: C, a fraction of a
    core), else by httpx in this process, which tops out near 600 requests/s on one core here and
    then measures itself rather than the servers."""
    if shutil.which("wrk"):
        await asyncio.to_thread(wrk_rate, base + path, 1, concurrency)  # warm-up
        return await asyncio.to_thread(wrk_rate, base + path, seconds, concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one() -> None:
            response = await client.get(path)
            assert response.status_code == 200, response.status_code

        return await measure(one, concurrency=concurrency, seconds=seconds)


async def served(env: dict[str, str], workers: int, args: argparse.Namespace, path: str = PAGE) -> float:
    process, base = serve(env, workers)
    try:
        await wait_ready(base, process)
        return await http_rate(base, args.concurrency, args.seconds, path)
    finally:
        process.terminate()
        process.wait(timeout=30)


async def in_process_rate(url: str, cache: int, args: argparse.Namespace) -> float:
    """Requests through the whole ASGI app in this process: isolates the per-request cost."""
    settings = Settings(
        database=DatabaseSettings(
            url=url, statement_cache_size=cache, migrate_on_start=False, seed_on_start=False, pool_max_size=16
        ),
        api=ApiSettings(cursor_secret=b"bench", rate_limit_window_seconds=0, metrics_enabled=False),
    )
    app = create_app(settings)
    logging.getLogger("secevents.access").setLevel(logging.WARNING)  # as bench.read: no log per request
    async with app.lifespan():

        async def one() -> None:
            status, _, _ = await asgi(app, "/v1/incidents", "limit=50")
            assert status == 200

        return await measure(one, concurrency=args.concurrency, seconds=args.seconds)


async def run(args: argparse.Namespace) -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    with primary_and_replica() as (primary, replica):
        # As bench.read_data: the generator writes at migration 0004, the rest migrates it on.
        await asyncio.to_thread(db.upgrade, primary.url, "0004")
        started = time.perf_counter()
        conn = await asyncpg.connect(primary.url)
        try:
            await build(conn, args.incidents)
        finally:
            await conn.close()
        await asyncio.to_thread(db.upgrade, primary.url)
        conn = await asyncpg.connect(primary.url)
        try:
            await conn.execute("ANALYZE")
            lsn = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        finally:
            await conn.close()
        built = time.perf_counter() - started
        rconn = await asyncpg.connect(replica.url)
        try:
            # The replica has the whole data set before anything is measured on it.
            for _ in iter(int, 1):
                if await rconn.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn):
                    break
                await asyncio.sleep(0.2)
        finally:
            await rconn.close()

        rows = []
        for workers in args.workers:
            alone = await served({"DATABASE_URL": primary.url}, workers, args)
            both = await served(
                {"DATABASE_URL": primary.url, "DATABASE_REPLICA_URL": replica.url}, workers, args
            )
            rows.append((workers, alone, both))
        # The HTTP path's own ceiling on this machine: no database at all.
        most = max(args.workers)
        live = await served({"DATABASE_URL": primary.url}, most, args, "/health/live")

        cache_on = await in_process_rate(primary.url, 100, args)
        cache_off = await in_process_rate(primary.url, 0, args)
        with pgbouncer(primary) as bouncer_url:
            bounced_off = await in_process_rate(bouncer_url, 0, args)

    lines = [
        "# Scale-out benchmark",
        "",
        f"Generated by `python -m bench.scale --incidents {args.incidents} --seconds {args.seconds:g} "
        f"--concurrency {args.concurrency}` on {dt.date.today()}: {args.incidents:,} incidents (COPY, "
        f"{built:.0f} s), PostgreSQL 15 primary and one `pg_basebackup -R` streaming replica on this "
        f"machine ({os.cpu_count()} CPUs shared by both servers, the workers and the load generator; "
        f"load average before the run: {load}).",
        "",
        f"## Page of 50 (`GET {PAGE}`) over HTTP, granian workers",
        "",
        "| workers | primary only req/s | primary + 1 replica req/s | ratio | vs 1 worker, primary only |",
        "|---:|---:|---:|---:|---:|",
    ]
    base = rows[0][1]
    for workers, alone, both in rows:
        lines.append(f"| {workers} | {alone:.0f} | {both:.0f} | {both / alone:.2f}× | {alone / base:.2f}× |")
    lines += [
        "",
        f"Load generator: {'wrk (2 threads)' if shutil.which('wrk') else 'httpx in the bench process'}, "
        f"{args.concurrency} connections. The HTTP path alone (`GET /health/live`, no database, "
        f"{most} workers): **{live:.0f} req/s** — the ceiling of serving anything on this machine.",
        "",
        "## Statement cache off (for PgBouncer < 1.21), same page in process (no HTTP)",
        "",
        "| connection | req/s | ms per request |",
        "|---|---:|---:|",
        f"| direct, statement cache on (100) | {cache_on:.0f} | {1000 / cache_on:.2f} |",
        f"| direct, statement cache off (0) | {cache_off:.0f} | {1000 / cache_off:.2f} |",
        f"| PgBouncer 1.18 transaction mode, cache off | {bounced_off:.0f} | {1000 / bounced_off:.2f} |",
        "",
        f"**Cost of the cache off: {1000 / cache_off - 1000 / cache_on:+.2f} ms per request "
        f"({cache_off / cache_on - 1:+.0%} throughput).** PgBouncer >= 1.21 with "
        "`max_prepared_statements` keeps the cache and does not pay it.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    args.output.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
