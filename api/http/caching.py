"""HTTP caching and content negotiation of reads: ``ETag`` / ``If-None-Match`` → 304,
``Cache-Control``, ``Vary``, and JSON or MessagePack by ``Accept``.

Bodies arrive already rendered as JSON by PostgreSQL. A record's ETag is ``"<id>:<version>"``
(:mod:`secevents.server.http.etags`, shared with ``If-Match`` on writes). A page's is a digest of
the ``(id, version)`` of its records and its next cursor: the stored document of a version never
changes, so they fix the page's bytes, and hashing 50 pairs costs a third of hashing 50
documents. Other computed bodies (statistics) hash their bytes (:func:`body_etag`).
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_406_NOT_ACCEPTABLE

from secevents.server.http.headers import scope_header
from secevents.server.http.responses import EncodedResponse
from secevents.server.settings import Settings

JSON = "application/json"
MSGPACK = "application/msgpack"
MSGPACK_ALIAS = "application/x-msgpack"
REPRESENTATIONS = (JSON, MSGPACK, MSGPACK_ALIAS)


def page_etag(ids: Sequence[UUID], versions: Sequence[int], next_cursor: str | None) -> str:
    """The ETag of a page of stored documents: the ids and versions of its records.

    Their bytes (16 per id, 8 per version) hashed with BLAKE2b, CPython's own: for these
    kilobytes, SHA-256 through OpenSSL 3 (which looks the digest up on every call) cost more
    than the hashing itself, and so did encoding the pairs with msgspec (asyncpg's UUIDs are a
    subclass msgspec converts one by one)."""
    digest = hashlib.blake2b(b"".join([record_id.bytes for record_id in ids]), digest_size=12)
    digest.update(array("q", versions).tobytes())
    if next_cursor is not None:
        digest.update(next_cursor.encode())
    return f'"{digest.hexdigest()}"'


def body_etag(body: bytes) -> str:
    """The ETag of a body computed per request (SHA-256: with the CPU's SHA extensions, twice
    as fast as BLAKE2b)."""
    return f'"{hashlib.sha256(body).hexdigest()[:24]}"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names this ETag (weak comparison, RFC 9110 §13.1.2)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(tag) == wanted for tag in if_none_match.split(","))


def negotiate(request: Request[Any, Any, Any]) -> str:
    """The media type to answer with: JSON unless ``Accept`` prefers MessagePack; 406 when
    ``Accept`` allows neither."""
    if scope_header(request.scope, b"accept") is None:
        return JSON
    best = request.accept.best_match(list(REPRESENTATIONS))
    if best is None:
        raise HTTPException(
            status_code=HTTP_406_NOT_ACCEPTABLE,
            detail=f"Acceptable representations: {JSON}, {MSGPACK} (errors: application/problem+json)",
        )
    return MSGPACK if best == MSGPACK_ALIAS else best


# Clients and caches may keep a copy but must revalidate it (a cheap 304) before use. Encoded
# once: every read sends them.
_PUBLIC_CACHING = [(b"cache-control", b"public, no-cache"), (b"vary", b"Accept")]
_PRIVATE_CACHING = [(b"cache-control", b"private, no-cache"), (b"vary", b"Accept, Authorization")]


def cache_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    return _PUBLIC_CACHING if settings.api.public_reads else _PRIVATE_CACHING


def conditional_response(
    request: Request[Any, Any, Any],
    settings: Settings,
    body: bytes,
    etag: str,
    *,
    link: str | None = None,
) -> EncodedResponse:
    """200 with the body in the negotiated representation, or 304 when the client's copy is
    current; ``link``: the ``Link`` header's value."""
    media_type = negotiate(request)
    if media_type == MSGPACK:
        # The JSON came from PostgreSQL; MessagePack clients get the same document re-encoded.
        body = msgspec.msgpack.encode(msgspec.json.decode(body))
        # Same content, other bytes: a weak tag (If-Match on writes compares versions anyway).
        etag = f"W/{etag}"
    headers = [*cache_headers(settings), (b"etag", etag.encode())]
    if link is not None:
        headers.append((b"link", link.encode()))
    if none_match(scope_header(request.scope, b"if-none-match"), etag):
        return EncodedResponse(b"", status=304, headers=headers)
    return EncodedResponse(body, media_type=media_type, headers=headers)
