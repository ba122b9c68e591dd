"""Limits on what one request may cost (OWASP API4): each is configurable and answered with a
clear problem — 400/413/414 for the client's excess, 503 with ``Retry-After`` for time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from secevents.server import db
from secevents.server.settings import Settings
from tests.conftest import make_settings
from tests.support import (
    ECHO_PATH,
    SLEEP_PATH,
    assert_problem,
    running_sleeps,
    serve,
    wait_until,
    with_database,
)


def small_limits(database_url: str) -> Settings:
    """Small limits, so tests can reach them cheaply."""
    return make_settings(
        database_url,
        max_query_string_bytes=100,
        max_parameter_values=3,
        max_body_bytes=1000,
    )


# --- query string ----------------------------------------------------------------------------


async def test_query_string_longer_than_the_limit_is_414(database_url: str) -> None:
    async with serve(small_limits(database_url)) as limited:
        too_long = "q=" + "a" * 99  # 101 bytes
        body = assert_problem(await limited.get(f"/v1/incidents?{too_long}"), 414, "query_string_too_long")
        assert "at most 100" in str(body["detail"])


async def test_query_string_at_the_limit_is_accepted(database_url: str) -> None:
    query = "limit=2"
    async with serve(make_settings(database_url, max_query_string_bytes=len(query))) as client:
        response = await client.get(f"/v1/incidents?{query}")
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]) == 2
        assert_problem(await client.get(f"/v1/incidents?{query}0"), 414, "query_string_too_long")


async def test_default_query_string_limit_applies(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/incidents?q=" + "x" * 5000)
    assert_problem(response, 414, "query_string_too_long")


# --- repeated parameters ---------------------------------------------------------------------


async def test_a_parameter_repeated_beyond_the_limit_is_400(database_url: str) -> None:
    async with serve(small_limits(database_url)) as limited:
        response = await limited.get("/v1/incidents?limit=1&limit=2&limit=3&limit=4")
        body = assert_problem(response, 400, "too_many_values")
        assert body["errors"] == [
            {"field": "limit", "message": "given 4 times; at most 3 values are accepted"},
        ]


async def test_repetitions_are_counted_on_the_decoded_name(database_url: str) -> None:
    async with serve(small_limits(database_url)) as limited:
        # `%6Cimit` is `limit`: encoding the name must not get around the limit.
        response = await limited.get("/v1/incidents?limit=1&%6Cimit=2&li%6Dit=3&limit=4")
        assert_problem(response, 400, "too_many_values")


async def test_repetitions_up_to_the_limit_reach_the_handler(database_url: str) -> None:
    async with serve(small_limits(database_url)) as limited:
        response = await limited.get("/v1/incidents?limit=1&limit=2&limit=3")
        assert response.status_code != 500
        assert response.json().get("code") != "too_many_values"


# --- page size -------------------------------------------------------------------------------


async def test_page_size_above_500_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/incidents?limit=501")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/incidents?limit=500")).status_code == 200


# --- body size -------------------------------------------------------------------------------


async def test_body_larger_than_the_limit_is_413(database_url: str) -> None:
    async with serve(small_limits(database_url)) as limited:
        response = await limited.post(ECHO_PATH, content=b"x" * 1001)
        body = assert_problem(response, 413, "payload_too_large")
        assert body["title"] == "Request body too large"


async def test_body_at_the_limit_is_read(database_url: str) -> None:
    async with serve(small_limits(database_url)) as limited:
        response = await limited.post(ECHO_PATH, content=b"x" * 1000)
        assert response.status_code == 200
        assert response.json() == {"bytes": 1000}


async def test_streamed_body_without_length_is_cut_at_the_limit(database_url: str) -> None:
    async with serve(small_limits(database_url)) as limited:

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"y" * 100

        response = await limited.post(ECHO_PATH, content=chunks())
        assert_problem(response, 413, "payload_too_large")


# --- time ------------------------------------------------------------------------------------


async def test_request_timeout_is_503_and_cancels_the_query(
    database_url: str,
    conn: asyncpg.Connection,
) -> None:
    settings = make_settings(database_url, request_timeout=0.3)
    async with serve(settings) as client:
        response = await client.get(f"{SLEEP_PATH}?seconds=30")
        assert_problem(response, 503, "request_timeout")
        assert response.headers["retry-after"]
        # The query was cancelled in PostgreSQL too, and the app keeps answering.
        await wait_until(running_sleeps, conn, 0)
        assert (await client.get("/v1/incidents")).status_code == 200


async def test_statement_timeout_is_503_and_counted(database_url: str) -> None:
    settings = with_database(make_settings(database_url), statement_timeout_ms=1000)
    async with serve(settings) as client:
        response = await client.get(f"{SLEEP_PATH}?seconds=5")
        assert_problem(response, 503, "statement_timeout")
        assert response.headers["retry-after"]
        metrics = (await client.get("/metrics")).text
        errors = {
            tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(metrics)
            if family.name == "secevents_db_errors"
            for s in family.samples
            if s.name == "secevents_db_errors_total"
        }
        assert errors == {(("kind", "timeout"), ("sqlstate", "57014")): 1.0}


async def test_pool_acquire_timeout_is_503(database_url: str, conn: asyncpg.Connection) -> None:
    settings = with_database(make_settings(database_url), pool_max_size=1, pool_acquire_timeout=0.1)
    async with serve(settings) as client:
        # The only connection is held by a slow request…
        slow = asyncio.create_task(client.get(f"{SLEEP_PATH}?seconds=60"))
        await wait_until(running_sleeps, conn, 1)
        # …so another request cannot get one in time.
        response = await client.get("/v1/incidents")
        assert_problem(response, 503, "service_unavailable")
        assert response.headers["retry-after"]
        # Cancelling the slow query frees the connection: it is a 503 too (57014), and the
        # next request is served.
        await conn.execute(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%'"
        )
        assert_problem(await slow, 503, "statement_timeout")
        assert (await client.get("/v1/incidents")).status_code == 200


async def test_command_timeout_is_503_and_cancels_the_query(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """A command the server does not answer in time (here a long one, with the server's own
    statement timeout out of the way) is given up by the client: 503, and the query is
    cancelled in PostgreSQL."""
    settings = with_database(make_settings(database_url), statement_timeout_ms=0, command_timeout=0.5)
    async with serve(settings) as client:
        response = await client.get(f"{SLEEP_PATH}?seconds=60")
        assert_problem(response, 503, "database_unavailable")
        assert response.headers["retry-after"]
        await wait_until(running_sleeps, conn, 0)
        assert (await client.get("/v1/incidents")).status_code == 200


async def test_pooled_connections_carry_the_server_side_timeouts(database_url: str) -> None:
    settings = replace(
        make_settings(database_url).database,
        statement_timeout_ms=1234,
        tcp_keepalives_idle=9,
        tcp_user_timeout_ms=4321,
    )
    pool = await db.create_pool(database_url, settings)
    try:
        async with pool.acquire() as pooled:
            assert await pooled.fetchval("SHOW statement_timeout") == "1234ms"
            over_tcp = await pooled.fetchval("SELECT inet_client_addr() IS NOT NULL")
            tcp = [await pooled.fetchval(f"SHOW {name}") for name in TCP_SETTINGS]
    finally:
        await pool.close()
    # PostgreSQL applies them to TCP connections only; on a Unix socket they read as 0.
    assert tcp == (["9", "3", "3", "4321"] if over_tcp else ["0", "0", "0", "0"])


TCP_SETTINGS = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout")


def test_limits_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "SECEVENTS_MAX_QUERY_STRING_BYTES": "2048",
            "SECEVENTS_MAX_PARAMETER_VALUES": "7",
            "SECEVENTS_REQUEST_TIMEOUT": "2.5",
            "SECEVENTS_MAX_BODY_BYTES": "4096",
            "SECEVENTS_STATEMENT_TIMEOUT_MS": "1500",
            "SECEVENTS_POOL_ACQUIRE_TIMEOUT": "0.5",
            "SECEVENTS_COMMAND_TIMEOUT": "12.5",
            "SECEVENTS_ROLLBACK_TIMEOUT": "0.25",
            "SECEVENTS_TCP_KEEPALIVES_IDLE": "30",
            "SECEVENTS_TCP_USER_TIMEOUT_MS": "45000",
        },
    )
    assert settings.api.max_query_string_bytes == 2048
    assert settings.api.max_parameter_values == 7
    assert settings.api.request_timeout == 2.5
    assert settings.api.max_body_bytes == 4096
    assert settings.database.statement_timeout_ms == 1500
    assert settings.database.pool_acquire_timeout == 0.5
    assert settings.database.command_timeout == 12.5
    assert settings.database.rollback_timeout == 0.25
    assert settings.database.tcp_keepalives_idle == 30
    assert settings.database.tcp_user_timeout_ms == 45000


def test_a_malformed_limit_in_the_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="SECEVENTS_REQUEST_TIMEOUT"):
        Settings.from_env({"SECEVENTS_REQUEST_TIMEOUT": "soon"})
