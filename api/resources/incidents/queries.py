"""SQL of the incidents resource."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal
from uuid import UUID

import asyncpg

from secevents.schemas.common import Estimate
from secevents.schemas.incidents import IncidentCreate, IncidentPatch
from secevents.server.reads.filters import SqlBuilder
from secevents.server.reads.listing import page_sql, scoped_page_sql
from secevents.server.reads.pagination import SortOrder, sort_orders
from secevents.server.resources.incidents.filters import IncidentFilters, participation
from secevents.server.sql import patching
from secevents.server.sql.records import RecordTable, as_json, citation_rows, insert_citations_sql
from secevents.server.writes.flows import WriteModel

# --- reads -------------------------------------------------------------------------------

SORTS = sort_orders(
    SortOrder("-occurred", ("i.occurred_start", "i.id"), (dt.date, UUID), descending=True),
    SortOrder("occurred", ("i.occurred_start", "i.id"), (dt.date, UUID), descending=False),
    SortOrder("-updated", ("i.updated_at", "i.id"), (dt.datetime, UUID), descending=True),
    SortOrder("updated", ("i.updated_at", "i.id"), (dt.datetime, UUID), descending=False),
)
IncidentSort = Literal["-occurred", "occurred", "-updated", "updated"]

READ = "SELECT i.doc, i.version FROM incidents i WHERE i.id = $1 AND i.deleted_at IS NULL"


def list_query(
    filters: IncidentFilters, sort: SortOrder, after: tuple[Any, ...] | None, limit: int
) -> tuple[str, list[Any]]:
    sql = SqlBuilder()
    filters.apply(sql)
    return page_sql("incidents", "i", sql, sort, after, limit), sql.args


def organisation_list_query(
    organisation_id: UUID,
    filters: IncidentFilters,
    sort: SortOrder,
    after: tuple[Any, ...] | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """Incidents one organisation took part in (``filters.role``: in that role)."""
    sql = SqlBuilder()
    parent = sql.param(organisation_id)
    replace(filters, role=()).apply(sql)
    sql.where(f"i.id IN ({participation(sql, parent, filters.role)})")
    page = page_sql("incidents", "i", sql, sort, after, limit)
    return scoped_page_sql("organisations", parent, page, sort), sql.args


# group_by key → (output columns and their SQL expressions). `organisation` joins participants.
STATS_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "month": (("month", "to_char(i.occurred_start, 'YYYY-MM')"),),
    "year": (("year", "extract(year FROM i.occurred_start)::int"),),
    "country": (("country", "i.country::text"),),
    "admin1": (("admin1", "i.admin1"),),
    "type": (("type", "i.type"),),
    "organisation": (("organisation_id", "so.id"), ("organisation_name", "so.name")),
}


def stats_query(filters: IncidentFilters, group_by: Sequence[str]) -> tuple[str, list[Any]]:
    """Incident counts and summed casualty estimates per group, rendered as one JSON array."""
    sql = SqlBuilder()
    joins = ""
    if "organisation" in group_by:
        # Each incident counts once per organisation, whatever the number of its roles;
        # `role`, when given, says which participations count.
        role = f"WHERE role = ANY({sql.param(list(filters.role))}::text[])" if filters.role else ""
        joins = f"""
  JOIN (SELECT DISTINCT incident_id, organisation_id FROM incident_participants {role}) sp
    ON sp.incident_id = i.id
  JOIN organisations so ON so.id = sp.organisation_id"""
    filters.apply(sql)
    columns = [column for key in group_by for column in STATS_KEYS[key]]
    select_keys = ", ".join(f"{expr} AS {name}" for name, expr in columns)
    group_keys = ", ".join(expr for name, expr in columns if name != "organisation_name")
    json_keys = ", ".join(f"'{name}', g.{name}" for name, _ in columns)
    order = ", ".join(f"g.{name}" for name, _ in columns)
    estimate = "json_build_object('low', g.{0}_low, 'best', g.{0}_best, 'high', g.{0}_high)"
    return (
        f"""
SELECT coalesce(json_agg(json_build_object({json_keys}, 'incidents', g.incidents,
                                           'killed', {estimate.format("killed")},
                                           'injured', {estimate.format("injured")})
                         ORDER BY {order}), '[]'::json)
  FROM (SELECT {select_keys}, count(*) AS incidents,
               sum(i.killed_low) AS killed_low, sum(i.killed_best) AS killed_best,
               sum(i.killed_high) AS killed_high, sum(i.injured_low) AS injured_low,
               sum(i.injured_best) AS injured_best, sum(i.injured_high) AS injured_high
          FROM incidents i{joins}
         WHERE {sql.where_sql()}
         GROUP BY {group_keys}) g""",
        sql.args,
    )


# --- writes ------------------------------------------------------------------------------


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


# --- writes (PATCH): nested lists are replaced whole ----------------------------------------

REPLACE_PARTICIPANTS = """
INSERT INTO incident_participants (incident_id, ordinal, organisation_id, role)
SELECT $1, t.ord, (t.e->>'organisation_id')::uuid, t.e->>'role'
  FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord)
"""

REPLACE_BREAKDOWN = """
INSERT INTO incident_casualties (incident_id, ordinal, "group", killed_low, killed_best, killed_high,
                                 injured_low, injured_best, injured_high)
SELECT $1, t.ord, t.e->>'group',
       (t.e->'killed'->>'low')::int, (t.e->'killed'->>'best')::int, (t.e->'killed'->>'high')::int,
       (t.e->'injured'->>'low')::int, (t.e->'injured'->>'best')::int, (t.e->'injured'->>'high')::int
  FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord)
"""

REPLACE_CITATIONS = insert_citations_sql("incident_id", "$1::uuid", "$2")


async def update(conn: asyncpg.Connection, record_id: UUID, data: IncidentPatch) -> None:
    """Apply a partial update (an absent field is unchanged; objects and lists are replaced)."""
    columns: dict[str, Any] = {}
    patching.plain(columns, data, "title", "summary", "type", "subtype")
    patching.external_ids(columns, data)
    if patching.is_set(data.occurred):
        patching.span(columns, "occurred", data.occurred)
    if patching.is_set(data.location):
        loc = data.location
        columns.update(
            country=loc.country,
            admin1=loc.admin1,
            admin2=loc.admin2,
            place=loc.place,
            lat=loc.lat,
            lon=loc.lon,
            location_precision=loc.precision,
        )
    if patching.is_set(data.casualties):
        patching.estimate(columns, "killed", data.casualties.killed)
        patching.estimate(columns, "injured", data.casualties.injured)
    await patching.update_row(conn, "incidents", record_id, columns)
    if patching.is_set(data.participants):
        await conn.execute("DELETE FROM incident_participants WHERE incident_id = $1", record_id)
        rows = [{"organisation_id": p.organisation_id, "role": p.role} for p in data.participants]
        await conn.execute(REPLACE_PARTICIPANTS, record_id, as_json(rows))
    if patching.is_set(data.casualties):
        await conn.execute("DELETE FROM incident_casualties WHERE incident_id = $1", record_id)
        await conn.execute(REPLACE_BREAKDOWN, record_id, as_json(data.casualties.breakdown))
    if patching.is_set(data.citations):
        await conn.execute("DELETE FROM citations WHERE incident_id = $1", record_id)
        await conn.execute(REPLACE_CITATIONS, record_id, citation_rows(list(data.citations)))


RECORD = RecordTable("incident", "incidents", "i")
WRITES: WriteModel[IncidentCreate, IncidentPatch] = WriteModel(RECORD, "/v1/incidents", insert, update)
