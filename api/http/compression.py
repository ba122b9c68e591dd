"""Response compression: zstd, brotli or gzip, chosen by ``Accept-Encoding``, streamed.

An ASGI middleware around the whole app (outside the MessagePack re-encoding, which must see
the uncompressed JSON). Litestar's own ``CompressionConfig`` knows gzip and brotli only and
lives inside the app, under that re-encoding; this one adds zstd and sits where it can.

- **Which encoding**: the client's ``Accept-Encoding`` with its q-values (RFC 9110 §12.5.3);
  among the codings it rates highest, zstd before brotli before gzip (the cheapest per byte
  saved first). ``identity;q=0`` with nothing acceptable still gets identity: refusing a read
  for want of a coding would help nobody.
- **What is compressed**: answers to ``GET`` (and so ``HEAD``): reads and exports. A write's
  answer is one record, and its ``ETag`` stays the strong tag the README shows. JSON (and ``+json``), NDJSON, CSV, GeoJSON, STIX, MessagePack and
  other text, 2xx only, not already encoded. Never ``text/event-stream``: an event stream must
  reach the client event by event, unbuffered. Never a body smaller than :data:`MIN_BYTES` (the
  framing would cost more than it saves).
- **Streams stay streams**: a body sent in several messages (an export) is compressed message
  by message and each compressed piece is flushed at once, so the client gets every chunk when
  it would have without compression; the response has no ``Content-Length`` then.
- **Caching**: every compressible response says ``Vary: Accept-Encoding`` (added by the edge
  layer, :mod:`secevents.server.http.edge`, whether or not it was compressed). A compressed body
  has other bytes than the identity one, so its ``ETag`` is made weak (``W/"…"``): reads compare
  ``If-None-Match`` weakly (a 304 still answers), and ``If-Match`` on writes compares versions,
  which ignore the ``W/``. A 304 answered to a client that accepts a coding carries the same weak
  tag its 200 would have.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Protocol

import brotli
import zstandard
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

MIN_BYTES = 1024
"""Bodies known to be smaller go out as they are."""

GZIP_LEVEL = 6
ZSTD_LEVEL = 3
BROTLI_QUALITY = 4
"""Levels for dynamic content: most of the saving for a fraction of the CPU of the top levels
(bench/results/read.md, "Compression")."""

# Server preference among codings the client rates equally.
ENCODINGS = ("zstd", "br", "gzip")

_COMPRESSIBLE_TYPES = frozenset(
    {
        "application/json",
        "application/problem+json",
        "application/x-ndjson",
        "application/geo+json",
        "application/stix+json",
        "application/msgpack",
        "application/x-msgpack",
        "application/javascript",
        "image/svg+xml",
    }
)
_NEVER = frozenset({"text/event-stream"})


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes:
        """What is pending, made decodable by the client now (the stream goes on)."""
        ...

    def finish(self) -> bytes: ...


class _Gzip:
    def __init__(self) -> None:
        # wbits 16+: the gzip container (header and CRC trailer), as Content-Encoding: gzip means.
        self._z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def compress(self, data: bytes) -> bytes:
        return self._z.compress(data)

    def flush(self) -> bytes:
        return self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._z.flush(zlib.Z_FINISH)


class _Zstd:
    def __init__(self) -> None:
        # The content size is unknown up front for a stream; the frame says so.
        self._z = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._z.compress(data)

    def flush(self) -> bytes:
        return self._z.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def finish(self) -> bytes:
        return self._z.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


class _Brotli:
    def __init__(self) -> None:
        self._z = brotli.Compressor(quality=BROTLI_QUALITY)

    def compress(self, data: bytes) -> bytes:
        return bytes(self._z.process(data))

    def flush(self) -> bytes:
        return bytes(self._z.flush())

    def finish(self) -> bytes:
        return bytes(self._z.finish())


COMPRESSORS: dict[str, Callable[[], Compressor]] = {"zstd": _Zstd, "br": _Brotli, "gzip": _Gzip}


def choose_encoding(accept_encoding: str | None) -> str | None:
    """The coding to answer with, or None for identity (RFC 9110 §12.5.3: q-values, ``*``,
    ``x-gzip`` as gzip)."""
    if not accept_encoding:
        return None
    ratings: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        coding = coding.lower()
        if coding == "x-gzip":
            coding = "gzip"
        if not coding:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ratings[coding] = q
    wildcard = ratings.get("*")
    best: tuple[float, int] | None = None
    chosen = None
    for preference, coding in enumerate(ENCODINGS):
        q = ratings.get(coding, wildcard if wildcard is not None else 0.0)
        if q <= 0:
            continue
        rank = (q, -preference)
        if best is None or rank > best:
            best, chosen = rank, coding
    return chosen


def media_type_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The media type of a response's ``Content-Type``, lower case, without parameters."""
    for key, value in headers:
        if key.lower() == b"content-type":
            return value.split(b";", 1)[0].strip().lower().decode("latin-1")
    return ""


def is_compressible(media_type: str) -> bool:
    if media_type in _NEVER:
        return False
    return media_type in _COMPRESSIBLE_TYPES or media_type.startswith("text/") or media_type.endswith("+json")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _weak_etag(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(k, b"W/" + v if k.lower() == b"etag" and not v.startswith(b"W/") else v) for k, v in headers]


class CompressionMiddleware:
    """Compresses responses as the module docstring says."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        raw = _header(list(scope["headers"]), b"accept-encoding")
        encoding = choose_encoding(raw.decode("latin-1") if raw is not None else None)
        if encoding is None or scope["method"] != "GET":
            await self.app(scope, receive, send)  # identity: nothing to watch
            return
        await self.app(scope, receive, _CompressingSend(send, encoding))


class _CompressingSend:
    """The ``send`` of one response: holds its start until the first body message says whether
    the body is a single small one, then passes it through or compresses it."""

    def __init__(self, send: Send, encoding: str) -> None:
        self.send = send
        self.encoding = encoding
        self.start: Any = None  # the held http.response.start
        self.compressor: Compressor | None = None
        self.passing = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body" and not self.passing:
            await self._body(message)
        else:
            await self.send(message)

    async def _start(self, message: Any) -> None:
        headers = list(message.get("headers", []))
        status = int(message["status"])
        media_type = media_type_of(headers)
        if status == 304:
            await self._pass({**message, "headers": _weak_etag(headers)})
            return
        if not is_compressible(media_type):
            await self._pass(message)
            return
        length = _header(headers, b"content-length")
        if (
            not 200 <= status < 300
            or status == 204
            or _header(headers, b"content-encoding") is not None
            or (length is not None and int(length) < MIN_BYTES)
        ):
            await self._pass({**message, "headers": headers})
            return
        self.start = {**message, "headers": headers}

    async def _pass(self, start: Any) -> None:
        self.passing = True
        await self.send(start)

    async def _body(self, message: Any) -> None:
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if not body and more:
            return  # nothing to flush (an empty flush would still cost the client bytes)
        if self.compressor is None:
            assert self.start is not None
            start, self.start = self.start, None
            if not more and len(body) < MIN_BYTES:
                await self._pass(start)
                await self.send(message)
                return
            self.compressor = COMPRESSORS[self.encoding]()
            headers = [
                (k, v)
                for k, v in start["headers"]
                if k.lower() not in (b"content-length", b"content-encoding")
            ]
            headers = _weak_etag(headers)
            headers.append((b"content-encoding", self.encoding.encode()))
            if not more:
                compressed = self.compressor.compress(body) + self.compressor.finish()
                headers.append((b"content-length", str(len(compressed)).encode()))
                start["headers"] = headers
                await self.send(start)
                await self.send({"type": "http.response.body", "body": compressed, "more_body": False})
                return
            start["headers"] = headers
            await self.send(start)
        compressed = self.compressor.compress(body)
        compressed += self.compressor.flush() if more else self.compressor.finish()
        if compressed or not more:
            await self.send({"type": "http.response.body", "body": compressed, "more_body": more})
