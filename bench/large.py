"""The largest data set measured on this machine: import, page, filtered page, deep page, stats
and export times over N generated incidents (default 5,000,000) → bench/results/large.md.

    python -m bench.large --url postgresql://postgres@127.0.0.1:5432/postgres [--incidents N]

The data: ``bench.import_export``'s generated NDJSON (one source, 20 organisations, incidents
with two participants, a casualty breakdown and a citation each), imported as a restore would
be, by ``secevents import ndjson --exclusive`` (one transaction, indexes rebuilt after), in a
process of its own. Reads go through the whole app in this process (``bench.read.asgi``), one
at a time, with the statement timeout raised so that slow ones are measured rather than cut
off (the served default, 15 s, is marked). The export is the incidents export's NDJSON path
to /dev/null, in a process of its own. The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from bench import import_export as bulk
from bench.read import asgi
from secevents.server.app import create_app
from secevents.server.settings import ApiSettings, DatabaseSettings, Settings

RESULTS = Path(__file__).resolve().parent / "results" / "large.md"
SERVED_STATEMENT_TIMEOUT_S = 15
READS = {
    "page 1 (`limit=50`)": "limit=50",
    "filtered page (`country=PK&type=battle&min_killed=1&limit=50`)": "country=PK&type=battle&min_killed=1&limit=50",
    "full-text page (`q=incident&limit=50`)": "q=incident&limit=50",
}
STATS = ("country", "year", "month", "organisation")


async def timed_reads(app: object, query: str, count: int, path: str = "/v1/incidents") -> list[float]:
    """Up to ``count`` reads, fewer (at least 3) when they take more than 20 s in all."""
    times: list[float] = []
    budget = time.perf_counter() + 20
    for n in range(count):
        if n >= 3 and time.perf_counter() > budget:
            break
        started = time.perf_counter()
        status, body, _ = await asgi(app, path, query)  # type: ignore[arg-type]
        times.append((time.perf_counter() - started) * 1000)
        assert status == 200, (path, query, status, body[:300])
    return times


async def deep_page_query(app: object, pages: int) -> str:
    """The query string of page ``pages + 1`` of the unfiltered list, by following cursors."""
    query = "limit=50"
    for _ in range(pages):
        status, body, _ = await asgi(app, "/v1/incidents", query)  # type: ignore[arg-type]
        assert status == 200, body[:300]
        query = f"limit=50&cursor={json.loads(body)['next_cursor']}"
    return query


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f}"


async def measure_reads(url: str, incidents: int) -> tuple[list[str], list[str]]:
    settings = Settings(
        database=DatabaseSettings(url=url, pool_min_size=2, pool_max_size=4, migrate_on_start=False,
                                  seed_on_start=False, statement_timeout_ms=600_000, command_timeout=600),
        api=ApiSettings(cursor_secret=b"bench", rate_limit_window_seconds=0, request_timeout=600),
    )  # fmt: skip
    app = create_app(settings)
    pages, stats = [], []
    async with app.lifespan():
        logging.getLogger("secevents.access").setLevel(logging.WARNING)
        for label, query in READS.items():
            await timed_reads(app, query, 3)  # warm the cache
            times = await timed_reads(app, query, 50)
            pages.append(f"| {label} | {ms(times)} | {max(times):,.1f} |")
        followed = min(1000, incidents // 50 - 1)
        deep = await deep_page_query(app, followed)
        times = await timed_reads(app, deep, 50)
        pages.append(
            f"| page {followed + 1:,} (after following {followed:,} cursors) | {ms(times)} | {max(times):,.1f} |"
        )
        for key in STATS:
            times = await timed_reads(app, f"group_by={key}", 3, "/v1/incidents/stats")
            over = " (over the served 15 s timeout)" if min(times) > SERVED_STATEMENT_TIMEOUT_S * 1000 else ""
            stats.append(f"| `group_by={key}` | {ms(times)} ms{over} |")
    return pages, stats


async def database_size(url: str) -> tuple[int, int, str]:
    conn = await asyncpg.connect(url)
    try:
        incidents = await conn.fetchval("SELECT count(*) FROM incidents")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return int(incidents), int(size), str(version)


async def main_async(args: argparse.Namespace) -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    url = await bulk.fresh_database(args.url)
    try:
        with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
            path = Path(workdir) / "incidents.ndjson"
            started = time.perf_counter()
            await asyncio.to_thread(bulk.generate_ndjson, path, args.incidents)
            generated = time.perf_counter() - started
            file_mb = path.stat().st_size / 1e6
            seconds, rss, records, phases = await asyncio.to_thread(
                bulk.import_in_child, url, "ndjson", path, True
            )
        incidents, size, version = await database_size(url)
        pages, stats = await measure_reads(url, incidents)
        export_seconds, export_rss, written = await asyncio.to_thread(
            bulk.export_in_child, url, "ndjson", False
        )
    finally:
        if not args.keep:
            await bulk.drop_databases(args.url)
    return "\n".join(
        [
            "# Largest data set measured here",
            "",
            f"Generated by `python -m bench.large --incidents {args.incidents}` on {dt.date.today()}: "
            f"PostgreSQL {version}, 2 CPUs shared by PostgreSQL and this process; load average at "
            f"the start: {load}. The data: bench/import_export.py's generated NDJSON.",
            "",
            f"- **{incidents:,} incidents**, database size {size / 1e9:,.1f} GB.",
            f"- NDJSON file generated: {file_mb:,.0f} MB in {generated:,.0f} s.",
            f"- **Import** (`secevents import ndjson --exclusive`, one transaction): {records:,} "
            f"records in **{seconds:,.0f} s** ({records / seconds:,.0f} records/s), peak RSS "
            f"{rss:,.0f} MB; phases (s): {bulk.phase_text(phases)}.",
            f"- **Export** (NDJSON, every incident): {written / 1e9:,.2f} GB in **{export_seconds:,.0f} s** "
            f"({incidents / export_seconds:,.0f} rows/s), peak RSS {export_rss:,.0f} MB.",
            "",
            "## Reads through the app (one at a time, warm cache)",
            "",
            "| read | p50 ms | max ms |",
            "|---|---:|---:|",
            *pages,
            "",
            "## Stats over every incident (`GET /v1/incidents/stats`, median of 3)",
            "",
            "| grouping | time |",
            "|---|---:|",
            *stats,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__)
    parser.add_argument("--url", required=True, help="maintenance URL of a PostgreSQL server")
    parser.add_argument("--incidents", type=int, default=5_000_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=None, help="where the NDJSON file goes")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    args.output.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
