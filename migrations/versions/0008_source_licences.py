"""Sources carry their licence and the attribution it asks for (issue 14).

Revision ID: 0008_source_licences
Revises: 0007_webhooks
Create Date: 2026-11-30

- ``sources.licence``: an SPDX licence identifier (``CC-BY-4.0``) when the source's terms
  require something of whoever republishes what is drawn from it.
- ``sources.attribution``: the credit and citation those terms ask for, as text; every export
  repeats it for the licensed sources (``secevents.server.exports.attribution``).

Both are nullable and new columns only (no rewrite, no lock beyond adding a column). Stored
documents stay as they are: a source without a licence renders without the two fields, so
existing documents still say what their record renders. The UCDP importer fills them in for its
dataset source on its next import (a new version with a revision).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_source_licences"
down_revision: str | None = "0007_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE sources
      ADD COLUMN licence text CHECK (licence ~ '^[A-Za-z0-9.+-]{1,64}$'),
      ADD COLUMN attribution text CHECK (length(attribution) BETWEEN 1 AND 5000)""")


def downgrade() -> None:
    op.execute("ALTER TABLE sources DROP COLUMN IF EXISTS attribution, DROP COLUMN IF EXISTS licence")
