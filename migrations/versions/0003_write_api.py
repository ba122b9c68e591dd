"""Write API: per-key rate limits, idempotency replays by record, revision history lookups (issue 5).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A key may get a rate limit of its own (requests per window); NULL means the server default.
    op.execute("""
    ALTER TABLE api_keys
      ADD COLUMN rate_limit integer CHECK (rate_limit > 0),
      ADD COLUMN created_by text""")
    # A finished idempotent request names the record it created; its replay body is that record's
    # first revision (stored once in `revisions`, byte for byte what the first response sent).
    op.execute("""
    ALTER TABLE idempotency_keys
      ADD COLUMN record_type text,
      ADD COLUMN record_id uuid,
      ADD COLUMN record_version integer,
      ADD CONSTRAINT idempotency_done_names_record CHECK (
        status = 'in_flight' OR num_nulls(response_status, record_type, record_id, record_version) = 0)""")
    # Who wrote what: revisions by key (audit), newest first.
    op.execute(
        "CREATE INDEX revisions_api_key_idx ON revisions (api_key_id, seq) WHERE api_key_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS revisions_api_key_idx")
    op.execute("""
    ALTER TABLE idempotency_keys
      DROP CONSTRAINT IF EXISTS idempotency_done_names_record,
      DROP COLUMN IF EXISTS record_version,
      DROP COLUMN IF EXISTS record_id,
      DROP COLUMN IF EXISTS record_type""")
    op.execute("ALTER TABLE api_keys DROP COLUMN IF EXISTS created_by, DROP COLUMN IF EXISTS rate_limit")
