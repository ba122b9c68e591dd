"""Keyset pagination: sort orders, signed cursors, the ``Link: rel="next"`` header.

A cursor is the sort key of the last record of a page plus a digest of the query it belongs to
(resource, sort order, filters), signed with HMAC-SHA256 under ``settings.api.cursor_secret``.
So a cursor cannot be forged or edited (400), and a cursor from one query handed to another —
another resource, sort or filter — is a 400 rather than a silently wrong page. ``limit`` may
change between pages. There is no OFFSET: page 1,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

import msgspec
from litestar import Request

from secevents.server.http.errors import InvalidParameter

# Parameters that move through the pages of one query without changing which query it is.
PAGE_PARAMETERS = frozenset({"cursor", "limit"})
_SIGNATURE_BYTES = 16
_SCOPE_CHARS = 16
MAX_CURSOR_LENGTH = 512


@dataclass(frozen=True, slots=True)
class SortOrder:
    """One ``sort=`` value: the SQL expressions it orders by (the last one the record's id,
    unique, all in the same direction so a row comparison can walk a matching index) and the
    Python types of their values, which the cursor carries."""

    name: str
    columns: tuple[str, ...]
    key_types: tuple[type, ...]
    descending: bool

    def __post_init__(self) -> None:
        # Pages tell their records apart by the last key (their ETag: secevents.server.reads.listing).
        if not self.columns[-1].endswith(".id") or self.key_types[-1] is not UUID:
            raise ValueError(f"sort {self.name!r}: the last key must be the record's id")

    @property
    def order_by(self) -> str:
        direction = " DESC" if self.descending else ""
        return ", ".join(f"{column}{direction}" for column in self.columns)

    def select_keys(self) -> str:
        """The sort key as output columns ``k0, k1, …`` (the next cursor is built from them)."""
        return ", ".join(f"{column} AS k{n}" for n, column in enumerate(self.columns))

    def outer_order_by(self) -> str:
        direction = " DESC" if self.descending else ""
        return ", ".join(f"k{n}{direction}" for n in range(len(self.columns)))

    def after(self, placeholders: Sequence[str]) -> str:
        """The keyset condition: rows strictly after the cursor's key in this order."""
        operator = "<" if self.descending else ">"
        return f"({', '.join(self.columns)}) {operator} ({', '.join(placeholders)})"

    def key_of(self, row: Any) -> tuple[Any, ...]:
        """The sort key of a page's row: its columns after ``doc, version`` (``k0, k1…``, as
        ``secevents.server.reads.listing`` selects them)."""
        return tuple(row[2:])


def sort_orders(*orders: SortOrder) -> dict[str, SortOrder]:
    return {order.name: order for order in orders}


@dataclass(frozen=True, slots=True)
class QueryShape:
    """What a list request's cursors and ``Link`` depend on besides the page itself."""

    scope: str
    """A digest of everything that makes a query *this* query: the resource (including path
    parameters), the sort order and every filter parameter, in a canonical order."""
    link_prefix: str
    """The next page's URL up to its cursor: this request's path and query without ``cursor``."""


def query_shape(resource: str, sort: SortOrder, request: Request[Any, Any, Any]) -> QueryShape:
    """The :class:`QueryShape` of a list request, worked out once per distinct query string:
    parsing it, its canonical JSON and digest cost a page more than the rest of its Python."""
    scope = request.scope
    path = scope.get("root_path", "") + scope["path"]  # what request.url.path says
    return _query_shape(resource, sort.name, path, scope.get("query_string", b""))


@lru_cache(maxsize=1024)
def _query_shape(resource: str, sort_name: str, path: str, query_string: bytes) -> QueryShape:
    # The parse request.query_params makes (Litestar's), so digests match the handler's view.
    params = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, separator="&")
    filters = sorted((name, value) for name, value in params if name not in PAGE_PARAMETERS)
    canonical = msgspec.json.encode([resource, path, sort_name, filters])
    kept = urlencode([(name, value) for name, value in params if name != "cursor"])
    return QueryShape(
        scope=hashlib.sha256(canonical).hexdigest()[:_SCOPE_CHARS],
        link_prefix=f"{path}?{kept}&" if kept else f"{path}?",
    )


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        # Keyed once: each signature copies this state instead of looking the digest up by
        # name and hashing the key again (what ``hmac.digest`` does, per call, under
        # OpenSSL 3: a page's costliest hash). Same HMAC-SHA256, same cursors.
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)

    def _sign(self, payload: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(payload)
        return mac.digest()[:_SIGNATURE_BYTES]

    def encode(self, scope: str, key: tuple[Any, ...]) -> str:
        payload = msgspec.json.encode([scope, key])
        token = payload + self._sign(payload)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode()

    def decode(self, cursor: str, scope: str, sort: SortOrder) -> tuple[Any, ...]:
        """The key a cursor carries; 400 when it was not made by this server or not for this
        query."""
        try:
            token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as exc:
            raise InvalidParameter("cursor", "is not a cursor returned by this API") from exc
        payload, signature = token[:-_SIGNATURE_BYTES], token[-_SIGNATURE_BYTES:]
        if len(token) <= _SIGNATURE_BYTES or not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidParameter("cursor", "is not a cursor returned by this API (or was altered)")
        # tuple[str, tuple[<key types>]], built at run time from the sort order.
        key_type: Any = tuple.__class_getitem__(sort.key_types)
        payload_type: Any = tuple.__class_getitem__((str, key_type))
        try:
            cursor_scope, key = msgspec.json.decode(payload, type=payload_type)
        except msgspec.ValidationError as exc:
            raise InvalidParameter("cursor", "belongs to another sort order") from exc
        if cursor_scope != scope:
            raise InvalidParameter(
                "cursor",
                "belongs to another query: keep the resource, `sort` and every filter of the "
                "request that returned it (only `limit` may change)",
            )
        return tuple(key)


@lru_cache(maxsize=8)
def cursor_codec(secret: bytes) -> CursorCodec:
    """The codec of ``secret``, made once (it keys its HMAC when made)."""
    return CursorCodec(secret)


def next_link(shape: QueryShape, next_cursor: str) -> str:
    """RFC 8288 ``Link`` to the next page: this request's path and query, with the new cursor
    (URL-safe base64, which needs no escaping)."""
    return f'<{shape.link_prefix}cursor={next_cursor}>; rel="next"'
