"""SQL of the sources resource."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from uuid import UUID

import asyncpg

from secevents.schemas.problems import FieldError
from secevents.schemas.sources import SourceCreate, SourcePatch
from secevents.server.http.errors import UnprocessableEntity
from secevents.server.reads.filters import SqlBuilder
from secevents.server.reads.listing import page_sql
from secevents.server.reads.pagination import SortOrder, sort_orders
from secevents.server.resources.sources.filters import SourceFilters
from secevents.server.sql import patching
from secevents.server.sql.records import RecordTable, as_json
from secevents.server.writes.flows import WriteModel

# --- reads -------------------------------------------------------------------------------

# Ids are time-ordered (UUIDv7), so id order is creation order.
SORTS = sort_orders(
    SortOrder("-created", ("s.id",), (UUID,), descending=True),
    SortOrder("created", ("s.id",), (UUID,), descending=False),
    SortOrder("-updated", ("s.updated_at", "s.id"), (dt.datetime, UUID), descending=True),
    SortOrder("updated", ("s.updated_at", "s.id"), (dt.datetime, UUID), descending=False),
)
SourceSort = Literal["-created", "created", "-updated", "updated"]

READ = "SELECT s.doc, s.version FROM sources s WHERE s.id = $1 AND s.deleted_at IS NULL"


def list_query(
    filters: SourceFilters, sort: SortOrder, after: tuple[Any, ...] | None, limit: int
) -> tuple[str, list[Any]]:
    sql = SqlBuilder()
    filters.apply(sql)
    return page_sql("sources", "s", sql, sort, after, limit), sql.args


# --- writes ------------------------------------------------------------------------------

INSERT = """
INSERT INTO sources (id, kind, title, url, publisher, published_on, retrieved_at, language, text, external_ids,
                     licence, attribution)
VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()), $8, $9, $10, $11, $12)
"""


async def insert(conn: asyncpg.Connection, record_id: UUID, data: SourceCreate) -> None:
    await conn.execute(
        INSERT,
        record_id,
        data.kind,
        data.title,
        data.url,
        data.publisher,
        data.published_on,
        data.retrieved_at,
        data.language,
        data.text,
        as_json(data.external_ids),
        data.licence,
        data.attribution,
    )


# --- writes (PATCH) ---------------------------------------------------------------------------

# After the text changed: the citations whose quote it no longer contains (the trigger on
# citations only checks quotes when a citation is written).
QUOTES_LOST = """
SELECT count(*) FROM citations c JOIN sources s ON s.id = c.source_id
 WHERE s.id = $1 AND s.text IS NOT NULL AND strpos(s.text, c.quote) = 0
"""


class QuotesNoLongerInText(UnprocessableEntity):
    code, title = "quotes_not_in_text", "Citations would no longer be found in the source text"


async def update(conn: asyncpg.Connection, record_id: UUID, data: SourcePatch) -> None:
    """Apply a partial update. A new ``text`` must still contain every quote that cites it."""
    columns: dict[str, Any] = {}
    patching.plain(
        columns,
        data,
        "kind",
        "title",
        "url",
        "publisher",
        "published_on",
        "retrieved_at",
        "language",
        "text",
        "licence",
        "attribution",
    )
    patching.external_ids(columns, data)
    await patching.update_row(conn, "sources", record_id, columns)
    if patching.is_set(data.text):
        lost = await conn.fetchval(QUOTES_LOST, record_id)
        if lost:
            raise QuotesNoLongerInText(
                f"{lost} citation(s) quote this source and their quotes are not in the new text.",
                errors=[FieldError(field="text", message=f"{lost} cited quote(s) are not in the new text")],
            )


RECORD = RecordTable("source", "sources", "s")
WRITES: WriteModel[SourceCreate, SourcePatch] = WriteModel(RECORD, "/v1/sources", insert, update)
