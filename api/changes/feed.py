"""Reading the change feed: batches between transaction snapshots, paged in seq order.

Writers take no lock for the feed (migration 0006_feed_snapshots). A reader takes a snapshot of
the transactions that have finished; the next *batch* for a consumer whose cursor holds snapshot
``seen`` is every revision whose transaction is finished in the reader's snapshot and not in
``seen`` — PgQ's batches. A transaction that commits late only lands in a later batch, so nothing
is missed or repeated whatever order transactions commit in, and the batch of a long import
appears whole. Within a batch rows go in seq order, which per record is commit order: a second
writer of a record waits on the first one's row lock and draws its seq after that commit.

A large batch is paged: the cursor then also holds the batch's closing snapshot and the last seq
delivered, so the batch stays exactly the same set while the consumer walks it.

On a hot standby ``pg_current_snapshot()`` lists no running transactions (PostgreSQL keeps
them apart during recovery), so it would count a transaction still running on the primary as
finished. There the reader uses only what finished before the oldest running transaction
(``xmin:xmin:``): never ahead of what the standby shows, at worst behind by that transaction.
A cursor from a server further ahead (another standby, the primary) yields empty pages, and the
same cursor, until this one has caught up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from secevents.server.changes import queries
from secevents.server.changes.cursor import (
    LEGACY,
    ORIGIN,
    START,
    CursorCodec,
    FeedCursor,
    Snapshot,
    legacy_seq,
)
from secevents.server.http.errors import InvalidParameter


@dataclass(frozen=True, slots=True)
class Entry:
    change: bytes
    """The entry's JSON object, as PostgreSQL rendered it."""
    after: FeedCursor
    """Where a consumer that stops after this entry resumes."""


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry]
    next: FeedCursor
    has_more: bool


@dataclass(frozen=True, slots=True)
class FeedState:
    codec: CursorCodec
    legacy_seq: int

    def resolve(self, after: str | None) -> FeedCursor:
        """The position ``after`` names: a cursor of this feed, or a bare seq from before
        migration 0006_feed_snapshots (those were handed out in commit order, so "every seq up to N"
        is still exact for them). 400 otherwise."""
        if after is None:
            return START
        seq = legacy_seq(after)
        if seq is None:
            return self.codec.decode(after)
        if seq == 0:
            return START
        if seq > self.legacy_seq:
            raise InvalidParameter(
                "after",
                "numeric cursors are no longer issued: pass the `next_cursor` of a page (or the "
                "`cursor` of the last change handled)",
            )
        return FeedCursor(ORIGIN, LEGACY, seq, self.legacy_seq)


async def load_state(conn: asyncpg.Connection) -> FeedState:
    """The signing key and the legacy boundary (read once per process, by the hub)."""
    row = await conn.fetchrow(queries.FEED_STATE)
    return FeedState(CursorCodec(bytes(row["cursor_key"])), row["legacy_seq"])


def _after(batch: FeedCursor, seq: int) -> FeedCursor:
    assert batch.batch is not None
    if seq >= batch.last_seq:
        return FeedCursor(batch.batch)
    return FeedCursor(batch.seen, batch.batch, seq, batch.last_seq)


async def _rows(
    conn: asyncpg.Connection, batch: FeedCursor, types: Sequence[str] | None, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        queries.PAGE,
        str(batch.seen),
        str(batch.batch),
        batch.after_seq,
        batch.last_seq,
        types,
        limit,
    )
    return rows


async def _bounds(conn: asyncpg.Connection, seen: Snapshot, upto: Snapshot) -> tuple[int, int] | None:
    if seen == ORIGIN:
        row = await conn.fetchrow(queries.ALL_BOUNDS)
    else:
        finished = [str(x) for x in seen.xip if upto.visible(x)]
        row = await conn.fetchrow(queries.BATCH_BOUNDS, str(seen), str(upto), finished)
    if row is None or row[0] is None:
        return None
    return row[0], row[1]


async def current_snapshot(conn: asyncpg.Connection) -> Snapshot:
    """What this connection's current statement (or REPEATABLE READ transaction) sees as finished;
    on a standby only what finished before its oldest running transaction (see above)."""
    now_text, standby = await conn.fetchrow(queries.NOW)
    now = Snapshot.parse(now_text)
    return now.finished_before_oldest_running() if standby else now


async def read_page(
    conn: asyncpg.Connection, cursor: FeedCursor, types: Sequence[str] | None, limit: int
) -> Page:
    """Up to ``limit`` changes after ``cursor``: the rest of its open batch, then the next one.

    When nothing was committed after ``cursor``, the page is empty and ``next`` is ``cursor``."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        now = await current_snapshot(conn)
        entries: list[Entry] = []
        position = cursor
        if position.batch is not None:
            if not now.covers(position.batch):
                return Page([], cursor, has_more=False)  # this server has not got that far yet
            rows = await _rows(conn, position, types, limit + 1)
            entries = [Entry(r["change"], _after(position, r["seq"])) for r in rows[:limit]]
            if len(rows) > limit:
                return Page(entries, entries[-1].after, has_more=True)
            position = FeedCursor(position.batch)
        upto = position.seen.union(now)
        bounds = None if upto == position.seen else await _bounds(conn, position.seen, upto)
        if bounds is None:
            return Page(entries, position, has_more=False)
        remaining = limit - len(entries)
        if remaining == 0:
            return Page(entries, position, has_more=True)
        batch = FeedCursor(position.seen, upto, bounds[0] - 1, bounds[1])
        rows = await _rows(conn, batch, types, remaining + 1)
        entries += [Entry(r["change"], _after(batch, r["seq"])) for r in rows[:remaining]]
        if len(rows) > remaining:
            return Page(entries, entries[-1].after, has_more=True)
        return Page(entries, FeedCursor(upto), has_more=False)
