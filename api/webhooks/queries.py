"""SQL of webhook endpoints and their deliveries, and rows → Structs.

The endpoint row holds all delivery state (migration ``0007_webhooks``). Workers claim due
endpoints with ``FOR UPDATE SKIP LOCKED`` and mark them with a lease (a token and an expiry)
in the same statement, so the HTTP request runs without an open transaction; every later
write of a worker names its token, so a worker whose lease ran out (and was taken over) changes
nothing.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from secevents.schemas.webhooks import Webhook, WebhookDelivery
from secevents.server.webhooks.sender import Outcome

COLUMNS = """id, url, description, types, filter_countries, filter_types, filter_organisations,
  enabled, disabled_reason, disabled_at, cursor, attempts,
  CASE WHEN enabled THEN next_attempt_at END AS next_attempt_at, failing_since,
  last_delivered_at, created_at, updated_at"""

INSERT = f"""
INSERT INTO webhook_endpoints
  (url, description, types, filter_countries, filter_types, filter_organisations, secret, cursor, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING {COLUMNS}"""

GET = f"SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1"
GET_FOR_UPDATE = f"SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1 FOR UPDATE"
SECRET_AND_URL = "SELECT url, secret FROM webhook_endpoints WHERE id = $1"

# Keyset pages by id (time-ordered UUIDs: oldest first).
LIST = f"""
SELECT {COLUMNS} FROM webhook_endpoints
 WHERE $1::uuid IS NULL OR id > $1
 ORDER BY id
 LIMIT $2"""

# Re-enabling clears the failure state: the change that failed is due again at once.
UPDATE = f"""
UPDATE webhook_endpoints SET
  url = $2, description = $3, types = $4, filter_countries = $5, filter_types = $6,
  filter_organisations = $7,
  enabled = $8,
  disabled_reason = CASE WHEN $8 THEN NULL ELSE coalesce(disabled_reason, 'disabled by an administrator') END,
  disabled_at = CASE WHEN $8 THEN NULL ELSE coalesce(disabled_at, now()) END,
  attempts = CASE WHEN $8 AND NOT enabled THEN 0 ELSE attempts END,
  failing_since = CASE WHEN $8 AND NOT enabled THEN NULL ELSE failing_since END,
  next_attempt_at = CASE WHEN $8 AND NOT enabled THEN now() ELSE next_attempt_at END,
  updated_at = now()
WHERE id = $1
RETURNING {COLUMNS}"""

DELETE = "DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id"

DELIVERY_COLUMNS = """id, webhook_id, message_id, event_type, change_seq, attempt, attempted_at,
  succeeded, status_code, latency_ms, error, response_excerpt"""

# Newest first.
DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
 WHERE webhook_id = $1 AND ($2::bigint IS NULL OR id < $2)
 ORDER BY id DESC
 LIMIT $3"""

RECORD_DELIVERY = f"""
INSERT INTO webhook_deliveries
  (webhook_id, message_id, event_type, change_seq, attempt, succeeded, status_code, latency_ms,
   error, response_excerpt)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING {DELIVERY_COLUMNS}"""

# --- the worker's statements ------------------------------------------------------------------

# Due endpoints, claimed under a lease; `$3` lists endpoints this worker knows have nothing to
# deliver at the feed's current head.
CLAIM = """
UPDATE webhook_endpoints e
   SET lease_token = $1, lease_expires_at = now() + make_interval(secs => $2)
 WHERE e.id IN (
   SELECT id FROM webhook_endpoints
    WHERE enabled AND next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
      AND NOT (id = ANY ($3::uuid[]))
    ORDER BY next_attempt_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
RETURNING e.id, e.url, e.secret, e.types, e.filter_countries, e.filter_types,
          e.filter_organisations, e.cursor, e.attempts"""

# Moved past changes that were delivered or filtered out; the lease is kept (and extended).
ADVANCE = """
UPDATE webhook_endpoints
   SET cursor = $3, attempts = 0, failing_since = NULL,
       last_delivered_at = CASE WHEN $4 THEN now() ELSE last_delivered_at END,
       lease_expires_at = now() + make_interval(secs => $5)
 WHERE id = $1 AND lease_token = $2
RETURNING enabled"""

# Done for now (caught up, or its turn used up): the lease is given back, due again at once.
RELEASE = """
UPDATE webhook_endpoints
   SET cursor = $3, next_attempt_at = now(), lease_token = NULL, lease_expires_at = NULL
 WHERE id = $1 AND lease_token = $2"""

# An attempt failed: retry the same change later.
RETRY_LATER = """
UPDATE webhook_endpoints
   SET cursor = $3, attempts = $4, failing_since = coalesce(failing_since, now()),
       next_attempt_at = now() + make_interval(secs => $5),
       lease_token = NULL, lease_expires_at = NULL
 WHERE id = $1 AND lease_token = $2
RETURNING id"""

# Retries ran out (or the receiver said 410 Gone): disabled, the failed change kept as the next.
DISABLE = """
UPDATE webhook_endpoints
   SET cursor = $3, attempts = $4, failing_since = coalesce(failing_since, now()),
       enabled = false, disabled_reason = $5, disabled_at = now(),
       lease_token = NULL, lease_expires_at = NULL, updated_at = now()
 WHERE id = $1 AND lease_token = $2
RETURNING id"""

RELEASE_ALL = """
UPDATE webhook_endpoints SET lease_token = NULL, lease_expires_at = NULL
 WHERE lease_token = ANY ($1::uuid[])"""


def webhook(row: asyncpg.Record) -> Webhook:
    values: dict[str, Any] = dict(row)
    values["filters"] = {
        "country": values.pop("filter_countries"),
        "type": values.pop("filter_types"),
        "organisation": values.pop("filter_organisations"),
    }
    return msgspec.convert(values, Webhook)


def delivery(row: asyncpg.Record) -> WebhookDelivery:
    return msgspec.convert(dict(row), WebhookDelivery)


async def record_delivery(
    conn: asyncpg.Connection,
    webhook_id: UUID,
    *,
    message_id: str,
    event_type: str,
    change_seq: int | None,
    attempt: int,
    outcome: Outcome,
) -> WebhookDelivery:
    """Store one attempt (``ForeignKeyViolationError`` when the endpoint was deleted meanwhile)."""
    row = await conn.fetchrow(
        RECORD_DELIVERY,
        webhook_id,
        message_id,
        event_type,
        change_seq,
        attempt,
        outcome.succeeded,
        outcome.status_code,
        outcome.latency_ms,
        outcome.error,
        outcome.excerpt,
    )
    return delivery(row)
