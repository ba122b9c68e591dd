"""Readiness follows the database: 503 while it is down, 200 again once it is back, with no
restart of the app. Runs on an embedded PostgreSQL of the test's own, started by the app
itself (``DATABASE_URL`` unset), so stopping it disturbs nothing else."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from litestar.testing import AsyncTestClient

from secevents.server import db
from secevents.server.app import create_app
from secevents.server.settings import DatabaseSettings, Settings
from tests.support import until


async def test_ready_follows_the_database() -> None:
    with tempfile.TemporaryDirectory(prefix="secevents-health-", dir="/tmp") as tmp:
        data_dir = Path(tmp) / "pg"
        settings = Settings(database=DatabaseSettings(url=None, embedded_dir=data_dir, pool_min_size=1))
        app = create_app(settings)
        async with AsyncTestClient(app=app) as client:
            assert (await client.get("/health/ready")).status_code == 200
            # The app started the embedded server, migrated and seeded it.
            response = await client.get("/v1/incidents")
            assert response.status_code == 200 and len(response.json()["data"]) == 5

            embedded = db.EmbeddedPostgres(data_dir)
            embedded.start()  # a second handle on the server the app started
            await asyncio.to_thread(embedded.pause)
            try:
                response = await client.get("/health/ready")
                assert response.status_code == 503
                assert response.headers["retry-after"]
                response = await client.get("/v1/incidents")
                assert response.status_code == 503
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["code"] == "database_unavailable"
            finally:
                await asyncio.to_thread(embedded.resume)

            # Ready again by itself; the test's timeout is the only clock.
            async def ready() -> bool:
                return (await client.get("/health/ready")).status_code == 200

            await until(ready, interval=0.1)
            assert (await client.get("/v1/incidents")).status_code == 200
