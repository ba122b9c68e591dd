"""Hostile request bodies (issue 18, item 1 and 6): limits before any decoding and before
authentication reads a byte, nesting bounded in JSON and MessagePack, no input reaching a 500,
``5.0`` as an integer the way JSON Schema counts it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import msgpack
import pytest
from litestar.types import Receive, Scope, Send

from secevents.server.http.edge import EdgeMiddleware
from secevents.server.http.middleware import LastResortMiddleware
from tests.conftest import make_settings
from tests.support import assert_problem, serve
from tests.writing import Keys, incident_body, make_keys

MSGPACK = {"Content-Type": "application/msgpack"}
DEEP_MSGPACK = b"\x91" * 1000 + b"\xc0"
DEEP_JSON = b"[" * 1000
MIB = 1 << 20


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


class CountedBody:
    """A request body sent in chunks, counting how many the server pulled."""

    def __init__(self, chunks: int, size: int = MIB) -> None:
        self.chunks, self.size, self.pulled = chunks, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"\x92" * self.size


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/v1/incidents", "/v1/nowhere", "/docs"])
@pytest.mark.parametrize(
    ("body", "content_type"), [(DEEP_MSGPACK, "application/msgpack"), (DEEP_JSON, "application/json")]
)
async def test_deeply_nested_bodies_never_reach_a_500(
    database_url: str, path: str, body: bytes, content_type: str
) -> None:
    async with serve(make_settings(database_url)) as client:
        for method in ("GET", "POST", "PATCH"):
            response = await client.request(
                method, path, content=body, headers={"Content-Type": content_type}
            )
            assert response.status_code < 500, (method, path, response.text)


@pytest.mark.parametrize(
    ("body", "content_type"), [(DEEP_MSGPACK, "application/msgpack"), (DEEP_JSON, "application/json")]
)
async def test_deeply_nested_write_body_is_a_400_problem(
    client: httpx.AsyncClient, keys: Keys, body: bytes, content_type: str
) -> None:
    response = await client.post(
        "/v1/incidents", content=body, headers={"Content-Type": content_type, **Keys.header(keys.write)}
    )
    assert_problem(response, 400, "invalid_request")


async def test_deep_nesting_inside_a_field_is_a_400(client: httpx.AsyncClient, keys: Keys) -> None:
    # An integer written as 5.0 first, so the body is decoded a second time, untyped.
    head = {"casualties": {"killed": {"low": 5.0}}}
    deep_msgpack = b"\x82" + msgpack.packb(head)[1:] + msgpack.packb("external_ids") + DEEP_MSGPACK * 2
    deep_json = (
        b'{"casualties": {"killed": {"low": 5.0}}, "external_ids": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    )
    for encoded, content_type in ((deep_msgpack, "application/msgpack"), (deep_json, "application/json")):
        response = await client.post(
            "/v1/incidents",
            content=encoded,
            headers={"Content-Type": content_type, **Keys.header(keys.write)},
        )
        problem = assert_problem(response, 400, "invalid_body")
        assert problem["detail"] == "The body is nested too deeply."


async def test_an_anonymous_body_is_refused_before_a_byte_is_read(database_url: str) -> None:
    async with serve(make_settings(database_url)) as client:
        body = CountedBody(chunks=300)  # 300 MiB, were it read
        response = await client.post("/v1/incidents", content=body, headers=MSGPACK)
        assert_problem(response, 401, "unauthorized")
        assert body.pulled == 0


async def test_the_import_limit_applies_only_to_keys_that_may_import(
    database_url: str, conn: asyncpg.Connection
) -> None:
    keys = await make_keys(conn)
    async with serve(make_settings(database_url)) as client:
        for headers, status, code in (
            ({}, 401, "unauthorized"),
            (Keys.header(keys.write), 403, "forbidden"),
        ):
            body = CountedBody(chunks=300)
            response = await client.post("/v1/imports", content=body, headers={**MSGPACK, **headers})
            assert_problem(response, status, code)
            assert body.pulled == 0


async def test_a_write_body_over_the_limit_is_refused_before_decoding(database_url: str, keys: Keys) -> None:
    async with serve(make_settings(database_url)) as client:
        # Announced by Content-Length: refused before a byte is read.
        response = await client.post(
            "/v1/incidents",
            content=b"\x92" * (2 * MIB),
            headers={**MSGPACK, **Keys.header(keys.write)},
        )
        assert_problem(response, 413, "payload_too_large")
        # Streamed without a length: cut just past the 1 MiB limit, not read to its end.
        body = CountedBody(chunks=300, size=64 * 1024)
        response = await client.post(
            "/v1/incidents", content=body, headers={**MSGPACK, **Keys.header(keys.write)}
        )
        assert_problem(response, 413, "payload_too_large")
        assert body.pulled <= MIB // (64 * 1024) + 1


async def test_a_large_valid_body_is_decoded(client: httpx.AsyncClient, keys: Keys) -> None:
    """Bodies above the thread threshold take the same path to the same record."""
    text = "A long source text. " * 20_000  # 400 KB
    for encode, content_type in ((msgpack.packb, "application/msgpack"), (None, "application/json")):
        payload = {"kind": "report", "title": "Long", "text": text}
        response = await client.post(
            "/v1/sources",
            content=encode(payload) if encode else None,
            json=None if encode else payload,
            headers={"Content-Type": content_type, **Keys.header(keys.write)},
        )
        assert response.status_code == 201, response.text
        assert response.json()["text"] == text


@pytest.mark.parametrize("content_type", ["application/json", "application/msgpack"])
async def test_integers_written_as_floats_are_integers(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys, content_type: str
) -> None:
    body = await incident_body(conn, casualties={"killed": {"low": 5.0, "best": 7.0, "high": 1e1}})
    encoded = (
        msgpack.packb(body)
        if content_type == "application/msgpack"
        else httpx.Request("POST", "/", json=body).content
    )
    assert b"5.0" in encoded or content_type == "application/msgpack"
    response = await client.post(
        "/v1/incidents", content=encoded, headers={"Content-Type": content_type, **Keys.header(keys.write)}
    )
    assert response.status_code == 201, response.text
    assert response.json()["casualties"]["killed"] == {"low": 5, "best": 7, "high": 10}
    # A fraction is still not an integer, and still named.
    body["casualties"] = {"killed": {"low": 5.5}}
    encoded = (
        msgpack.packb(body)
        if content_type == "application/msgpack"
        else httpx.Request("POST", "/", json=body).content
    )
    response = await client.post(
        "/v1/incidents", content=encoded, headers={"Content-Type": content_type, **Keys.header(keys.write)}
    )
    problem = assert_problem(response, 400, "invalid_request")
    assert problem["errors"] == [
        {"field": "casualties.killed.low", "message": "Expected `int | null`, got `float`"}
    ]


async def test_an_error_escaping_every_handler_is_a_problem_with_security_headers() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    app = EdgeMiddleware(LastResortMiddleware(broken), metrics=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/health/live")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "internal_error"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "traceback" not in response.text.lower()


async def test_a_refused_cors_preflight_is_a_problem_with_security_headers(database_url: str) -> None:
    """Litestar answers a refused preflight itself, in text/plain: rewritten as a problem."""
    async with serve(make_settings(database_url, cors_origins=("https://dash.example",))) as client:
        refused = await client.options(
            "/v1/incidents",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        problem = assert_problem(refused, 400, "bad_request")
        assert problem["detail"] == "Disallowed CORS Origin"
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in refused.headers
        allowed = await client.options(
            "/v1/incidents",
            headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"},
        )
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
