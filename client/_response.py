"""What a call returns when the raw HTTP response is wanted, and streamed bodies (exports).

``client.with_raw_response.incidents.get(id)`` (or ``client.incidents.with_raw_response.get(id)``)
calls the same method but returns an :class:`APIResponse`: status, headers (``ETag``,
``Link``, ``X-Request-ID``…) and ``.parse()`` for the value the plain call would have returned.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Generic, ParamSpec, TypeVar

import httpx

__all__ = ["APIResponse", "AsyncStreamedResponse", "StreamedResponse"]

T = TypeVar("T")
P = ParamSpec("P")

# Set by the raw-response wrappers around exactly one call; the transport reads it once per call.
_raw_response_wanted: contextvars.ContextVar[bool] = contextvars.ContextVar("raw_response", default=False)


def take_raw_response_flag() -> bool:
    """Whether the current call should return an :class:`APIResponse`. Clears the flag, so that
    requests the result makes later (the next page) parse normally."""
    wanted = _raw_response_wanted.get()
    if wanted:
        _raw_response_wanted.set(False)
    return wanted


class APIResponse(Generic[T]):
    """An HTTP response and the value it parses into."""

    def __init__(self, http_response: httpx.Response, parse: Callable[[], T]) -> None:
        self.http_response = http_response
        self._parse = parse

    @property
    def status_code(self) -> int:
        return self.http_response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.http_response.headers

    @property
    def request_id(self) -> str | None:
        value: str | None = self.http_response.headers.get("x-request-id")
        return value

    @property
    def etag(self) -> str | None:
        """The record's ``ETag``: what ``if_match=`` of ``update``/``delete`` expects."""
        value: str | None = self.http_response.headers.get("etag")
        return value

    @functools.cached_property
    def _parsed(self) -> T:
        return self._parse()

    def parse(self) -> T:
        """The value the method returns without ``with_raw_response`` (decoded once)."""
        return self._parsed

    def __repr__(self) -> str:
        request = self.http_response.request
        return f"<APIResponse [{self.status_code}] {request.method} {request.url}>"


def to_raw_response_wrapper(method: Callable[P, T]) -> Callable[P, APIResponse[T]]:
    """``method`` with the same parameters, returning an :class:`APIResponse` of its result."""

    @functools.wraps(method)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> APIResponse[T]:
        token = _raw_response_wanted.set(True)
        try:
            return method(*args, **kwargs)  # type: ignore[return-value]  # the flag changes it
        finally:
            _raw_response_wanted.reset(token)

    return wrapped


def to_async_raw_response_wrapper(
    method: Callable[P, Awaitable[T]],
) -> Callable[P, Awaitable[APIResponse[T]]]:
    """The async twin of :func:`to_raw_response_wrapper`."""

    @functools.wraps(method)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> APIResponse[T]:
        token = _raw_response_wanted.set(True)
        try:
            return await method(*args, **kwargs)  # type: ignore[return-value]  # the flag changes it
        finally:
            _raw_response_wanted.reset(token)

    return wrapped


class StreamedResponse:
    """A body read as it arrives (exports), in constant memory. Use it as a context manager, or
    consume it fully (the connection is released at the end) or call :meth:`close`."""

    def __init__(self, http_response: httpx.Response) -> None:
        self.http_response = http_response

    @property
    def status_code(self) -> int:
        return self.http_response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.http_response.headers

    @property
    def content_type(self) -> str:
        value: str = self.http_response.headers.get("content-type", "")
        return value

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        try:
            yield from self.http_response.iter_bytes(chunk_size)
        finally:
            self.close()

    def iter_lines(self) -> Iterator[str]:
        try:
            yield from self.http_response.iter_lines()
        finally:
            self.close()

    def read(self) -> bytes:
        try:
            return self.http_response.read()
        finally:
            self.close()

    def write_to(self, path: str | Path) -> int:
        """Stream the body into a file; returns the number of bytes written."""
        written = 0
        with Path(path).open("wb") as out:
            for chunk in self.iter_bytes():
                written += out.write(chunk)
        return written

    def close(self) -> None:
        self.http_response.close()

    def __enter__(self) -> StreamedResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncStreamedResponse:
    """The async twin of :class:`StreamedResponse`."""

    def __init__(self, http_response: httpx.Response) -> None:
        self.http_response = http_response

    @property
    def status_code(self) -> int:
        return self.http_response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.http_response.headers

    @property
    def content_type(self) -> str:
        value: str = self.http_response.headers.get("content-type", "")
        return value

    async def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.http_response.aiter_bytes(chunk_size):
                yield chunk
        finally:
            await self.close()

    async def iter_lines(self) -> AsyncIterator[str]:
        try:
            async for line in self.http_response.aiter_lines():
                yield line
        finally:
            await self.close()

    async def read(self) -> bytes:
        try:
            return await self.http_response.aread()
        finally:
            await self.close()

    async def write_to(self, path: str | Path) -> int:
        written = 0
        with Path(path).open("wb") as out:  # noqa: ASYNC230  # local file, chunks are small
            async for chunk in self.iter_bytes():
                written += out.write(chunk)
        return written

    async def close(self) -> None:
        await self.http_response.aclose()

    async def __aenter__(self) -> AsyncStreamedResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
