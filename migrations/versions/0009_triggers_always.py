"""The schema's own triggers fire in every session, whatever its ``session_replication_role``.

Revision ID: 0009_triggers_always
Revises: 0008_source_licences
Create Date: 2026-12-01

A bulk import inserts its rows with ``session_replication_role = replica``, which skips the
foreign keys' row-by-row checks (it checks the references as a set instead, and holds the rows
they point to: ``secevents.server.importers.references``). That setting skips every trigger
enabled the ordinary way, so the triggers that are part of the data's rules (a citation's quote
is in its source, a source's hash matches its text, new revisions wake the change feed's
listeners) are enabled ``ALWAYS``. ``ALTER TABLE … ENABLE ALWAYS TRIGGER`` changes the catalogue
only (a brief lock, no rewrite).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009_triggers_always"
down_revision: str | None = "0008_source_licences"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = (
    ("sources", "sources_sha256"),
    ("citations", "citations_quote_in_source"),
    ("citations", "citations_quote_in_source_on_update"),
    ("revisions", "revisions_notify"),
)


def upgrade() -> None:
    for table, trigger in TRIGGERS:
        op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")


def downgrade() -> None:
    for table, trigger in TRIGGERS:
        op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
