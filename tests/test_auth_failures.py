"""Failed authentication costs the client (issue 18, item 5): a per-IP budget of failures, then
429 with ``Retry-After`` before any key lookup; failures charge the anonymous quota too."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import asyncpg
import httpx

from secevents.server.app import create_app
from secevents.server.settings import RedisSettings, Settings
from tests.conftest import make_settings
from tests.support import assert_problem
from tests.writing import Keys, make_keys

WRONG_KEY = {"Authorization": "Bearer se_0123456789ab_" + "x" * 43}


def _an_ip() -> str:
    """A client address of this test's own (Redis counters outlive a test run)."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@asynccontextmanager
async def clients(settings: Settings, *ips: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client per address, all talking to one app."""
    app = create_app(settings)
    async with app.lifespan():
        made = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://t")
            for ip in ips
        ]
        try:
            yield made
        finally:
            for client in made:
                await client.aclose()


async def test_failures_beyond_the_budget_are_429_before_any_lookup(
    database_url: str, conn: asyncpg.Connection
) -> None:
    keys = await make_keys(conn)
    settings = make_settings(database_url, auth_failure_limit=3, auth_failure_window_seconds=3600)
    async with clients(settings, _an_ip(), _an_ip()) as (guesser, other):
        for _ in range(3):
            assert_problem(await guesser.get("/v1/sources", headers=WRONG_KEY), 401, "unauthorized")
        spent = await guesser.get("/v1/sources", headers=WRONG_KEY)
        assert_problem(spent, 429, "rate_limited")
        assert 1 <= int(spent.headers["retry-after"]) <= 3600
        assert spent.headers["ratelimit-policy"] == '"auth-failures";q=3;w=3600'
        # Spent for every key this address presents, a valid one included (nothing is looked
        # up), and for malformed headers; anonymous reads are still the anonymous quota's.
        assert_problem(await guesser.get("/v1/sources", headers=Keys.header(keys.read)), 429, "rate_limited")
        assert_problem(
            await guesser.get("/v1/sources", headers={"Authorization": "Basic eDp5"}), 429, "rate_limited"
        )
        assert (await guesser.get("/v1/sources")).status_code == 200
        # Another address has a budget of its own.
        assert (await other.get("/v1/sources", headers=Keys.header(keys.read))).status_code == 200
        assert_problem(await other.get("/v1/sources", headers=WRONG_KEY), 401, "unauthorized")


async def test_malformed_and_revoked_keys_count_as_failures(
    database_url: str, conn: asyncpg.Connection
) -> None:
    keys = await make_keys(conn)
    await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = 'test-write'")
    settings = make_settings(database_url, auth_failure_limit=3, auth_failure_window_seconds=3600)
    async with clients(settings, _an_ip()) as (client,):
        for headers in ({"Authorization": "Token abc"}, Keys.header("se_short"), Keys.header(keys.write)):
            assert_problem(await client.get("/v1/sources", headers=headers), 401, "unauthorized")
        assert_problem(await client.get("/v1/sources", headers=Keys.header(keys.read)), 429, "rate_limited")


async def test_failures_charge_the_anonymous_quota(database_url: str) -> None:
    settings = make_settings(
        database_url, rate_limit_anonymous=2, rate_limit_window_seconds=3600, auth_failure_limit=100
    )
    async with clients(settings, _an_ip()) as (client,):
        first = await client.get("/v1/sources", headers=WRONG_KEY)
        assert_problem(first, 401, "unauthorized")
        assert first.headers["ratelimit"].startswith('"anonymous";r=1;')
        assert_problem(await client.get("/v1/sources", headers=WRONG_KEY), 401, "unauthorized")
        limited = await client.get("/v1/sources", headers=WRONG_KEY)
        assert_problem(limited, 429, "rate_limited")
        assert limited.headers["ratelimit-policy"] == '"anonymous";q=2;w=3600'
        assert_problem(await client.get("/v1/sources"), 429, "rate_limited")


async def test_the_failure_budget_is_shared_through_redis(database_url: str) -> None:
    """Two apps (two workers) spend one budget."""
    settings = replace(
        make_settings(database_url, auth_failure_limit=2, auth_failure_window_seconds=3600),
        redis=RedisSettings(url="redis://127.0.0.1:6379/0"),
    )
    ip = _an_ip()
    async with clients(settings, ip) as (one,), clients(settings, ip) as (two,):
        assert_problem(await one.get("/v1/sources", headers=WRONG_KEY), 401, "unauthorized")
        assert_problem(await two.get("/v1/sources", headers=WRONG_KEY), 401, "unauthorized")
        assert_problem(await one.get("/v1/sources", headers=WRONG_KEY), 429, "rate_limited")
        assert_problem(await two.get("/v1/sources", headers=WRONG_KEY), 429, "rate_limited")


def test_the_budget_is_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {"SECEVENTS_AUTH_FAILURE_LIMIT": "7", "SECEVENTS_AUTH_FAILURE_WINDOW_SECONDS": "90"}
    )
    assert (settings.api.auth_failure_limit, settings.api.auth_failure_window_seconds) == (7, 90)
