"""Bulk import and export benchmark → bench/results/import_export.md.

    python bench/import_export.py [--url POSTGRES_URL] [--rows 1000000] [--ucdp FILE ...]

- UCDP import: rows/s of `secevents import ucdp` for the files in data/ucdp/ (plus any given),
  online and ``--exclusive``;
- NDJSON import: a generated file of N incidents (1 source, 20 organisations, each incident with
  two participants, a breakdown and a citation) → rows/s, online and ``--exclusive``;
- ceiling: what PostgreSQL alone spends per incident on the imported data — stemming the text the
  full-text indexes hold, a bare ``INSERT … SELECT`` of the imported incidents into a copy of
  ``incidents`` with its indexes, and the same for every row the import stored (child rows,
  revisions, change feed) into copies of their tables (no parsing, checks, foreign keys or
  triggers);
- export memory: peak RSS of a process exporting 10,000 incidents vs all N (NDJSON and CSV);
  flat means streaming works.

Each run uses a database of its own on the server (`--url`, default: an embedded PostgreSQL in
/tmp/secevents-bench-pg). Numbers are wall-clock on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secevents.server import db  # noqa: E402
from secevents.server.exports import formats  # noqa: E402
from secevents.server.http import auth  # noqa: E402
from secevents.server.importers import collector_paused, ndjson, seed, ucdp  # noqa: E402
from secevents.server.importers.progress import Phases  # noqa: E402
from secevents.server.resources.incidents.filters import IncidentFilters  # noqa: E402

UCDP_FILES = [
    ROOT / "data" / "ucdp" / "ged_pakistan.csv",
    ROOT / "data" / "ucdp" / "ged_global_sample_1000.csv",
]
RESULTS = ROOT / "bench" / "results" / "import_export.md"
SMALL_EXPORT = 10_000


CREATED_DATABASES: list[str] = []


async def fresh_database(server: str) -> str:
    """A new migrated database on ``server``; dropped again by :func:`drop_databases`."""
    name = f"se_bench_{uuid.uuid4().hex[:8]}"
    CREATED_DATABASES.append(name)
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = db.url_with_database(server, name)
    await asyncio.to_thread(db.upgrade, url)
    return url


async def drop_databases(server: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        while CREATED_DATABASES:
            await conn.execute(f'DROP DATABASE IF EXISTS "{CREATED_DATABASES.pop()}" WITH (FORCE)')
    finally:
        await conn.close()


async def connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    await db.init_connection(conn)
    return conn


def generate_ndjson(path: Path, rows: int) -> None:
    """A source, 20 organisations and ``rows`` incidents; the first SMALL_EXPORT are battles."""
    source = str(uuid.uuid4())
    orgs = [str(uuid.uuid4()) for _ in range(20)]
    with path.open("w", encoding="utf-8") as f:
        f.write(
            json.dumps({"type": "source", "record": {"id": source, "kind": "dataset", "title": "Generated"}})
            + "\n"
        )
        for k, org in enumerate(orgs):
            organisation = {
                "id": org,
                "name": f"Group {k}",
                "kind": "armed_group",
                "citations": [{"source_id": source, "quote": f"Group {k}"}],
            }
            f.write(json.dumps({"type": "organisation", "record": organisation}) + "\n")
        for i in range(rows):
            day = f"20{10 + i % 14:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}"
            record: dict[str, Any] = {
                "title": f"Generated incident {i}",
                "type": "battle" if i < SMALL_EXPORT else "protest",
                "occurred": {"start": day, "end": day, "precision": "day"},
                "location": {
                    "country": "PK",
                    "admin1": "Punjab",
                    "lat": 31.5 + (i % 100) / 100,
                    "lon": 74.3,
                    "precision": "near",
                },
                "participants": [
                    {"organisation_id": orgs[i % 20], "role": "perpetrator"},
                    {"organisation_id": orgs[(i + 1) % 20], "role": "target"},
                ],
                "casualties": {
                    "killed": {"low": 1, "best": 2, "high": 3},
                    "breakdown": [{"group": "civilians", "killed": {"best": 2}}],
                },
                "external_ids": {"bench_id": str(i)},
                "citations": [{"source_id": source, "quote": f"incident {i}"}],
            }
            f.write(json.dumps({"type": "incident", "record": record}) + "\n")


MODES = {False: "online", True: "exclusive"}


async def run_import(url: str, kind: str, path: Path, exclusive: bool) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MB, records, phases) of importing ``path`` as ``secevents import``
    does (cycle collector paused): run in a process of its own."""
    conn = await connect(url)
    phases = Phases()
    try:
        started = time.perf_counter()
        with collector_paused():
            if kind == "ucdp":
                records = (await ucdp.import_file(conn, path, exclusive=exclusive, phases=phases)).rows_read
            else:
                with path.open("rb") as f:
                    result = await ndjson.import_lines(
                        conn, ndjson.file_chunks(f), actor="bench", exclusive=exclusive, phases=phases
                    )
                records = sum(result.created.values())
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    spent = ",".join(f"{p.name}={p.seconds:.2f}" for p in phases.done)
    return elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, records, spent


def import_in_child(url: str, kind: str, path: Path, exclusive: bool) -> tuple[float, float, int, str]:
    out = run_child(f"b.run_import({url!r}, {kind!r}, b.Path({str(path)!r}), {exclusive!r})")
    return float(out[0]), float(out[1]), int(out[2]), out[3]


def phase_text(spent: str) -> str:
    return ", ".join(f"{name} {seconds} s" for name, seconds in (p.split("=") for p in spent.split(",")))


def import_row(label: str, exclusive: bool, measured: tuple[float, float, int, str]) -> str:
    elapsed, rss, records, spent = measured
    return (
        f"| {label} | {MODES[exclusive]} | {records:,} | {elapsed:.2f} s | {records / elapsed:,.0f} "
        f"| {rss:,.0f} MB | {phase_text(spent)} |"
    )


async def bench_ucdp(server: str, files: list[Path]) -> tuple[list[str], str]:
    """Rows of the table, and the URL of a database holding the first file (for the ceiling)."""
    lines, first_url = [], ""
    for path in files:
        for exclusive in MODES:
            url = await fresh_database(server)
            first_url = first_url or url
            measured = await asyncio.to_thread(import_in_child, url, "ucdp", path, exclusive)
            lines.append(import_row(f"UCDP `{path.name}`", exclusive, measured))
    return lines, first_url


async def bench_ndjson(server: str, rows: int, workdir: Path) -> tuple[str, list[str]]:
    """The URL of a database holding the large import, and the rows of the table: a small file
    (for memory: flat in file size) and the large one in both modes."""
    small, large = workdir / "small.ndjson", workdir / "generated.ndjson"
    generate_ndjson(small, SMALL_EXPORT)
    generate_ndjson(large, rows)
    lines, url = [], ""
    for path, exclusive in ((small, False), (large, False), (large, True)):
        url = await fresh_database(server)
        measured = await asyncio.to_thread(import_in_child, url, "ndjson", path, exclusive)
        label = f"NDJSON generated ({path.stat().st_size / 1e6:,.0f} MB)"
        lines.append(import_row(label, exclusive, measured))
    return url, lines


# What PostgreSQL alone spends per incident, whatever the importer does: the text search vectors
# (incidents.search is a stored generated column; citations' quotes have an expression index)...
STEMMING = """
SELECT (SELECT count(*) FROM incidents),
       (SELECT sum(length(setweight(to_tsvector('english', coalesce(title, '')), 'A')
                          || setweight(to_tsvector('english', coalesce(summary, '')), 'B'))) FROM incidents),
       (SELECT sum(length(to_tsvector('english', quote))) FROM citations WHERE incident_id IS NOT NULL)
"""
# ... and writing the rows into a table with the indexes of `incidents` (no foreign keys, child
# rows, checks or revisions).
# A regular table created beforehand: a temporary one, or one created in the inserting transaction
# (with wal_level=minimal), would skip the write-ahead log that the real table pays for.
CREATE_BARE = "CREATE TABLE bare_incidents (LIKE incidents INCLUDING ALL)"
BARE_INSERT = """
INSERT INTO bare_incidents (id, title, summary, type, subtype, occurred_start, occurred_end,
  occurred_precision, country, admin1, admin2, place, lat, lon, location_precision, killed_low,
  killed_best, killed_high, injured_low, injured_best, injured_high, external_ids, version,
  created_at, updated_at)
SELECT id, title, summary, type, subtype, occurred_start, occurred_end, occurred_precision, country,
  admin1, admin2, place, lat, lon, location_precision, killed_low, killed_best, killed_high,
  injured_low, injured_best, injured_high, external_ids, version, created_at, updated_at
  FROM incidents
"""


async def bench_ceiling(label: str, url: str) -> str:
    conn = await connect(url)
    try:
        started = time.perf_counter()
        count = (await conn.fetchrow(STEMMING))[0]
        stemming = time.perf_counter() - started
    finally:
        await conn.close()
    _, bare = await bare_insert_seconds(url)
    rows, bare_all = await bare_insert_all_seconds(url)
    return (
        f"| {label} | {count:,} | {stemming / count * 1e6:,.1f} µs ({count / stemming:,.0f}/s) "
        f"| {bare / count * 1e6:,.1f} µs ({count / bare:,.0f}/s) "
        f"| {rows:,} | {bare_all / count * 1e6:,.1f} µs ({count / bare_all:,.0f}/s) |"
    )


async def bare_insert_seconds(url: str) -> tuple[int, float]:
    """(incidents, seconds) of a bare ``INSERT … SELECT`` of the incidents of ``url`` into a copy
    of ``incidents`` with its indexes: the ceiling an import's speed is measured against."""
    conn = await connect(url)
    try:
        await conn.execute(CREATE_BARE)
        started = time.perf_counter()
        count = int((await conn.execute(BARE_INSERT)).split()[-1])
        seconds = time.perf_counter() - started
        await conn.execute("DROP TABLE bare_incidents")
    finally:
        await conn.close()
    return count, seconds


# Every table an import writes rows into: the records, their child rows (participants, breakdowns,
# citations, aliases, claims…), revisions and the change feed.
IMPORTED_TABLES = (
    "sources",
    "organisations",
    "organisation_aliases",
    "organisation_relationships",
    "incidents",
    "incident_participants",
    "incident_casualties",
    "citations",
    "statements",
    "statement_claims",
    "statement_figures",
    "statement_incidents",
    "claim_organisations",
    "revisions",
    "change_feed",
)
# The columns a copy is written with: all but the generated ones (which the copy computes, as the
# real table does).
WRITTEN_COLUMNS = """
SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
 WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
"""


async def bare_insert_all_seconds(url: str) -> tuple[int, float]:
    """(rows, seconds) of a bare ``INSERT … SELECT`` of every row of :data:`IMPORTED_TABLES` in
    ``url`` into copies of the tables with their indexes, checks and generated columns (``LIKE …
    INCLUDING ALL``): PostgreSQL's own cost of storing what the import stored. Not in it: parsing,
    staging, the checks, foreign keys and triggers (the quote-in-source check on citations)."""
    conn = await connect(url)
    rows, seconds = 0, 0.0
    try:
        copies = []
        for table in IMPORTED_TABLES:
            columns = await conn.fetchval(WRITTEN_COLUMNS, table)
            await conn.execute(f"CREATE TABLE bare_{table} (LIKE {table} INCLUDING ALL)")
            copies.append((table, columns))
        for table, columns in copies:
            started = time.perf_counter()
            status = await conn.execute(
                f"INSERT INTO bare_{table} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM {table}"
            )
            seconds += time.perf_counter() - started
            rows += int(status.split()[-1])
        for table, _ in copies:
            await conn.execute(f"DROP TABLE bare_{table}")
    finally:
        await conn.close()
    return rows, seconds


def ratio_row(
    label: str, measured: tuple[float, float, int, str], bare: tuple[int, float], bare_all: tuple[int, float]
) -> str:
    """Import speed against both ceilings: the incident rows alone, and every row written."""
    elapsed, _, _, spent = measured
    incidents, bare_seconds = bare
    rows, all_seconds = bare_all
    return (
        f"| {label} | {incidents:,} | {rows:,} | {elapsed:.2f} s | {bare_seconds:.2f} s "
        f"| {bare_seconds / elapsed:.2f} | {all_seconds:.2f} s | **{all_seconds / elapsed:.2f}** "
        f"| {phase_text(spent)} |"
    )


async def export_all_to(url: str, path: Path) -> float:
    """Seconds of writing what `secevents export all` writes (every resource, NDJSON) to ``path``."""
    conn = await connect(url)
    started = time.perf_counter()
    try:
        with path.open("wb") as out:
            for resource in ("sources", "organisations", "incidents", "statements"):
                async for chunk in formats.export(conn, resource, "ndjson", None):
                    out.write(chunk)
    finally:
        await conn.close()
    return time.perf_counter() - started


# Paired runs of each small import: each import beside the bare inserts of what it wrote, measured
# right after it. Their time is a second or less, and a shared machine moves it by ±20% from one
# run to the next; the median pair's ratio is the one reported.
SMALL_IMPORT_RUNS = 3


async def seeded_database(server: str) -> str:
    url = await fresh_database(server)
    conn = await connect(url)
    try:
        await seed.load(conn)
    finally:
        await conn.close()
    return url


async def ceilings(url: str) -> tuple[tuple[int, float], tuple[int, float]]:
    """The bare inserts of what ``url`` holds: the incidents alone, and every row."""
    return await bare_insert_seconds(url), await bare_insert_all_seconds(url)


Paired = tuple[tuple[float, float, int, str], tuple[int, float], tuple[int, float]]


def median_pair(pairs: list[Paired]) -> Paired:
    """The run whose import/every-row ratio is the median of the runs'."""
    ranked = sorted(pairs, key=lambda p: p[2][1] / p[0][0])
    return ranked[len(ranked) // 2]


async def bench_round_trip(server: str, workdir: Path, generated: Path) -> tuple[list[str], list[str]]:
    """The sample dataset plus UCDP Pakistan (6,502 records): UCDP import, `export all`, NDJSON
    import into an empty database, import of the same file again (all unchanged); then the
    ``generated`` NDJSON file into an empty database. Each import against the bare inserts of
    what it wrote, in the same run; the small imports :data:`SMALL_IMPORT_RUNS` times."""
    ucdp_runs: list[Paired] = []
    for _ in range(SMALL_IMPORT_RUNS):
        source = await seeded_database(server)
        ucdp_import = await asyncio.to_thread(import_in_child, source, "ucdp", UCDP_FILES[0], False)
        ucdp_runs.append((ucdp_import, *await ceilings(source)))
    backup = workdir / "backup.ndjson"
    exported = await export_all_to(source, backup)
    records = sum(1 for line in backup.open("rb") if b'"record":' in line)
    restores: list[Paired] = []
    for _ in range(SMALL_IMPORT_RUNS):
        target = await fresh_database(server)
        restore = await asyncio.to_thread(import_in_child, target, "ndjson", backup, False)
        restores.append((restore, *await ceilings(target)))
    again = await asyncio.to_thread(import_in_child, target, "ndjson", backup, False)
    fresh = await fresh_database(server)
    bulk = await asyncio.to_thread(import_in_child, fresh, "ndjson", generated, False)
    restore = median_pair(restores)[0]
    ratios = [
        ratio_row(f"UCDP `{UCDP_FILES[0].name}`", *median_pair(ucdp_runs)),
        ratio_row("NDJSON round trip (empty database)", *median_pair(restores)),
        ratio_row(f"NDJSON generated (empty database, {bulk[2]:,} records)", bulk, *await ceilings(fresh)),
    ]
    trip = [
        f"| `export all` | {records:,} | {exported:.2f} s |",
        f"| `import ndjson` into an empty database | {records:,} | {restore[0]:.2f} s |",
        f"| **export + import** | {records:,} | **{exported + restore[0]:.2f} s** |",
        f"| `import ndjson` again (all unchanged) | {records:,} | {again[0]:.2f} s |",
    ]
    return ratios, trip


async def post_sources(
    base: str, key: str, stop: asyncio.Event, latencies: list[float], failures: list[int]
) -> None:
    """POST a source every 100 ms until ``stop``; each answer's latency, and the statuses that
    were not 201."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        n = 0
        while not stop.is_set():
            n += 1
            started = time.perf_counter()
            response = await client.post(
                "/v1/sources",
                json={"kind": "report", "title": f"written during the import {n}"},
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())},
            )
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                failures.append(response.status_code)
            await asyncio.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_writes_during_import(server: str, path: Path, rows: int) -> str:
    """API writes (a server process of its own) while the generated NDJSON file is imported:
    latency of each POST before and during the import, and any that failed."""
    url = await seeded_database(server)
    conn = await connect(url)
    try:
        key = (await auth.create_key(conn, name="bench-writes", scopes=["write"])).key
    finally:
        await conn.close()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECEVENTS_PORT": str(port),
        "SECEVENTS_RATE_LIMIT_WINDOW_SECONDS": "0",
    }
    server_process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "secevents.server.cli.main", "serve", env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            while True:
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        idle: list[float] = []
        during: list[float] = []
        failures: list[int] = []
        stop = asyncio.Event()
        writer = asyncio.create_task(post_sources(base, key, stop, idle, failures))
        await asyncio.sleep(5)
        stop.set()
        await writer
        stop = asyncio.Event()
        writer = asyncio.create_task(post_sources(base, key, stop, during, failures))
        imported = await asyncio.to_thread(import_in_child, url, "ndjson", path, False)
        stop.set()
        await writer
    finally:
        server_process.terminate()
        await server_process.wait()
    ms = 1000
    return (
        f"| {rows:,} incidents | {imported[0]:.1f} s | {len(idle)} / {len(during)} "
        f"| {percentile(idle, 0.5) * ms:.0f} / {percentile(idle, 0.99) * ms:.0f} ms "
        f"| {percentile(during, 0.5) * ms:.0f} / {percentile(during, 0.99) * ms:.0f} / {max(during) * ms:.0f} ms "
        f"| {len(failures)} |"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_child(call: str) -> list[str]:
    """Run ``asyncio.run(b.<call>)`` in a new Python process (``b`` is this module) and return
    the words it prints: each measurement gets a process, and a peak RSS, of its own."""
    code = (
        "import asyncio, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import bench.import_export as b\n"
        f"print(*asyncio.run({call}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()


def export_in_child(url: str, fmt: str, small: bool) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, bytes) of a separate process exporting incidents."""
    out = run_child(f"b.export_to_null({url!r}, {fmt!r}, {small!r})")
    return float(out[0]), float(out[1]), int(out[2])


async def export_to_null(url: str, fmt: str, small: bool) -> tuple[float, float, int]:
    conn = await connect(url)
    filters = IncidentFilters(type=("battle",)) if small else IncidentFilters()
    written = 0
    started = time.perf_counter()
    try:
        async for chunk in formats.export(conn, "incidents", fmt, filters):
            written += len(chunk)
    finally:
        await conn.close()
    elapsed = time.perf_counter() - started
    return elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, written


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="maintenance URL of a PostgreSQL server (default: embedded)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ucdp", type=Path, nargs="*", default=[], help="more UCDP GED CSV files")
    parser.add_argument(
        "--round-trip",
        action="store_true",
        help="only the 6,502-record round trip, the speed against the bare-insert ceiling and API "
        f"writes during an import of --rows incidents → {ROUND_TRIP_RESULTS.relative_to(ROOT)}",
    )
    args = parser.parse_args()
    embedded = None
    server = args.url
    if server is None:
        embedded = db.EmbeddedPostgres(Path("/tmp/secevents-bench-pg"))
        server = await asyncio.to_thread(embedded.start)
    if args.round_trip:
        try:
            await round_trip_report(server, args)
        finally:
            await drop_databases(server)
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
        return
    try:
        import_rows, ucdp_url = await bench_ucdp(server, [*UCDP_FILES, *args.ucdp])
        with tempfile.TemporaryDirectory() as workdir:
            url, ndjson_rows = await bench_ndjson(server, args.rows, Path(workdir))
        import_rows += ndjson_rows
        ceiling_rows = [
            await bench_ceiling(f"UCDP `{UCDP_FILES[0].name}`", ucdp_url),
            await bench_ceiling("NDJSON generated", url),
        ]
        export_rows = []
        for fmt in ("ndjson", "csv"):
            for small in (True, False):
                elapsed, rss, written = await asyncio.to_thread(export_in_child, url, fmt, small)
                count = SMALL_EXPORT if small else args.rows
                export_rows.append(
                    f"| {fmt} | {count:,} | {written / 1e6:,.0f} MB | {elapsed:.1f} s | {count / elapsed:,.0f} | {rss:,.0f} MB |"
                )
    finally:
        await drop_databases(server)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
    report = "\n".join(
        [
            "# Import and export benchmark",
            "",
            f"`python bench/import_export.py --rows {args.rows}{''.join(f' --ucdp {p}' for p in args.ucdp)}` — "
            f"{time.strftime('%Y-%m-%d')}, "
            f"PostgreSQL {'embedded' if args.url is None else 'at --url'}, one machine shared by the database and the importer.",
            "",
            "## Import (one transaction per file, COPY into staging tables, revisions included)",
            "",
            "Online: the tables stay readable and writable throughout. Exclusive (`--exclusive`): the",
            "incident tables are locked while writing, their indexes and foreign keys rebuilt after.",
            "",
            "| input | mode | records | time | records/s | peak RSS | phases |",
            "|---|---|---:|---:|---:|---:|---|",
            *import_rows,
            "",
            "## Ceiling: PostgreSQL's own work per incident, on the imported rows",
            "",
            "Stemming: building the full-text vectors the `q` filter searches (incident title and",
            "summary, citation quote). Bare insert, incidents: `INSERT … SELECT` of the imported incidents",
            "into a copy of `incidents` with its indexes. Bare insert, every row: the same for every row",
            "the import stored (records, child rows, revisions, change feed), per incident. Neither has",
            "parsing, staging, checks, foreign keys or triggers.",
            "",
            "| data | incidents | stemming per incident | bare insert, incidents | rows stored | bare insert, every row |",
            "|---|---:|---:|---:|---:|---:|",
            *ceiling_rows,
            "",
            "## Export memory (a separate process per export; peak RSS of the whole process)",
            "",
            "| format | incidents | output | time | rows/s | peak RSS |",
            "|---|---:|---:|---:|---:|---:|",
            *export_rows,
            "",
        ]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report, encoding="utf-8")
    print(report)


ROUND_TRIP_RESULTS = ROOT / "bench" / "results" / "import_round_trip.md"


async def round_trip_report(server: str, args: argparse.Namespace) -> None:
    """One section of ROUND_TRIP_RESULTS per PostgreSQL (a rerun replaces its own section)."""
    conn = await asyncpg.connect(server)
    try:
        version = (await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()
    label = f"PostgreSQL {version} ({'embedded' if args.url is None else 'at --url'})"
    with tempfile.TemporaryDirectory() as workdir:
        generated = Path(workdir) / "generated.ndjson"
        generate_ndjson(generated, args.rows)
        ratios, trip = await bench_round_trip(server, Path(workdir), generated)
        writes = await bench_writes_during_import(server, generated, args.rows)
    section = "\n".join(
        [
            f"## {label}",
            "",
            f"`python bench/import_export.py --round-trip --rows {args.rows}"
            f"{'' if args.url is None else ' --url …'}` — {time.strftime('%Y-%m-%d %H:%M')}, 2 cores shared "
            "with the database and other jobs.",
            "",
            "Round trip of the sample dataset plus UCDP Pakistan (`export all`, then `import ndjson`):",
            "",
            "| step | records | time |",
            "|---|---:|---:|",
            *trip,
            "",
            "Import speed against the ceilings measured in the same run; ratio = bare time ÷ import time.",
            f"The two small imports ran {SMALL_IMPORT_RUNS} times, each into a database of its own with its bare",
            "inserts measured right after it; their row is the run with the median ratio.",
            "Incidents only: a bare `INSERT … SELECT` of the incidents into a copy of `incidents` with",
            "its indexes. Every row: the same for every row the import stored (records, participants,",
            "breakdowns, citations, revisions, change feed) into copies of their tables; neither has",
            "parsing, staging, checks, foreign keys or triggers.",
            "",
            "| import | incidents | rows | import | bare: incidents only | ratio | bare: every row | **ratio** | phases |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
            *ratios,
            "",
            "API writes (`POST /v1/sources` every 100 ms, a server process of its own) before and during",
            "an NDJSON import of generated incidents into the same database:",
            "",
            "| import | import time | writes idle / during | idle p50 / p99 | during p50 / p99 / max | failed |",
            "|---|---:|---:|---:|---:|---:|",
            writes,
            "",
        ]
    )
    old = ROUND_TRIP_RESULTS.read_text(encoding="utf-8") if ROUND_TRIP_RESULTS.exists() else ""
    kept = "".join(f"\n## {part.rstrip()}\n" for part in old.split("\n## ")[1:] if not part.startswith(label))
    header = "# Import round trip, speed against the ceiling, API writes during an import\n"
    ROUND_TRIP_RESULTS.write_text(f"{header}{kept}\n{section}", encoding="utf-8")
    print(section)


if __name__ == "__main__":
    asyncio.run(main())
