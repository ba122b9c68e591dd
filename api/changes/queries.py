"""SQL of the change feed: the ``revisions`` table read in ``seq`` order.

``seq > cursor`` never misses a change: ``seq`` is assigned under a transaction-scoped advisory
lock that is released only once the writer's commit is visible (migration 0001, table
``revisions``), so when a reader sees ``seq = N`` every ``seq < N`` that will ever exist is
already visible to it. Numbers skipped by rolled-back writers are simply never seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

# Documents are rendered here and streamed as is; a delete carries no document (a tombstone).
# `$2` NULL means every record type. One row more than asked for tells whether more follow.
PAGE = """
SELECT json_build_object(
         'seq', r.seq, 'type', r.record_type, 'id', r.record_id, 'version', r.version,
         'operation', r.operation, 'committed_at', r.committed_at,
         'deleted', r.operation = 'delete',
         'data', CASE WHEN r.operation = 'delete' THEN NULL ELSE r.data END) AS change,
       r.seq
  FROM revisions r
 WHERE r.seq > $1 AND ($2::text[] IS NULL OR r.record_type = ANY ($2::text[]))
 ORDER BY r.seq
 LIMIT $3
"""

# The cursor that stands after every change committed so far.
HEAD = "SELECT coalesce(max(seq), 0) FROM revisions"


@dataclass(frozen=True, slots=True)
class FeedPage:
    """A page of the feed as consumers inside the server (webhooks) read it: each entry's JSON
    exactly as ``GET /v1/changes`` lists it, the cursor just after each entry, and the cursor
    after the page."""

    entries: list[bytes]
    positions: list[str]
    next_cursor: str
    has_more: bool


async def read_page(
    conn: asyncpg.Connection, after: str, types: Sequence[str] | None, limit: int
) -> FeedPage:
    """The changes committed after the cursor ``after``, in feed order."""
    cursor = int(after)
    rows = await conn.fetch(PAGE, cursor, list(types) if types else None, limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    positions = [str(r["seq"]) for r in rows]
    return FeedPage(
        entries=[r["change"] for r in rows],
        positions=positions,
        next_cursor=positions[-1] if positions else after,
        has_more=has_more,
    )


async def head_cursor(conn: asyncpg.Connection) -> str:
    """The cursor after every change committed so far: reading after it gives what comes next."""
    return str(await conn.fetchval(HEAD))


def is_cursor(value: str) -> bool:
    """Whether ``value`` is a cursor this feed issued (its syntax)."""
    return value.isascii() and value.isdigit() and len(value) <= 18
