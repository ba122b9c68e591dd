"""Records' documents, rendered once when a record is written and stored with it.

A document is the record as the API serves it: the ``schemas/`` Struct of its type (``Incident``,
``Organisation``, ``Statement``, ``Source``) encoded by msgspec. :func:`store` renders the
documents of some records from their rows and writes them to the records' ``doc`` column; reads,
exports, revisions and the change feed serve those bytes as they are.

Documents embed the names of the organisations they point at (participants, relationships, a
statement's organisations). Rendering locks those organisations (``FOR SHARE``) before reading
their names, so it waits for a transaction that is renaming one of them and then reads the new
name; the renaming transaction, once it has its lock, re-renders every document that embeds the
name (:mod:`secevents.server.sql.documents.cascade`). Either way no document keeps a stale name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from secevents.schemas.incidents import Incident
from secevents.schemas.organisations import Organisation
from secevents.schemas.records import RecordType
from secevents.schemas.sources import Source
from secevents.schemas.statements import Statement
from secevents.server.http.errors import UnprocessableEntity
from secevents.server.sql.documents import incidents, organisations, sources, statements

# Records rendered per query: bounds the memory of a bulk render (imports, cascades) and how long
# rendering holds the event loop between two awaits (about 20 ms for 1,000 incidents).
CHUNK = 1000

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Renderer:
    table: str
    rows: str
    """SQL: the rows :attr:`build` reads, for the ids in ``$1``."""
    build: Callable[[asyncpg.Record], msgspec.Struct]
    struct: type[msgspec.Struct]
    embedded: str | None
    """SQL: the organisations whose names the documents of ``$1`` embed."""


RENDERERS: dict[RecordType, Renderer] = {
    "incident": Renderer(
        "incidents", incidents.ROWS, incidents.build, Incident, incidents.EMBEDDED_ORGANISATIONS
    ),
    "organisation": Renderer(
        "organisations",
        organisations.ROWS,
        organisations.build,
        Organisation,
        organisations.EMBEDDED_ORGANISATIONS,
    ),
    "statement": Renderer(
        "statements",
        statements.ROWS,
        statements.build,
        Statement,
        statements.EMBEDDED_ORGANISATIONS,
    ),
    "source": Renderer("sources", sources.ROWS, sources.build, Source, None),
}


class EmbeddedOrganisationDeleted(UnprocessableEntity):
    code, title = "invalid_reference", "The body refers to something that does not exist or does not match"


def _lock_sql(embedded: str) -> str:
    # In id order: two renderers locking overlapping sets never wait for each other in a cycle.
    return f"""
SELECT id, deleted_at IS NOT NULL AS deleted FROM organisations
 WHERE id IN ({embedded}) ORDER BY id FOR SHARE"""


async def lock_embedded(conn: asyncpg.Connection, record_type: RecordType, ids: Sequence[UUID]) -> None:
    """Lock (``FOR SHARE``) the organisations the documents of ``ids`` embed; 422 when one of
    them was deleted."""
    embedded = RENDERERS[record_type].embedded
    if embedded is None:
        return
    deleted = [r["id"] for r in await conn.fetch(_lock_sql(embedded), list(ids)) if r["deleted"]]
    if deleted:
        raise EmbeddedOrganisationDeleted(
            f"organisation(s) {', '.join(map(str, deleted))} were deleted: refer to live ones"
        )


async def render(conn: asyncpg.Connection, record_type: RecordType, ids: Sequence[UUID]) -> dict[UUID, bytes]:
    """The documents of the records ``ids`` as they now are (inside the writing transaction)."""
    renderer = RENDERERS[record_type]
    out: dict[UUID, bytes] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        await lock_embedded(conn, record_type, chunk)
        for row in await conn.fetch(renderer.rows, chunk):
            out[row["id"]] = _encode(renderer.build(row))
    return out


async def store(conn: asyncpg.Connection, record_type: RecordType, ids: Sequence[UUID]) -> dict[UUID, bytes]:
    """Render the documents of ``ids`` and store them in their records' ``doc``; return them."""
    documents = await render(conn, record_type, ids)
    table = RENDERERS[record_type].table
    items = list(documents.items())
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        await conn.execute(
            f"UPDATE {table} t SET doc = d.doc FROM unnest($1::uuid[], $2::json[]) AS d(id, doc) WHERE t.id = d.id",
            [i for i, _ in chunk],
            [d for _, d in chunk],
        )
    return documents


def decode(record_type: RecordType, document: bytes) -> Any:
    """A stored document as its Struct (to compare two versions' content)."""
    return msgspec.json.decode(document, type=RENDERERS[record_type].struct)


def same_content(record_type: RecordType, before: bytes, after: bytes) -> bool:
    """Whether two documents of one record say the same, apart from ``version`` and ``updated_at``."""
    old, new = decode(record_type, before), decode(record_type, after)
    return bool(msgspec.structs.replace(new, version=old.version, updated_at=old.updated_at) == old)
