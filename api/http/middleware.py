"""ASGI middleware: the `Allow` header of OPTIONS; a problem+json 500 for whatever escapes every
other handler; ``HEAD`` as ``GET``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from secevents.server.http.errors import http_problem_code
from secevents.server.http.limits import problem_message

log = logging.getLogger("secevents.errors")


class OptionsAllowMiddleware:
    """Answers ``OPTIONS`` with every method of the path in ``Allow``.

    Works around litestar#4169 (fixed only in Litestar 3): when handlers of one path are
    registered separately, the automatic OPTIONS handler keeps the method list of the route it
    was first built for (``Allow: DELETE, OPTIONS`` where GET and PATCH exist too). The final
    route still holds that handler, so its methods are looked up by the handler that answered.
    """

    def __init__(self, app: ASGIApp, litestar_app: Litestar) -> None:
        self.app = app
        self._litestar_app = litestar_app
        self._allow: dict[int, bytes] | None = None

    def _allow_for(self, handler: object) -> bytes | None:
        if self._allow is None:  # routes are final once the app serves
            self._allow = {
                id(route_handler): ", ".join(sorted(_with_head(route.methods))).encode()
                for route in self._litestar_app.routes
                if isinstance(route, HTTPRoute)
                for route_handler in route.route_handlers
                if "OPTIONS" in route_handler.http_methods
            }
        return self._allow.get(id(handler))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start":
                allow = self._allow_for(scope.get("route_handler"))
                if allow is not None:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                    message["headers"] = [*headers, (b"allow", allow)]
            await send(message)

        await self.app(scope, receive, send_with_allow)


def _with_head(methods: Iterable[str]) -> set[str]:
    """A path's methods, ``HEAD`` included where ``GET`` is (:class:`HeadMiddleware`)."""
    found = set(methods)
    return found | {"HEAD"} if "GET" in found else found


class LastResortMiddleware:
    """Every error answer is problem+json, whoever made it.

    - An exception that escapes Litestar's handlers and the middleware inside this one (they
      answer their own errors; this is for what none of them foresaw) becomes a logged 500
      problem — with the security headers and request id of every other answer — instead of the
      HTTP server's bare text/plain 500. Once a response has started it can only be cut off.
    - An error response that some part of the stack writes in another type (Litestar's refused
      CORS preflight is a text/plain 400) is rewritten as the problem of its status, its text as
      the ``detail``. MessagePack answers are problems already (re-encoded by
      :mod:`secevents.server.http.msgpack`) and pass as they are, as do JSON answers a handler
      writes on purpose (the readiness probe's documented 503 ``Health`` document).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = False
        rewriting: Message | None = None
        text = bytearray()

        async def send_as_problem(message: Message) -> None:
            nonlocal started, rewriting
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 400 and not _is_problem(message.get("headers", [])):
                    rewriting = message
                    return
            elif message["type"] == "http.response.body" and rewriting is not None:
                text.extend(message.get("body", b"")[: _MAX_DETAIL - len(text)])
                if message.get("more_body", False):
                    return
                await _send_problem(scope, send, rewriting, bytes(text))
                return
            await send(message)

        try:
            await self.app(scope, receive, send_as_problem)
        except Exception:
            if started:
                log.warning(
                    "%s %s cut off by an error after its response started", scope["method"], scope["path"]
                )
                raise
            log.exception("unhandled error outside the handlers on %s %s", scope["method"], scope["path"])
            for message in problem_message(
                scope, status=500, code="internal_error", title="Internal server error", detail=None
            ):
                await send(message)


_MAX_DETAIL = 300
# Problems already, or a handler's own documented JSON answer (the readiness probe's 503 is a
# ``Health`` document, as the OpenAPI spec says): left as they are.
_PROBLEM_TYPES = (
    b"application/problem+json",
    b"application/msgpack",
    b"application/x-msgpack",
    b"application/json",
)


def _is_problem(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    return content_type.split(b";", 1)[0].strip().lower() in _PROBLEM_TYPES


async def _send_problem(scope: Scope, send: Send, start: Any, text: bytes) -> None:
    status = int(start["status"])
    code, title = http_problem_code(status)
    detail = text.decode("utf-8", "replace").strip() or None
    kept = [
        (k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-type", b"content-length")
    ]
    for message in problem_message(scope, status=status, code=code, title=title, detail=detail, headers=kept):
        await send(message)


class HeadMiddleware:
    """``HEAD`` wherever ``GET`` is (RFC 9110 §9.3.2): the request runs as a ``GET`` and its
    answer goes out with the same status and headers (``Content-Length``, ``ETag``,
    ``Content-Encoding``… as a ``GET`` gets them) and no body.

    A streamed body (an export) is not generated to the end for nothing: once its head is out,
    the handler is told the client has gone (``http.disconnect``), which stops the stream and
    frees what it holds, as for any client that leaves.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        done = asyncio.Event()

        async def send_head_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not done.is_set():
                done.set()
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def receive_until_answered() -> ReceiveMessage:
            if done.is_set():
                return {"type": "http.disconnect"}
            received = asyncio.ensure_future(receive())
            answered = asyncio.ensure_future(done.wait())
            await asyncio.wait({received, answered}, return_when=asyncio.FIRST_COMPLETED)
            answered.cancel()
            if received.done():
                return received.result()
            received.cancel()
            return {"type": "http.disconnect"}

        # In place: the middleware outside (the access log) reads the route Litestar sets here.
        scope["method"] = "GET"
        try:
            await self.app(scope, receive_until_answered, send_head_only)
        finally:
            scope["method"] = "HEAD"
