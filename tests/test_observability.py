"""Structured logs (one JSON line per request, API keys never in them) and Prometheus metrics
(per route template, pool usage, database errors).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from secevents.server.http.observability import ACCESS_LOGGER, structured_formatter
from tests.support import until
from tests.writing import make_keys


class Lines(logging.Handler):
    """Every log record, formatted as the app formats it in production (JSON)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(structured_formatter("json"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def access(self) -> list[dict[str, object]]:
        entries = [json.loads(line) for line in self.lines]
        return [e for e in entries if e.get("logger") == ACCESS_LOGGER]


@pytest.fixture
def logs() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


async def test_each_request_is_one_json_line(client: httpx.AsyncClient, logs: Lines) -> None:
    listed = await client.get("/v1/incidents?limit=1")
    missing = await client.get(f"/v1/incidents/{uuid.uuid4()}")
    unknown = await client.get("/no/such/path")
    entries = logs.access()
    assert [(e["method"], e["route"], e["status"]) for e in entries] == [
        ("GET", "/v1/incidents", 200),
        ("GET", "/v1/incidents/{record_id}", 404),
        ("GET", "<unmatched>", 404),
    ]
    for entry, response in zip(entries, (listed, missing, unknown), strict=True):
        assert entry["request_id"] == response.headers["x-request-id"]
        assert entry["api_key_id"] is None
        assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
        assert entry["level"] == "info" and entry["event"] == "request" and entry["timestamp"]


async def test_the_callers_request_id_is_logged(client: httpx.AsyncClient, logs: Lines) -> None:
    await client.get("/v1/incidents?limit=1", headers={"X-Request-ID": "trace-1234"})
    assert logs.access()[0]["request_id"] == "trace-1234"


async def test_key_id_is_logged_and_the_key_never(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    logs: Lines,
) -> None:
    keys = await make_keys(conn)
    key_id = await conn.fetchval("SELECT id::text FROM api_keys WHERE name = 'test-read'")
    await client.get("/v1/incidents?limit=1", headers={"Authorization": f"Bearer {keys.read}"})
    # A wrong key, a malformed one and a failing request: none of them may leak either.
    wrong = keys.read[:-4] + "AAAA"
    await client.get("/v1/incidents", headers={"Authorization": f"Bearer {wrong}"})
    await client.get("/v1/incidents?limit=9999", headers={"Authorization": "Bearer not-a-key-secret"})
    await client.post("/v1/incidents", json={"title": "x"}, headers={"Authorization": f"Bearer {keys.write}"})
    entries = logs.access()
    assert entries[0]["api_key_id"] == key_id
    assert [e["status"] for e in entries] == [200, 401, 401, 400]
    everything = "\n".join(logs.lines)
    for secret in (keys.read, keys.write, wrong, "not-a-key-secret", keys.read.rsplit("_", 1)[1]):
        assert secret not in everything


async def test_access_line_has_client_bytes_and_user_agent(client: httpx.AsyncClient, logs: Lines) -> None:
    async with client.stream(
        "GET",
        "/v1/incidents?limit=5",
        headers={"User-Agent": "analyst-script/2.1", "Accept-Encoding": "gzip"},
    ) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers["content-encoding"] == "gzip"
    (entry,) = logs.access()
    assert entry["user_agent"] == "analyst-script/2.1"
    assert entry["client"] == "testclient"  # Litestar's test client's address; a real one logs the IP
    assert entry["bytes"] == len(raw)  # as sent: compressed


async def test_a_streamed_export_is_logged_with_all_its_bytes(client: httpx.AsyncClient, logs: Lines) -> None:
    """The line of a streamed export counts every byte the client got, so it was written after
    the last one, and its duration runs past the first byte."""
    async with client.stream(
        "GET", "/v1/exports/incidents", headers={"Accept-Encoding": "identity"}
    ) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert b"export_complete" in body
    (entry,) = logs.access()
    assert entry["route"] == "/v1/exports/incidents" and entry["bytes"] == len(body)
    assert isinstance(entry["ttfb_ms"], float) and entry["duration_ms"] >= entry["ttfb_ms"]


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def test_metrics_per_route_template(client: httpx.AsyncClient) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    await client.get(f"/v1/incidents/{first}")
    await client.get(f"/v1/incidents/{second}")
    await client.get("/v1/incidents?limit=1")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    # Raw paths never become labels (their number is unbounded).
    assert str(first) not in text and str(second) not in text
    counts = samples(text, "secevents_http_requests_total")
    by_route = (("method", "GET"), ("route", "/v1/incidents/{record_id}"), ("status", "404"))
    assert counts[by_route] == 2.0
    assert counts[(("method", "GET"), ("route", "/v1/incidents"), ("status", "200"))] == 1.0
    latency = samples(text, "secevents_http_request_duration_seconds_count")
    assert latency[(("method", "GET"), ("route", "/v1/incidents/{record_id}"), ("status", "404"))] == 2.0
    buckets = samples(text, "secevents_http_request_duration_seconds_bucket")
    assert buckets[(("le", "+Inf"), ("method", "GET"), ("route", "/v1/incidents"), ("status", "200"))] == 1.0
    sent = samples(text, "secevents_http_response_body_bytes_total")
    assert sent[(("method", "GET"), ("route", "/v1/incidents"))] > 0


async def test_metrics_show_pool_usage(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    pool = samples(text, "secevents_db_pool_connections")
    assert pool[(("state", "open"),)] >= 1
    assert 0 <= pool[(("state", "idle"),)] <= pool[(("state", "open"),)]
    assert samples(text, "secevents_db_pool_max_connections")[()] == 8.0  # make_settings' pool size


async def test_metrics_show_the_process(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert samples(text, "process_cpu_seconds_total")[()] > 0
    assert samples(text, "process_resident_memory_bytes")[()] > 0
    assert samples(text, "process_open_fds")[()] > 0


async def test_metrics_are_not_in_the_api_description(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    assert "/metrics" not in spec["paths"]


async def test_metrics_can_be_turned_off(database_url: str) -> None:
    from litestar.testing import AsyncTestClient

    from secevents.server.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database_url, metrics_enabled=False))
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_serve_writes_only_json_lines(empty_database_url: str) -> None:
    """`secevents serve` in JSON mode (the default), verbose: its own lines, Alembic's migrations,
    the seed, granian's lines and the access log are all JSON objects, one a line."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DATABASE_"))}
    env |= {"DATABASE_URL": empty_database_url, "SECEVENTS_WEBHOOK_WORKER": "false"}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "secevents"), "-v", "serve", "--port", str(port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip

    async def ready() -> bool:
        assert process.returncode is None, "the server exited"
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"http://127.0.0.1:{port}/health/ready")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await until(ready, interval=0.1)
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/v1/incidents", headers={"User-Agent": "json-check"})
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await process.communicate()
    lines = [line for line in output.decode().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    loggers = {str(e.get("logger")) for e in entries}
    assert any(name.startswith("alembic") for name in loggers), loggers
    assert {"_granian", "secevents.cli", ACCESS_LOGGER} <= loggers, loggers
    access = [e for e in entries if e.get("logger") == ACCESS_LOGGER and e["route"] == "/v1/incidents"]
    assert access[0]["user_agent"] == "json-check" and access[0]["client"] == "127.0.0.1"
