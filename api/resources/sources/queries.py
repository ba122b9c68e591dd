"""SQL of the sources resource."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from api.resources.records import as_json
from schemas.sources import SourceCreate

LIST = """
SELECT source_doc(s) FROM sources s
 WHERE s.deleted_at IS NULL
 ORDER BY s.id
 LIMIT $1
"""

GET = "SELECT source_doc(s) FROM sources s WHERE s.id = $1 AND s.deleted_at IS NULL"

INSERT = """
INSERT INTO sources (id, kind, title, url, publisher, published_on, retrieved_at, language, text, external_ids)
VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()), $8, $9, $10)
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
    )
