"""The read benchmark's data: N incidents built with COPY, and the path this project read them by
before documents were stored (for the side-by-side in ``bench.read``).

The database is built the way an existing installation got there: at migration 0004 (documents
rendered per read by ``incident_doc()``), with a revision per record, then migrated to head — so
the run also measures migration 0005's backfill on the whole set (kept in ``bench_meta``).
One organisation (:data:`RENAME_TARGET`) takes part in exactly :data:`RENAMED_INCIDENTS`
incidents, for the rename measurement.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import time
from pathlib import Path
from typing import Any

import asyncpg
from uuid_utils.compat import uuid7

from secevents.server import db
from secevents.server.reads.filters import SqlBuilder
from secevents.server.reads.pagination import SortOrder

BENCH_DB = "secevents_bench_read"
COUNTRIES = ["PK", "AF", "IN", "MX", "SY", "IQ", "NG", "SO", "YE", "CO", "UA", "SD", "ML", "CD", "MM"]
TYPES = ["battle", "explosion_remote_violence", "violence_against_civilians", "riot", "protest",
         "strategic_development"]  # fmt: skip
ROLES = ["perpetrator", "target", "claimed_by", "suspected", "responder"]
WORDS = [
    "attack", "convoy", "checkpoint", "market", "village", "police", "army", "militants", "clash",
    "protest", "rally", "bombing", "ambush", "district", "border", "patrol", "camp", "road",
    "bridge", "school", "mosque",
]  # fmt: skip
RENAME_TARGET = "Bench rename target"
RENAMED_INCIDENTS = 10_000
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"


async def prepare_database(server_url: str, incidents: int, name: str = BENCH_DB) -> tuple[str, float | None]:
    """The bench database ``name`` at head holding ``incidents`` incidents (rebuilt when it holds
    another number); and how long migration 0005 took on it when it was built (None: unknown)."""
    url = db.url_with_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    try:
        exists = await admin.fetchval("SELECT true FROM pg_database WHERE datname = $1", name)
        have = 0
        if exists:
            conn = await asyncpg.connect(url)
            try:
                ready = await conn.fetchval("SELECT to_regclass('bench_meta') IS NOT NULL")
                have = await conn.fetchval("SELECT count(*) FROM incidents") if ready else -1
            finally:
                await conn.close()
        if have == incidents:
            await asyncio.to_thread(db.upgrade, url)
            conn = await asyncpg.connect(url)
            try:
                seconds = await conn.fetchval(
                    "SELECT value::float FROM bench_meta WHERE key = 'backfill_seconds'"
                )
            finally:
                await conn.close()
            return url, seconds
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await asyncio.to_thread(db.upgrade, url, "0004")
    print(f"building {incidents:,} incidents at migration 0004 …", flush=True)
    started = time.perf_counter()
    async with db.connect(url) as conn:
        await build(conn, incidents)
    print(f"built in {time.perf_counter() - started:.0f} s; migrating to head …", flush=True)
    started = time.perf_counter()
    await asyncio.to_thread(db.upgrade, url)
    seconds = time.perf_counter() - started
    print(f"migrated in {seconds:.0f} s", flush=True)
    async with db.connect(url) as conn:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CREATE TABLE bench_meta (key text PRIMARY KEY, value text)")
        await conn.execute("INSERT INTO bench_meta VALUES ('backfill_seconds', $1)", str(seconds))
    return url, seconds


async def build(conn: asyncpg.Connection, incidents: int) -> None:
    """Organisations, one source, incidents with 1–2 participants and a citation on one in ten,
    and the revision of each (rendered by 0001's SQL functions, as writes did then)."""
    rng = random.Random(42)
    organisations = [(uuid7(), RENAME_TARGET, "PK")] + [
        (uuid7(), f"Armed group {n} {rng.choice(WORDS).title()}", rng.choice(COUNTRIES))
        for n in range(1, 300)
    ]
    await conn.copy_records_to_table(
        "organisations",
        columns=["id", "name", "kind", "country"],
        records=[(i, name, "armed_group", country) for i, name, country in organisations],
    )
    source_id = uuid7()
    await conn.execute(
        "INSERT INTO sources (id, kind, title, publisher) VALUES ($1, 'dataset', 'Generated events', 'bench')",
        source_id,
    )
    start = dt.date(2000, 1, 1)
    now = dt.datetime.now(dt.UTC)
    every = max(1, incidents // RENAMED_INCIDENTS)
    rows: list[tuple[Any, ...]] = []
    participants: list[tuple[Any, ...]] = []
    citations: list[tuple[Any, ...]] = []
    for n in range(incidents):
        incident_id = uuid7()
        day = start + dt.timedelta(days=rng.randrange(9000))
        words = " ".join(rng.choices(WORDS, k=4))
        killed = rng.choice([None, 0, 1, 2, 3, 5, 8, 13, 40])
        located = rng.random() < 0.8
        rows.append((
            incident_id, f"Incident {n}: {words}", f"Reports of {words} near the {rng.choice(WORDS)}",
            rng.choice(TYPES), day, day, "day", rng.choice(COUNTRIES), f"Region {rng.randrange(12)}",
            rng.uniform(-40, 60) if located else None, rng.uniform(-120, 140) if located else None,
            "exact" if located else "admin1", killed, killed, None if killed is None else killed * 2,
            now, now,
        ))  # fmt: skip
        taking_part = rng.sample(organisations[1:], rng.randrange(1, 3))
        if n % every == 0 and n // every < RENAMED_INCIDENTS:
            taking_part[0] = organisations[0]
        for ordinal, org in enumerate(taking_part, start=1):
            participants.append((incident_id, ordinal, org[0], ROLES[(n + ordinal) % len(ROLES)]))
        if n % 10 == 0:
            citations.append((source_id, f"Witnesses said the {words} left casualties", 1, incident_id))
    await conn.copy_records_to_table(
        "incidents",
        columns=["id", "title", "summary", "type", "occurred_start", "occurred_end", "occurred_precision",
                 "country", "admin1", "lat", "lon", "location_precision", "killed_low", "killed_best",
                 "killed_high", "created_at", "updated_at"],
        records=rows,
    )  # fmt: skip
    await conn.copy_records_to_table(
        "incident_participants",
        columns=["incident_id", "ordinal", "organisation_id", "role"],
        records=participants,
    )
    await conn.copy_records_to_table(
        "citations", columns=["source_id", "quote", "ordinal", "incident_id"], records=citations
    )
    for record_type, table, render in (
        ("source", "sources", "source_doc"),
        ("organisation", "organisations", "organisation_doc"),
        ("incident", "incidents", "incident_doc"),
    ):
        await conn.execute(
            f"""INSERT INTO revisions (record_type, record_id, version, operation, data, actor)
                SELECT '{record_type}', r.id, r.version, 'create', {render}(r), 'bench' FROM {table} r"""
        )
    await conn.execute("VACUUM ANALYZE")


# --- the path before stored documents (commit 24d2193), kept to measure against ------------------


def legacy_renderer_sql() -> str:
    """0001's ``incident_doc()``, verbatim, as ``legacy_incident_doc()``."""
    text = (MIGRATIONS / "0001_initial_schema.py").read_text(encoding="utf-8")
    found = re.search(r'(CREATE FUNCTION incident_doc\(i incidents\).*?\$\$)"""', text, re.S)
    assert found is not None
    return found.group(1).replace("FUNCTION incident_doc(", "OR REPLACE FUNCTION legacy_incident_doc(")


def legacy_page_sql(sql: SqlBuilder, sort: SortOrder, after: tuple[Any, ...] | None, limit: int) -> str:
    """The list query of commit 24d2193: the index walk picks the page, then each document is
    rendered from the record's rows. Rows as this build's handler reads them: ``doc, version,
    k0, k1…``."""
    if after is not None:
        sql.where(sort.after([sql.param(value) for value in after]))
    keys = ", ".join(f"p.k{n}" for n in range(len(sort.columns)))
    return f"""
SELECT legacy_incident_doc(p.i) AS doc, (p.i).version, {keys}
  FROM (SELECT i, {sort.select_keys()} FROM incidents i
         WHERE {sql.where_sql()}
         ORDER BY {sort.order_by} LIMIT {sql.param(limit + 1)}) p
 ORDER BY {sort.outer_order_by()}"""


def legacy_list_query(
    filters: Any, sort: SortOrder, after: tuple[Any, ...] | None, limit: int
) -> tuple[str, list[Any]]:
    """Commit 24d2193's ``list_query`` for the filters the benchmark uses (``= ANY`` arrays)."""
    sql = SqlBuilder()
    sql.where("i.deleted_at IS NULL")
    if filters.country:
        sql.where(f"i.country = ANY({sql.param(list(filters.country))}::bpchar[])")
    if filters.type:
        sql.where(f"i.type = ANY({sql.param(list(filters.type))}::text[])")
    if filters.min_killed is not None:
        sql.where(f"coalesce(i.killed_best, i.killed_low) >= {sql.param(filters.min_killed)}")
    return legacy_page_sql(sql, sort, after, limit), sql.args
