"""``client.changes.follow`` and ``client.changes.stream``: keep a local copy in sync.

    for change in client.changes.follow(after=saved_cursor, types=["incident"]):
        apply(change)                 # change.data is the new document, None when deleted
        saved_cursor = change.cursor  # resumes right after this change

``follow`` walks the feed page by page and, once caught up, long-polls (the server answers as
soon as something commits). ``stream`` reads the Server-Sent Event stream (``httpx-sse``) and,
when the connection drops, reconnects by itself with ``Last-Event-ID``: either way every change
comes once, each record's in commit order.

Hand-written: the generated ``ChangesResource`` classes inherit these helpers (the generator
never writes ``lib/``, and ``lib/`` never imports the generated code).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Protocol

import httpx
import msgspec
from httpx_sse import EventSource

from secevents import _base
from secevents._errors import APIConnectionError
from secevents._pagination import AsyncPager, SyncPage
from secevents.schemas.changes import Change, RecordType

__all__ = ["AsyncChangesResourceExtension", "ChangesResourceExtension"]

DEFAULT_WAIT = 30
"""Seconds a caught-up ``follow`` asks the server to wait for the next change (at most 60)."""
RECONNECT_DELAY = 1.0
EVENT_STREAM = "text/event-stream"
STREAM_PATH = "/v1/changes/stream"
_decode_change = msgspec.json.Decoder(Change).decode
# A dropped or cut connection (after the client's own retries): the stream reconnects, resumes.
_DROPPED = (httpx.TransportError, APIConnectionError)


class _ListsChanges(Protocol):
    _client: _base.SyncAPIClient

    def list(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        types: RecordType | Sequence[RecordType] | None = None,
        wait: int | None = None,
    ) -> SyncPage[Change]: ...


class _ListsChangesAsync(Protocol):
    _client: _base.AsyncAPIClient

    def list(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        types: RecordType | Sequence[RecordType] | None = None,
        wait: int | None = None,
    ) -> AsyncPager[Change]: ...


def _stream_call(after: str | None, types: RecordType | Sequence[RecordType] | None) -> _base.Call:
    return _base.Call(
        "GET",
        STREAM_PATH,
        "stream_changes",
        params={"types": types},
        headers={"Last-Event-ID": after},
        accept=EVENT_STREAM,
    )


class ChangesResourceExtension:
    def follow(
        self: _ListsChanges,
        after: str | int | None = None,
        *,
        types: RecordType | Sequence[RecordType] | None = None,
        limit: int | None = None,
        until_caught_up: bool = False,
        wait: int = DEFAULT_WAIT,
    ) -> Iterator[Change]:
        """Every change committed after ``after`` (the start of the feed when None), page by
        page. When it has caught up it asks again with ``wait`` (a long-poll: the server answers
        as soon as a change commits), forever — or stops, with ``until_caught_up=True``. Resume
        later from ``after=change.cursor`` of the last change handled: nothing is missed or seen
        twice. (A bare ``seq`` is accepted only for changes written before cursors became
        snapshots.)"""
        cursor = None if after is None else str(after)
        waiting: int | None = None
        while True:
            page = self.list(after=cursor, types=types, limit=limit, wait=waiting)
            yield from page.data
            cursor = page.next_cursor or cursor
            if page.has_next_page():
                waiting = None
                continue
            if until_caught_up:
                return
            waiting = wait

    def stream(
        self: _ListsChanges,
        after: str | None = None,
        *,
        types: RecordType | Sequence[RecordType] | None = None,
        reconnect_delay: float = RECONNECT_DELAY,
    ) -> Iterator[Change]:
        """Every change committed after ``after`` (a cursor; the start of the feed when None),
        as it commits, from the event stream — forever. When the connection drops it reconnects
        (after ``reconnect_delay`` seconds) with the cursor of the last change received: nothing
        is missed or seen twice. Errors the server answers (a bad cursor: 400) are raised."""
        client = self._client
        last = after
        while True:
            try:
                response = client._send(_stream_call(last, types), stream=True)
                try:
                    for event in EventSource(response).iter_sse():
                        if event.event == "change":
                            change = _decode_change(event.data)
                            last = event.id
                            yield change
                finally:
                    response.close()
            except _DROPPED:
                pass
            _base._sleep(reconnect_delay)


class AsyncChangesResourceExtension:
    async def follow(
        self: _ListsChangesAsync,
        after: str | int | None = None,
        *,
        types: RecordType | Sequence[RecordType] | None = None,
        limit: int | None = None,
        until_caught_up: bool = False,
        wait: int = DEFAULT_WAIT,
    ) -> AsyncIterator[Change]:
        """The async twin of :meth:`ChangesResourceExtension.follow` (``async for change in ...``)."""
        cursor = None if after is None else str(after)
        waiting: int | None = None
        while True:
            page = await self.list(after=cursor, types=types, limit=limit, wait=waiting)
            for change in page.data:
                yield change
            cursor = page.next_cursor or cursor
            if page.has_next_page():
                waiting = None
                continue
            if until_caught_up:
                return
            waiting = wait

    async def stream(
        self: _ListsChangesAsync,
        after: str | None = None,
        *,
        types: RecordType | Sequence[RecordType] | None = None,
        reconnect_delay: float = RECONNECT_DELAY,
    ) -> AsyncIterator[Change]:
        """The async twin of :meth:`ChangesResourceExtension.stream` (``async for change in ...``)."""
        client = self._client
        last = after
        while True:
            try:
                response = await client._send(_stream_call(last, types), stream=True)
                try:
                    async for event in EventSource(response).aiter_sse():
                        if event.event == "change":
                            change = _decode_change(event.data)
                            last = event.id
                            yield change
                finally:
                    await response.aclose()
            except _DROPPED:
                pass
            await _base._async_sleep(reconnect_delay)
