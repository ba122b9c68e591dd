"""Fixtures: a real PostgreSQL, databases built by the real migrations, the app over it.

The server is the one named by ``SECEVENTS_TEST_DATABASE_URL`` (a maintenance URL of a server
where databases may be created, e.g. ``postgresql://postgres@127.0.0.1:5432/test``) or, when
unset, an embedded PostgreSQL shared by concurrent test runs on this machine. Each test gets
databases of its own, cloned from a template that the migrations built once per run.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from secevents.server import db
from secevents.server.app import create_app
from secevents.server.importers import seed
from secevents.server.settings import ApiSettings, DatabaseSettings, Settings, WebhookSettings
from tests.support import scratch_folder

SHARED_EMBEDDED_DIR = Path(f"/tmp/secevents-test-pg-{os.getuid()}")


@pytest.fixture(autouse=True)
def logging_levels_restored() -> Iterator[None]:
    """The CLI configures logging for its process (quiet library logs, no access log for its
    in-process requests); tests that run it in-process must not leave that to later tests."""
    loggers = [logging.getLogger(name) for name in ("", "secevents", "secevents.access", "secevents.cli")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    external = os.environ.get("SECEVENTS_TEST_DATABASE_URL")
    if external:
        yield external
        return
    embedded = db.EmbeddedPostgres(SHARED_EMBEDDED_DIR)
    url = embedded.start()
    asyncio.run(_without_fsync(url))
    yield url
    embedded.stop()


async def _without_fsync(url: str) -> None:
    """The suite's own server need not survive a power cut: without fsync no commit, copy or
    drop of the hundreds of databases a run makes waits for the disk (a drop: 15 vs 80 ms on
    PostgreSQL 18). A killed server still loses nothing (what it wrote is in the kernel's
    cache), and the tests of crashes and outages start servers of their own."""
    conn = await _admin(url)
    try:
        await conn.execute("ALTER SYSTEM SET fsync = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def _admin(server_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(server_url)


async def create_database(server_url: str, template: str | None = None) -> str:
    name = f"se_test_{uuid.uuid4().hex[:16]}"
    conn = await _admin(server_url)
    try:
        suffix = f' TEMPLATE "{template}"' if template else " TEMPLATE template0"
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    return name


async def drop_database(server_url: str, name: str) -> None:
    conn = await _admin(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class LaterDrops:
    """Each test's databases, dropped while the next tests run. A drop waits for the backends
    of the connections just closed to exit, which PostgreSQL checks every 100 ms: awaited in
    each test's teardown, that was a tenth of a second per test."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._tasks: list[asyncio.Task[None]] = []

    def drop(self, name: str) -> None:
        self._tasks.append(asyncio.create_task(drop_database(self.server_url, name)))

    async def finish(self) -> None:
        """Every drop done; the first that failed fails the session's teardown."""
        await asyncio.gather(*self._tasks)


@pytest.fixture(scope="session")
async def later_drops(server_url: str) -> AsyncIterator[LaterDrops]:
    drops = LaterDrops(server_url)
    yield drops
    await drops.finish()


@pytest.fixture(scope="session")
async def template_database(server_url: str) -> AsyncIterator[str]:
    """A database migrated to head and holding the sample dataset, cloned by every test."""
    name = await create_database(server_url)
    url = db.url_with_database(server_url, name)
    await asyncio.to_thread(db.upgrade, url)
    async with db.connect(url) as conn:
        await seed.load_if_empty(conn)
    yield name
    await drop_database(server_url, name)


@pytest.fixture
async def empty_database_url(server_url: str, later_drops: LaterDrops) -> AsyncIterator[str]:
    """A new database with no schema at all."""
    name = await create_database(server_url)
    yield db.url_with_database(server_url, name)
    later_drops.drop(name)


class Clones:
    """Clones of the template made ahead of the tests that take them: while one test runs,
    the next one's database is being copied (a copy takes 60–100 ms; most tests take less)."""

    def __init__(self, server_url: str, template: str, ahead: int = 2) -> None:
        self.server_url = server_url
        self.template = template
        self._ready = collections.deque(self._clone() for _ in range(ahead))

    def _clone(self) -> asyncio.Task[str]:
        return asyncio.create_task(create_database(self.server_url, self.template))

    async def take(self) -> str:
        self._ready.append(self._clone())
        return await self._ready.popleft()

    async def finish(self) -> None:
        for name in await asyncio.gather(*self._ready):
            await drop_database(self.server_url, name)


@pytest.fixture(scope="session")
async def clones(server_url: str, template_database: str) -> AsyncIterator[Clones]:
    made = Clones(server_url, template_database)
    yield made
    await made.finish()


@pytest.fixture
async def database_url(server_url: str, clones: Clones, later_drops: LaterDrops) -> AsyncIterator[str]:
    """A new database of this test's own: migrated, with the sample dataset."""
    name = await clones.take()
    yield db.url_with_database(server_url, name)
    later_drops.drop(name)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    await db.init_connection(connection)
    yield connection
    await connection.close()


def make_settings(database_url: str, **api: object) -> Settings:
    return Settings(
        database=DatabaseSettings(
            url=database_url, pool_min_size=1, pool_max_size=8, migrate_on_start=False, seed_on_start=False
        ),
        api=replace(ApiSettings(cursor_secret=b"test-secret"), **api),  # type: ignore[arg-type]
        # No webhook worker in the background of apps that do not test it (it takes pooled
        # connections of its own, which tests of the pool would see); tests/test_webhooks.py
        # turns it on.
        webhooks=WebhookSettings(worker=False),
    )


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as test_client:
        yield test_client


@asynccontextmanager
async def fresh_server_database(prefix: str) -> AsyncIterator[dict[str, str]]:
    """The environment of a server started by a test: a fresh embedded PostgreSQL in a scratch
    folder, or a new empty database on SECEVENTS_TEST_DATABASE_URL's server."""
    external = os.environ.get("SECEVENTS_TEST_DATABASE_URL")
    if not external:
        with scratch_folder(prefix) as folder:
            yield {"SECEVENTS_DATA_DIR": str(folder / "pgdata")}
        return
    name = await create_database(external)
    try:
        yield {"DATABASE_URL": db.url_with_database(external, name)}
    finally:
        await drop_database(external, name)
