"""SQL shared by every resource: revisions (which are also the change feed) and citations."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import asyncpg
import msgspec

from schemas.common import Citation

RecordType = Literal["incident", "organisation", "statement", "source"]
Operation = Literal["create", "update", "delete"]

# Each record type's table and document function (migrations/versions/0001).
TABLES: dict[RecordType, tuple[str, str]] = {
    "incident": ("incidents", "incident_doc"),
    "organisation": ("organisations", "organisation_doc"),
    "statement": ("statements", "statement_doc"),
    "source": ("sources", "source_doc"),
}


def as_json(value: object) -> bytes:
    """Encode a parameter for a ``jsonb`` placeholder."""
    return msgspec.json.encode(value)


async def record_revision(
    conn: asyncpg.Connection,
    record_type: RecordType,
    record_id: UUID,
    operation: Operation,
    *,
    actor: str,
    api_key_id: UUID | None = None,
) -> bytes:
    """Store the record's current version as a revision (and change-feed entry); return its
    document. Must be the last statement of the write's transaction: it takes the change-feed
    lock (see the ``revisions`` table), held until commit."""
    table, doc = TABLES[record_type]
    data: bytes = await conn.fetchval(
        f"""
        INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
        SELECT $1, r.id, r.version, $3, {doc}(r), $4, $5 FROM {table} r WHERE r.id = $2
        RETURNING data
        """,
        record_type,
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
