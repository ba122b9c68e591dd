"""SQL of the statements resource."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any, Literal
from uuid import UUID

import asyncpg

from secevents.schemas.statements import StatementCreate, StatementPatch
from secevents.server.reads.filters import SqlBuilder
from secevents.server.reads.listing import page_sql, scoped_page_sql
from secevents.server.reads.pagination import SortOrder, sort_orders
from secevents.server.resources.statements.filters import StatementFilters, involvement
from secevents.server.sql import patching
from secevents.server.sql.records import RecordTable, as_json, citation_rows, insert_citations_sql
from secevents.server.writes.flows import WriteModel

# --- reads -------------------------------------------------------------------------------

SORTS = sort_orders(
    SortOrder("-issued", ("s.issued_start", "s.id"), (dt.date, UUID), descending=True),
    SortOrder("issued", ("s.issued_start", "s.id"), (dt.date, UUID), descending=False),
    SortOrder("-updated", ("s.updated_at", "s.id"), (dt.datetime, UUID), descending=True),
    SortOrder("updated", ("s.updated_at", "s.id"), (dt.datetime, UUID), descending=False),
)
StatementSort = Literal["-issued", "issued", "-updated", "updated"]

READ = "SELECT s.doc, s.version FROM statements s WHERE s.id = $1 AND s.deleted_at IS NULL"


def list_query(
    filters: StatementFilters, sort: SortOrder, after: tuple[Any, ...] | None, limit: int
) -> tuple[str, list[Any]]:
    sql = SqlBuilder()
    filters.apply(sql)
    return page_sql("statements", "s", sql, sort, after, limit), sql.args


def organisation_list_query(
    organisation_id: UUID,
    filters: StatementFilters,
    sort: SortOrder,
    after: tuple[Any, ...] | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """Statements involving one organisation (``filters.role``: in that role)."""
    sql = SqlBuilder()
    parent = sql.param(organisation_id)
    replace(filters, role=()).apply(sql)
    sql.where(f"s.id IN ({involvement(sql, parent, filters.role)})")
    page = page_sql("statements", "s", sql, sort, after, limit)
    return scoped_page_sql("organisations", parent, page, sort), sql.args


# --- writes ------------------------------------------------------------------------------

INSERT = f"""
WITH s AS (
  INSERT INTO statements (id, title, issuer_id, addressed_to_id, speaker, form,
                          issued_start, issued_end, issued_precision, summary, external_ids)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
  RETURNING id
), claims AS (
  INSERT INTO statement_claims (statement_id, ordinal, text, topics)
  SELECT s.id, t.ord, t.e->>'text', ARRAY(SELECT jsonb_array_elements_text(t.e->'topics'))
    FROM s, jsonb_array_elements($12::jsonb) WITH ORDINALITY AS t(e, ord)
  RETURNING id, ordinal
), claim_orgs AS (
  INSERT INTO claim_organisations (claim_id, ordinal, organisation_id)
  SELECT c.id, o.ord, o.org::uuid
    FROM claims c JOIN jsonb_array_elements($12::jsonb) WITH ORDINALITY AS t(e, ord) ON t.ord = c.ordinal,
         jsonb_array_elements_text(t.e->'organisation_ids') WITH ORDINALITY AS o(org, ord)
), claim_cited AS (
  INSERT INTO citations (claim_id, ordinal, source_id, quote)
  SELECT c.id, x.ord, (x.e->>'source_id')::uuid, x.e->>'quote'
    FROM claims c JOIN jsonb_array_elements($12::jsonb) WITH ORDINALITY AS t(e, ord) ON t.ord = c.ordinal,
         jsonb_array_elements(t.e->'citations') WITH ORDINALITY AS x(e, ord)
), figures AS (
  INSERT INTO statement_figures (statement_id, ordinal, label, value, unit, period_start, period_end, period_precision)
  SELECT s.id, t.ord, t.e->>'label', (t.e->>'value')::numeric, t.e->>'unit',
         (t.e->'period'->>'start')::date, (t.e->'period'->>'end')::date, t.e->'period'->>'precision'
    FROM s, jsonb_array_elements($13::jsonb) WITH ORDINALITY AS t(e, ord)
  RETURNING id, ordinal
), figure_cited AS (
  INSERT INTO citations (figure_id, ordinal, source_id, quote)
  SELECT f.id, x.ord, (x.e->>'source_id')::uuid, x.e->>'quote'
    FROM figures f JOIN jsonb_array_elements($13::jsonb) WITH ORDINALITY AS t(e, ord) ON t.ord = f.ordinal,
         jsonb_array_elements(t.e->'citations') WITH ORDINALITY AS x(e, ord)
), incidents AS (
  INSERT INTO statement_incidents (statement_id, ordinal, incident_id)
  SELECT s.id, t.ord, t.incident_id FROM s, unnest($14::uuid[]) WITH ORDINALITY AS t(incident_id, ord)
), cited AS ({insert_citations_sql("statement_id", "(SELECT id FROM s)", "$15")})
SELECT id FROM s
"""


async def insert(conn: asyncpg.Connection, record_id: UUID, data: StatementCreate) -> None:
    """Insert a statement with its claims, figures, related incidents and citations."""
    await conn.execute(
        INSERT,
        record_id,
        data.title,
        data.issuer_id,
        data.addressed_to_id,
        data.speaker,
        data.form,
        data.issued.start,
        data.issued.end,
        data.issued.precision,
        data.summary,
        as_json(data.external_ids),
        as_json(list(data.claims)),
        as_json(list(data.figures)),
        list(data.related_incident_ids),
        citation_rows(list(data.citations)),
    )


# --- writes (PATCH): claims, figures, related incidents and citations are replaced whole ----

REPLACE_CLAIMS = """
WITH claims AS (
  INSERT INTO statement_claims (statement_id, ordinal, text, topics)
  SELECT $1, t.ord, t.e->>'text', ARRAY(SELECT jsonb_array_elements_text(t.e->'topics'))
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord)
  RETURNING id, ordinal
), claim_orgs AS (
  INSERT INTO claim_organisations (claim_id, ordinal, organisation_id)
  SELECT c.id, o.ord, o.org::uuid
    FROM claims c JOIN jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord) ON t.ord = c.ordinal,
         jsonb_array_elements_text(t.e->'organisation_ids') WITH ORDINALITY AS o(org, ord)
), claim_cited AS (
  INSERT INTO citations (claim_id, ordinal, source_id, quote)
  SELECT c.id, x.ord, (x.e->>'source_id')::uuid, x.e->>'quote'
    FROM claims c JOIN jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord) ON t.ord = c.ordinal,
         jsonb_array_elements(t.e->'citations') WITH ORDINALITY AS x(e, ord)
)
SELECT count(*) FROM claims
"""

REPLACE_FIGURES = """
WITH figures AS (
  INSERT INTO statement_figures (statement_id, ordinal, label, value, unit, period_start, period_end, period_precision)
  SELECT $1, t.ord, t.e->>'label', (t.e->>'value')::numeric, t.e->>'unit',
         (t.e->'period'->>'start')::date, (t.e->'period'->>'end')::date, t.e->'period'->>'precision'
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord)
  RETURNING id, ordinal
), figure_cited AS (
  INSERT INTO citations (figure_id, ordinal, source_id, quote)
  SELECT f.id, x.ord, (x.e->>'source_id')::uuid, x.e->>'quote'
    FROM figures f JOIN jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord) ON t.ord = f.ordinal,
         jsonb_array_elements(t.e->'citations') WITH ORDINALITY AS x(e, ord)
)
SELECT count(*) FROM figures
"""

REPLACE_INCIDENTS = """
INSERT INTO statement_incidents (statement_id, ordinal, incident_id)
SELECT $1, t.ord, t.incident_id FROM unnest($2::uuid[]) WITH ORDINALITY AS t(incident_id, ord)
"""

REPLACE_CITATIONS = insert_citations_sql("statement_id", "$1::uuid", "$2")


async def update(conn: asyncpg.Connection, record_id: UUID, data: StatementPatch) -> None:
    """Apply a partial update (an absent field is unchanged; objects and lists are replaced)."""
    columns: dict[str, Any] = {}
    patching.plain(columns, data, "title", "issuer_id", "addressed_to_id", "speaker", "form", "summary")
    patching.external_ids(columns, data)
    if patching.is_set(data.issued):
        patching.span(columns, "issued", data.issued)
    await patching.update_row(conn, "statements", record_id, columns)
    if patching.is_set(data.claims):
        # Their organisations and citations go with them (ON DELETE CASCADE).
        await conn.execute("DELETE FROM statement_claims WHERE statement_id = $1", record_id)
        await conn.execute(REPLACE_CLAIMS, record_id, as_json(list(data.claims)))
    if patching.is_set(data.figures):
        await conn.execute("DELETE FROM statement_figures WHERE statement_id = $1", record_id)
        await conn.execute(REPLACE_FIGURES, record_id, as_json(list(data.figures)))
    if patching.is_set(data.related_incident_ids):
        await conn.execute("DELETE FROM statement_incidents WHERE statement_id = $1", record_id)
        await conn.execute(REPLACE_INCIDENTS, record_id, list(data.related_incident_ids))
    if patching.is_set(data.citations):
        await conn.execute("DELETE FROM citations WHERE statement_id = $1", record_id)
        await conn.execute(REPLACE_CITATIONS, record_id, citation_rows(list(data.citations)))


RECORD = RecordTable("statement", "statements", "s")
WRITES: WriteModel[StatementCreate, StatementPatch] = WriteModel(RECORD, "/v1/statements", insert, update)
