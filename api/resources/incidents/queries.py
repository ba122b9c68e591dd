"""SQL of the incidents resource."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from api.resources.records import as_json, citation_rows, insert_citations_sql
from schemas.common import Estimate
from schemas.incidents import IncidentCreate

LIST = """
SELECT incident_doc(i) FROM incidents i
 WHERE i.deleted_at IS NULL
 ORDER BY i.occurred_start DESC, i.id DESC
 LIMIT $1
"""

GET = "SELECT incident_doc(i) FROM incidents i WHERE i.id = $1 AND i.deleted_at IS NULL"


def _estimate(e: Estimate | None) -> tuple[int | None, int | None, int | None]:
    return (None, None, None) if e is None else (e.low, e.best, e.high)


INSERT = f"""
WITH i AS (
  INSERT INTO incidents (id, title, summary, type, subtype, occurred_start, occurred_end, occurred_precision,
                         country, admin1, admin2, place, lat, lon, location_precision,
                         killed_low, killed_best, killed_high, injured_low, injured_best, injured_high,
                         external_ids)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
  RETURNING id
), participants AS (
  INSERT INTO incident_participants (incident_id, ordinal, organisation_id, role)
  SELECT i.id, t.ord, (t.e->>'organisation_id')::uuid, t.e->>'role'
    FROM i, jsonb_array_elements($23::jsonb) WITH ORDINALITY AS t(e, ord)
), breakdown AS (
  INSERT INTO incident_casualties (incident_id, ordinal, "group", killed_low, killed_best, killed_high,
                                   injured_low, injured_best, injured_high)
  SELECT i.id, t.ord, t.e->>'group',
         (t.e->'killed'->>'low')::int, (t.e->'killed'->>'best')::int, (t.e->'killed'->>'high')::int,
         (t.e->'injured'->>'low')::int, (t.e->'injured'->>'best')::int, (t.e->'injured'->>'high')::int
    FROM i, jsonb_array_elements($24::jsonb) WITH ORDINALITY AS t(e, ord)
), cited AS ({insert_citations_sql("incident_id", "(SELECT id FROM i)", "$25")})
SELECT id FROM i
"""


async def insert(conn: asyncpg.Connection, record_id: UUID, data: IncidentCreate) -> None:
    """Insert an incident with its participants, casualty breakdown and citations."""
    loc, cas = data.location, data.casualties
    await conn.execute(
        INSERT,
        record_id,
        data.title,
        data.summary,
        data.type,
        data.subtype,
        data.occurred.start,
        data.occurred.end,
        data.occurred.precision,
        loc.country,
        loc.admin1,
        loc.admin2,
        loc.place,
        loc.lat,
        loc.lon,
        loc.precision,
        *_estimate(cas.killed),
        *_estimate(cas.injured),
        as_json(data.external_ids),
        as_json([{"organisation_id": p.organisation_id, "role": p.role} for p in data.participants]),
        as_json(cas.breakdown),
        citation_rows(list(data.citations)),
    )
