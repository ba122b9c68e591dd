"""The hand-written core every generated method goes through: configuration, building the
HTTP request, retries, decoding into the ``schemas`` Structs, and errors.

:class:`SyncAPIClient` and :class:`AsyncAPIClient` hold the same logic; only the I/O differs.
Generated resource classes call :meth:`request`, :meth:`request_page`, :meth:`request_stream`.

One job, hence its length: the transport every call goes through, with its sync and async twins
side by side so that they stay the same.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Generic, Protocol, Self, TypeVar, runtime_checkable
from urllib.parse import quote

import httpx
import msgspec

from secevents._constants import DEFAULT_BASE_URL, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, JSON, MSGPACK
from secevents._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    error_class_for,
)
from secevents._pagination import AsyncPage, SyncPage
from secevents._response import APIResponse, AsyncStreamedResponse, StreamedResponse, take_raw_response_flag
from secevents._retries import RetryPolicy
from secevents._version import __version__
from secevents.schemas.problems import Problem

T = TypeVar("T")


# Retried: the request may not have reached the server, or the server dropped it.
_RETRYABLE_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


async def _async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Call:
    """One operation as a generated method describes it."""

    method: str
    path: str
    operation_id: str
    params: Mapping[str, object] | None = None
    headers: Mapping[str, object] | None = None
    body: object = None
    """A ``schemas`` Struct (encoded as JSON or MessagePack), or ``bytes`` sent as they are."""
    content_type: str | None = None
    """Media type of a ``bytes`` body."""
    idempotency_key: str | None = None
    accept: str | None = None
    """``Accept`` when it is not the client's JSON or MessagePack (exports: any type)."""


class _PageBody(msgspec.Struct, Generic[T]):
    """``{"data": [...], "next_cursor": ...}``: the shape of every list response."""

    data: list[T]
    next_cursor: str | None = None
    has_more: bool | None = None
    """Set by feeds (``/v1/changes``) whose ``next_cursor`` is always present."""

    def cursor_of_next_page(self) -> str | None:
        """Where the next page starts, or None when this is the last page for now."""
        if self.next_cursor is None or self.has_more is False or not self.data:
            return None
        return self.next_cursor


def path_param(value: object) -> str:
    return quote(_text(value), safe="")


@runtime_checkable
class Versioned(Protocol):
    """A record as read: every record has its ``id`` and ``version``."""

    @property
    def id(self) -> object: ...

    @property
    def version(self) -> int: ...


IfMatch = str | int | Versioned
"""What ``if_match=`` takes: the ``ETag`` as the server sent it, the record as read (its id and
version make its ETag), or the version number alone (with the id of the call)."""


def if_match_header(value: IfMatch | None, record_id: object = None) -> str | None:
    """The ``If-Match`` header for ``value``: a record's ETag is ``"<id>:<version>"``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("if_match takes an ETag, a record or a version number, not a bool")
    if isinstance(value, int):
        if record_id is None:
            raise TypeError("if_match=<version> needs the record's id in the call")
        return f'"{_text(record_id)}:{value}"'
    if isinstance(value, Versioned):
        return f'"{_text(value.id)}:{value.version}"'
    raise TypeError(f"if_match takes an ETag, a record or a version number, not {type(value).__name__}")


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def encode_query(params: Mapping[str, object] | None) -> list[tuple[str, str | int | float | bool | None]]:
    """Query pairs: ``None`` is left out, a sequence repeats the parameter (``country=PK&country=AF``)."""
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, Sequence | set | frozenset) and not isinstance(value, str | bytes):
            pairs.extend((name, _text(item)) for item in value)
        else:
            pairs.append((name, _text(value)))
    return pairs


@functools.lru_cache(maxsize=256)
def _json_decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_)


@functools.lru_cache(maxsize=256)
def _msgpack_decoder(type_: Any) -> msgspec.msgpack.Decoder[Any]:
    return msgspec.msgpack.Decoder(type_)


_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


def decode(response: httpx.Response, type_: Any) -> Any:
    """The body as ``type_``: MessagePack when the server answered with it, else JSON."""
    content = response.content
    try:
        if "msgpack" in response.headers.get("content-type", ""):
            return _msgpack_decoder(type_).decode(content)
        return _json_decoder(type_).decode(content)
    except msgspec.MsgspecError as exc:
        raise APIResponseValidationError(
            f"{response.status_code} response to {response.request.method} {response.request.url.path} "
            f"is not a valid {getattr(type_, '__name__', type_)}: {exc}",
            response=response,
        ) from exc


def warn_if_deprecated(response: httpx.Response) -> None:
    """A ``DeprecationWarning`` when the server says what was called is deprecated (RFC 9745
    ``Deprecation``, RFC 8594 ``Sunset``, ``Link: <…>; rel="deprecation"``), once per call site as
    Python's warning filters decide: the SDK user sees it in their test runs, not in production logs."""
    deprecation = response.headers.get("deprecation")
    if deprecation is None:
        return
    what = f"{response.request.method} {response.request.url.path}"
    sunset = response.headers.get("sunset")
    link = next(
        (
            part.split(";")[0].strip(" <>")
            for part in response.headers.get_list("link", split_commas=True)
            if 'rel="deprecation"' in part
        ),
        None,
    )
    message = f"{what} is deprecated (since {deprecation})"
    if sunset:
        message += f" and will be removed after {sunset}"
    if link:
        message += f"; see {link}"
    warnings.warn(message, DeprecationWarning, stacklevel=4)


def status_error(response: httpx.Response) -> APIStatusError:
    """The exception for a 4xx/5xx response (whose body has been read)."""
    problem: Problem | None
    try:
        problem = decode(response, Problem)
    except APIResponseValidationError:
        problem = None
    if problem is not None:
        message = f"{response.status_code} {problem.title}" + (
            f": {problem.detail}" if problem.detail else ""
        )
    else:
        message = f"{response.status_code} {response.reason_phrase}"
    return error_class_for(response.status_code)(message, response=response, problem=problem)


READ_AFTER_HEADER = "Secevents-Read-After"


class ReadAfter:
    """Read-your-writes across the server's read replicas: the latest ``Secevents-Read-After``
    token (the primary's WAL position after a write) this client was given, sent with every
    read so that a replica answers it only once it has replayed that write. Shared by a
    client and its ``with_options`` copies; safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._position = -1

    @property
    def token(self) -> str | None:
        return self._token

    def remember(self, response: httpx.Response) -> None:
        token = response.headers.get(READ_AFTER_HEADER)
        if token is None:
            return
        position = _wal_position(token)
        if position is None:
            return
        with self._lock:
            if position > self._position:  # responses may arrive out of order: keep the latest
                self._position, self._token = position, token


def _wal_position(token: str) -> int | None:
    high, sep, low = token.strip().partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16) if sep else None
    except ValueError:
        return None


class _ClientConfig:
    """Settings and request building shared by the sync and async clients."""

    def __init__(
        self,
        *,
        base_url: str | httpx.URL | None,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
        msgpack: bool,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        base_url = base_url or os.environ.get("SECEVENTS_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = httpx.URL(str(base_url).rstrip("/") + "/")
        self.api_key = api_key if api_key is not None else os.environ.get("SECEVENTS_API_KEY") or None
        self.timeout = timeout
        self.max_retries = max_retries
        self.msgpack = msgpack
        self.default_headers = dict(default_headers or {})
        self._retry = RetryPolicy(max_retries=max_retries)
        self.read_after = ReadAfter()

    def _options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "api_key": self.api_key,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "msgpack": self.msgpack,
            "default_headers": self.default_headers,
        }

    def _headers(self, call: Call) -> dict[str, str]:
        media_type = MSGPACK if self.msgpack else JSON
        headers = {
            "User-Agent": f"secevents-python/{__version__}",
            "Accept": call.accept or f"{media_type}, application/problem+json;q=0.9",
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(self.default_headers)
        for name, value in (call.headers or {}).items():
            if value is not None:
                headers[name] = _text(value)
        if call.method in ("GET", "HEAD") and self.read_after.token and READ_AFTER_HEADER not in headers:
            headers[READ_AFTER_HEADER] = self.read_after.token
        if call.method == "POST":
            # Generated once per call, so every retry of it carries the same key: the server
            # replays the first response instead of creating a second record.
            headers["Idempotency-Key"] = call.idempotency_key or str(uuid.uuid4())
        return headers

    def _body(self, call: Call, headers: dict[str, str]) -> bytes | None:
        if call.body is None:
            return None
        if isinstance(call.body, bytes):
            headers["Content-Type"] = call.content_type or "application/octet-stream"
            return call.body
        if self.msgpack:
            headers["Content-Type"] = MSGPACK
            # Builtins first: dates and times become the same ISO strings JSON carries, rather
            # than MessagePack's timestamp extension, which has no JSON equivalent.
            return _msgpack_encoder.encode(msgspec.to_builtins(call.body))
        headers["Content-Type"] = JSON
        return _json_encoder.encode(call.body)

    def _url(self, path: str) -> httpx.URL:
        return self.base_url.join(path.lstrip("/"))

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        headers = self._headers(call)
        content = self._body(call, headers)
        return http.build_request(
            call.method,
            self._url(call.path),
            params=tuple(encode_query(call.params)),
            headers=headers,
            content=content,
            timeout=self.timeout,
        )


class SyncAPIClient(_ClientConfig):
    def __init__(
        self,
        *,
        base_url: str | httpx.URL | None = None,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        msgpack: bool = False,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        """``base_url`` and ``api_key`` default to ``SECEVENTS_BASE_URL`` and
        ``SECEVENTS_API_KEY``. ``timeout`` is in seconds per attempt; ``max_retries`` is how many
        times a retryable failure is tried again. ``msgpack=True`` sends and accepts
        ``application/msgpack``. ``http_client`` lets you bring your own ``httpx.Client``
        (proxies, transports, event hooks); it is not closed by :meth:`close`."""
        super().__init__(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            msgpack=msgpack,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=timeout)

    def with_options(self, **options: Any) -> Self:
        """A client like this one with some options changed (``timeout=``, ``max_retries=``…),
        sharing its connection pool."""
        merged = {**self._options(), **options, "http_client": self._http}
        clone = type(self)(**merged)
        clone._owns_http = False
        clone.read_after = self.read_after
        return clone

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        request = self._build(self._http, call)
        attempt = 0
        while True:
            try:
                response = self._http.send(request, stream=stream)
            except _RETRYABLE_TRANSPORT_ERRORS as exc:
                if not self._retry.should_retry(attempt, None):
                    if isinstance(exc, httpx.TimeoutException):
                        raise APITimeoutError(request=request) from exc
                    raise APIConnectionError(request=request) from exc
                _sleep(self._retry.delay(attempt, None))
                attempt += 1
                continue
            except httpx.TransportError as exc:
                raise APIConnectionError(request=request, message=f"Connection error: {exc}") from exc
            if response.status_code < 400:
                self.read_after.remember(response)
                warn_if_deprecated(response)
                return response
            response.read()
            response.close()
            if not self._retry.should_retry(attempt, response):
                raise status_error(response)
            _sleep(self._retry.delay(attempt, response))
            attempt += 1

    def request(self, cast_to: type[T], call: Call) -> T:
        raw = take_raw_response_flag()
        response = self._send(call)
        if raw:
            return APIResponse(response, lambda: decode(response, cast_to))  # type: ignore[return-value]
        return decode(response, cast_to)  # type: ignore[no-any-return]

    def request_no_content(self, call: Call) -> None:
        raw = take_raw_response_flag()
        response = self._send(call)
        if raw:
            return APIResponse(response, lambda: None)  # type: ignore[return-value]
        return None

    def request_page(self, item: type[T], call: Call, *, cursor_param: str) -> SyncPage[T]:
        raw = take_raw_response_flag()
        response = self._send(call)

        def fetch(cursor: str) -> SyncPage[T]:
            params = {**(call.params or {}), cursor_param: cursor}
            next_call = Call(call.method, call.path, call.operation_id, params=params, headers=call.headers)
            return self.request_page(item, next_call, cursor_param=cursor_param)

        def parse() -> SyncPage[T]:
            body: _PageBody[T] = decode(response, _PageBody[item])  # type: ignore[valid-type]
            return SyncPage(
                body.data,
                body.next_cursor,
                body.cursor_of_next_page(),
                response=response,
                fetch=fetch,
                item_type=item,
            )

        if raw:
            return APIResponse(response, parse)  # type: ignore[return-value]
        return parse()

    def request_stream(self, call: Call) -> StreamedResponse:
        raw = take_raw_response_flag()
        stream = StreamedResponse(self._send(replace(call, accept="*/*"), stream=True))
        if raw:
            return APIResponse(stream.http_response, lambda: stream)  # type: ignore[return-value]
        return stream


class AsyncAPIClient(_ClientConfig):
    def __init__(
        self,
        *,
        base_url: str | httpx.URL | None = None,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        msgpack: bool = False,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """The async twin of :class:`SyncAPIClient`; ``http_client`` is an ``httpx.AsyncClient``."""
        super().__init__(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            msgpack=msgpack,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=timeout)

    def with_options(self, **options: Any) -> Self:
        merged = {**self._options(), **options, "http_client": self._http}
        clone = type(self)(**merged)
        clone._owns_http = False
        clone.read_after = self.read_after
        return clone

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        request = self._build(self._http, call)
        attempt = 0
        while True:
            try:
                response = await self._http.send(request, stream=stream)
            except _RETRYABLE_TRANSPORT_ERRORS as exc:
                if not self._retry.should_retry(attempt, None):
                    if isinstance(exc, httpx.TimeoutException):
                        raise APITimeoutError(request=request) from exc
                    raise APIConnectionError(request=request) from exc
                await _async_sleep(self._retry.delay(attempt, None))
                attempt += 1
                continue
            except httpx.TransportError as exc:
                raise APIConnectionError(request=request, message=f"Connection error: {exc}") from exc
            if response.status_code < 400:
                self.read_after.remember(response)
                warn_if_deprecated(response)
                return response
            await response.aread()
            await response.aclose()
            if not self._retry.should_retry(attempt, response):
                raise status_error(response)
            await _async_sleep(self._retry.delay(attempt, response))
            attempt += 1

    async def request(self, cast_to: type[T], call: Call) -> T:
        raw = take_raw_response_flag()
        response = await self._send(call)
        if raw:
            return APIResponse(response, lambda: decode(response, cast_to))  # type: ignore[return-value]
        return decode(response, cast_to)  # type: ignore[no-any-return]

    async def request_no_content(self, call: Call) -> None:
        raw = take_raw_response_flag()
        response = await self._send(call)
        if raw:
            return APIResponse(response, lambda: None)  # type: ignore[return-value]
        return None

    async def request_page(self, item: type[T], call: Call, *, cursor_param: str) -> AsyncPage[T]:
        raw = take_raw_response_flag()
        response = await self._send(call)

        async def fetch(cursor: str) -> AsyncPage[T]:
            params = {**(call.params or {}), cursor_param: cursor}
            next_call = Call(call.method, call.path, call.operation_id, params=params, headers=call.headers)
            return await self.request_page(item, next_call, cursor_param=cursor_param)

        def parse() -> AsyncPage[T]:
            body: _PageBody[T] = decode(response, _PageBody[item])  # type: ignore[valid-type]
            return AsyncPage(
                body.data,
                body.next_cursor,
                body.cursor_of_next_page(),
                response=response,
                fetch=fetch,
                item_type=item,
            )

        if raw:
            return APIResponse(response, parse)  # type: ignore[return-value]
        return parse()

    async def request_stream(self, call: Call) -> AsyncStreamedResponse:
        raw = take_raw_response_flag()
        stream = AsyncStreamedResponse(await self._send(replace(call, accept="*/*"), stream=True))
        if raw:
            return APIResponse(stream.http_response, lambda: stream)  # type: ignore[return-value]
        return stream


class SyncAPIResource:
    """Base of the generated sync resource classes (``client.incidents``…)."""

    def __init__(self, client: SyncAPIClient) -> None:
        self._client = client


class AsyncAPIResource:
    def __init__(self, client: AsyncAPIClient) -> None:
        self._client = client
