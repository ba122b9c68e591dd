"""API keys, scopes and rate limits.

A key is ``se_<prefix>_<secret>``: the prefix (public, unique) finds the row, and only a SHA-256
of the secret is stored, compared in constant time. The secret carries 256 random bits, so a
fast hash is enough (slow password hashes are for guessable secrets). Keys are never logged.

Scopes are ordered ``read`` < ``write`` < ``admin``: a key may do what its scopes and every
lower one allow. Everything under ``/v1`` goes through :class:`AuthMiddleware`: reads need
``read`` unless ``public_reads`` is on, every other method needs ``write`` (a handler can ask
for more with ``opt={"scope": "admin"}``).

Rate limits are fixed windows per key (or per client IP without a key), counted in Redis when
``REDIS_URL`` is set so that every worker shares them, else in the process. Responses carry
``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers); a 429 adds
``Retry-After``.

Failed authentication is not free: each failure (a malformed header, an unknown, wrong or
revoked key) is counted against the client IP's failure budget (``auth_failure_limit`` per
``auth_failure_window_seconds``) and against its anonymous quota. Once the budget is spent,
every request of that IP that presents a key answers 429 before the key is looked up, until the
window ends: guessing keys costs the guesser a window, not the database a lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from secevents.schemas.keys import ApiKeyCreated, ApiKeyInfo
from secevents.server import db
from secevents.server.http.dependencies import acquire_held
from secevents.server.http.errors import DomainError, Forbidden, RateLimited, Unauthorized
from secevents.server.settings import Settings

log = logging.getLogger("secevents.auth")

SCOPES = ("read", "write", "admin")
_SCOPE_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
_KEY_FORMAT = re.compile(r"^se_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How stale `last_used_at` may get before a request refreshes it (saves a write per request).
_LAST_USED_RESOLUTION_SECONDS = 60
SECURITY_SCHEME = "bearerAuth"
"""Name of the OpenAPI security scheme (HTTP bearer) that keyed operations list."""
WRITE_SECURITY: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}]


# --- keys -------------------------------------------------------------------------------------


def _hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_key() -> tuple[str, str, bytes]:
    """A new key: (full key to hand out once, prefix, hash of the secret to store)."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"se_{prefix}_{secret}", prefix, _hash_secret(secret)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key (id, name, scopes) or, without one, anonymous."""

    key_id: UUID | None = None
    name: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    rate_limit: int | None = None

    @property
    def actor(self) -> str:
        return f"key:{self.name}" if self.name else "anonymous"

    def allows(self, scope: str) -> bool:
        needed = _SCOPE_RANK[scope]
        return any(_SCOPE_RANK[s] >= needed for s in self.scopes)


ANONYMOUS = Principal()

_KEY_COLUMNS = "id, name, prefix, scopes, rate_limit, created_at, last_used_at, revoked_at"
_FIND_KEY = f"SELECT {_KEY_COLUMNS}, secret_hash FROM api_keys WHERE prefix = $1"
_TOUCH_KEY = "UPDATE api_keys SET last_used_at = now() WHERE id = $1"


async def principal_for_key(conn: asyncpg.Connection, presented: str) -> Principal:
    """The key's principal; :class:`Unauthorized` when it is malformed, unknown or revoked."""
    match = _KEY_FORMAT.match(presented)
    if match is None:
        raise Unauthorized("The API key is malformed.")
    prefix, secret = match.groups()
    row = await conn.fetchrow(_FIND_KEY, prefix)
    # Compare even when the prefix is unknown, so timing does not tell which prefixes exist.
    stored = row["secret_hash"] if row is not None else b"\0" * 32
    if not hmac.compare_digest(stored, _hash_secret(secret)) or row is None:
        raise Unauthorized("The API key is not valid.")
    if row["revoked_at"] is not None:
        raise Unauthorized("The API key has been revoked.")
    last_used = row["last_used_at"]
    if last_used is None or time.time() - last_used.timestamp() > _LAST_USED_RESOLUTION_SECONDS:
        await conn.execute(_TOUCH_KEY, row["id"])
    return Principal(
        key_id=row["id"], name=row["name"], scopes=frozenset(row["scopes"]), rate_limit=row["rate_limit"]
    )


def _key_info(row: asyncpg.Record) -> ApiKeyInfo:
    return msgspec.convert(dict(row), ApiKeyInfo)


async def create_key(
    conn: asyncpg.Connection,
    *,
    name: str,
    scopes: Sequence[str],
    rate_limit: int | None = None,
    created_by: str | None = None,
) -> ApiKeyCreated:
    """Store a new key; the returned value is the only place its secret ever appears."""
    key, prefix, secret_hash = new_key()
    row = await conn.fetchrow(
        f"""INSERT INTO api_keys (name, prefix, secret_hash, scopes, rate_limit, created_by)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_KEY_COLUMNS}""",
        name,
        prefix,
        secret_hash,
        sorted(set(scopes), key=_SCOPE_RANK.__getitem__),
        rate_limit,
        created_by,
    )
    return msgspec.convert({**dict(row), "key": key}, ApiKeyCreated)


async def list_keys(conn: asyncpg.Connection) -> list[ApiKeyInfo]:
    rows = await conn.fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id")
    return [_key_info(r) for r in rows]


async def revoke_key(conn: asyncpg.Connection, key_id: UUID) -> ApiKeyInfo | None:
    """Revoke a key (idempotent); None when there is no such key."""
    row = await conn.fetchrow(
        f"""UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
            RETURNING {_KEY_COLUMNS}""",
        key_id,
    )
    return None if row is None else _key_info(row)


async def key_id_of(conn: asyncpg.Connection, presented: str) -> UUID | None:
    """The id of the key ``presented`` (the whole key, secret included), or None when it is
    malformed or not one of ours."""
    match = _KEY_FORMAT.match(presented)
    if match is None:
        return None
    prefix, secret = match.groups()
    row = await conn.fetchrow(_FIND_KEY, prefix)
    if row is None or not hmac.compare_digest(row["secret_hash"], _hash_secret(secret)):
        return None
    key_id: UUID = row["id"]
    return key_id


# --- rate limits ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quota:
    """The outcome of counting one request against a policy."""

    policy: str
    limit: int
    window: int
    used: int
    resets_in: int

    @property
    def exceeded(self) -> bool:
        return self.used > self.limit

    def headers(self) -> dict[str, str]:
        remaining = max(self.limit - self.used, 0)
        headers = {
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={self.window}',
            "RateLimit": f'"{self.policy}";r={remaining};t={self.resets_in}',
        }
        if self.exceeded:
            headers["Retry-After"] = str(self.resets_in)
        return headers


class RateLimiter(Protocol):
    async def hit(self, identity: str, limit: int, window: int) -> int:
        """Count a request in the current window of ``identity``; return the count so far."""
        ...

    async def peek(self, identity: str, window: int) -> int:
        """The count so far in the current window of ``identity``, without counting."""
        ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Fixed windows in this process (one event loop: no lock needed)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, identity: str, limit: int, window: int) -> int:
        current = int(time.time()) // window
        if len(self._counts) > 100_000:  # drop past windows now and then
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= current}
        count = self._counts.get((identity, current), 0) + 1
        self._counts[identity, current] = count
        return count

    async def peek(self, identity: str, window: int) -> int:
        return self._counts.get((identity, int(time.time()) // window), 0)

    async def close(self) -> None:
        self._counts.clear()


# INCR and EXPIRE in one atomic step, so concurrent workers never lose a count or leave a
# counter without expiry.
_REDIS_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class RedisRateLimiter:
    """Fixed windows in Redis, shared by every worker. When Redis is unreachable, requests are
    let through (and a warning logged): an outage of the limiter must not take the API down."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._script = self._redis.register_script(_REDIS_HIT)

    async def hit(self, identity: str, limit: int, window: int) -> int:
        current = int(time.time()) // window
        try:
            count = await self._script(keys=[f"secevents:rl:{identity}:{current}"], args=[window + 1])
        except Exception as exc:  # any Redis failure: fail open
            log.warning("rate limiter unavailable, not limiting: %r", exc)
            return 0
        return int(count)

    async def peek(self, identity: str, window: int) -> int:
        current = int(time.time()) // window
        try:
            count = await self._redis.get(f"secevents:rl:{identity}:{current}")
        except Exception as exc:  # any Redis failure: fail open
            log.warning("rate limiter unavailable, not limiting: %r", exc)
            return 0
        return int(count or 0)

    async def close(self) -> None:
        await self._redis.aclose()


def make_rate_limiter(settings: Settings) -> RateLimiter:
    if settings.redis.url:
        return RedisRateLimiter(settings.redis.url)
    return MemoryRateLimiter()


async def count_request(
    limiter: RateLimiter, settings: Settings, principal: Principal, client_ip: str
) -> Quota | None:
    window = settings.api.rate_limit_window_seconds
    if window <= 0:
        return None
    if principal.key_id is not None:
        policy, identity = "key", f"key:{principal.key_id}"
        limit = principal.rate_limit or settings.api.rate_limit_per_key
    else:
        policy, identity, limit = "anonymous", f"ip:{client_ip}", settings.api.rate_limit_anonymous
    used = await limiter.hit(identity, limit, window)
    resets_in = window - int(time.time()) % window
    return Quota(policy=policy, limit=limit, window=window, used=used, resets_in=resets_in)


_FAILURES = "auth-failures"


async def failure_budget_spent(limiter: RateLimiter, settings: Settings, client_ip: str) -> Quota | None:
    """The IP's failure quota when its budget is spent (this request would exceed it), else None."""
    limit, window = settings.api.auth_failure_limit, settings.api.auth_failure_window_seconds
    if limit <= 0 or window <= 0:
        return None
    used = await limiter.peek(f"{_FAILURES}:{client_ip}", window) + 1
    if used <= limit:
        return None
    resets_in = window - int(time.time()) % window
    return Quota(policy=_FAILURES, limit=limit, window=window, used=used, resets_in=resets_in)


async def count_failure(
    limiter: RateLimiter, settings: Settings, client_ip: str, failure: Unauthorized
) -> DomainError:
    """Charge a failed authentication to the IP's failure budget and anonymous quota; the error
    to answer with — the 401, or a 429 when either is now spent."""
    quotas = [await count_request(limiter, settings, ANONYMOUS, client_ip)]
    limit, window = settings.api.auth_failure_limit, settings.api.auth_failure_window_seconds
    if limit > 0 and window > 0:
        used = await limiter.hit(f"{_FAILURES}:{client_ip}", limit, window)
        resets_in = window - int(time.time()) % window
        quotas.append(Quota(policy=_FAILURES, limit=limit, window=window, used=used, resets_in=resets_in))
    for quota in quotas:
        if quota is not None and quota.exceeded:
            return _rate_limited(quota)
    anonymous = quotas[0]
    if anonymous is not None:
        failure.headers.update(anonymous.headers())
    return failure


def _rate_limited(quota: Quota) -> RateLimited:
    what = "failed authentications" if quota.policy == _FAILURES else "requests"
    return RateLimited(
        f"Rate limit of {quota.limit} {what} per {quota.window} s exceeded; retry in {quota.resets_in} s.",
        headers=quota.headers(),
    )


# --- the middleware ---------------------------------------------------------------------------


def _required_scope(scope: Scope) -> str:
    handler = scope.get("route_handler")
    wanted = getattr(handler, "opt", {}).get("scope") if handler is not None else None
    if isinstance(wanted, str) and wanted in _SCOPE_RANK:
        return wanted
    return "read" if scope.get("method") in _READ_METHODS else "write"


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("Use `Authorization: Bearer <key>`.")
            return token.strip()
    return None


async def _principal(scope: Scope, pool: asyncpg.Pool, settings: Settings, token: str) -> Principal:
    # On a connection the request holds, so that its timeout can let go of it.
    conn = await acquire_held(scope, pool, settings)
    try:
        return await principal_for_key(conn, token)
    finally:
        await db.held_connections(scope).release(pool, conn)


class AuthMiddleware:
    """Authenticates every ``/v1`` request, checks its scope, counts it against its rate limit
    and leaves the :class:`Principal` in ``scope["state"]["principal"]``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings: Settings = state.settings
        limiter: RateLimiter = state.rate_limiter
        client = scope.get("client")
        client_ip = client[0] if client else "-"
        principal = await _authenticate(scope, state.pool, limiter, settings, client_ip)
        quota = await count_request(limiter, settings, principal, client_ip)
        headers = quota.headers() if quota is not None else {}
        if quota is not None and quota.exceeded:
            raise _rate_limited(quota)
        _check_scope(scope, settings, principal)
        scope.setdefault("state", {})["principal"] = principal
        if not headers:
            await self.app(scope, receive, send)
            return
        raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *raw_headers]
            await send(message)

        await self.app(scope, receive, send_with_quota)


async def _authenticate(
    scope: Scope, pool: asyncpg.Pool, limiter: RateLimiter, settings: Settings, client_ip: str
) -> Principal:
    """The caller; a key is looked up only while the IP's failure budget lasts."""
    try:
        token = _bearer_token(scope)
        if token is None:
            return ANONYMOUS
        spent = await failure_budget_spent(limiter, settings, client_ip)
        if spent is not None:
            raise _rate_limited(spent)
        return await _principal(scope, pool, settings, token)
    except Unauthorized as failure:
        raise await count_failure(limiter, settings, client_ip, failure) from None


def _check_scope(scope: Scope, settings: Settings, principal: Principal) -> None:
    required = _required_scope(scope)
    if principal.key_id is None:
        if required == "read" and settings.api.public_reads:
            return
        raise Unauthorized(f"This operation needs an API key with the `{required}` scope.")
    if not principal.allows(required):
        raise Forbidden(
            f"This operation needs the `{required}` scope; the key has {sorted(principal.scopes)}."
        )


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The caller, as the middleware authenticated it."""
    principal: Principal = request.scope.get("state", {}).get("principal", ANONYMOUS)
    return principal


async def close_rate_limiter(limiter: RateLimiter) -> None:
    await asyncio.shield(limiter.close())
