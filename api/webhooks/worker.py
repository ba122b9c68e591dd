"""The delivery worker: a background task in every server process (``SECEVENTS_WEBHOOK_WORKER``)
that walks each endpoint's cursor through the change feed and delivers what passes its
filters, in feed order, at least once.

Coordination is PostgreSQL's: a round claims due endpoints with ``FOR UPDATE SKIP LOCKED``
under a lease (:mod:`secevents.server.webhooks.queries`), so however many processes run, one
endpoint is served by one worker at a time and each change goes out once per endpoint (again
only if a worker dies mid-delivery, or stalls past its lease: at least once, never lost). An
endpoint's next change waits until the one before is delivered; a failed one is retried on
the configured schedule, with jitter, and when the schedule runs out the endpoint is disabled
with the reason, its cursor still before the change that failed (re-enabling retries it).
All of it lives in the endpoint's row: a restart loses nothing.

The worker looks for due endpoints when woken (:meth:`DeliveryWorker.wake`: a new change, as the
app wires the change listener to it; a delivery slot freed), when the soonest retry it
scheduled falls due, and every ``poll_interval`` seconds (retries scheduled by another process,
changes whose notification was lost). Endpoints that
had nothing to deliver are skipped until a change is committed after the feed's head of that
moment, so an idle round costs two queries however many endpoints exist.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from secevents.server.changes import reader as feed
from secevents.server.settings import WebhookSettings
from secevents.server.webhooks import events, queries
from secevents.server.webhooks.sender import Outcome, Sender

log = logging.getLogger("secevents.webhooks")

PAGE_SIZE = 100
# Changes delivered to one endpoint per claim before it goes back in line (fairness).
TURN = 500


class DeliveryWorker:
    def __init__(self, pool: asyncpg.Pool, sender: Sender, settings: WebhookSettings) -> None:
        self._pool = pool
        self._sender = sender
        self._settings = settings
        self._lease_seconds = 2 * settings.timeout + 30
        self._wake = asyncio.Event()
        self._head: str | None = None
        self._idle: dict[UUID, str] = {}
        self._tokens: Counter[UUID] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sleeping = False
        self._retry_due: float | None = None
        """When the soonest retry this worker scheduled is due (event-loop time): the worker
        wakes for it, whatever the poll interval."""

    @property
    def idle(self) -> bool:
        """Nothing in flight, and waiting for a wake-up or the poll with none pending."""
        return self._sleeping and not self._wake.is_set() and not self._tasks

    def wake(self) -> None:
        """Look for due deliveries now (a change was committed, a slot freed)."""
        self._wake.set()

    def retry_in(self, seconds: float) -> None:
        """A delivery failed and is due again in ``seconds``: wake up for it."""
        due = asyncio.get_running_loop().time() + seconds
        self._retry_due = due if self._retry_due is None else min(self._retry_due, due)

    def _sleep_seconds(self) -> float:
        if self._retry_due is None:
            return self._settings.poll_interval
        return max(
            0.0, min(self._settings.poll_interval, self._retry_due - asyncio.get_running_loop().time())
        )

    async def run(self) -> None:
        while True:
            self._wake.clear()
            if self._retry_due is not None and self._retry_due <= asyncio.get_running_loop().time():
                self._retry_due = None
            try:
                claimed = await self._round()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("webhook worker: database unavailable, retrying: %r", exc)
                claimed = 0
            if claimed == 0 or len(self._tasks) >= self._settings.concurrency:
                self._sleeping = True
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for returns normally when
                    # the task is cancelled just as the event is set, and the lost cancellation
                    # left the shutdown waiting on this loop forever (seen under load).
                    with suppress(TimeoutError):
                        async with asyncio.timeout(self._sleep_seconds()):
                            await self._wake.wait()
                finally:
                    self._sleeping = False

    async def stop(self) -> None:
        """Cancel what is in flight and hand the leases back, so that another process (or this
        one, restarted) resumes at once; a message interrupted mid-send goes out again."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tokens:
            try:
                await self._pool.execute(queries.RELEASE_ALL, list(self._tokens))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("webhook worker: leases not released (they expire): %r", exc)

    async def _round(self) -> int:
        free = self._settings.concurrency - len(self._tasks)
        if free <= 0:
            return 0
        token = uuid.uuid4()
        # The round holds the token before it claims, and keeps it when cancelled (a shutdown
        # between the claim's commit and the tasks taking it over): :meth:`stop` then still hands
        # those leases back, instead of the endpoints waiting out the lease in the next process.
        self._tokens[token] += 1
        try:
            async with self._pool.acquire() as conn:
                if self._head is None or await self._feed_moved(conn, self._head):
                    self._head = await feed.head_cursor(conn)
                    self._idle.clear()
                head = self._head
                rows = await conn.fetch(queries.CLAIM, token, self._lease_seconds, list(self._idle), free)
            for row in rows:
                self._tokens[token] += 1
                task = asyncio.create_task(self._serve(token, row, head))
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._done, token=token))
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._drop_token(token)
            raise
        self._drop_token(token)
        return len(rows)

    @staticmethod
    async def _feed_moved(conn: asyncpg.Connection, head: str) -> bool:
        """Whether a change was committed after ``head``. Not whether the snapshot moved: every
        commit moves that, the worker's own lease updates included, and idle endpoints would
        then be claimed again round after round."""
        page = await feed.read_page(conn, head, None, 1)
        return bool(page.entries or page.has_more)

    def _caught_up(self, endpoint: UUID, head: str) -> None:
        """An endpoint had nothing left after the feed's ``head``: skip it until a change comes
        after that. Only while ``head`` is still the worker's: a round that ran meanwhile saw a
        newer change (and cleared the skips), which this endpoint's read may have missed; skipped
        now, the endpoint would wait for the next change or poll to get it."""
        if head == self._head:
            self._idle[endpoint] = head

    def _done(self, task: asyncio.Task[None], *, token: UUID) -> None:
        self._tasks.discard(task)
        self._drop_token(token)
        self.wake()

    def _drop_token(self, token: UUID) -> None:
        self._tokens[token] -= 1
        if self._tokens[token] <= 0:
            del self._tokens[token]

    async def _serve(self, token: UUID, row: asyncpg.Record, head: str) -> None:
        try:
            await _Turn(self, token, row, head).run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the endpoint is served again: nothing is lost.
            log.exception("webhook worker: delivering to endpoint %s failed", row["id"])


class _Turn:
    """One claim of one endpoint: deliver what is pending, in order, until caught up, a
    delivery fails, or the turn is used up."""

    def __init__(self, worker: DeliveryWorker, token: UUID, row: asyncpg.Record, head: str) -> None:
        self.worker = worker
        self.token = token
        self.id: UUID = row["id"]
        self.url: str = row["url"]
        self.secret: str = row["secret"]
        self.types: list[str] = row["types"]
        self.filters = events.Filters.of(
            row["filter_countries"], row["filter_types"], row["filter_organisations"]
        )
        self.cursor: str = row["cursor"]
        self.attempts: int = row["attempts"]
        self.head = head

    async def run(self) -> None:
        pool = self.worker._pool
        delivered = 0
        while delivered < TURN:
            async with pool.acquire() as conn:
                page = await feed.read_page(conn, self.cursor, self.types, PAGE_SIZE)
            for raw, position in zip(page.entries, page.positions, strict=True):
                change = events.entry(raw)
                if self.filters.match(change):
                    if not await self._deliver(change, raw, position):
                        return
                    delivered += 1
                else:
                    self.cursor = position
            self.cursor = page.next_cursor
            if not page.has_more:
                await self._release()
                self.worker._caught_up(self.id, self.head)
                return
        await self._release()

    async def _deliver(self, change: events.Entry, raw: bytes, position: str) -> bool:
        """Send one change; whether to go on with the next."""
        message_id = events.message_id(self.id, change.seq)
        outcome = await self.worker._sender.send(
            self.url,
            secret=self.secret,
            message_id=message_id,
            body=events.change_message(self.id, change, raw),
        )
        attempt = self.attempts + 1
        async with self.worker._pool.acquire() as conn, conn.transaction():
            if outcome.succeeded:
                going_on = await conn.fetchrow(
                    queries.ADVANCE, self.id, self.token, position, True, self.worker._lease_seconds
                )
            else:
                going_on = None
                await self._failed(conn, change, attempt, outcome)
            try:
                async with conn.transaction():  # a savepoint: the endpoint may be gone
                    await queries.record_delivery(
                        conn,
                        self.id,
                        message_id=message_id,
                        event_type=change.event_type,
                        change_seq=change.seq,
                        attempt=attempt,
                        outcome=outcome,
                    )
            except asyncpg.ForeignKeyViolationError:
                return False
        if going_on is None:
            return False
        self.cursor, self.attempts = position, 0
        if not going_on["enabled"]:
            await self._release()
            return False
        return True

    async def _failed(
        self, conn: asyncpg.Connection, change: events.Entry, attempt: int, outcome: Outcome
    ) -> None:
        schedule = self.worker._settings.retry_schedule
        reason: str | None = None
        if outcome.status_code == 410:
            reason = "the receiver answered 410 Gone"
        elif attempt > len(schedule):
            reason = (
                f"gave up on change {change.seq} ({change.event_type}) after {attempt} failed attempts; "
                f"last: {outcome.error}"
            )
        if reason is not None:
            log.warning("webhook endpoint %s disabled: %s", self.id, reason)
            await conn.execute(queries.DISABLE, self.id, self.token, self.cursor, attempt, reason)
            return
        delay = schedule[attempt - 1] * (1 + random.random() * self.worker._settings.retry_jitter)
        await conn.execute(queries.RETRY_LATER, self.id, self.token, self.cursor, attempt, delay)
        self.worker.retry_in(delay)

    async def _release(self) -> None:
        await self.worker._pool.execute(queries.RELEASE, self.id, self.token, self.cursor)


@dataclass(frozen=True, slots=True)
class Deliveries:
    sender: Sender
    """What ``POST /v1/webhooks/{id}/test`` sends with."""
    worker: DeliveryWorker | None
    """The worker running beside the API (None when ``SECEVENTS_WEBHOOK_WORKER`` is off)."""


@asynccontextmanager
async def delivering(pool: asyncpg.Pool, settings: WebhookSettings) -> AsyncIterator[Deliveries]:
    """For the server's lifespan: the :class:`Sender` and, when ``settings.worker`` is on, the
    delivery worker running beside the API."""
    sender = Sender(allow_private=settings.allow_private, timeout=settings.timeout)
    worker = DeliveryWorker(pool, sender, settings) if settings.worker else None
    task = asyncio.create_task(worker.run(), name="webhook-deliveries") if worker else None
    try:
        yield Deliveries(sender, worker)
    finally:
        if task is not None and worker is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await worker.stop()
        await sender.close()
