"""Test-only routes, registered only in apps built by the tests (never in the served API):
a request that stays in PostgreSQL for a chosen time (``pg_sleep``), and one that reads its
body. They make slow requests and bodies real without depending on other endpoints. Also the
helpers to serve such an app in the test's event loop, to check a problem response, and to
store the documents of records a test wrote with SQL.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import httpx
from litestar import Litestar, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from secevents.schemas.records import RecordType
from secevents.server.app import create_app
from secevents.server.settings import Settings
from secevents.server.sql import documents

SLEEP_PATH = "/test/sleep"
ECHO_PATH = "/test/echo"


@get(SLEEP_PATH, operation_id="test_sleep", include_in_schema=False)
async def sleep_in_database(
    conn: NamedDependency[asyncpg.Connection],
    seconds: Annotated[float, QueryParameter(ge=0, le=60)] = 1.0,
) -> Response[bytes]:
    await conn.execute("SELECT pg_sleep($1)", seconds)
    return Response(content=b'{"slept":true}', media_type="application/json")


@post(ECHO_PATH, operation_id="test_echo", include_in_schema=False, status_code=200)
async def echo_body_size(request: Request[object, object, object]) -> dict[str, int]:
    return {"bytes": len(await request.body())}


async def running_sleeps(conn: asyncpg.Connection) -> int:
    """How many ``pg_sleep`` queries of the test routes run in this database right now."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE 'SELECT pg_sleep%' AND state = 'active'",
    )
    return count


async def wait_until(
    probe: Callable[[asyncpg.Connection], Awaitable[int]],
    conn: asyncpg.Connection,
    expected: int,
) -> None:
    """Poll until ``probe(conn) == expected``. No timed assertion: the test's timeout is the
    only clock.
    """
    while True:
        if await probe(conn) == expected:
            return
        await asyncio.sleep(0.02)


async def until(condition: Callable[[], object], interval: float = 0.01, *, slowest: float = 0.25) -> None:
    """Wait until ``condition()`` (or the value it awaits to) is true, polling: at ``interval``
    first, then less often up to every ``slowest`` seconds, so that a long wait on a loaded
    machine does not run into the API's rate limit."""
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, max(interval, slowest))


def create_test_app(settings: Settings) -> Litestar:
    app = create_app(settings)
    app.register(sleep_in_database)
    app.register(echo_body_size)
    return app


def app_from_env() -> Litestar:
    """Granian factory: the API plus the test-only routes, configured from the environment."""
    return create_test_app(Settings.from_env())


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app (with the test-only routes) in this event loop, so that a test can run requests
    concurrently (Litestar's test client runs each request to its end on a thread of its own).
    """
    app = create_test_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client,
    ):
        yield client


@contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A folder for an embedded PostgreSQL's data outside pytest's ``tmp_path`` root. As root,
    the server runs as a user of its own that needs access to the folder's parents, and pytest
    takes that access away from its root folder whenever another test session starts."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def with_database(settings: Settings, **database: object) -> Settings:
    return replace(settings, database=replace(settings.database, **database))  # type: ignore[arg-type]


async def store_documents(
    conn: asyncpg.Connection, record_type: RecordType | None = None, ids: list[Any] | None = None
) -> None:
    """Render and store the documents of records a test wrote with SQL rather than the API:
    ``ids`` of ``record_type``, or every record without a document yet."""
    async with conn.transaction():
        for kind, renderer in documents.RENDERERS.items():
            if record_type is not None and kind != record_type:
                continue
            wanted = (
                ids
                if ids is not None
                else [r[0] for r in await conn.fetch(f"SELECT id FROM {renderer.table} WHERE doc IS NULL")]
            )
            if wanted:
                await documents.store(conn, kind, wanted)
