"""API keys, scopes and rate limits: every write needs a key with the `write` scope, reads are
public or keyed by configuration, revoked keys stop working at once, limits answer 429.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from secevents.server.app import create_app
from secevents.server.cli import main as cli
from secevents.server.http import auth
from secevents.server.settings import RedisSettings
from tests.conftest import make_settings
from tests.writing import Keys, first, make_keys, snapshot

RESOURCES = ("incidents", "organisations", "statements", "sources")
SOME_ID = "00000000-0000-7000-8000-000000000009"


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


def _write_requests() -> list[tuple[str, str]]:
    requests = []
    for resource in RESOURCES:
        requests += [
            ("POST", f"/v1/{resource}"),
            ("PATCH", f"/v1/{resource}/{SOME_ID}"),
            ("DELETE", f"/v1/{resource}/{SOME_ID}"),
        ]
    return requests


async def _send(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    body = None if method == "DELETE" else {"title": "x"}
    return await client.request(method, url, json=body, headers={**headers, "If-Match": "*"})


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code
    return problem


@pytest.mark.parametrize(("method", "url"), _write_requests())
async def test_writes_need_a_write_key(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys, method: str, url: str
) -> None:
    before = await snapshot(conn)
    response = await _send(client, method, url, {})
    _problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    _problem(await _send(client, method, url, keys.header(keys.read)), 403, "forbidden")
    _problem(await _send(client, method, url, {"Authorization": "Basic dXNlcjpwYXNz"}), 401, "unauthorized")
    _problem(await _send(client, method, url, keys.header("se_not_a_key")), 401, "unauthorized")
    # A well-formed key whose secret is wrong.
    forged = keys.write[:-4] + ("AAAA" if not keys.write.endswith("AAAA") else "BBBB")
    _problem(await _send(client, method, url, keys.header(forged)), 401, "unauthorized")
    assert await snapshot(conn) == before
    # The write and admin keys get past authentication (then 400/404/… for this dummy body).
    for key in (keys.write, keys.admin):
        assert (await _send(client, method, url, keys.header(key))).status_code not in {401, 403}


async def test_revoked_key_is_rejected_at_once(client: httpx.AsyncClient, conn: asyncpg.Connection) -> None:
    created = await auth.create_key(conn, name="soon-revoked", scopes=["write"])
    record = await first(client, "sources")
    url = f"/v1/sources/{record['id']}"
    headers = {"Authorization": f"Bearer {created.key}", "If-Match": "*"}
    assert (await client.patch(url, json={"title": "Renamed"}, headers=headers)).status_code == 200
    revoked = await auth.revoke_key(conn, created.id)
    assert revoked is not None and revoked.revoked_at is not None
    problem = _problem(await client.patch(url, json={"title": "Again"}, headers=headers), 401, "unauthorized")
    assert "revoked" in problem["detail"]
    _problem(await client.get(url, headers=headers), 401, "unauthorized")
    assert await auth.revoke_key(conn, uuid.uuid4()) is None


async def test_keys_are_stored_only_as_hashes(conn: asyncpg.Connection) -> None:
    created = await auth.create_key(conn, name="hashed", scopes=["read"])
    secret = created.key.split("_", 2)[2]  # se_<prefix>_<secret>: the secret may hold "_" itself
    row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", created.id)
    assert created.key.startswith(f"se_{row['prefix']}_")
    assert all(secret not in str(value) for value in dict(row).values())
    assert len(row["secret_hash"]) == 32


async def test_reads_can_require_a_key(database_url: str, conn: asyncpg.Connection) -> None:
    keys = await make_keys(conn)
    app = create_app(make_settings(database_url, public_reads=False))
    async with AsyncTestClient(app=app) as client:
        for path in ("/v1/incidents", "/v1/changes"):
            _problem(await client.get(path), 401, "unauthorized")
            for key in (keys.read, keys.write, keys.admin):
                assert (await client.get(path, headers=keys.header(key))).status_code == 200
        # Health and the OpenAPI document stay open.
        assert (await client.get("/health/live")).status_code == 200


async def test_public_reads_accept_keys_too(client: httpx.AsyncClient, keys: Keys) -> None:
    assert (await client.get("/v1/incidents")).status_code == 200
    assert (await client.get("/v1/incidents", headers=keys.header(keys.read))).status_code == 200
    _problem(await client.get("/v1/incidents", headers=keys.header("se_bad")), 401, "unauthorized")


async def test_rate_limit_per_key(database_url: str, conn: asyncpg.Connection) -> None:
    keys = await make_keys(conn)
    app = create_app(make_settings(database_url, rate_limit_per_key=3, rate_limit_window_seconds=3600))
    async with AsyncTestClient(app=app) as client:
        for remaining in (2, 1, 0):
            response = await client.get("/v1/sources", headers=keys.header(keys.read))
            assert response.status_code == 200
            assert response.headers["ratelimit-policy"] == '"key";q=3;w=3600'
            assert response.headers["ratelimit"].startswith(f'"key";r={remaining};t=')
        limited = await client.get("/v1/sources", headers=keys.header(keys.read))
        _problem(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["ratelimit"].startswith('"key";r=0;')
        # Another key has its own budget; anonymous callers are counted per IP.
        assert (await client.get("/v1/sources", headers=keys.header(keys.write))).status_code == 200
        anonymous = await client.get("/v1/sources")
        assert anonymous.headers["ratelimit-policy"].startswith('"anonymous";')


async def test_a_key_can_have_its_own_limit(database_url: str, conn: asyncpg.Connection) -> None:
    created = await auth.create_key(conn, name="slow", scopes=["read"], rate_limit=1)
    app = create_app(make_settings(database_url, rate_limit_window_seconds=3600))
    async with AsyncTestClient(app=app) as client:
        headers = {"Authorization": f"Bearer {created.key}"}
        assert (await client.get("/v1/sources", headers=headers)).status_code == 200
        _problem(await client.get("/v1/sources", headers=headers), 429, "rate_limited")


async def test_rate_limits_are_shared_through_redis(database_url: str, conn: asyncpg.Connection) -> None:
    """Two apps (as two workers would be) count against one budget in Redis."""
    keys = await make_keys(conn)
    settings = make_settings(database_url, rate_limit_per_key=4, rate_limit_window_seconds=3600)
    from dataclasses import replace

    settings = replace(settings, redis=RedisSettings(url="redis://127.0.0.1:6379/0"))
    async with (
        AsyncTestClient(app=create_app(settings)) as one,
        AsyncTestClient(app=create_app(settings)) as two,
    ):
        statuses = []
        for client in (one, two, one, two, one, two):
            statuses.append((await client.get("/v1/sources", headers=keys.header(keys.read))).status_code)
        assert statuses == [200, 200, 200, 200, 429, 429]


def test_keys_cli(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert cli.main(["keys", "create", "--scope", "write", "--name", "curator"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("se_") and "curator" in err
    assert cli.main(["keys", "list", "--json"]) == 0
    out, _ = capsys.readouterr()
    assert key not in out
    listed = [line for line in out.splitlines() if '"curator"' in line]
    assert len(listed) == 1 and '"write"' in listed[0] and '"revoked_at":null' in listed[0]
    key_id = listed[0].split('"id":"')[1].split('"')[0]
    assert cli.main(["keys", "revoke", key_id]) == 0
    assert cli.main(["keys", "list"]) == 0
    out, _ = capsys.readouterr()
    assert "revoked" in out
    assert cli.main(["keys", "revoke", str(uuid.uuid4())]) == 1
