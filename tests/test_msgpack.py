"""MessagePack in and out: equal data to JSON on reads, writes and problems; Vary; OpenAPI."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import msgpack
import pytest
from litestar import Litestar

from secevents.server.http.msgpack import MSGPACK, prefers_msgpack
from secevents.server.openapi import with_formats
from tests.writing import Keys, incident_body, make_keys

ACCEPT_MSGPACK = {"Accept": MSGPACK}


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


def _unpack(response: httpx.Response) -> Any:
    assert response.headers["content-type"] == MSGPACK, response.headers
    return msgpack.unpackb(response.content)


@pytest.mark.parametrize(
    "path", ["/v1/incidents", "/v1/organisations?limit=2", "/v1/sources", "/health/live"]
)
async def test_reads_give_equal_data(client: httpx.AsyncClient, path: str) -> None:
    as_json = await client.get(path)
    as_msgpack = await client.get(path, headers=ACCEPT_MSGPACK)
    assert as_json.status_code == as_msgpack.status_code == 200
    assert _unpack(as_msgpack) == as_json.json()
    assert "accept" in as_json.headers["vary"].lower()
    assert "accept" in as_msgpack.headers["vary"].lower()


async def test_write_with_msgpack_body_and_answer(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    body = await incident_body(conn)
    response = await client.post(
        "/v1/incidents",
        content=msgpack.packb(body),
        headers={"Content-Type": MSGPACK, **ACCEPT_MSGPACK, **Keys.header(keys.write)},
    )
    assert response.status_code == 201, response.content
    created = _unpack(response)
    assert created["title"] == body["title"]
    fetched = await client.get(f"/v1/incidents/{created['id']}")
    assert fetched.json() == created


async def test_problems_come_in_msgpack_too(client: httpx.AsyncClient, keys: Keys) -> None:
    as_json = await client.get("/v1/incidents", params={"bogus": "1"})
    as_msgpack = await client.get("/v1/incidents", params={"bogus": "1"}, headers=ACCEPT_MSGPACK)
    assert as_json.status_code == as_msgpack.status_code == 400
    problem = _unpack(as_msgpack)
    expected = as_json.json()
    assert {k: v for k, v in problem.items() if k != "request_id"} == {
        k: v for k, v in expected.items() if k != "request_id"
    }
    assert problem["code"] == "invalid_parameter"

    unknown_route = await client.get("/v1/nowhere", headers=ACCEPT_MSGPACK)
    assert unknown_route.status_code == 404
    assert _unpack(unknown_route)["code"] == "not_found"


async def test_invalid_msgpack_body_is_a_400(client: httpx.AsyncClient, keys: Keys) -> None:
    # Not MessagePack at all, or truncated: refused by the middleware.
    for payload in (b"\xc1", msgpack.packb({"title": "x" * 40})[:-5]):
        response = await client.post(
            "/v1/incidents", content=payload, headers={"Content-Type": MSGPACK, **Keys.header(keys.write)}
        )
        assert response.status_code == 400, payload
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "invalid_body"
    # Valid MessagePack of the wrong shape: refused by validation, like the same JSON.
    for payload in (msgpack.packb({1: "integer key"}), msgpack.packb(b"\x00bytes")):
        response = await client.post(
            "/v1/incidents", content=payload, headers={"Content-Type": MSGPACK, **Keys.header(keys.write)}
        )
        assert response.status_code == 400, payload
        assert response.json()["code"] == "invalid_request"


async def test_msgpack_body_validated_like_json(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(
        "/v1/incidents",
        content=msgpack.packb({"title": "", "type": "battle"}),
        headers={"Content-Type": MSGPACK, **ACCEPT_MSGPACK, **Keys.header(keys.write)},
    )
    assert response.status_code == 400
    assert _unpack(response)["status"] == 400


async def test_exports_are_not_reencoded(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/exports/incidents", headers={"Accept": f"{MSGPACK}, */*;q=0.5"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("application/json", False),
        ("application/msgpack", True),
        ("application/x-msgpack", True),
        ("application/json, application/msgpack", False),  # a tie: JSON, the default
        ("application/json;q=0.5, application/msgpack", True),
        ("application/msgpack;q=0.4, application/json;q=0.9", False),
        ("application/msgpack, */*;q=0.1", True),
        ("application/msgpack;q=0", False),
        ("*/*", False),
    ],
)
def test_accept_preference(accept: str | None, expected: bool) -> None:
    assert prefers_msgpack(accept) is expected


def test_openapi_offers_msgpack_everywhere(app: Litestar) -> None:
    spec = with_formats(app.openapi_schema.to_schema())
    operations = [op for item in spec["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert operations
    for operation in operations:
        body = operation.get("requestBody", {})
        if "application/json" in body.get("content", {}):
            # Beside the declared JSON (generators that know only JSON are not blocked by it).
            alternative = body["x-alternative-media-types"][MSGPACK]
            assert alternative["schema"] == body["content"]["application/json"]["schema"]
            assert set(body["content"]) == {"application/json"}
            assert "MessagePack" in body["description"]
        for response in operation["responses"].values():
            content = response.get("content", {})
            for json_type in ("application/json", "application/problem+json"):
                if json_type in content:
                    assert MSGPACK in content, (operation["operationId"], json_type)
    assert (
        "application/x-ndjson"
        in spec["paths"]["/v1/imports"]["post"]["requestBody"]["x-alternative-media-types"]
    )
