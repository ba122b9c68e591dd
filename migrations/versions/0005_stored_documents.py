"""Stored documents (issue 13): every record keeps the JSON document it serves, written when the
record is written, and each revision says what caused it.

Revision ID: 0005_stored_documents
Revises: 0004
Create Date: 2026-11-30

- ``doc json`` on ``incidents``, ``organisations``, ``statements`` and ``sources``: the exact
  bytes ``GET``, lists, exports, revisions and the change feed serve (``json``, not ``jsonb``:
  ``json`` keeps the text as written, key order and all). The server renders it in Python from
  the ``schemas/`` Structs (``secevents.server.sql.documents``); reads no longer render.
- ``cause jsonb`` on ``revisions``: set when a write re-rendered a record because a record it
  embeds changed (``{"type": "organisation", "id": …, "version": …}``).
- Backfill: the document of each existing record at its version is the one its revision at that
  version holds, when that revision still says what the record now renders (compared as JSON
  values; the revision's bytes are kept, so what was served at version v stays what is served).
  A record whose rendering no longer matches (an organisation it embeds was renamed since: the
  bug this revision fixes) or that has no revision gets version v+1, its fresh rendering, and a
  revision (actor ``migration 0005_stored_documents``) — so a consumer of the change feed learns
  of it too. Then the per-read SQL renderers (``incident_doc()`` and siblings) are dropped.
- ``incidents_country_type_occurred_idx``: the list filtered by one country and one type walks
  it in list order (built ``CONCURRENTLY``).

  The backfill commits batch by batch (:data:`BATCH` records, each batch one transaction taking
  row locks only), so API reads and writes keep running: no table lock is held for longer than
  adding a nullable column takes (the new index is built ``CONCURRENTLY``). Measured
  (``bench.read_data``, which builds its set at 0004 and migrates it): 1,000,000 incidents (1–2
  participants each, a citation on one in ten) took 1,655 s — about 1.7 ms per record — on a
  2-core machine that other test suites kept at a load average near 10 (PostgreSQL 15). Most of
  it is ``incident_doc()`` rendering each record once more to compare it with its revision.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0005_stored_documents"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
ACTOR = "migration 0005_stored_documents"
# (record type, table, the SQL function of 0001 that renders its document)
RECORDS = (
    ("source", "sources", "source_doc"),
    ("organisation", "organisations", "organisation_doc"),
    ("incident", "incidents", "incident_doc"),
    ("statement", "statements", "statement_doc"),
)

# One batch of one table, in one transaction; returns the last id of the batch (NULL: done).
BACKFILL_FUNCTION = f"""
CREATE FUNCTION stored_documents_backfill(rtype text, tbl text, render text, after uuid, n integer)
RETURNS uuid LANGUAGE plpgsql AS $fn$
DECLARE
  last_id uuid;
  stale uuid[];
BEGIN
  EXECUTE format('SELECT id FROM (SELECT id FROM %I WHERE id > $1 ORDER BY id LIMIT $2) b ORDER BY id DESC LIMIT 1', tbl)
    INTO last_id USING after, n;
  IF last_id IS NULL THEN
    RETURN NULL;
  END IF;
  -- The revision at the record's version, where it still says what the record renders.
  EXECUTE format($q$
    UPDATE %1$I t SET doc = r.data
      FROM revisions r
     WHERE t.id > $1 AND t.id <= $2 AND t.doc IS NULL
       AND r.record_type = $3 AND r.record_id = t.id AND r.version = t.version
       AND r.data::jsonb = %2$s(t)::jsonb$q$, tbl, render) USING after, last_id, rtype;
  -- The others: live ones move to a new version (deleted ones are never served again).
  EXECUTE format($q$
    WITH bumped AS (
      UPDATE %1$I t SET version = t.version + 1, updated_at = now()
       WHERE t.id > $1 AND t.id <= $2 AND t.doc IS NULL AND t.deleted_at IS NULL
      RETURNING t.id)
    SELECT coalesce(array_agg(id), '{{}}') FROM bumped$q$, tbl) INTO stale USING after, last_id;
  EXECUTE format('UPDATE %1$I t SET doc = %2$s(t) WHERE t.id > $1 AND t.id <= $2 AND t.doc IS NULL',
                 tbl, render) USING after, last_id;
  IF cardinality(stale) > 0 THEN
    EXECUTE format($q$
      INSERT INTO revisions (record_type, record_id, version, operation, data, actor)
      SELECT $1, t.id, t.version, 'update', t.doc, '{ACTOR}' FROM %1$I t WHERE t.id = ANY($2) ORDER BY t.id$q$,
      tbl) USING rtype, stale;
  END IF;
  RETURN last_id;
END $fn$"""


CREATE_FILTER_INDEX = """
CREATE INDEX CONCURRENTLY IF NOT EXISTS incidents_country_type_occurred_idx
    ON incidents (country, type, occurred_start, id) WHERE deleted_at IS NULL"""


def upgrade() -> None:
    for _, table, _ in RECORDS:
        op.execute(f"ALTER TABLE {table} ADD COLUMN doc json")
    op.execute("ALTER TABLE revisions ADD COLUMN cause jsonb")
    op.execute(BACKFILL_FUNCTION)
    context = op.get_context()
    with context.autocommit_block():
        connection = op.get_bind()
        for record_type, table, render in RECORDS:
            after = "00000000-0000-0000-0000-000000000000"
            while True:
                after = connection.execute(
                    sa.text(
                        "SELECT stored_documents_backfill(:type, :table, :render, CAST(:after AS uuid), :n)"
                    ),
                    {"type": record_type, "table": table, "render": render, "after": after, "n": BATCH},
                ).scalar()
                if after is None:
                    break
        # The list filters the README and the read benchmark use (`country=PK&type=battle`): an
        # index in list order for both equalities. Built without blocking writes.
        connection.execute(sa.text(CREATE_FILTER_INDEX))
    op.execute("DROP FUNCTION stored_documents_backfill(text, text, text, uuid, integer)")
    for _, _, render in RECORDS:
        op.execute(f"DROP FUNCTION {render}")


def _initial_schema() -> object:
    """Migration 0001, whose ``_documents()`` defines the SQL renderers this one retires."""
    path = Path(__file__).with_name("0001_initial_schema.py")
    spec = importlib.util.spec_from_file_location("secevents_migration_0001", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS incidents_country_type_occurred_idx")
    # 0001's renderers and the view it defines with them, verbatim.
    op.execute("DROP VIEW statement_organisations")
    _initial_schema()._documents()  # type: ignore[attr-defined]
    op.execute("ALTER TABLE revisions DROP COLUMN cause")
    for _, table, _ in RECORDS:
        op.execute(f"ALTER TABLE {table} DROP COLUMN doc")
