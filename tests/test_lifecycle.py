"""The served process: graceful shutdown drains requests in flight; several workers share
nothing but the database, accept each other's cursors and add up their metrics; no ``Server``
header tells what runs here. Real servers (granian), in processes of their own, over the test's
database; and an app's lifespan in this process: frozen out of the garbage collector while it
serves, tracked again once stopped."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from secevents.server.app import create_app
from tests.conftest import make_settings
from tests.support import SLEEP_PATH, running_sleeps, until, wait_until

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECEVENTS_MIGRATE_ON_START": "false",
        "SECEVENTS_SEED_ON_START": "false",
        "SECEVENTS_RATE_LIMIT_WINDOW_SECONDS": "0",
        "SECEVENTS_POOL_MIN_SIZE": "1",
        "SECEVENTS_POOL_MAX_SIZE": "4",
        **extra,
    }


@asynccontextmanager
async def running(
    command: Sequence[str], env: dict[str, str], port: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:

        async def live() -> bool:
            assert process.returncode is None, "the server exited"
            try:
                async with httpx.AsyncClient() as probe:
                    return (await probe.get(f"http://127.0.0.1:{port}/health/live")).status_code == 200
            except httpx.TransportError:
                return False

        await until(live, interval=0.1)
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()


async def test_sigterm_lets_the_request_in_flight_finish(database_url: str, conn: asyncpg.Connection) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "tests.support:app_from_env",
    ]  # fmt: skip
    async with running(command, server_env(database_url), port) as server:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            slow = asyncio.create_task(client.get(f"{SLEEP_PATH}?seconds=1.5"))
            await wait_until(running_sleeps, conn, 1)  # the request is inside PostgreSQL
            server.send_signal(signal.SIGTERM)
            response = await slow
            assert response.status_code == 200
            assert response.json() == {"slept": True}
        assert await server.wait() == 0
        # Once stopped, it accepts nothing more.
        async with httpx.AsyncClient(base_url=base) as client:
            try:
                await client.get("/health/live")
                raise AssertionError("the server still answers after SIGTERM")
            except httpx.ConnectError:
                pass


def metrics_files_by_pid(folder: Path) -> set[str]:
    return {p.stem.rsplit("_", 1)[1] for p in folder.glob("counter_*.db")}


async def test_two_workers_share_cursors_and_metrics(database_url: str) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="secevents-metrics-test-") as metrics_dir:
        env = server_env(database_url, PROMETHEUS_MULTIPROC_DIR=metrics_dir)
        env.pop("SECEVENTS_CURSOR_SECRET", None)  # `serve` derives one for its workers
        command = [
            sys.executable,
            "-m",
            "secevents.server.cli.main",
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
        ]
        async with running(command, env, port):
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base) as client:
                first = await client.get("/v1/incidents", params={"limit": 2})
            assert first.status_code == 200
            # granian names itself but not its version; the app adds nothing.
            assert first.headers.get("server", "granian") == "granian"
            cursor = first.json()["next_cursor"]
            assert cursor

            sent = 1

            async def follow_cursor() -> None:
                # A new connection each time, so that both workers take some.
                async with httpx.AsyncClient(base_url=base) as fresh:
                    page = await fresh.get("/v1/incidents", params={"limit": 2, "cursor": cursor})
                assert page.status_code == 200, page.text
                assert len(page.json()["data"]) == 2

            async def both_workers_served() -> bool:
                nonlocal sent
                await asyncio.gather(*(follow_cursor() for _ in range(16)))
                sent += 16
                return len(metrics_files_by_pid(Path(metrics_dir))) >= 2

            await until(both_workers_served)

            # Whichever worker answers the scrape, it counts every worker's requests.
            async with httpx.AsyncClient(base_url=base) as client:
                text = (await client.get("/metrics")).text
            served = sum(
                s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "secevents_http_requests_total" and s.labels["route"] == "/v1/incidents"
            )
            assert served == sent


async def test_a_started_app_is_frozen_out_of_the_collector_until_it_stops(database_url: str) -> None:
    """While it serves, what the app holds is out of the cyclic collector's way; once stopped,
    nothing stays frozen: the collector sees the app again."""
    app = create_app(make_settings(database_url))
    async with app.lifespan():
        assert gc.get_freeze_count() > 0
        assert not any(obj is app for obj in gc.get_objects())  # frozen objects are not listed
        response = await httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t").get(
            "/v1/incidents"
        )
        assert response.status_code == 200
    assert gc.get_freeze_count() == 0
    assert any(obj is app for obj in gc.get_objects())  # tracked again: collectable once unreachable
