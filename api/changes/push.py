"""Pushing the change feed: long-poll waits and Server-Sent Event streams.

One :class:`ChangeHub` per process holds the :class:`ChangeListener` and does the reads of every
waiting request. Waiters at the same cursor with the same filter form a group (:class:`_Group`):
one reader task per group waits on the listener's signal, reads the feed and hands the first
page with changes to every member at once. A commit therefore wakes one task per group, not one
per stream: a thousand idle streams at one cursor cost one wake-up and one query per commit, and
are woken themselves only when there is something to send. A member that was busy sending when
its group moved on (a slow client) finds the group gone and starts one of its own at its cursor,
which reads at once: nobody waits on a page it has not read.

Nobody waiting holds a database connection: a reader takes a pooled one only for its read, and
at most ``max_concurrent_reads`` reads hold one at once, so streams never take the pool from
other requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager

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


class _Group:
    """Waiters at one cursor with one filter (and page size), and the task that reads for them.

    The reader takes the listener's signal, reads, and waits on the signal when there is
    nothing for the group; an empty read may still move its own cursor past changes the filter
    leaves out, while the members stay at theirs (nothing of theirs lies in between). When a page
    has changes it becomes :attr:`page`, the group leaves the hub and every member is told
    (:attr:`news`). A read the database refused counts in :attr:`failures` (members may say so)
    and is tried again at the next signal; any other error ends the group and is raised in its
    members. A group ended without either (the hub closing) ends its members' waits quietly."""

    def __init__(self, hub: ChangeHub, key: _ReadKey, signal: asyncio.Event | None) -> None:
        self.key = key
        self.members = 0
        self.page: feed.Page | None = None
        self.failures = 0
        self.failure: BaseException | None = None
        """The last database error, or the error that ended the group (with ``page`` None)."""
        self.ended = False
        self.news = asyncio.Event()
        """Set when the group has a page, fails or ends; then replaced for the next news."""
        self._hub = hub
        self.task = asyncio.create_task(self._read(signal), name="secevents-change-group")

    def _tell(self) -> None:
        news, self.news = self.news, asyncio.Event()
        news.set()

    async def _read(self, signal: asyncio.Event | None) -> None:
        """``signal``: taken before a read (by the first member) that found nothing at the
        group's cursor, so the first thing to do is wait; without it, read first."""
        cursor, types, limit = self.key
        try:
            while True:
                if signal is None:
                    signal = self._hub.listener.signal()
                    try:
                        page = await self._hub.read(cursor, types, limit)
                    except _DATABASE_ERRORS as exc:
                        log.warning("change stream could not read the feed: %r", exc)
                        self.failures += 1
                        self.failure = exc
                        self._tell()
                    else:
                        self.failure = None
                        if page.entries or page.has_more:
                            self.page = page
                            return
                        cursor = page.next
                # Bounded: a wake-up that never came (a notification lost on the way) costs
                # at most this long, not the group's changes.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._hub.recheck_seconds):
                        await signal.wait()
                signal = None
        except Exception as exc:  # raised in every member instead (a task's error would be lost)
            self.failure = exc
        finally:
            self.ended = True
            self._hub.forget_group(self)
            self._tell()


class ChangeHub:
    def __init__(self, pool: asyncpg.Pool, listen_url: str, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self.recheck_seconds = settings.changes.recheck_seconds
        """How long a group waits for a wake-up before it reads the feed again anyway."""
        self.listener = ChangeListener(listen_url, connect_timeout=settings.database.connect_timeout)
        self._reads = asyncio.Semaphore(settings.changes.max_concurrent_reads)
        self._in_flight: dict[_ReadKey, asyncio.Future[feed.Page]] = {}
        self._groups: dict[_ReadKey, _Group] = {}
        self._state: feed.FeedState | None = None
        self.replicas: Replicas | None = None
        """Set when reads go to replicas: then so do the feed's."""
        self.waiting = 0
        """Long-polls waiting for a commit right now (their group may be reading: see ``reading``)."""
        self.streams = 0
        """Event streams open right now."""

    @property
    def reading(self) -> int:
        """Feed reads under way for waiters right now (only these hold pooled connections)."""
        return len(self._in_flight)

    @property
    def readers(self) -> int:
        """Groups of waiters, each with its one reader task, right now."""
        return len(self._groups)

    @contextmanager
    def _member(
        self,
        cursor: FeedCursor,
        types: Sequence[str] | None,
        limit: int,
        signal: asyncio.Event | None = None,
    ) -> Iterator[_Group]:
        """Membership of the group waiting at ``cursor``: joined, or started (see
        :meth:`_Group._read` for ``signal``); the last member to leave stops its reader."""
        key: _ReadKey = (cursor, tuple(types) if types else None, limit)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(self, key, signal)
        group.members += 1
        try:
            yield group
        finally:
            group.members -= 1
            if group.members == 0:
                group.task.cancel()
                self.forget_group(group)

    def forget_group(self, group: _Group) -> None:
        """Later waiters at its cursor start a group of their own."""
        if self._groups.get(group.key) is group:
            del self._groups[group.key]

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
        ``seconds`` ``page`` itself. ``signal`` was taken before ``page`` was read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        with self._member(page.next, types, limit, signal) as group:
            failures = group.failures
            while group.page is None:
                if group.failure is not None and (group.failures != failures or group.ended):
                    # The read failed: answer with its error (503 for an unreachable database).
                    raise group.failure
                if group.ended:
                    return page
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return page
                news = group.news
                self.waiting += 1
                try:
                    async with asyncio.timeout(remaining):  # (no task per wait, as wait_for makes)
                        await news.wait()
                except TimeoutError:
                    return page
                finally:
                    self.waiting -= 1
            return group.page

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
            with self._member(cursor, types, STREAM_PAGE) as group:
                failures = group.failures
                while group.page is None:
                    if group.ended:
                        if group.failure is not None:
                            raise group.failure
                        return
                    if group.failures != failures:
                        failures = group.failures
                        yield _comment("database unavailable; waiting")
                        quiet_since = loop.time()
                        continue
                    now = loop.time()
                    if now >= ends:
                        return
                    if now >= quiet_since + heartbeat:
                        yield _comment("heartbeat")
                        quiet_since = loop.time()
                        continue
                    news = group.news
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(quiet_since + heartbeat, ends) - now):
                            await news.wait()
                page = group.page
            for entry in page.entries:
                yield ServerSentEventMessage(
                    data=entry_json(entry, codec), id=codec.encode(entry.after), event="change"
                )
            cursor = page.next
            if page.entries:
                quiet_since = loop.time()

    async def close(self) -> None:
        readers = [group.task for group in self._groups.values()]
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await self.listener.close()
