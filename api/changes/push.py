"""Pushing the change feed: long-poll waits and Server-Sent Event streams.

One :class:`ChangeHub` per process holds the :class:`ChangeListener` and does the reads of every
waiting request. A waiter holds no database connection: it waits on the listener's signal and
takes a pooled connection only for the read it then does, and waiters at the same cursor share
that read (``read``: one query for all of them, the same answer), so a thousand idle streams
woken by one commit cost one query, not a thousand. At most ``max_concurrent_reads`` such reads
hold a connection at once: streams never take the pool from other requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg
from litestar.response import ServerSentEventMessage

from secevents.server.changes import feed
from secevents.server.changes.cursor import CursorCodec, FeedCursor
from secevents.server.changes.listener import ChangeListener
from secevents.server.http.dependencies import replica_failure
from secevents.server.http.errors import ServiceUnavailable
from secevents.server.replicas import WAL_POSITION, Replicas, parse_lsn, release
from secevents.server.settings import Settings

log = logging.getLogger("secevents.changes")

STREAM_PAGE = 500
# Sent once at the start of a stream: how long a browser's EventSource waits before it
# reconnects (with Last-Event-ID) after the connection drops.
RETRY_MILLISECONDS = 2000
# Errors a stream outlives: it says so in a comment and reads again at the next wake-up.
_DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ServiceUnavailable)

_ReadKey = tuple[FeedCursor, tuple[str, ...] | None, int]


def entry_json(entry: feed.Entry, codec: CursorCodec) -> bytes:
    """A feed entry's JSON with its ``cursor``, as the list and the stream both send it."""
    return entry.change[:-1] + b',"cursor":"' + codec.encode(entry.after).encode() + b'"}'


def _comment(text: str, retry: int | None = None) -> ServerSentEventMessage:
    # data=None: Litestar's default (an empty data line) would make every heartbeat an event.
    return ServerSentEventMessage(data=None, comment=text, retry=retry)


class ChangeHub:
    def __init__(self, pool: asyncpg.Pool, listen_url: str, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self.listener = ChangeListener(listen_url, connect_timeout=settings.database.connect_timeout)
        self._reads = asyncio.Semaphore(settings.changes.max_concurrent_reads)
        self._in_flight: dict[_ReadKey, asyncio.Future[feed.Page]] = {}
        self._state: feed.FeedState | None = None
        self.replicas: Replicas | None = None
        """Set when reads go to replicas: then so do the feed's."""
        self.waiting = 0
        """Long-polls waiting for a commit right now (not reading: those hold no connection)."""
        self.streams = 0
        """Event streams open right now."""

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection to the primary; 503 when none is free in time."""
        try:
            conn = await self._pool.acquire(timeout=self._settings.database.pool_acquire_timeout)
        except TimeoutError as exc:
            raise ServiceUnavailable("No database connection became free in time; retry later.") from exc
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):  # a connection that died is replaced by the pool
                await self._pool.release(conn)

    async def read_page(
        self, cursor: FeedCursor, types: Sequence[str] | None, limit: int, *, read_after: int | None
    ) -> feed.Page:
        """One page of the feed, from a replica in rotation when there are replicas (a standby
        pages only up to what it has replayed, so it never shows a gap) that has replayed past
        ``read_after``, else from the primary — also when the replica fails under the read."""
        replicas = self.replicas
        if replicas is None or not replicas.in_rotation():
            async with self.connection() as conn:
                return await feed.read_page(conn, cursor, types, limit)
        timeout = self._settings.database.pool_acquire_timeout
        try:
            pool, conn, member = await replicas.acquire_for_read(read_after, timeout)
        except TimeoutError as exc:
            raise ServiceUnavailable("No database connection became free in time; retry later.") from exc
        try:
            return await feed.read_page(conn, cursor, types, limit)
        except Exception as exc:
            if member is None or not replica_failure(exc):
                raise
            replicas.mark_down(member, exc)
        finally:
            await release(pool, conn)
        async with self.connection() as conn:
            return await feed.read_page(conn, cursor, types, limit)

    async def _primary_position(self) -> int | None:
        """Where the primary's WAL is now, when reads go to replicas: a read after a wake-up
        waits for a replica that has replayed the commit that woke it (the NOTIFY comes from the
        primary; a replica behind it would answer an empty page and the waiter would sleep
        through the change)."""
        if self.replicas is None or not self.replicas.in_rotation():
            return None
        async with self.connection() as conn:
            return parse_lsn(await conn.fetchval(WAL_POSITION))

    async def feed_state(self, conn: asyncpg.Connection | None = None) -> feed.FeedState:
        """The feed's signing key and legacy boundary, read once (on ``conn``, or a pooled one)."""
        if self._state is None:
            if conn is not None:
                self._state = await feed.load_state(conn)
            else:
                async with self.connection() as pooled:
                    self._state = await feed.load_state(pooled)
        return self._state

    async def read(self, cursor: FeedCursor, types: Sequence[str] | None, limit: int) -> feed.Page:
        """The page after ``cursor``, read once for every caller asking for it at the moment."""
        key: _ReadKey = (cursor, tuple(types) if types else None, limit)
        shared = self._in_flight.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._read(cursor, types, limit))
            self._in_flight[key] = shared
            shared.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(shared)

    def _forget(self, key: _ReadKey, done: asyncio.Future[feed.Page]) -> None:
        self._in_flight.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every caller that still waits gets it raised

    async def _read(self, cursor: FeedCursor, types: Sequence[str] | None, limit: int) -> feed.Page:
        async with self._reads:
            return await self.read_page(cursor, types, limit, read_after=await self._primary_position())

    async def wait(
        self,
        page: feed.Page,
        types: Sequence[str] | None,
        limit: int,
        *,
        seconds: float,
        signal: asyncio.Event,
    ) -> feed.Page:
        """Long-poll: the first page with changes after ``page.next`` (an empty page), or after
        ``seconds`` the last empty one. ``signal`` was taken before ``page`` was read."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not (page.entries or page.has_more):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            self.waiting += 1
            try:
                async with asyncio.timeout(remaining):  # (no task per wait, as wait_for makes)
                    await signal.wait()
            except TimeoutError:
                break
            finally:
                self.waiting -= 1
            signal = self.listener.signal()
            page = await self.read(page.next, types, limit)
        return page

    async def events(
        self, cursor: FeedCursor, types: Sequence[str] | None, codec: CursorCodec
    ) -> AsyncIterator[ServerSentEventMessage]:
        """The event stream: every change after ``cursor`` as it commits, one event each, ``id``
        the cursor right after it; a comment after ``heartbeat_seconds`` of silence."""
        self.streams += 1
        try:
            async for message in self._events(cursor, types, codec):
                yield message
        finally:
            self.streams -= 1

    async def _events(
        self, cursor: FeedCursor, types: Sequence[str] | None, codec: CursorCodec
    ) -> AsyncIterator[ServerSentEventMessage]:
        heartbeat = self._settings.changes.heartbeat_seconds
        loop = asyncio.get_running_loop()
        ends = loop.time() + self._settings.changes.stream_max_seconds
        yield _comment("secevents change stream", retry=RETRY_MILLISECONDS)
        quiet_since = loop.time()
        while loop.time() < ends:
            signal = self.listener.signal()
            try:
                page = await self.read(cursor, types, STREAM_PAGE)
            except _DATABASE_ERRORS as exc:
                log.warning("change stream could not read the feed: %r", exc)
                yield _comment("database unavailable; waiting")
                page = feed.Page([], cursor, has_more=False)
                quiet_since = loop.time()
            for entry in page.entries:
                yield ServerSentEventMessage(
                    data=entry_json(entry, codec), id=codec.encode(entry.after), event="change"
                )
            cursor = page.next
            if page.entries:
                quiet_since = loop.time()
            if page.has_more:
                continue
            remaining = min(quiet_since + heartbeat, ends) - loop.time()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await signal.wait()
                    continue
            yield _comment("heartbeat")
            quiet_since = loop.time()

    async def close(self) -> None:
        await self.listener.close()
