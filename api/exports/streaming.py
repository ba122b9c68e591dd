"""How an export holds the database and the worker while it streams — so that clients which
stop reading cannot take either hostage.

- **Read ahead, then let go.** The export's rows are read (one ``REPEATABLE READ`` snapshot, a
  server-side cursor) by a task of their own into a buffer of ``export_buffer_bytes``; the
  pooled connection goes back to the pool as soon as the last row is read, which for any
  export smaller than the buffer is before the client has received much of it.
- **A stall is bounded.** When the client takes no chunk for ``export_stall_timeout`` seconds
  (its socket and the buffer are full), the response is cut off: the reading task is cancelled,
  its transaction rolled back and its connection returned, the export's slot freed.
- **Exports are capped**, per worker: ``max_exports`` at once (beyond: 503) and
  ``max_exports_per_client`` per key, or per IP without one (beyond: 429), both with
  ``Retry-After``. So at most ``max_exports`` pooled connections ever serve exports; the rest
  of the pool serves everything else.
- **A cut is visible.** A response that is cut off ends without HTTP/1.1's terminating chunk,
  and without the export's own last line (``formats``: the NDJSON and CSV trailers, the closing
  of a GeoJSON or STIX document), so any client — ``curl`` and a line reader included — can
  tell a complete export from a truncated one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from secevents.server.http.auth import Principal
from secevents.server.http.errors import RateLimited, ServiceUnavailable
from secevents.server.settings import ApiSettings

log = logging.getLogger("secevents.exports")

EXPORT_RETRY_AFTER = "10"
"""Seconds a client refused by the caps is asked to wait (an export takes a while)."""
_STATE_KEY = "export_stream"
_END = object()


class ExportSlots:
    """The exports running in this worker, overall and per client (one event loop: no lock)."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.running = 0
        self.by_client: Counter[str] = Counter()

    def take(self, client: str) -> None:
        """Count an export in, or refuse it (429 for the client's own cap, 503 for the worker's)."""
        headers = {"Retry-After": EXPORT_RETRY_AFTER}
        per_client = self.settings.max_exports_per_client
        if self.by_client[client] >= per_client:
            raise RateLimited(
                f"At most {per_client} export(s) at a time per client; retry when one has finished.",
                headers=headers,
            )
        if self.running >= self.settings.max_exports:
            busy = ServiceUnavailable("Too many exports are running; retry later.")
            busy.headers.update(headers)
            raise busy
        self.running += 1
        self.by_client[client] += 1

    def release(self, client: str) -> None:
        self.running -= 1
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]


def client_identity(scope: Scope) -> str:
    principal: Principal | None = scope.get("state", {}).get("principal")
    if principal is not None and principal.key_id is not None:
        return f"key:{principal.key_id}"
    client = scope.get("client")
    return f"ip:{client[0] if client else '-'}"


def export_guard(slots: ExportSlots) -> Callable[[ASGIApp], ASGIApp]:
    """Route middleware of the export routes (after authentication): the caps, the stall bound
    on every chunk sent, and the release of the stream's task and connection however the
    response ends — completed, cut off, or abandoned by the client."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            client = client_identity(scope)
            slots.take(client)
            stall = slots.settings.export_stall_timeout

            async def send_within_stall(message: Message) -> None:
                if message["type"] != "http.response.body":
                    await send(message)
                    return
                try:
                    async with asyncio.timeout(stall):
                        await send(message)
                except TimeoutError:
                    log.warning("export to %s cut off: the client took nothing for %g s", client, stall)
                    raise

            try:
                await app(scope, receive, send_within_stall)
            finally:
                try:
                    stream = scope.get("state", {}).pop(_STATE_KEY, None)
                    if stream is not None:
                        await stream.aclose()
                finally:
                    slots.release(client)

        return guarded

    return middleware


def read_ahead(
    scope: Scope,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    chunks: AsyncIterator[bytes],
    settings: ApiSettings,
    chunk_bytes: int,
) -> AsyncIterator[bytes]:
    """``chunks`` (which read from ``conn``) as a stream that a task fills ahead of the client,
    up to ``settings.export_buffer_bytes``; ``conn`` is released when the reading ends. The
    stream is registered for :func:`export_guard` to close."""
    stream = _read_ahead(pool, conn, chunks, max(1, settings.export_buffer_bytes // chunk_bytes))
    scope.setdefault("state", {})[_STATE_KEY] = stream
    return stream


async def _read_ahead(
    pool: asyncpg.Pool, conn: asyncpg.Connection, chunks: AsyncIterator[bytes], capacity: int
) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=capacity)

    async def produce() -> None:
        # The snapshot's transaction is held here rather than inside `chunks`, so that when this
        # task is cancelled it is rolled back now, on this connection, before its release — not
        # later by a generator finalised while the connection serves someone else.
        try:
            async with conn.transaction(readonly=True, isolation="repeatable_read"):
                async for chunk in chunks:
                    await queue.put(chunk)
            await queue.put(_END)
        except Exception as exc:  # the database failed mid-export: the response is cut off
            await queue.put(exc)
        finally:
            await pool.release(conn)

    producer = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
