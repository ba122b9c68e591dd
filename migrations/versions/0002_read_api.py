"""Read API v1: full-text search columns and the indexes behind every filter and sort order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

`q` on incidents and statements is PostgreSQL full-text search (``websearch_to_tsquery``,
English stemming) over the record's own text — a stored generated ``search`` column — and over
the quotes that cite it (an expression index on ``citations``). `q` on organisations is
typo-tolerant trigram matching of ``fold_name(name)`` and ``fold_name(alias)``, whose GIN
indexes 0001 already built.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "WHERE deleted_at IS NULL"


def _search_column(table: str, weighted_parts: Sequence[tuple[str, str]]) -> None:
    vector = " || ".join(
        f"setweight(to_tsvector('english'::regconfig, coalesce({column}, '')), '{weight}')"
        for column, weight in weighted_parts
    )
    op.execute(f"ALTER TABLE {table} ADD COLUMN search tsvector GENERATED ALWAYS AS ({vector}) STORED")
    op.execute(f"CREATE INDEX {table}_search_idx ON {table} USING gin (search)")


def upgrade() -> None:
    _search_column("incidents", [("title", "A"), ("summary", "B")])
    _search_column("statements", [("title", "A"), ("summary", "B")])
    _search_column("sources", [("title", "A"), ("publisher", "B")])
    op.execute(
        "CREATE INDEX citations_quote_search_idx ON citations "
        "USING gin (to_tsvector('english'::regconfig, quote))"
    )
    op.execute(
        "CREATE INDEX statement_claims_search_idx ON statement_claims "
        "USING gin (to_tsvector('english'::regconfig, text))"
    )
    # min_killed compares the best estimate, or the lower bound when no best is given.
    op.execute(
        f"CREATE INDEX incidents_killed_known_idx ON incidents ((coalesce(killed_best, killed_low))) {LIVE}"
    )
    op.execute(f"CREATE INDEX incidents_admin1_occurred_idx ON incidents (admin1, occurred_start, id) {LIVE}")
    # sort=updated / -updated of live records; 0001's updated indexes also cover tombstones
    # (the change feed needs them), these serve the lists.
    for table in ("incidents", "organisations", "statements", "sources"):
        op.execute(f"CREATE INDEX {table}_live_updated_idx ON {table} (updated_at, id) {LIVE}")
    op.execute(f"CREATE INDEX organisations_kind_idx ON organisations (kind, fold_name(name), id) {LIVE}")
    op.execute(f"CREATE INDEX sources_kind_idx ON sources (kind, id) {LIVE}")
    op.execute(f"CREATE INDEX statements_form_issued_idx ON statements (form, issued_start, id) {LIVE}")


def downgrade() -> None:
    for index in (
        "statements_form_issued_idx",
        "sources_kind_idx",
        "organisations_kind_idx",
        "incidents_live_updated_idx",
        "organisations_live_updated_idx",
        "statements_live_updated_idx",
        "sources_live_updated_idx",
        "incidents_admin1_occurred_idx",
        "incidents_killed_known_idx",
        "statement_claims_search_idx",
        "citations_quote_search_idx",
    ):
        op.execute(f"DROP INDEX IF EXISTS {index}")
    for table in ("sources", "statements", "incidents"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS search")
