"""SQL of the statements resource."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from api.resources.records import as_json, citation_rows, insert_citations_sql
from schemas.statements import StatementCreate

LIST = """
SELECT statement_doc(s) FROM statements s
 WHERE s.deleted_at IS NULL
 ORDER BY s.issued_start DESC, s.id DESC
 LIMIT $1
"""

GET = "SELECT statement_doc(s) FROM statements s WHERE s.id = $1 AND s.deleted_at IS NULL"

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
