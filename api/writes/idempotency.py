"""``Idempotency-Key`` on POST: the first request's response is kept (24 h) and replayed.

The key is claimed by inserting its row *inside the write's transaction*. The primary key
``(api_key_id, key)`` then does all the coordination, with no check-then-insert race:

- a retry that arrives while the first request runs blocks on that uncommitted row; when the
  first commits, its ``ON CONFLICT DO NOTHING`` finds the finished row and replays it; when the
  first fails (rolls back), the retry claims the key and runs itself;
- a retry waits at most ``idempotency_wait_seconds`` (``lock_timeout``) and then gets 409;
- a crash of the first request rolls its claim back with it: no key is stuck "in flight".

The replayed body is the created record's first revision, which ``revisions`` stores verbatim:
the same bytes the first response carried.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import msgspec

from secevents.schemas.records import RecordType
from secevents.server.http.errors import Conflict, DomainError, UnprocessableEntity

MAX_KEY_LENGTH = 255
# 1 to 255 printable ASCII characters, not starting or ending with a space (HTTP strips those
# from a field value). The spec documents this very pattern (api/openapi.py), so a key the spec
# calls valid is one the server takes.
IDEMPOTENCY_KEY_PATTERN = rf"^[\x21-\x7e]([\x20-\x7e]{{0,{MAX_KEY_LENGTH - 2}}}[\x21-\x7e])?$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


class IdempotencyKeyInUse(Conflict):
    code, title = "idempotency_key_in_use", "A request with this Idempotency-Key is in progress"


class IdempotencyKeyReused(UnprocessableEntity):
    code, title = "idempotency_key_reused", "Idempotency-Key reused for a different request"


class InvalidIdempotencyKey(DomainError):
    status, code, title = 400, "invalid_idempotency_key", "Invalid Idempotency-Key"


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    headers: dict[str, str]
    body: bytes


def request_fingerprint(method: str, path: str, body: object) -> bytes:
    """Hash of what the request asks for. The body is hashed as decoded and re-encoded, so
    whitespace, key order or an explicit default do not make a retry look different."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), msgspec.json.encode(body)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


_CLAIM = """
INSERT INTO idempotency_keys (api_key_id, key, method, path, request_hash)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (api_key_id, key) DO UPDATE
   SET method = EXCLUDED.method, path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
       status = 'in_flight', response_status = NULL, response_headers = NULL, response_body = NULL,
       record_type = NULL, record_id = NULL, record_version = NULL,
       created_at = now(), expires_at = now() + interval '24 hours'
 WHERE idempotency_keys.expires_at < now()
RETURNING true
"""

_EXISTING = """
SELECT k.request_hash, k.status, k.response_status, k.response_headers, r.data
  FROM idempotency_keys k
  LEFT JOIN revisions r ON (r.record_type, r.record_id, r.version) = (k.record_type, k.record_id, k.record_version)
 WHERE k.api_key_id = $1 AND k.key = $2
"""

_COMPLETE = """
UPDATE idempotency_keys
   SET status = 'done', response_status = $3, response_headers = $4,
       record_type = $5, record_id = $6, record_version = $7
 WHERE api_key_id = $1 AND key = $2
"""

# Expired keys are taken over by _CLAIM; this keeps the table from growing with keys never reused.
_PURGE = """
DELETE FROM idempotency_keys
 WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT 1000))
"""


def validate_key(key: str) -> None:
    if _IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise InvalidIdempotencyKey(
            f"`Idempotency-Key` must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, without a space at either end.",
        )


async def claim(
    conn: asyncpg.Connection,
    *,
    api_key_id: UUID,
    key: str,
    method: str,
    path: str,
    fingerprint: bytes,
    wait_seconds: float,
) -> Replay | None:
    """Claim ``key`` in the current transaction: None when this request is the first (it must
    then call :func:`complete` before committing), or the first request's response to replay."""
    validate_key(key)
    await conn.execute("SELECT set_config('lock_timeout', $1, true)", f"{max(int(wait_seconds * 1000), 1)}ms")
    try:
        claimed = await conn.fetchval(_CLAIM, api_key_id, key, method, path, fingerprint)
    except asyncpg.LockNotAvailableError:
        raise IdempotencyKeyInUse(
            "A request with this Idempotency-Key is still in progress; retry later.",
            headers={"Retry-After": "1"},
        ) from None
    await conn.execute("SELECT set_config('lock_timeout', '0', true)")
    if claimed:
        return None
    row = await conn.fetchrow(_EXISTING, api_key_id, key)
    if row is None or row["status"] != "done":
        # Cannot happen while claims and completions share one transaction; be explicit anyway.
        raise IdempotencyKeyInUse("A request with this Idempotency-Key is still in progress; retry later.")
    if row["request_hash"] != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key for a new request."
        )
    headers: dict[str, str] = msgspec.json.decode(row["response_headers"])
    return Replay(status=row["response_status"], headers=headers, body=row["data"])


async def complete(
    conn: asyncpg.Connection,
    *,
    api_key_id: UUID,
    key: str,
    status: int,
    headers: dict[str, str],
    record_type: RecordType,
    record_id: UUID,
    record_version: int,
) -> None:
    await conn.execute(
        _COMPLETE,
        api_key_id,
        key,
        status,
        msgspec.json.encode(headers),
        record_type,
        record_id,
        record_version,
    )


async def purge_expired(conn: asyncpg.Connection) -> int:
    result: str = await conn.execute(_PURGE)
    return int(result.rsplit(" ", 1)[-1])
