"""Pages of a list, walking the keyset cursor by themselves.

``to_pandas()`` gives every item of every page as a pandas DataFrame with flat columns.
Iterating a page yields every item of it *and of every later page*, fetching each page only
when the previous one is used up; ``.data`` and ``.next_cursor`` are the page itself. A feed
whose ``next_cursor`` is always set (``/v1/changes``) ends when it is caught up (``has_more``
false, or an empty page); ``client.changes.follow()`` keeps polling instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, TypeVar

import httpx

from secevents._frames import to_pandas as _to_pandas

__all__ = ["AsyncPage", "AsyncPager", "SyncPage"]

T = TypeVar("T")


class SyncPage(Generic[T]):
    def __init__(
        self,
        data: list[T],
        next_cursor: str | None,
        next_page_cursor: str | None,
        *,
        response: httpx.Response,
        fetch: Callable[[str], SyncPage[T]],
        item_type: type[Any] | None = None,
    ) -> None:
        self.data = data
        self.item_type = item_type
        self.next_cursor = next_cursor
        self._next_page_cursor = next_page_cursor
        self.response = response
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self._next_page_cursor is not None

    def next_page(self) -> SyncPage[T]:
        if self._next_page_cursor is None:
            raise RuntimeError("this is the last page: check has_next_page() first")
        return self._fetch(self._next_page_cursor)

    def iter_pages(self) -> Iterator[SyncPage[T]]:
        """This page and every later one."""
        page = self
        yield page
        while page.has_next_page():
            page = page.next_page()
            yield page

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data

    def to_pandas(self) -> Any:
        """A pandas DataFrame of every item of this page and of every later one, one row each,
        flat columns (``killed_best``, ``occurred_start``, ``country``…; see
        :mod:`secevents._frames`). Needs ``pip install 'secevents[pandas]'``."""
        return _to_pandas(self, self.item_type)

    def __repr__(self) -> str:
        return f"<SyncPage of {len(self.data)} items, next_cursor={self.next_cursor!r}>"


class AsyncPage(Generic[T]):
    def __init__(
        self,
        data: list[T],
        next_cursor: str | None,
        next_page_cursor: str | None,
        *,
        response: httpx.Response,
        fetch: Callable[[str], Awaitable[AsyncPage[T]]],
        item_type: type[Any] | None = None,
    ) -> None:
        self.data = data
        self.item_type = item_type
        self.next_cursor = next_cursor
        self._next_page_cursor = next_page_cursor
        self.response = response
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self._next_page_cursor is not None

    async def next_page(self) -> AsyncPage[T]:
        if self._next_page_cursor is None:
            raise RuntimeError("this is the last page: check has_next_page() first")
        return await self._fetch(self._next_page_cursor)

    async def iter_pages(self) -> AsyncIterator[AsyncPage[T]]:
        page = self
        yield page
        while page.has_next_page():
            page = await page.next_page()
            yield page

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item

    async def to_pandas(self) -> Any:
        """The async twin of :meth:`SyncPage.to_pandas`: every item of this page and later ones."""
        return _to_pandas([item async for item in self], self.item_type)

    def __repr__(self) -> str:
        return f"<AsyncPage of {len(self.data)} items, next_cursor={self.next_cursor!r}>"


class AsyncPager(Generic[T]):
    """What an async ``list(...)`` returns: ``await`` it for the first :class:`AsyncPage`, or
    ``async for`` over it directly for every item of every page."""

    def __init__(self, first_page: Callable[[], Awaitable[AsyncPage[T]]]) -> None:
        self._first_page = first_page

    def __await__(self) -> Generator[Any, None, AsyncPage[T]]:
        return self._first_page().__await__()

    async def __aiter__(self) -> AsyncIterator[T]:
        page = await self._first_page()
        async for item in page:
            yield item

    async def to_pandas(self) -> Any:
        """``await api.incidents.list(...).to_pandas()``: every item of every page, as a DataFrame."""
        page = await self._first_page()
        return await page.to_pandas()
