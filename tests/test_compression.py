"""Compression (api/http/compression.py) over real HTTP: the app served by uvicorn on a local
port, read by httpx, which decodes gzip and brotli itself; zstd is decoded with `zstandard`
from the raw bytes. Then the middleware alone, to show a stream is compressed and flushed
chunk by chunk."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import brotli
import httpx
import pytest
import zstandard
from litestar.types import Message, Receive, Scope, Send

from secevents.server.http.compression import MIN_BYTES, CompressionMiddleware, choose_encoding
from secevents.server.settings import Settings
from tests.client_helpers import serve
from tests.support import create_test_app

PAGE = "/v1/incidents?limit=100"


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with serve(create_test_app(settings)) as url:
        yield url


def _get_raw(base_url: str, path: str, encoding: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body exactly as sent (not decoded)."""
    with (
        httpx.Client(base_url=base_url) as http,
        http.stream("GET", path, headers={"Accept-Encoding": encoding, **headers}) as response,
    ):
        return response, b"".join(response.iter_raw())


def _unzstd(raw: bytes) -> bytes:
    # A streamed frame does not state its size: decode as a stream.
    return zstandard.ZstdDecompressor().decompressobj().decompress(raw)


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_httpx_decodes_the_page(base_url: str, encoding: str) -> None:
    plain = httpx.get(f"{base_url}{PAGE}", headers={"Accept-Encoding": "identity"})
    compressed = httpx.get(f"{base_url}{PAGE}", headers={"Accept-Encoding": encoding})
    assert plain.status_code == compressed.status_code == 200
    assert "content-encoding" not in plain.headers
    assert compressed.headers["content-encoding"] == encoding
    assert compressed.content == plain.content  # decoded by httpx
    assert compressed.json()["data"]
    assert "Accept-Encoding" in compressed.headers["vary"] and "Accept" in compressed.headers["vary"]
    assert "Accept-Encoding" in plain.headers["vary"]


def test_zstd_page_decodes_and_is_smaller(base_url: str) -> None:
    plain = httpx.get(f"{base_url}{PAGE}", headers={"Accept-Encoding": "identity"})
    response, raw = _get_raw(base_url, PAGE, "zstd")
    assert response.headers["content-encoding"] == "zstd"
    assert int(response.headers["content-length"]) == len(raw) < len(plain.content)
    assert _unzstd(raw) == plain.content


def test_q_values_choose_the_encoding(base_url: str) -> None:
    cases = {
        "gzip": "gzip",
        "gzip;q=1, zstd;q=0.5, br;q=0.9": "gzip",
        "gzip, zstd, br": "zstd",  # equal ratings: the server's preference
        "br;q=0.8, gzip;q=0.8": "br",
        "zstd;q=0, *": "br",
        "*;q=0.1, gzip;q=0.5": "gzip",
        "gzip;q=0": None,
        "identity": None,
        "compress, deflate": None,
    }
    for accept, expected in cases.items():
        assert choose_encoding(accept) == expected, accept
        response, _ = _get_raw(base_url, PAGE, accept)
        assert response.status_code == 200
        assert response.headers.get("content-encoding") == expected, accept


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "br"])
def test_etag_is_weak_and_if_none_match_still_answers_304(base_url: str, encoding: str) -> None:
    plain = httpx.get(f"{base_url}{PAGE}", headers={"Accept-Encoding": "identity"})
    response, _ = _get_raw(base_url, PAGE, encoding)
    assert plain.headers["etag"].startswith('"')
    assert response.headers["etag"] == f"W/{plain.headers['etag']}"
    for tag in (response.headers["etag"], plain.headers["etag"]):
        again, body = _get_raw(base_url, PAGE, encoding, **{"If-None-Match": tag})
        assert again.status_code == 304 and body == b""
        assert again.headers["etag"] == response.headers["etag"]
        assert "Accept-Encoding" in again.headers["vary"]


def test_a_record_is_compressed_and_its_etag_still_matches(base_url: str) -> None:
    record = httpx.get(f"{base_url}/v1/incidents?limit=1").json()["data"][0]
    path = f"/v1/incidents/{record['id']}"
    response, raw = _get_raw(base_url, path, "gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw))["id"] == record["id"]
    assert response.headers["etag"] == f'W/"{record["id"]}:{record["version"]}"'
    again, _ = _get_raw(base_url, path, "gzip", **{"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_messagepack_is_compressed_too(base_url: str) -> None:
    plain = httpx.get(
        f"{base_url}{PAGE}", headers={"Accept": "application/msgpack", "Accept-Encoding": "identity"}
    )
    response, raw = _get_raw(base_url, PAGE, "zstd", Accept="application/msgpack")
    assert response.headers["content-type"] == "application/msgpack"
    assert response.headers["content-encoding"] == "zstd"
    assert _unzstd(raw) == plain.content


def test_small_bodies_are_not_compressed(base_url: str) -> None:
    response, raw = _get_raw(base_url, "/health/live", "gzip, zstd, br")
    assert response.status_code == 200
    assert len(raw) < MIN_BYTES
    assert "content-encoding" not in response.headers


@pytest.mark.parametrize(("fmt", "encoding"), [("ndjson", "gzip"), ("csv", "zstd"), ("geojson", "br")])
def test_exports_stream_compressed(base_url: str, fmt: str, encoding: str) -> None:
    path = f"/v1/exports/incidents?format={fmt}"
    plain = httpx.get(f"{base_url}{path}", headers={"Accept-Encoding": "identity"})
    response, raw = _get_raw(base_url, path, encoding)
    assert response.status_code == 200
    assert response.headers["content-encoding"] == encoding
    assert "content-length" not in response.headers  # still a stream (chunked)
    assert response.headers["transfer-encoding"] == "chunked"
    decoded = {"gzip": gzip.decompress, "zstd": _unzstd, "br": brotli.decompress}[encoding](raw)
    assert decoded == plain.content
    assert len(raw) < len(plain.content)


def test_event_streams_are_never_compressed(base_url: str) -> None:
    with (
        httpx.Client(base_url=base_url) as http,
        http.stream("GET", "/v1/changes/stream", headers={"Accept-Encoding": "gzip, zstd, br"}) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        # Events arrive as they are written: the first one is readable without the stream ending.
        first = next(line for line in response.iter_lines() if line.startswith("event:"))
        assert first == "event: change"


# --- the middleware alone: a stream is compressed and flushed message by message --------------

CHUNKS = [(b'{"n": %d, "text": "' % i) + b"x" * 3000 + b'"}\n' for i in range(4)]


def _decoder(encoding: str) -> Any:
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    return brotli.Decompressor()


def _decode(decoder: Any, data: bytes) -> bytes:
    return bytes(decoder.process(data) if hasattr(decoder, "process") else decoder.decompress(data))


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "br"])
async def test_each_streamed_chunk_is_decodable_when_it_is_sent(encoding: str) -> None:
    async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/x-ndjson"), (b"etag", b'"abc"')]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in CHUNKS:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent: list[Message] = []

    async def record(message: Message) -> None:
        sent.append(message)

    async def nothing() -> Message:
        await asyncio.Event().wait()
        raise AssertionError

    scope: Any = {"type": "http", "method": "GET", "headers": [(b"accept-encoding", encoding.encode())]}
    await CompressionMiddleware(streaming_app)(scope, nothing, record)
    start, *bodies = sent
    headers = dict(start["headers"])
    assert headers[b"content-encoding"] == encoding.encode()
    assert headers[b"etag"] == b'W/"abc"'
    assert b"content-length" not in headers
    decoder = _decoder(encoding)
    # Each message the client receives decodes at once to exactly the chunk the app sent.
    for chunk, message in zip(CHUNKS, bodies, strict=False):
        assert message["more_body"] is True
        assert _decode(decoder, message["body"]) == chunk
    assert len(bodies) == len(CHUNKS) + 1 and bodies[-1]["more_body"] is False
    _decode(decoder, bodies[-1]["body"])  # the end of the stream, valid
