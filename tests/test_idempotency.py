"""Idempotency-Key on POST: replay of the first response, 422 for another body, 409 while the
first is still running, one record however many retries race, keys scoped to the API key.
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from secevents.server.app import create_app
from secevents.server.http import auth
from tests.conftest import make_settings
from tests.writing import Keys, incident_body, live_server, make_keys, snapshot


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


def _same_response(a: httpx.Response, b: httpx.Response) -> bool:
    return (a.status_code, a.content, a.headers["location"], a.headers["etag"]) == (
        b.status_code,
        b.content,
        b.headers["location"],
        b.headers["etag"],
    )


async def test_retry_replays_the_first_response(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    body = await incident_body(conn)
    headers = {**keys.header(keys.write), "Idempotency-Key": "retry-1"}
    first = await client.post("/v1/incidents", json=body, headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    # Same body, written differently (key order, whitespace): still the same request.
    reordered = dict(reversed(list(body.items())))
    second = await client.post("/v1/incidents", json=reordered, headers=headers)
    assert _same_response(first, second)
    assert second.headers["idempotent-replayed"] == "true"
    assert await conn.fetchval("SELECT count(*) FROM incidents WHERE title = $1", body["title"]) == 1
    stored = await conn.fetchrow("SELECT status, expires_at - created_at AS kept FROM idempotency_keys")
    assert stored["status"] == "done"
    assert stored["kept"].total_seconds() >= 24 * 3600


async def test_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    headers = {**keys.header(keys.write), "Idempotency-Key": "reused"}
    assert (
        await client.post("/v1/incidents", json=await incident_body(conn), headers=headers)
    ).status_code == 201
    before = await snapshot(conn)
    other = await client.post("/v1/incidents", json=await incident_body(conn, title="Other"), headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    # … and on another endpoint.
    source = {"kind": "report", "title": "r"}
    assert (await client.post("/v1/sources", json=source, headers=headers)).status_code == 422
    assert await snapshot(conn) == before


async def test_keys_are_scoped_to_the_api_key(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    body = await incident_body(conn)
    one = await client.post(
        "/v1/incidents", json=body, headers={**keys.header(keys.write), "Idempotency-Key": "k"}
    )
    two = await client.post(
        "/v1/incidents", json=body, headers={**keys.header(keys.admin), "Idempotency-Key": "k"}
    )
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]


async def test_failed_first_request_does_not_burn_the_key(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    headers = {**keys.header(keys.write), "Idempotency-Key": "fix-and-retry"}
    bad = await incident_body(conn)
    bad["citations"][0]["quote"] = "not in the article"
    assert (await client.post("/v1/incidents", json=bad, headers=headers)).status_code == 422
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    assert (
        await client.post("/v1/incidents", json=await incident_body(conn), headers=headers)
    ).status_code == 201


async def test_expired_key_starts_over(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    headers = {**keys.header(keys.write), "Idempotency-Key": "old"}
    first = await client.post("/v1/incidents", json=await incident_body(conn), headers=headers)
    await conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    again = await client.post("/v1/incidents", json=await incident_body(conn, title="New"), headers=headers)
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]


async def test_invalid_key_is_400(client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys) -> None:
    body = await incident_body(conn)
    # (The spec's pattern refuses the same keys: tests/test_openapi.py.)
    for bad in ("x" * 256, "tab\there", " leading space", "trailing space "):
        response = await client.post(
            "/v1/incidents", json=body, headers={**keys.header(keys.write), "Idempotency-Key": bad}
        )
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_in_flight_first_request_gives_409(database_url: str, conn: asyncpg.Connection) -> None:
    """A first request that is still running (here: its claim held open in a transaction)
    makes a retry wait, then answer 409; once it is gone, the retry goes through.
    """
    created = await auth.create_key(conn, name="w", scopes=["write"])
    body = await incident_body(conn)
    holder = await asyncpg.connect(database_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(
            """INSERT INTO idempotency_keys (api_key_id, key, method, path, request_hash)
               VALUES ($1, 'busy', 'POST', '/v1/incidents', '\\x00')""",
            created.id,
        )
        app = create_app(make_settings(database_url, idempotency_wait_seconds=0.2))
        async with AsyncTestClient(app=app) as client:
            headers = {"Authorization": f"Bearer {created.key}", "Idempotency-Key": "busy"}
            response = await client.post("/v1/incidents", json=body, headers=headers)
            assert response.status_code == 409, response.text
            assert response.json()["code"] == "idempotency_key_in_use"
            assert response.headers["retry-after"] == "1"
            await transaction.rollback()
            response = await client.post("/v1/incidents", json=body, headers=headers)
            assert response.status_code == 201
    finally:
        await holder.close()


async def test_100_concurrent_posts_with_one_key_make_one_record(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """100 identical POSTs at once against a real server: one record; every response is the
    same 201 (retries that arrive while the first runs wait for it and replay it).
    """
    keys = await make_keys(conn)
    body = await incident_body(conn, title="Exactly once")
    headers = {**keys.header(keys.write), "Idempotency-Key": "one-of-a-hundred"}
    async with (
        live_server(database_url) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=60) as client,
    ):
        responses = await asyncio.gather(
            *(client.post("/v1/incidents", json=body, headers=headers) for _ in range(100))
        )
    assert {r.status_code for r in responses} == {201}
    assert all(_same_response(responses[0], r) for r in responses)
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    assert await conn.fetchval("SELECT count(*) FROM incidents WHERE title = 'Exactly once'") == 1
    assert (
        await conn.fetchval("SELECT count(*) FROM revisions WHERE record_id = $1", responses[0].json()["id"])
        == 1
    )
