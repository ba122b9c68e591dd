"""Webhooks (issue 15): endpoints with their own cursor into the change feed, and every
delivery attempt.

Revision ID: 0007_webhooks
Revises: 0006_feed_snapshots
Create Date: 2026-11-30

- ``webhook_endpoints``: one row per endpoint, holding all of its delivery state, so a restart
  loses nothing. ``cursor`` is the change-feed cursor up to which every change has been
  delivered (or filtered out); the change after it is retried (``attempts``,
  ``next_attempt_at``, ``failing_since``) until it is delivered, or the retries run out and the
  endpoint is disabled (``enabled``, ``disabled_reason``). ``lease_token``/``lease_expires_at``:
  which worker is delivering to the endpoint right now. Workers claim an endpoint with
  ``FOR UPDATE SKIP LOCKED`` and keep the lease while the HTTP request runs, without holding a
  transaction open; a lease that expires (a worker that died) is taken over.
- ``secret`` is the signing key itself (``whsec_<base64>``): HMAC needs it, a hash would not do.
- ``webhook_deliveries``: every attempt (time, status, latency, error, a 1 KiB excerpt of the
  response), listed newest first per endpoint; deleted with their endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_webhooks"
down_revision: str | None = "0006_feed_snapshots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE webhook_endpoints (
      id uuid PRIMARY KEY DEFAULT uuid_v7(),
      url text NOT NULL CHECK (length(url) <= 2000),
      description text,
      types text[] NOT NULL CHECK (cardinality(types) > 0),
      filter_countries text[] NOT NULL DEFAULT '{}',
      filter_types text[] NOT NULL DEFAULT '{}',
      filter_organisations uuid[] NOT NULL DEFAULT '{}',
      secret text NOT NULL,
      enabled boolean NOT NULL DEFAULT true,
      disabled_reason text,
      disabled_at timestamptz,
      cursor text NOT NULL,
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      failing_since timestamptz,
      last_delivered_at timestamptz,
      lease_token uuid,
      lease_expires_at timestamptz,
      created_by text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT webhook_disabled_has_reason CHECK (enabled OR disabled_reason IS NOT NULL)
    )""")
    # What the workers ask for on every round: enabled endpoints whose next attempt is due.
    op.execute("CREATE INDEX webhook_endpoints_due_idx ON webhook_endpoints (next_attempt_at) WHERE enabled")
    op.execute("""
    CREATE TABLE webhook_deliveries (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      webhook_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
      message_id text NOT NULL,
      event_type text NOT NULL,
      change_seq bigint,
      attempt integer NOT NULL CHECK (attempt > 0),
      attempted_at timestamptz NOT NULL DEFAULT now(),
      succeeded boolean NOT NULL,
      status_code integer,
      latency_ms double precision,
      error text,
      response_excerpt text
    )""")
    op.execute("CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (webhook_id, id DESC)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS webhook_deliveries")
    op.execute("DROP TABLE IF EXISTS webhook_endpoints")
