"""The change feed for consumers inside the server (webhook deliveries): cursors as the strings
``GET /v1/changes`` hands out, each entry's JSON as it lists it (less the ``cursor``).

A thin face over :mod:`secevents.server.changes.feed`: a consumer stores the cursor after the
last entry it handled (``positions``) and reads on from there, with the same guarantees as any
HTTP consumer — every change once, each record's in commit order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from secevents.server.changes import feed
from secevents.server.changes.cursor import FeedCursor


@dataclass(frozen=True, slots=True)
class FeedPage:
    """Each entry's JSON as ``GET /v1/changes`` lists it but without its ``cursor`` (the
    consumer keeps its position itself: ``positions``, the cursor just after each entry), and
    the cursor after the page."""

    entries: list[bytes]
    positions: list[str]
    next_cursor: str
    has_more: bool


async def read_page(
    conn: asyncpg.Connection, after: str, types: Sequence[str] | None, limit: int
) -> FeedPage:
    """The changes committed after the cursor ``after``, in feed order."""
    state = await feed.load_state(conn)
    page = await feed.read_page(conn, state.resolve(after), list(types) if types else None, limit)
    return FeedPage(
        entries=[e.change for e in page.entries],
        positions=[state.codec.encode(e.after) for e in page.entries],
        next_cursor=state.codec.encode(page.next),
        has_more=page.has_more,
    )


async def head_cursor(conn: asyncpg.Connection) -> str:
    """The cursor after every change committed so far: reading after it gives what comes next."""
    state = await feed.load_state(conn)
    return state.codec.encode(FeedCursor(await feed.current_snapshot(conn)))
