"""Incidents' documents: the record, its participants (with each organisation's name), its
casualty breakdown and its citations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg

from secevents.schemas.common import Citation, DateSpan, Estimate
from secevents.schemas.imports import IncidentImport
from secevents.schemas.incidents import Casualties, CasualtyBreakdown, Incident, Location, Participant
from secevents.server.sql.documents.shape import citations, estimate, external_ids

# `$1`: the ids to render. Nested lists come as arrays of rows, in their order.
ROWS = """
SELECT i.id, i.version, i.title, i.summary, i.type, i.subtype,
       i.occurred_start, i.occurred_end, i.occurred_precision,
       i.country::text AS country, i.admin1, i.admin2, i.place, i.lat, i.lon, i.location_precision,
       i.killed_low, i.killed_best, i.killed_high, i.injured_low, i.injured_best, i.injured_high,
       i.external_ids, i.created_at, i.updated_at,
       ARRAY(SELECT ROW(p.organisation_id, o.name, p.role)
               FROM incident_participants p JOIN organisations o ON o.id = p.organisation_id
              WHERE p.incident_id = i.id ORDER BY p.ordinal) AS participants,
       ARRAY(SELECT ROW(b."group", b.killed_low, b.killed_best, b.killed_high,
                        b.injured_low, b.injured_best, b.injured_high)
               FROM incident_casualties b WHERE b.incident_id = i.id ORDER BY b.ordinal) AS breakdown,
       ARRAY(SELECT ROW(c.source_id, c.quote)
               FROM citations c WHERE c.incident_id = i.id ORDER BY c.ordinal) AS citations
  FROM incidents i WHERE i.id = ANY($1::uuid[])
"""

# The organisations whose names the documents of `$1` embed.
EMBEDDED_ORGANISATIONS = (
    "SELECT organisation_id FROM incident_participants WHERE incident_id = ANY($1::uuid[])"
)


def build(r: asyncpg.Record | Mapping[str, Any]) -> Incident:
    return Incident(
        id=r["id"],
        version=r["version"],
        title=r["title"],
        summary=r["summary"],
        type=r["type"],
        subtype=r["subtype"],
        occurred=DateSpan(
            start=r["occurred_start"], end=r["occurred_end"], precision=r["occurred_precision"]
        ),
        location=Location(
            country=r["country"],
            admin1=r["admin1"],
            admin2=r["admin2"],
            place=r["place"],
            lat=r["lat"],
            lon=r["lon"],
            precision=r["location_precision"],
        ),
        participants=[Participant(organisation_id=p[0], name=p[1], role=p[2]) for p in r["participants"]],
        casualties=Casualties(
            killed=estimate(r["killed_low"], r["killed_best"], r["killed_high"]),
            injured=estimate(r["injured_low"], r["injured_best"], r["injured_high"]),
            breakdown=[
                CasualtyBreakdown(
                    group=b[0], killed=estimate(b[1], b[2], b[3]), injured=estimate(b[4], b[5], b[6])
                )
                for b in r["breakdown"]
            ],
        ),
        external_ids=external_ids(r["external_ids"]),
        citations=citations(r["citations"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def utc(value: dt.datetime) -> dt.datetime:
    """A ``timestamptz`` as PostgreSQL reads it in a UTC session (a naive value is UTC)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def from_import(r: IncidentImport, names: Mapping[UUID, str], now: dt.datetime) -> Incident | None:
    """The document an import of ``r`` stores (``now``: the import's transaction time), the same
    one :func:`build` renders from the rows written; None when an organisation's name is not in
    ``names``."""
    participants: list[Participant] = []
    for p in r.participants:
        name = names.get(p.organisation_id)
        if name is None:
            return None
        participants.append(Participant(organisation_id=p.organisation_id, name=name, role=p.role))
    created = utc(r.created_at) if r.created_at is not None else now
    loc, cas = r.location, r.casualties

    def est(e: Estimate | None) -> Estimate | None:
        return None if e is None else estimate(e.low, e.best, e.high)

    return Incident(
        id=r.id,  # type: ignore[arg-type]  # given or assigned before staging
        version=r.version or 1,
        title=r.title,
        summary=r.summary,
        type=r.type,
        subtype=r.subtype,
        occurred=DateSpan(start=r.occurred.start, end=r.occurred.end, precision=r.occurred.precision),
        location=Location(
            country=loc.country,
            admin1=loc.admin1,
            admin2=loc.admin2,
            place=loc.place,
            lat=loc.lat,
            lon=loc.lon,
            precision=loc.precision,
        ),
        participants=participants,
        casualties=Casualties(
            killed=est(cas.killed),
            injured=est(cas.injured),
            breakdown=[
                CasualtyBreakdown(group=g.group, killed=est(g.killed), injured=est(g.injured))
                for g in cas.breakdown
            ],
        ),
        external_ids=dict(sorted(r.external_ids.items())),
        citations=[Citation(source_id=c.source_id, quote=c.quote) for c in r.citations],
        created_at=created,
        updated_at=utc(r.updated_at) if r.updated_at is not None else created,
    )
