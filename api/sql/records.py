"""SQL shared by every resource: revisions (which are also the change feed) and citations."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg
import msgspec

from secevents.schemas.common import Citation
from secevents.schemas.records import Operation, RecordType
from secevents.server.sql import documents


@dataclass(frozen=True, slots=True)
class RecordTable:
    """Where a record type lives: its table and the alias its queries give the table. Its
    stored document is the table's ``doc`` column (:mod:`secevents.server.sql.documents`)."""

    record_type: RecordType
    table: str
    alias: str


def as_json(value: object) -> bytes:
    """Encode a parameter for a ``jsonb`` placeholder."""
    return msgspec.json.encode(value)


async def record_revision(
    conn: asyncpg.Connection,
    record: RecordTable,
    record_id: UUID,
    operation: Operation,
    *,
    actor: str,
    api_key_id: UUID | None = None,
    stored: bool = False,
) -> bytes:
    """Store the record's document (unless ``stored``: already done) and record its current
    version as a revision (and change-feed entry) holding that document; return it. Call it
    after the write has locked the record's row (an UPDATE does) or created it: a second writer
    of the record then draws its seq after this one committed, which is what keeps the change
    feed in commit order per record (``secevents.server.changes.feed``)."""
    if not stored:
        await documents.store(conn, record.record_type, [record_id])
    data: bytes = await conn.fetchval(
        f"""
        INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
        SELECT $1, r.id, r.version, $3, r.doc, $4, $5 FROM {record.table} r WHERE r.id = $2
        RETURNING data
        """,
        record.record_type,
        record_id,
        operation,
        api_key_id,
        actor,
    )
    return data


def citation_rows(citations: list[Citation]) -> bytes:
    return as_json([{"source_id": c.source_id, "quote": c.quote} for c in citations])


# Inserts the citations in the jsonb array parameter `$n` for the owner column given.
def insert_citations_sql(owner_column: str, owner_expr: str, param: str) -> str:
    return f"""
        INSERT INTO citations ({owner_column}, ordinal, source_id, quote)
        SELECT {owner_expr}, t.ord, (t.e->>'source_id')::uuid, t.e->>'quote'
          FROM jsonb_array_elements({param}::jsonb) WITH ORDINALITY AS t(e, ord)"""
