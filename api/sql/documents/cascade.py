"""Documents that embed another record: re-rendered, as new versions, when what they embed changes.

Incidents (participants), statements (issuer, addressee, mentioned organisations) and
organisations (relationships) embed organisations' names. When a write changes an
organisation's name, :func:`rerender` moves every live record that embeds it to its next version
with a fresh document, in the writer's transaction; :func:`record_revisions` then gives each one
a revision whose ``cause`` names the organisation and its new version (and so one change-feed
entry each). Deleting an organisation that live records still embed is refused instead
(:func:`referrers`): their documents would keep showing a record that no longer exists.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
import msgspec

from secevents.schemas.records import Operation, RecordType
from secevents.server.sql import documents

# Live records embedding organisation `$1`, by type, in the order their revisions are written.
EMBEDDERS: dict[RecordType, str] = {
    "organisation": """
SELECT DISTINCT r.organisation_id AS id FROM organisation_relationships r
  JOIN organisations o ON o.id = r.organisation_id
 WHERE r.related_organisation_id = $1 AND o.deleted_at IS NULL AND o.id <> $1 ORDER BY 1""",
    "incident": """
SELECT DISTINCT p.incident_id AS id FROM incident_participants p JOIN incidents i ON i.id = p.incident_id
 WHERE p.organisation_id = $1 AND i.deleted_at IS NULL ORDER BY 1""",
    "statement": """
SELECT DISTINCT x.statement_id AS id FROM statement_organisations x JOIN statements s ON s.id = x.statement_id
 WHERE x.organisation_id = $1 AND s.deleted_at IS NULL ORDER BY 1""",
}

Cascade = list[tuple[RecordType, list[UUID]]]

_Named = msgspec.json.Decoder(dict[str, object])


def _name(document: bytes) -> object:
    return _Named.decode(document).get("name")


async def referrers(conn: asyncpg.Connection, record_type: RecordType, record_id: UUID) -> Cascade:
    """The live records whose documents embed ``record_id`` (only organisations are embedded)."""
    if record_type != "organisation":
        return []
    found: Cascade = []
    for embedder, sql in EMBEDDERS.items():
        ids = [r["id"] for r in await conn.fetch(sql, record_id)]
        if ids:
            found.append((embedder, ids))
    return found


async def rerender(
    conn: asyncpg.Connection, record_type: RecordType, record_id: UUID, before: bytes | None, after: bytes
) -> Cascade:
    """After a write of ``record_id`` (documents ``before`` → ``after``, the record locked): move
    the records that embed what changed to their next version and store their new documents.
    Returns them, for :func:`record_revisions`."""
    if record_type != "organisation" or before is None or _name(before) == _name(after):
        return []
    cascade = await referrers(conn, record_type, record_id)
    for embedder, ids in cascade:
        table = documents.RENDERERS[embedder].table
        # Locked in id order (the order every cascade takes them in), then moved on.
        await conn.execute(
            f"""UPDATE {table} t SET version = t.version + 1, updated_at = now()
                  FROM (SELECT id FROM {table} WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE) l
                 WHERE t.id = l.id""",
            ids,
        )
        await documents.store(conn, embedder, ids)
    return cascade


async def record_revisions(
    conn: asyncpg.Connection,
    cascade: Cascade,
    *,
    cause: dict[str, object],
    actor: str,
    api_key_id: UUID | None,
    operation: Operation = "update",
) -> None:
    """One revision per re-rendered record, its stored document, saying what caused it."""
    for embedder, ids in cascade:
        table = documents.RENDERERS[embedder].table
        await conn.execute(
            f"""INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor, cause)
                SELECT $1, t.id, t.version, $5, t.doc, $3, $4, $6 FROM {table} t
                 WHERE t.id = ANY($2::uuid[]) ORDER BY t.id""",
            embedder,
            ids,
            api_key_id,
            actor,
            operation,
            msgspec.json.encode(cause),
        )
