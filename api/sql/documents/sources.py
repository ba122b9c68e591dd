"""Sources' documents: the record's own columns only (a source embeds nothing of another record)."""

from __future__ import annotations

import asyncpg
from msgspec import UNSET

from secevents.schemas.sources import Source
from secevents.server.sql.documents.shape import external_ids

# `$1`: the ids to render.
ROWS = """
SELECT s.id, s.version, s.kind, s.title, s.url, s.publisher, s.published_on, s.retrieved_at,
       s.language, s.text, s.sha256, s.external_ids, s.licence, s.attribution, s.created_at, s.updated_at
  FROM sources s WHERE s.id = ANY($1::uuid[])
"""

EMBEDDED_ORGANISATIONS = None


def build(r: asyncpg.Record) -> Source:
    return Source(
        id=r["id"],
        version=r["version"],
        kind=r["kind"],
        title=r["title"],
        url=r["url"],
        publisher=r["publisher"],
        published_on=r["published_on"],
        retrieved_at=r["retrieved_at"],
        language=r["language"],
        text=r["text"],
        sha256=r["sha256"],
        external_ids=external_ids(r["external_ids"]),
        licence=r["licence"] if r["licence"] is not None else UNSET,
        attribution=r["attribution"] if r["attribution"] is not None else UNSET,
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )
