"""``client.changes.follow``: keeps a local copy in sync by walking the change feed.

    for change in client.changes.follow(after=saved_cursor, types=["incident"]):
        apply(change)                 # change.data is the new document, None when deleted
        saved_cursor = change.cursor  # resumes right after this change

Hand-written: the generated ``ChangesResource`` classes inherit these helpers (the generator
never writes ``lib/``, and ``lib/`` never imports the generated code).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Protocol

from secevents import _base
from secevents._pagination import AsyncPager, SyncPage
from secevents.schemas.changes import Change, RecordType

__all__ = ["AsyncChangesResourceExtension", "ChangesResourceExtension"]

DEFAULT_POLL_INTERVAL = 2.0


class _ListsChanges(Protocol):
    def list(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        types: RecordType | Sequence[RecordType] | None = None,
    ) -> SyncPage[Change]: ...


class _ListsChangesAsync(Protocol):
    def list(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        types: RecordType | Sequence[RecordType] | None = None,
    ) -> AsyncPager[Change]: ...


class ChangesResourceExtension:
    def follow(
        self: _ListsChanges,
        after: str | int | None = None,
        *,
        types: RecordType | Sequence[RecordType] | None = None,
        limit: int | None = None,
        until_caught_up: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> Iterator[Change]:
        """Every change committed after ``after`` (the start of the feed when None), in commit
        order, page by page. When it has caught up it waits ``poll_interval`` seconds and asks
        again, forever — or stops, with ``until_caught_up=True``. Resume later from
        ``after=change.cursor`` of the last change handled: nothing is missed or seen twice.
        (A bare ``seq`` is accepted only for changes written before cursors became snapshots.)"""
        cursor = None if after is None else str(after)
        while True:
            page = self.list(after=cursor, types=types, limit=limit)
            yield from page.data
            cursor = page.next_cursor or cursor
            if page.has_next_page():
                continue
            if until_caught_up:
                return
            _base._sleep(poll_interval)


class AsyncChangesResourceExtension:
    async def follow(
        self: _ListsChangesAsync,
        after: str | int | None = None,
        *,
        types: RecordType | Sequence[RecordType] | None = None,
        limit: int | None = None,
        until_caught_up: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> AsyncIterator[Change]:
        """The async twin of :meth:`ChangesResourceExtension.follow` (``async for change in ...``)."""
        cursor = None if after is None else str(after)
        while True:
            page = await self.list(after=cursor, types=types, limit=limit)
            for change in page.data:
                yield change
            cursor = page.next_cursor or cursor
            if page.has_next_page():
                continue
            if until_caught_up:
                return
            await _base._async_sleep(poll_interval)
