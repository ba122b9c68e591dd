"""Revisions of many incidents at once: rendered set-based in SQL, or in Python.

``incident_doc(i)`` (migrations/versions/0001) runs four correlated subqueries per incident: for
a bulk import that is most of the time spent. :func:`incident_revisions_sql` renders the same
documents — byte for byte: the same ``json_build_object``/``json_agg`` calls over the same
columns, in the same order — with one grouped aggregate per nested list over the whole set.

Even set-based, building JSON in PostgreSQL costs about 40 µs per incident, on the database's
single core; an NDJSON import already holds each incident as a validated Struct, so
:class:`IncidentDocuments` renders its document in Python (about 3 µs) while it parses, and the
database only stores it. Those documents are equal as JSON to ``incident_doc`` (same keys and
values; timestamps written as PostgreSQL writes them), not byte for byte: the change feed embeds
them verbatim. tests/test_import_ndjson.py checks both renderings against ``incident_doc``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from secevents.schemas.common import Estimate
from secevents.schemas.imports import IncidentImport

# Grouped aggregates over the incidents in `picked`; each `doc` is NULL when the list is empty.
# MATERIALIZED: each is computed once even when a low row estimate for `picked` would make it
# the inner side of a nested loop (re-aggregated per incident).
_NESTED_LISTS = """
participant_docs AS MATERIALIZED (
  SELECT p.incident_id,
         json_agg(json_build_object('organisation_id', p.organisation_id, 'name', o.name, 'role', p.role)
                  ORDER BY p.ordinal) AS doc
    FROM picked k
    JOIN incident_participants p ON p.incident_id = k.id
    JOIN organisations o ON o.id = p.organisation_id
   GROUP BY p.incident_id
), breakdown_docs AS MATERIALIZED (
  SELECT b.incident_id,
         json_agg(json_build_object(
                    'group', b."group",
                    'killed', estimate_json(b.killed_low, b.killed_best, b.killed_high),
                    'injured', estimate_json(b.injured_low, b.injured_best, b.injured_high))
                  ORDER BY b.ordinal) AS doc
    FROM picked k
    JOIN incident_casualties b ON b.incident_id = k.id
   GROUP BY b.incident_id
), citation_docs AS MATERIALIZED (
  SELECT c.incident_id,
         json_agg(json_build_object('source_id', c.source_id, 'quote', c.quote) ORDER BY c.ordinal) AS doc
    FROM picked k
    JOIN citations c ON c.incident_id = k.id
   GROUP BY c.incident_id
)"""

_INCIDENT_DOC = """json_build_object(
  'id', i.id, 'version', i.version, 'title', i.title, 'summary', i.summary,
  'type', i.type, 'subtype', i.subtype,
  'occurred', json_build_object('start', i.occurred_start, 'end', i.occurred_end,
                                'precision', i.occurred_precision),
  'location', json_build_object('country', i.country, 'admin1', i.admin1, 'admin2', i.admin2,
                                'place', i.place, 'lat', i.lat, 'lon', i.lon,
                                'precision', i.location_precision),
  'participants', coalesce(pd.doc, '[]'::json),
  'casualties', json_build_object(
    'killed', estimate_json(i.killed_low, i.killed_best, i.killed_high),
    'injured', estimate_json(i.injured_low, i.injured_best, i.injured_high),
    'breakdown', coalesce(bd.doc, '[]'::json)),
  'external_ids', i.external_ids,
  'citations', coalesce(cd.doc, '[]'::json),
  'created_at', i.created_at, 'updated_at', i.updated_at)"""


def incident_documents_sql(picked: str) -> str:
    """``SELECT ord, operation, id, version, doc`` for the incidents chosen by ``picked``: a query
    with columns ``id`` (an incident id, each at most once), ``ord`` (ordering) and
    ``operation``."""
    return f"""
WITH picked AS MATERIALIZED ({picked}),
{_NESTED_LISTS}
SELECT k.ord, k.operation, i.id, i.version, {_INCIDENT_DOC} AS doc
  FROM picked k
  JOIN incidents i ON i.id = k.id
  LEFT JOIN participant_docs pd ON pd.incident_id = k.id
  LEFT JOIN breakdown_docs bd ON bd.incident_id = k.id
  LEFT JOIN citation_docs cd ON cd.incident_id = k.id"""


def incident_revisions_sql(picked: str, *, actor: str, api_key_id: str = "NULL") -> str:
    """``INSERT INTO revisions`` one revision per incident of ``picked`` (see
    :func:`incident_documents_sql`), in ``ord`` order; ``actor`` and ``api_key_id`` are SQL
    expressions (placeholders such as ``$1``)."""
    return f"""
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT 'incident', d.id, d.version, d.operation, d.doc, {api_key_id}, {actor}
  FROM ({incident_documents_sql(picked)}) d
 ORDER BY d.ord"""


def pg_timestamp(value: dt.datetime) -> str:
    """A ``timestamptz`` as PostgreSQL writes it in JSON in a UTC session:
    ``2026-11-25T01:45:00.12+00:00`` (trailing zeros of the fraction dropped, no fraction when
    it is zero). A naive value is taken to be UTC, as PostgreSQL does in a UTC session."""
    utc = value.astimezone(dt.UTC) if value.tzinfo is not None else value
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def _estimate(e: Estimate | None) -> dict[str, int | None] | None:
    if e is None or (e.low is None and e.best is None and e.high is None):
        return None  # estimate_json(): no bound known is null, not an empty estimate
    return {"low": e.low, "best": e.best, "high": e.high}


class IncidentDocuments:
    """Renders the ``incident_doc`` of incidents being imported, in Python.

    A document names each participant's organisation: names come from the organisations of the
    same import (:meth:`add_name`) and, batch by batch, from the database (:meth:`resolve`). An
    incident whose organisation is not known yet (it comes later in the file, or does not exist:
    the import's checks report that) gets no document here; SQL renders it at the end.
    """

    def __init__(self, now: dt.datetime) -> None:
        self.now = pg_timestamp(now)
        self._names: dict[UUID, str] = {}
        self._looked_up: set[UUID] = set()
        self._encode = msgspec.json.Encoder().encode

    def add_name(self, organisation_id: UUID, name: str) -> None:
        self._names[organisation_id] = name

    async def resolve(self, conn: asyncpg.Connection, incidents: Iterable[IncidentImport]) -> None:
        """Look up, in one query, the organisations of ``incidents`` not named yet."""
        wanted = {
            p.organisation_id
            for r in incidents
            for p in r.participants
            if p.organisation_id not in self._names and p.organisation_id not in self._looked_up
        }
        if not wanted:
            return
        self._looked_up |= wanted
        rows = await conn.fetch("SELECT id, name FROM organisations WHERE id = ANY($1::uuid[])", list(wanted))
        for row in rows:
            self._names[row["id"]] = row["name"]

    def render(self, r: IncidentImport) -> bytes | None:
        """The document of ``r`` as created by the import, or None when a name is missing."""
        participants: list[dict[str, Any]] = []
        for p in r.participants:
            name = self._names.get(p.organisation_id)
            if name is None:
                return None
            participants.append({"organisation_id": p.organisation_id, "name": name, "role": p.role})
        created = pg_timestamp(r.created_at) if r.created_at is not None else self.now
        updated = pg_timestamp(r.updated_at) if r.updated_at is not None else created
        loc, cas = r.location, r.casualties
        return self._encode(
            {
                "id": r.id,
                "version": r.version or 1,
                "title": r.title,
                "summary": r.summary,
                "type": r.type,
                "subtype": r.subtype,
                "occurred": {
                    "start": r.occurred.start,
                    "end": r.occurred.end,
                    "precision": r.occurred.precision,
                },
                "location": {
                    "country": loc.country,
                    "admin1": loc.admin1,
                    "admin2": loc.admin2,
                    "place": loc.place,
                    "lat": loc.lat,
                    "lon": loc.lon,
                    "precision": loc.precision,
                },
                "participants": participants,
                "casualties": {
                    "killed": _estimate(cas.killed),
                    "injured": _estimate(cas.injured),
                    "breakdown": [
                        {"group": g.group, "killed": _estimate(g.killed), "injured": _estimate(g.injured)}
                        for g in cas.breakdown
                    ],
                },
                "external_ids": r.external_ids,
                "citations": [{"source_id": c.source_id, "quote": c.quote} for c in r.citations],
                "created_at": created,
                "updated_at": updated,
            }
        )
