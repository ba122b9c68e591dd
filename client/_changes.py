"""``client.changes``: the generated ``list`` plus :meth:`~ChangesResource.follow`, which
keeps a local copy in sync by walking the change feed.

    for change in client.changes.follow(after=saved_cursor, types=["incident"]):
        apply(change)                 # change.data is the new document, None when deleted
        saved_cursor = str(change.seq)

Hand-written: the generator only makes ``client.changes`` an instance of these subclasses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

from client import _base
from client._generated.changes import AsyncChangesResource as _AsyncGeneratedChanges
from client._generated.changes import ChangesResource as _GeneratedChanges
from schemas.changes import Change, RecordType

__all__ = ["AsyncChangesResource", "ChangesResource"]

DEFAULT_POLL_INTERVAL = 2.0


class ChangesResource(_GeneratedChanges):
    def follow(
        self,
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
        ``after=change.seq`` of the last change handled: nothing is missed or seen twice."""
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


class AsyncChangesResource(_AsyncGeneratedChanges):
    async def follow(
        self,
        after: str | int | None = None,
        *,
        types: RecordType | Sequence[RecordType] | None = None,
        limit: int | None = None,
        until_caught_up: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> AsyncIterator[Change]:
        """The async twin of :meth:`ChangesResource.follow` (``async for change in ...``)."""
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
