"""The outermost ASGI layer: what every HTTP response gets, whoever made it — unknown paths,
requests refused before routing and the last-resort 500 included — in one pass over ``send``:

- the request id, in and out: ``X-Request-ID`` from the request when it is a sane token (else a
  new one), kept in ``scope["state"]["request_id"]`` for logs and problem details, and echoed;
- the security headers (:mod:`secevents.server.http.security`);
- ``Vary`` (:func:`with_vary`): ``Accept`` on JSON and MessagePack (the same URL answers in
  either), ``Accept-Encoding`` on what may be compressed (:mod:`secevents.server.http.compression`);
- the access log line and the metrics (:class:`~secevents.server.http.observability.AccessLog`),
  with the final status and the bytes sent.

One layer, not four: what every response gets is said in one place (``Vary`` was built twice,
by the compression and the MessagePack layers), and one ``send`` wrapper runs per response
instead of four. The compression and MessagePack layers inside wrap ``send`` only when they
change the body. (Measured against the four layers in one process: no difference in CPU per
page that the bench machine could show, bench/results/read.md; the cost is in the work.)
"""

from __future__ import annotations

import asyncio
import re
import secrets

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from secevents.server.http.compression import is_compressible, media_type_of
from secevents.server.http.msgpack import JSON_TYPES, MSGPACK_TYPES
from secevents.server.http.observability import AccessLog, Metrics
from secevents.server.http.security import with_security_headers

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_NEGOTIATED_TYPES = JSON_TYPES | MSGPACK_TYPES


def request_id_of(scope: Scope) -> str:
    """The request's ``X-Request-ID`` when it is a sane token, else a new random one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
            break
    return secrets.token_hex(16)


def with_vary(status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with the request headers the response depends on named in ``Vary``, beside
    those it names already (``Authorization`` on private reads): ``Accept`` for JSON and
    MessagePack, ``Accept-Encoding`` for a compressible type and for a 304 (its 200 may have
    been compressed). ``headers`` itself is left as it is."""
    media_type = media_type_of(headers)
    names = []
    if media_type in _NEGOTIATED_TYPES:
        names.append(b"Accept")
    if status == 304 or is_compressible(media_type):
        names.append(b"Accept-Encoding")
    if not names:
        return headers
    for i, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            present = {token.strip().lower() for token in value.split(b",")}
            missing = [name for name in names if name.lower() not in present]
            if not missing or b"*" in present:
                return headers
            return [*headers[:i], (key, b", ".join([value, *missing])), *headers[i + 1 :]]
    return [*headers, (b"vary", b", ".join(names))]


class EdgeMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None) -> None:
        self.app = app
        self.access_log = AccessLog(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        request_id_header = (b"x-request-id", request_id.encode())
        visit = self.access_log.begin(request_id)

        async def send_out(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                visit.answered(status)
                headers = with_vary(status, with_security_headers(message.get("headers", [])))
                headers.append(request_id_header)  # a list of its own: with_security_headers'
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                visit.sent(len(message.get("body", b"")))
            await send(message)

        try:
            await self.app(scope, receive, send_out)
        except asyncio.CancelledError:
            visit.client_left()
            raise
        finally:
            self.access_log.end(scope, visit)
