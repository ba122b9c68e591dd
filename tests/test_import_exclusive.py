"""Exclusive imports (``--exclusive``): indexes and foreign keys dropped and rebuilt inside the
import's transaction. The data is the same as a normal import's, the schema is exactly as it was
afterwards — and after a failure too — and a busy table makes the import fail cleanly."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from secevents.server import db
from secevents.server.cli import main as cli
from secevents.server.importers import ImportFailed, exclusive, ndjson, ucdp
from tests.conftest import make_settings
from tests.support import assert_problem, serve, store_documents, until, with_database

DATA = Path(__file__).resolve().parent.parent / "data" / "ucdp"

# Every index and constraint of the bulk tables, as DDL: equal before and after means rebuilt
# exactly (names, columns, predicates, validity).
SCHEMA = """
SELECT pg_get_indexdef(x.indexrelid) || ' valid=' || x.indisvalid AS ddl
  FROM pg_index x WHERE x.indrelid = ANY($1::regclass[])
UNION ALL
SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' validated=' || convalidated
  FROM pg_constraint WHERE conrelid = ANY($1::regclass[])
ORDER BY 1
"""


async def schema(conn: asyncpg.Connection) -> list[str]:
    return [r["ddl"] for r in await conn.fetch(SCHEMA, list(exclusive.BULK_TABLES))]


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _ndjson(incidents: int) -> bytes:
    source, org = str(uuid.uuid4()), str(uuid.uuid4())
    cited = [{"source_id": source, "quote": "Generated"}]
    lines = [
        {
            "type": "source",
            "record": {"id": source, "kind": "dataset", "title": "Generated", "text": "Generated"},
        },
        {
            "type": "organisation",
            "record": {"id": org, "name": "Group", "kind": "armed_group", "citations": cited},
        },
        *(
            {
                "type": "incident",
                "record": {
                    "title": f"Generated incident {i}",
                    "type": "battle",
                    "occurred": {"start": "2024-01-01", "end": "2024-01-01", "precision": "day"},
                    "location": {"country": "PK", "lat": 31.5, "lon": 74.3, "precision": "near"},
                    "participants": [{"organisation_id": org, "role": "perpetrator"}],
                    "casualties": {"killed": {"best": i}},
                    "external_ids": {"bench_id": str(i)},
                    "citations": cited,
                },
            }
            for i in range(incidents)
        ),
    ]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


async def test_exclusive_ndjson_import_rebuilds_every_index_and_constraint(conn: asyncpg.Connection) -> None:
    before = await schema(conn)
    result = await ndjson.import_lines(conn, _chunks(_ndjson(300)), actor="test", exclusive=True)

    assert result.created == {"source": 1, "organisation": 1, "incident": 300}
    assert await schema(conn) == before
    # The rebuilt indexes serve queries, and the data is whole: rows, children and revisions.
    await conn.execute("SET enable_seqscan = off")
    assert await conn.fetchval("SELECT count(*) FROM incidents WHERE killed_best >= 150") == 150
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM incident_participants p JOIN incidents i ON i.id = p.incident_id"
        "         WHERE i.title LIKE 'Generated incident %') AS participants,"
        "       (SELECT count(*) FROM revisions WHERE actor = 'test' AND record_type = 'incident') AS revisions,"
        "       (SELECT count(*) FROM incidents WHERE search @@ websearch_to_tsquery('english', 'generated')) AS found"
    )
    assert dict(counts) == {"participants": 300, "revisions": 300, "found": 300}


async def test_failure_inside_an_exclusive_load_restores_the_schema(conn: asyncpg.Connection) -> None:
    before = await schema(conn)
    incidents = await conn.fetchval("SELECT count(*) FROM incidents")

    async def load_that_breaks_a_check() -> None:
        async with conn.transaction(), exclusive.indexes_rebuilt(conn):
            assert await schema(conn) != before  # dropped for the load
            await conn.execute("DELETE FROM incident_casualties")
            await conn.execute(
                "UPDATE incidents SET killed_low = killed_best + 1 WHERE killed_best IS NOT NULL"
            )

    with pytest.raises(asyncpg.CheckViolationError):
        await load_that_breaks_a_check()
    assert await schema(conn) == before
    assert await conn.fetchval("SELECT count(*) FROM incidents") == incidents
    assert await conn.fetchval("SELECT count(*) FROM incident_casualties") > 0


async def test_a_foreign_key_broken_during_the_load_fails_it_when_rebuilt(conn: asyncpg.Connection) -> None:
    """Foreign keys are not checked during the load, so their rebuild is what catches a bad row."""
    before = await schema(conn)
    incident = await conn.fetchval("SELECT id FROM incidents LIMIT 1")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with conn.transaction(), exclusive.indexes_rebuilt(conn):
            await conn.execute(
                "INSERT INTO incident_participants (incident_id, ordinal, organisation_id, role)"
                " VALUES ($1, 99, $2, 'target')",
                incident,
                uuid.uuid4(),
            )
    assert await schema(conn) == before


async def test_busy_tables_make_an_exclusive_import_fail_cleanly(
    database_url: str, conn: asyncpg.Connection
) -> None:
    before = await schema(conn)
    async with db.connect(database_url) as reader, reader.transaction():
        await reader.fetchval("SELECT count(*) FROM incidents")  # holds a lock till it ends
        with pytest.raises(ImportFailed, match="stayed in use"):
            async with conn.transaction(), exclusive.indexes_rebuilt(conn, lock_timeout="200ms"):
                pytest.fail("the body must not run without the locks")
    assert await schema(conn) == before


async def waiting_on_a_lock(observer: asyncpg.Connection, pid: int) -> bool:
    waiting: bool = await observer.fetchval(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
    )
    return waiting


async def test_api_reads_wait_for_an_exclusive_import_and_then_see_all_of_it(
    database_url: str, conn: asyncpg.Connection
) -> None:
    before = await conn.fetchval("SELECT count(*) FROM incidents")
    async with (
        db.connect(database_url) as importer,
        importer.transaction(),
        exclusive.indexes_rebuilt(importer),
    ):
        await importer.execute(
            "INSERT INTO incidents (title, type, occurred_start, occurred_end, occurred_precision,"
            " country, location_precision) SELECT 'bulk ' || g, 'battle', '2024-01-01', '2024-01-01',"
            " 'day', 'PK', 'country' FROM generate_series(1, 50) g"
        )
        read = asyncio.create_task(conn.fetchval("SELECT count(*) FROM incidents"))
        # The read waits on the import's lock (seen from a third connection) instead of
        # reading half an import.
        async with db.connect(database_url) as observer:
            await until(lambda: waiting_on_a_lock(observer, conn.get_server_pid()))
        assert not read.done()
    assert await read == before + 50


async def test_api_requests_during_an_exclusive_import_get_503_not_half_the_data(database_url: str) -> None:
    """Past the statement timeout a request waiting for the tables is a 503 with Retry-After;
    once the import commits, the API serves everything it wrote."""
    settings = with_database(make_settings(database_url), statement_timeout_ms=1000)
    async with serve(settings) as client, db.connect(database_url) as importer:
        async with importer.transaction(), exclusive.indexes_rebuilt(importer):
            await importer.execute(
                "INSERT INTO incidents (title, type, occurred_start, occurred_end, occurred_precision,"
                " country, location_precision) VALUES ('bulk', 'battle', '2024-01-01', '2024-01-01',"
                " 'day', 'PK', 'country')"
            )
            await store_documents(importer, "incident")
            waiting = await client.get("/v1/incidents")
            assert_problem(waiting, 503, "statement_timeout")
            assert waiting.headers["retry-after"]
        served = await client.get("/v1/incidents", params={"q": "bulk"})
        assert served.status_code == 200, served.text
        assert [i["title"] for i in served.json()["data"]] == ["bulk"]


async def test_exclusive_ucdp_import_equals_a_normal_one(conn: asyncpg.Connection) -> None:
    before = await schema(conn)
    summary = await ucdp.import_file(conn, DATA / "ged_pakistan.csv", exclusive=True)
    assert summary.created == 6416
    assert await schema(conn) == before
    totals = await conn.fetchrow(
        "SELECT count(*) AS n, sum(killed_best) AS best FROM incidents WHERE external_ids ? 'ucdp_ged_id'"
    )
    assert (totals["n"], totals["best"]) == (6416, 43225)
    again = await ucdp.import_file(conn, DATA / "ged_pakistan.csv", exclusive=True)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 6416)


def test_cli_exclusive_flag(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    path = tmp_path / "bulk.ndjson"
    path.write_bytes(_ndjson(20))
    assert cli.main(["import", "ndjson", "--exclusive", str(path)]) == 0
    assert "created 1 source(s), 1 organisation(s), 20 incident(s)" in capsys.readouterr().out
