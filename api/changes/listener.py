"""One ``LISTEN`` connection per process, woken by every commit that stores revisions.

Migration 0006_feed_snapshots queues ``NOTIFY secevents_changes`` from every statement that inserts
revisions; PostgreSQL delivers it when the transaction commits (once per transaction, never for
one that rolls back). This process's waiters — long-polls and event streams, thousands of them —
share the one connection: each takes :meth:`ChangeListener.signal` *before* it reads the feed, so
a commit that lands between its read and its wait still wakes it.

The connection is opened on first use, outside the pool (``SECEVENTS_LISTEN_URL``, default the
database's URL: ``LISTEN`` needs a session of its own, which PgBouncer in transaction mode and
a standby cannot give). When it is lost it is opened again with backoff, and every waiter is
woken then: what committed while nobody listened is found by reading the feed, never by trusting
notifications alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

import asyncpg

log = logging.getLogger("secevents.changes")

CHANNEL = "secevents_changes"
APPLICATION_NAME = "secevents-listener"  # how pg_stat_activity shows it
# How often an idle listening connection is checked (a silently dropped TCP connection would
# otherwise look idle forever), and the backoff between attempts to open it.
PING_SECONDS = 30.0
BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ChangeListener:
    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        """Set while the ``LISTEN`` is in place (tests wait for it)."""
        self.notifications = 0
        self._callbacks: list[Callable[[], None]] = []

    def signal(self) -> asyncio.Event:
        """An event set by the next commit that stores revisions (or by a reconnection). Take
        it before reading the feed, wait on it after an empty read."""
        self._start()
        return self._event

    @contextlib.contextmanager
    def calling(self, callback: Callable[[], None]) -> Iterator[None]:
        """While inside, ``callback()`` runs at every wake-up (a commit, a reconnection), right
        in the notification's callback: it must only schedule work, never block. For a
        component of a layer above this one that needs no event of its own (the webhook
        worker); starts the listener."""
        self._start()
        self._callbacks.append(callback)
        try:
            yield
        finally:
            self._callbacks.remove(callback)

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="secevents-change-listener")

    def wake(self) -> None:
        """Wake every current waiter; later ones get a fresh event."""
        event, self._event = self._event, asyncio.Event()
        event.set()
        for callback in list(self._callbacks):
            callback()

    def _on_notification(self, *_: object) -> None:
        self.notifications += 1
        self.wake()

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                conn = await asyncpg.connect(
                    self._url,
                    timeout=self._connect_timeout,
                    server_settings={"application_name": APPLICATION_NAME},
                )
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                if attempt in (0, len(BACKOFF)):
                    log.warning("change listener cannot connect (%r); retrying every %.1f s", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0
            try:
                await self._listen(conn)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("change listener lost its connection (%r); reconnecting", exc)
            finally:
                self.connected.clear()
                conn.terminate()

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        await conn.add_listener(CHANNEL, self._on_notification)
        self.connected.set()
        # Changes may have committed while nobody listened: every waiter reads again.
        self.wake()
        while not lost.is_set():
            # asyncio.timeout, not wait_for, which on Python 3.11 can swallow a cancellation
            # (see secevents.server.webhooks.worker).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PING_SECONDS):
                    await lost.wait()
                continue
            await conn.execute("SELECT 1", timeout=self._connect_timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
