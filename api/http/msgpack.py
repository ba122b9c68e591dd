"""MessagePack answers on every endpoint, as an ASGI middleware around the whole app.

- A request body sent as ``Content-Type: application/msgpack`` is decoded like a JSON one, after
  routing and authentication and within the route's body limit, by
  :mod:`secevents.server.http.bodies` (not here, before any of those checks).
- A response in JSON (``application/json`` or ``application/problem+json``) is re-encoded as
  ``application/msgpack`` when the client's ``Accept`` prefers MessagePack to JSON (higher
  q-value, or equal and more specific). Responses already in MessagePack (reads negotiate it
  themselves, see :mod:`secevents.server.http.caching`) and streams (exports) pass through untouched.
- JSON and MessagePack responses carry ``Vary: Accept`` (added by the edge layer,
  :mod:`secevents.server.http.edge`, to every response whatever made it).

``application/x-msgpack`` is understood as a synonym.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from secevents.server.http.compression import media_type_of
from secevents.server.http.headers import scope_header

MSGPACK = "application/msgpack"
MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack"})
JSON_TYPES = frozenset({"application/json", "application/problem+json"})


def _quality(accept: str, media_type: str) -> tuple[float, int]:
    """(q, specificity) of the best range in ``accept`` matching ``media_type``; specificity 2 =
    exact, 1 = ``type/*``, 0 = ``*/*``, -1 = no match."""
    main = media_type.split("/", 1)[0]
    best = (0.0, -1)
    for item in accept.split(","):
        range_, *params = (p.strip() for p in item.split(";"))
        range_ = range_.lower()
        if range_ == media_type or (media_type in MSGPACK_TYPES and range_ in MSGPACK_TYPES):
            specificity = 2
        elif range_ == f"{main}/*":
            specificity = 1
        elif range_ == "*/*":
            specificity = 0
        else:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if specificity > best[1]:
            best = (q, specificity)
    return best


def prefers_msgpack(accept: str | None) -> bool:
    if not accept:
        return False
    msgpack_q = _quality(accept, MSGPACK)
    if msgpack_q[0] <= 0 or msgpack_q[1] < 0:
        return False
    json_q = _quality(accept, "application/json")
    return msgpack_q > json_q


class MsgpackMiddleware:
    """Answers in MessagePack when ``Accept`` prefers it. Request bodies
    are not touched here: they are decoded after routing and authentication, within the
    route's body limit (:mod:`secevents.server.http.bodies`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        if prefers_msgpack(scope_header(scope, b"accept") or None):
            await self.app(scope, receive, _MsgpackSender(send))
        else:
            await self.app(scope, receive, send)


class _MsgpackSender:
    """Buffers a JSON response and sends it re-encoded as MessagePack."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Any = None
        self.body: list[bytes] = []

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if media_type_of(headers) in JSON_TYPES:
                self.start = {**message, "headers": headers}
                return
            await self.send(message)
            return
        if message["type"] != "http.response.body" or self.start is None:
            await self.send(message)
            return
        self.body.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        await self._flush()

    async def _flush(self) -> None:
        assert self.start is not None
        raw = b"".join(self.body)
        headers: list[tuple[bytes, bytes]] = self.start["headers"]
        try:
            body = msgspec.msgpack.encode(msgspec.json.decode(raw)) if raw else raw
        except msgspec.DecodeError:
            body = raw  # not actually JSON: leave it as it is
        else:
            # Same content, other bytes: an ETag becomes weak (as reads do, see secevents.server.http.caching).
            headers = [
                (k, v if k.lower() != b"etag" or v.startswith(b"W/") else b"W/" + v)
                for k, v in headers
                if k.lower() not in (b"content-type", b"content-length")
            ]
            headers += [(b"content-type", MSGPACK.encode()), (b"content-length", str(len(body)).encode())]
        start: Any = {**self.start, "headers": headers}
        await self.send(start)
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


ALTERNATIVE_MEDIA_TYPES = "x-alternative-media-types"
"""Vendor extension of a request body: media types the server also accepts, with their schema,
kept beside ``content`` so that client generators which know only JSON (openapi-python-client
stops at any other type) are not blocked; openapi/compat.py counts them as accepted."""

_MSGPACK_BODY_NOTE = (
    " Also accepted as MessagePack (`Content-Type: application/msgpack`, the same schema; see "
    "`x-alternative-media-types`)."
)


def add_msgpack_media_types(spec: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI post-processing: every JSON response (documents and problems) also offered as
    ``application/msgpack`` with the same schema; every JSON request body says it also takes
    MessagePack, under :data:`ALTERNATIVE_MEDIA_TYPES` (JSON stays its one declared type). Call
    it on the spec dict before serving or committing it (see ``secevents.server.openapi.with_formats``)."""
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            body = operation.get("requestBody")
            if isinstance(body, dict) and "application/json" in body.get("content", {}):
                alternatives = body.setdefault(ALTERNATIVE_MEDIA_TYPES, {})
                _offer_msgpack(alternatives, body["content"], ("application/json",))
                body["description"] = (body.get("description") or "").rstrip() + _MSGPACK_BODY_NOTE
                body["description"] = body["description"].lstrip()
            for response in operation.get("responses", {}).values():
                if isinstance(response, dict):
                    content = response.get("content", {})
                    _offer_msgpack(content, content, ("application/json", "application/problem+json"))
    return spec


def _offer_msgpack(target: dict[str, Any], content: dict[str, Any], json_types: tuple[str, ...]) -> None:
    for json_type in json_types:
        if json_type in content and MSGPACK not in target:
            target[MSGPACK] = {
                k: v for k, v in content[json_type].items() if k in ("schema", "example", "examples")
            }
            return
