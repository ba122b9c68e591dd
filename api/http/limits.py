"""Limits on what one request may cost (OWASP API4, unrestricted resource consumption).

Checked here, before routing: the query string's length (414) and how often one query
parameter repeats (400), and how long a request may take to start its response (503). The
other limits live where they act: the body size is Litestar's ``request_max_body_size`` (413,
mapped in ``secevents.server.http.errors``), page sizes are bounded by each handler's ``limit`` parameter, the
per-statement timeout is set on every connection (``secevents.server.db``; SQLSTATE 57014 → 503) and the
pool acquire timeout is in ``secevents.server.http.dependencies`` (503).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from urllib.parse import unquote_plus

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from secevents.schemas.problems import FieldError, Problem
from secevents.server import db
from secevents.server.http.errors import PROBLEM_JSON, RETRY_AFTER_SECONDS
from secevents.server.settings import ApiSettings

log = logging.getLogger("secevents.db")

_DEADLINE = "secevents.request_deadline"


def extend_request_deadline(scope: Scope, seconds: float) -> None:
    """For a handler that waits on purpose (a long-poll's ``wait``): the request may take that
    much longer before the timeout answers 503."""
    deadline: _Deadline | None = scope.get("state", {}).get(_DEADLINE)
    if deadline is not None:
        deadline.expires_at += seconds


def problem_message(
    scope: Scope,
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None,
    errors: list[FieldError] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[Message, Message]:
    """The two ASGI messages of a problem+json response, for middleware that answers before
    Litestar's exception handlers are reached."""
    problem = Problem(
        title=title,
        status=status,
        code=code,
        detail=detail,
        instance=scope.get("path"),
        request_id=scope.get("state", {}).get("request_id"),
        errors=errors,
    )
    body = msgspec.json.encode(problem)
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            *(headers or []),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


def repeated_parameter(query_string: bytes, max_values: int) -> tuple[str, int] | None:
    """The first parameter given more than ``max_values`` times, with its count."""
    if query_string.count(b"&") < max_values:
        return None  # too few parameters for any of them to repeat that often
    counts = Counter(
        unquote_plus(pair.partition(b"=")[0].decode("latin-1")) for pair in query_string.split(b"&") if pair
    )
    for name, count in counts.items():
        if count > max_values:
            return name, count
    return None


class RequestLimitsMiddleware:
    """Refuses oversized query strings and over-repeated parameters before any work is done,
    and answers 503 when a request has not started its response within the request timeout
    (the handler is cancelled, which also cancels its running query; connections it still
    holds ``rollback_timeout`` later are terminated)."""

    def __init__(self, app: ASGIApp, settings: ApiSettings, rollback_timeout: float) -> None:
        self.app = app
        self.settings = settings
        self._deadlines = _Deadlines(rollback_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            for message in refusal:
                await send(message)
            return
        await self._with_timeout(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[Message, Message] | None:
        query_string: bytes = scope.get("query_string", b"")
        limit = self.settings.max_query_string_bytes
        if len(query_string) > limit:
            return problem_message(
                scope,
                status=414,
                code="query_string_too_long",
                title="Query string too long",
                detail=f"The query string has {len(query_string)} bytes; at most {limit} are accepted.",
            )
        repeated = repeated_parameter(query_string, self.settings.max_parameter_values)
        if repeated is not None:
            name, count = repeated
            message = f"given {count} times; at most {self.settings.max_parameter_values} values are accepted"
            return problem_message(
                scope,
                status=400,
                code="too_many_values",
                title="Too many values for one parameter",
                detail=f"{name}: {message}",
                errors=[FieldError(field=name, message=message)],
            )
        return None

    async def _with_timeout(self, scope: Scope, receive: Receive, send: Send) -> None:
        response_started = False
        # The request's pooled connections. Past the timeout the request is cancelled, which
        # rolls its transaction back and gives its connections back — unless the database does
        # not answer (frozen, partitioned): then, ``rollback_timeout`` later, they are
        # terminated, so that the cleanup cannot wait on a dead socket and the 503 goes out.
        held = db.HeldConnections()
        state = scope.setdefault("state", {})
        state[db.HELD_CONNECTIONS] = held
        watch = self._deadlines.watch(self.settings.request_timeout, lambda: self._let_go(scope, held))
        state[_DEADLINE] = watch

        async def send_and_watch(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                # Once the response has started (a streamed export may take minutes), the
                # timeout no longer applies: cutting it would leave a truncated body. (A
                # response that starts after it fired is the error the cancelled request ended
                # with, e.g. the 503 for the connection its timeout terminated.)
                watch.done()
            await send(message)

        try:
            try:
                async with watch.timeout:
                    await self.app(scope, receive, send_and_watch)
            finally:
                watch.done()
        except TimeoutError:
            if response_started or not watch.timeout.expired():
                raise
            for message in problem_message(
                scope,
                status=503,
                code="request_timeout",
                title="Request took too long",
                detail=f"The request did not complete within {self.settings.request_timeout:g} s; retry later.",
                headers=[(b"retry-after", RETRY_AFTER_SECONDS.encode())],
            ):
                await send(message)

    @staticmethod
    def _let_go(scope: Scope, held: db.HeldConnections) -> None:
        closed = held.terminate()
        if closed:
            log.warning(
                "terminated %d database connection(s) of %s %s: no rollback within the rollback timeout",
                closed,
                scope.get("method"),
                scope.get("path"),
            )


# --- request deadlines --------------------------------------------------------------------


class _Deadline:
    """One request's deadline: ``timeout`` (an :func:`asyncio.timeout` with no timer of its own)
    is expired by the sweep of :class:`_Deadlines` once ``expires_at`` has passed."""

    __slots__ = ("_let_go", "_letting_go", "_owner", "expires_at", "timeout")

    def __init__(self, owner: _Deadlines, expires_at: float, let_go: Callable[[], None]) -> None:
        self._owner = owner
        self.expires_at = expires_at
        self.timeout = asyncio.timeout(None)
        self._let_go = let_go
        self._letting_go: asyncio.TimerHandle | None = None

    def expire(self, loop: asyncio.AbstractEventLoop, now: float, rollback_timeout: float) -> None:
        self.timeout.reschedule(now)  # cancels the request (asyncio.timeout's own way)
        self._letting_go = loop.call_later(rollback_timeout, self._let_go)

    def done(self) -> None:
        """The response has started, or the request has ended: the deadline no longer applies,
        nor does letting go of the connections."""
        self._owner.forget(self)
        if self._letting_go is not None:
            self._letting_go.cancel()


class _Deadlines:
    """The deadlines of the requests in flight, checked by one recurring sweep instead of two
    uvloop timers armed and cancelled per request (the timeout's and the one that lets go of
    the connections), which py-spy sampled at about 3% of a list page's CPU. A request is
    cancelled within a tenth of its timeout (at most a second) after it; the sweep runs only
    while requests are in flight."""

    def __init__(self, rollback_timeout: float) -> None:
        self.rollback_timeout = rollback_timeout
        self._watched: dict[_Deadline, None] = {}
        self._sweep_every = 1.0
        self._sweeping: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, seconds: float, let_go: Callable[[], None]) -> _Deadline:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # an app served again on another loop (tests)
            self._loop, self._sweeping = loop, None
            self._watched.clear()
        deadline = _Deadline(self, loop.time() + seconds, let_go)
        self._watched[deadline] = None
        self._sweep_every = min(self._sweep_every, max(seconds / 10, 0.01))
        if self._sweeping is None:
            self._sweeping = loop.call_later(self._sweep_every, self._sweep)
        return deadline

    def forget(self, deadline: _Deadline) -> None:
        self._watched.pop(deadline, None)

    def _sweep(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        for deadline in [d for d in self._watched if d.expires_at <= now]:
            del self._watched[deadline]
            deadline.expire(loop, now, self.rollback_timeout)
        self._sweeping = loop.call_later(self._sweep_every, self._sweep) if self._watched else None
