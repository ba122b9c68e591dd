"""Migration 0004's set-based triggers and the importers' documents (rendered while parsing by
the NDJSON import, from the written rows otherwise): the same guarantees and the same documents
as the per-record writes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from secevents.server import db
from secevents.server.importers import ndjson, ucdp
from secevents.server.sql import documents

DATA = Path(__file__).resolve().parent.parent / "data" / "ucdp"

# Revisions whose document differs from the one the incident stores at that version.
DIFFERING_REVISIONS = """
SELECT r.record_id, r.data::text AS stored, i.doc::text AS rendered
  FROM revisions r JOIN incidents i ON i.id = r.record_id AND i.version = r.version
 WHERE r.record_type = 'incident' AND r.data::text <> i.doc::text
"""


async def test_stored_documents_equal_a_fresh_rendering_of_every_seeded_record(
    conn: asyncpg.Connection,
) -> None:
    for record_type, renderer in documents.RENDERERS.items():
        stored = {r["id"]: r["doc"] for r in await conn.fetch(f"SELECT id, doc FROM {renderer.table}")}
        assert stored, record_type
        async with conn.transaction():
            assert await documents.render(conn, record_type, list(stored)) == stored


async def test_ucdp_revisions_are_byte_identical_to_stored_documents(conn: asyncpg.Connection) -> None:
    await ucdp.import_file(conn, DATA / "ged_pakistan.csv")
    await ucdp.import_file(conn, DATA / "ged_global_sample_1000.csv")
    imported = await conn.fetchval(
        "SELECT count(*) FROM revisions WHERE record_type = 'incident' AND actor = 'import:ucdp'"
    )
    assert imported >= 6416
    assert await conn.fetch(DIFFERING_REVISIONS) == []


async def test_ndjson_documents_rendered_while_parsing_equal_those_rendered_from_rows(
    conn: asyncpg.Connection,
) -> None:
    """Rendered from the import's Structs while parsing: byte for byte what rendering the written
    rows gives — for organisations of the file, of the database and named only later in the file
    (those rendered from the rows)."""
    seeded_org = await conn.fetchrow("SELECT id, name FROM organisations ORDER BY id LIMIT 1")
    late_org = str(uuid.uuid4())
    source, org_a, org_b = (str(uuid.uuid4()) for _ in range(3))
    text = "Gunmen attacked the checkpoint; two soldiers and one civilian were killed."
    cited = [{"source_id": source, "quote": "Gunmen"}]
    lines = [
        {"type": "source", "record": {"id": source, "kind": "news_article", "title": "T", "text": text}},
        *(
            {
                "type": "organisation",
                "record": {"id": o, "name": f"Group {o[:4]}", "kind": "armed_group", "citations": cited},
            }
            for o in (org_a, org_b)
        ),
        {  # everything filled in, nested lists of several items, unicode, negative coordinates
            "type": "incident",
            "record": {
                "title": "Checkpoint attacked — «Ürümqi»",
                "summary": 'Quotes " and \\ survive',
                "type": "battle",
                "subtype": "ambush",
                "occurred": {"start": "2024-02-01", "end": "2024-02-03", "precision": "week"},
                "location": {
                    "country": "PK",
                    "admin1": "Sindh",
                    "admin2": "Karachi",
                    "place": "Gate 4",
                    "lat": -0.1234567890123,
                    "lon": 179.999999,
                    "precision": "exact",
                },
                "participants": [
                    {"organisation_id": org_b, "role": "perpetrator"},
                    {"organisation_id": org_a, "role": "target"},
                    {"organisation_id": str(seeded_org["id"]), "role": "claimed_by"},
                ],
                "casualties": {
                    "killed": {"low": 2, "best": 3, "high": 4},
                    "injured": {"best": 1},
                    "breakdown": [
                        {"group": "security_forces", "killed": {"best": 2}},
                        {"group": "civilians", "killed": {"best": 1}, "injured": {"low": 1}},
                    ],
                },
                "external_ids": {"b": "2", "a": "1"},
                "citations": [
                    {"source_id": source, "quote": "two soldiers"},
                    {"source_id": source, "quote": "Gunmen attacked the checkpoint"},
                ],
            },
        },
        {  # the bare minimum: empty lists and absent estimates
            "type": "incident",
            "record": {
                "title": "Protest",
                "type": "protest",
                "occurred": {"start": "2024-03-01", "end": "2024-03-01", "precision": "day"},
                "location": {"country": "PK", "precision": "country"},
                "citations": cited,
            },
        },
        {  # kept stamps, given in another time zone; an organisation defined further down
            "type": "incident",
            "record": {
                "title": "Later",
                "type": "riot",
                "version": 3,
                "created_at": "2024-03-01T10:00:00.5+05:00",
                "updated_at": "2024-03-02T00:00:00Z",
                "occurred": {"start": "2024-03-01", "end": "2024-03-01", "precision": "day"},
                "location": {"country": "PK", "lat": 31, "lon": 74, "precision": "near"},
                "participants": [{"organisation_id": late_org, "role": "perpetrator"}],
                "citations": cited,
            },
        },
        {
            "type": "organisation",
            "record": {"id": late_org, "name": "Named later", "kind": "armed_group", "citations": cited},
        },
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    result = await ndjson.import_lines(conn, chunks(), actor="test")
    assert result.created["incident"] == 3
    rows = await conn.fetch(
        "SELECT r.record_id, r.data AS stored, i.doc FROM revisions r"
        " JOIN incidents i ON i.id = r.record_id AND i.version = r.version"
        " WHERE r.record_type = 'incident' AND r.actor = 'test' ORDER BY r.seq"
    )
    assert len(rows) == 3
    async with conn.transaction():
        rendered = await documents.render(conn, "incident", [r["record_id"] for r in rows])
    for row in rows:
        assert row["stored"] == row["doc"] == rendered[row["record_id"]]
    stored = [json.loads(r["stored"]) for r in rows]
    assert stored[0]["participants"][2]["name"] == seeded_org["name"]
    assert stored[2]["participants"][0]["name"] == "Named later"
    assert (stored[2]["created_at"], stored[2]["updated_at"]) == (
        "2024-03-01T05:00:00.500000Z",
        "2024-03-02T00:00:00Z",
    )


async def test_change_feed_seq_cannot_be_supplied(conn: asyncpg.Connection) -> None:
    record_id, data = await conn.fetchrow("SELECT record_id, data::text FROM revisions LIMIT 1")
    with pytest.raises(asyncpg.PostgresError) as raised:
        await conn.execute(
            "INSERT INTO revisions (seq, record_type, record_id, version, operation, data, actor)"
            " VALUES (1, 'source', $1, 1000, 'update', $2::json, 'test')",
            record_id,
            data,
        )
    assert raised.value.sqlstate == "428C9"  # generated_always


async def test_revisions_of_one_statement_take_consecutive_seqs_in_order(conn: asyncpg.Connection) -> None:
    before = await conn.fetchval("SELECT max(seq) FROM revisions")
    seqs = await conn.fetch(
        "INSERT INTO revisions (record_type, record_id, version, operation, data, actor)"
        " SELECT record_type, record_id, version + 1000, 'update', data, 'test' FROM revisions"
        " ORDER BY seq RETURNING seq"
    )
    values = [r["seq"] for r in seqs]
    assert values == sorted(values) and values[0] > before


async def test_a_bad_quote_among_many_rows_fails_the_statement(conn: asyncpg.Connection) -> None:
    source_id, incident_id, quote = await conn.fetchrow(
        "SELECT c.source_id, c.incident_id, c.quote FROM citations c"
        " JOIN sources s ON s.id = c.source_id AND s.text IS NOT NULL WHERE c.incident_id IS NOT NULL LIMIT 1"
    )
    insert = (
        "INSERT INTO citations (source_id, quote, ordinal, incident_id)"
        " SELECT $1, q, 100 + k, $2 FROM unnest($3::text[]) WITH ORDINALITY AS t(q, k)"
    )
    with pytest.raises(asyncpg.CheckViolationError) as raised:
        await conn.execute(insert, source_id, incident_id, [quote, "never printed anywhere", quote])
    assert raised.value.constraint_name == "citation_quote_in_source"
    await conn.execute(insert, source_id, incident_id, [quote, quote])  # all good: accepted

    citation_id = await conn.fetchval(
        "SELECT id FROM citations WHERE incident_id = $1 AND ordinal = 101", incident_id
    )
    with pytest.raises(asyncpg.CheckViolationError) as raised:
        await conn.execute("UPDATE citations SET quote = 'never printed anywhere' WHERE id = $1", citation_id)
    assert raised.value.constraint_name == "citation_quote_in_source"
    await conn.execute("UPDATE citations SET ordinal = 120 WHERE id = $1", citation_id)


async def _seq_after_insert(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        seq: int = await conn.fetchval(
            "INSERT INTO revisions (record_type, record_id, version, operation, data, actor)"
            " SELECT record_type, record_id, version + 5000, 'update', data, 'test' FROM revisions"
            " ORDER BY seq DESC LIMIT 1 RETURNING seq"
        )
        return seq
    finally:
        await conn.close()


async def test_downgrade_to_0003_and_back_keeps_the_sequence_going(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        top = await conn.fetchval("SELECT max(seq) FROM revisions")
    finally:
        await conn.close()
    await asyncio.to_thread(db.downgrade, database_url, "0003")
    after_downgrade = await _seq_after_insert(database_url)
    assert after_downgrade > top
    await asyncio.to_thread(db.upgrade, database_url)
    assert await _seq_after_insert(database_url) > after_downgrade
