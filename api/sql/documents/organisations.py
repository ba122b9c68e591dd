"""Organisations' documents: the record, its aliases, its relationships (with the related
organisation's name and the relationship's citations) and its citations."""

from __future__ import annotations

import asyncpg

from secevents.schemas.organisations import Organisation, Relationship
from secevents.server.sql.documents.shape import citations, external_ids

ROWS = """
SELECT o.id, o.version, o.name, o.kind, o.country::text AS country, o.status, o.description,
       o.external_ids, o.created_at, o.updated_at,
       ARRAY(SELECT a.alias FROM organisation_aliases a WHERE a.organisation_id = o.id ORDER BY a.ordinal)
         AS aliases,
       ARRAY(SELECT ROW(r.type, r.related_organisation_id, ro.name, r.since, r.until,
                        ARRAY(SELECT ROW(c.source_id, c.quote) FROM citations c
                               WHERE c.relationship_id = r.id ORDER BY c.ordinal))
               FROM organisation_relationships r JOIN organisations ro ON ro.id = r.related_organisation_id
              WHERE r.organisation_id = o.id ORDER BY r.ordinal) AS relationships,
       ARRAY(SELECT ROW(c.source_id, c.quote)
               FROM citations c WHERE c.organisation_id = o.id ORDER BY c.ordinal) AS citations
  FROM organisations o WHERE o.id = ANY($1::uuid[])
"""

EMBEDDED_ORGANISATIONS = (
    "SELECT related_organisation_id FROM organisation_relationships WHERE organisation_id = ANY($1::uuid[])"
)


def build(r: asyncpg.Record) -> Organisation:
    return Organisation(
        id=r["id"],
        version=r["version"],
        name=r["name"],
        aliases=list(r["aliases"]),
        kind=r["kind"],
        country=r["country"],
        status=r["status"],
        description=r["description"],
        relationships=[
            Relationship(
                type=x[0], organisation_id=x[1], name=x[2], since=x[3], until=x[4], citations=citations(x[5])
            )
            for x in r["relationships"]
        ],
        external_ids=external_ids(r["external_ids"]),
        citations=citations(r["citations"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )
