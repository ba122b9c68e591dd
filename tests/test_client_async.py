"""The async SDK against the real app and a real PostgreSQL, over the app's ASGI interface:
writes, pagination, the change feed, retries with one Idempotency-Key, and the error classes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest

from secevents import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from secevents.schemas.incidents import IncidentPatch
from secevents.schemas.sources import Source, SourcePatch
from secevents.server.http import auth
from tests.client_helpers import (
    AsyncInterferingTransport,
    Interference,
    closed_port_url,
    incident_body,
    silent_server,
    source_body,
)
from tests.conftest import drop_database

BASE_URL = "http://testserver.local"


@pytest.fixture
async def admin_key(conn: asyncpg.Connection) -> str:
    return (await auth.create_key(conn, name="sdk-async-admin", scopes=["admin"])).key


@pytest.fixture
def interference() -> Interference:
    return Interference()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry waits, recorded instead of slept."""
    recorded: list[float] = []

    async def record(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr("secevents._base._async_sleep", record)
    return recorded


@pytest.fixture
def asgi(client: httpx.AsyncClient) -> httpx.AsyncBaseTransport:
    """The transport of Litestar's test client: calls the app (whose lifespan, and so its
    database pool, the ``client`` fixture runs) through its ASGI interface.
    """
    transport: httpx.AsyncBaseTransport = client._transport
    return transport


@pytest.fixture
async def api(
    asgi: httpx.AsyncBaseTransport, admin_key: str, interference: Interference, sleeps: list[float]
) -> AsyncIterator[AsyncClient]:
    """The SDK over the app, through a transport that a test can tell to lose responses or
    answer 429 before passing requests on.
    """
    transport = AsyncInterferingTransport(asgi, interference)
    async with (
        httpx.AsyncClient(transport=transport) as http,
        AsyncClient(base_url=BASE_URL, api_key=admin_key, http_client=http) as sdk,
    ):
        yield sdk


async def text_source(api: AsyncClient) -> Source:
    async for source in api.sources.list():
        if source.text:
            return source
    raise AssertionError("the sample dataset has a source with its text")


async def test_write_read_and_delete_an_incident(api: AsyncClient) -> None:
    source = await text_source(api)
    created = await api.incidents.create(incident_body(source))
    assert created.version == 1 and created.location.country == "PK"

    fetched = await api.with_raw_response.incidents.get(created.id)
    assert fetched.status_code == 200 and fetched.etag and fetched.request_id
    assert fetched.parse() == created

    updated = await api.incidents.update(
        created.id, IncidentPatch(title="SDK test: clash near Daraban, updated"), if_match=fetched.etag
    )
    assert (updated.version, updated.title) == (2, "SDK test: clash near Daraban, updated")

    history = [r async for r in api.incidents.revisions(created.id)]
    assert [(r.version, r.operation) for r in history] == [(1, "create"), (2, "update")]
    first = await api.incidents.revision(created.id, 1)
    assert first.data["title"] == created.title

    current = await api.with_raw_response.incidents.get(created.id)
    assert current.etag is not None
    await api.incidents.delete(created.id, if_match=current.etag)
    with pytest.raises(NotFoundError) as missing:
        await api.incidents.get(created.id)
    assert missing.value.status_code == 404 and missing.value.code == "not_found"


async def test_lists_walk_every_page(api: AsyncClient) -> None:
    everything = (await api.organisations.list(limit=500)).data
    assert len(everything) >= 11

    first_page = await api.organisations.list(limit=5)
    assert len(first_page.data) == 5 and first_page.next_cursor is not None
    pages = [page async for page in first_page.iter_pages()]
    assert len(pages) == -(-len(everything) // 5)
    assert pages[-1].next_cursor is None and not pages[-1].has_next_page()

    walked = [o.id async for o in api.organisations.list(limit=5)]  # no await: every item
    assert walked == [o.id for o in everything]
    assert [o.id async for o in first_page] == walked


async def test_filters_are_sent_as_the_api_expects(api: AsyncClient) -> None:
    pakistan = [i async for i in api.incidents.list(country="PK", limit=2)]
    assert pakistan and all(i.location.country == "PK" for i in pakistan)
    afghanistan = [i async for i in api.incidents.list(country="AF", limit=2)]
    assert all(i.location.country == "AF" for i in afghanistan)
    either = [i async for i in api.incidents.list(country=["PK", "AF"], limit=2)]  # repeated: OR
    assert sorted(i.id for i in either) == sorted(i.id for i in pakistan + afghanistan)
    assert [i async for i in api.incidents.list(country="FR")] == []


async def test_change_feed_until_caught_up(api: AsyncClient) -> None:
    before = [c async for c in api.changes.follow(until_caught_up=True, limit=7)]
    assert before, "the sample dataset's creates are in the feed"
    assert [c.seq for c in before] == sorted(c.seq for c in before)

    source = await text_source(api)
    created = await api.incidents.create(incident_body(source))
    since = [c async for c in api.changes.follow(after=before[-1].cursor, until_caught_up=True)]
    assert [(c.type, c.id, c.operation, c.version) for c in since] == [("incident", created.id, "create", 1)]
    page = await api.changes.list(after=since[-1].cursor)
    assert page.data == [] and page.next_cursor == since[-1].cursor


async def test_a_post_whose_response_is_lost_is_retried_with_the_same_key(
    api: AsyncClient, interference: Interference, conn: asyncpg.Connection, sleeps: list[float]
) -> None:
    """The server handles the request each time; the SDK sees two dropped connections, then the
    replayed first response. One incident exists, and every attempt carried the same key.
    """
    source = await text_source(api)
    interference.lose_responses = 2
    created = await api.incidents.create(incident_body(source, title="SDK test: created once"))

    keys = [r.headers.get("idempotency-key") for r in interference.requests if r.method == "POST"]
    assert len(keys) == 3 and keys[0] and len(set(keys)) == 1
    assert len(sleeps) == 2 and all(0 < s <= 8 for s in sleeps)
    rows = await conn.fetch("SELECT id FROM incidents WHERE title = 'SDK test: created once'")
    assert [r["id"] for r in rows] == [created.id]


async def test_a_429_is_retried_after_retry_after(
    api: AsyncClient, interference: Interference, sleeps: list[float]
) -> None:
    interference.rate_limited, interference.retry_after = 1, "3"
    page = await api.incidents.list(limit=1)
    assert len(page.data) == 1
    assert sleeps == [3.0] and len(interference.requests) == 2


async def test_retries_give_up_after_max_retries(
    api: AsyncClient, interference: Interference, sleeps: list[float]
) -> None:
    interference.rate_limited, interference.retry_after = 5, "1"
    with pytest.raises(RateLimitError) as limited:
        await api.with_options(max_retries=1).incidents.list()
    assert limited.value.retry_after == 1.0 and limited.value.code == "rate_limited"
    assert len(interference.requests) == 2 and sleeps == [1.0]


async def test_the_servers_rate_limit_raises_rate_limit_error(
    client: httpx.AsyncClient, conn: asyncpg.Connection, sleeps: list[float]
) -> None:
    key = (await auth.create_key(conn, name="sdk-limited", scopes=["read"], rate_limit=1)).key
    async with AsyncClient(base_url=BASE_URL, api_key=key, max_retries=1, http_client=client) as limited:
        await limited.incidents.list(limit=1)
        with pytest.raises(RateLimitError) as exc_info:
            await limited.incidents.list(limit=1)
    error = exc_info.value
    assert error.status_code == 429 and error.problem is not None and error.request_id
    assert error.retry_after is not None and sleeps == [error.retry_after]


async def test_each_status_raises_its_error(
    api: AsyncClient, client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    source = await text_source(api)
    unknown = uuid.uuid4()
    with pytest.raises(NotFoundError):
        await api.statements.get(unknown)

    with pytest.raises(ValidationError) as bad_query:
        await api.incidents.list(limit=0)
    assert bad_query.value.status_code == 400 and bad_query.value.problem is not None

    stale_source = incident_body(source)
    stale_source.citations[0].source_id = unknown
    with pytest.raises(ValidationError) as unprocessable:
        await api.incidents.create(stale_source)
    assert unprocessable.value.status_code == 422

    created = await api.sources.create(source_body("https://example.org/sdk-unique"))
    with pytest.raises(ConflictError) as conflict:
        await api.sources.create(source_body("https://example.org/sdk-unique"))
    assert conflict.value.status_code == 409

    with pytest.raises(PreconditionRequiredError) as unconditional:
        await api.sources.update(created.id, SourcePatch(title="SDK test: renamed"))
    assert unconditional.value.status_code == 428

    read_key = (await auth.create_key(conn, name="sdk-reader", scopes=["read"])).key
    reader = AsyncClient(base_url=BASE_URL, api_key=read_key, http_client=client)
    with pytest.raises(PermissionDeniedError) as forbidden:
        await reader.sources.create(source_body())
    assert forbidden.value.status_code == 403
    stranger = AsyncClient(base_url=BASE_URL, api_key="se_000000000000_" + "x" * 43, http_client=client)
    with pytest.raises(AuthenticationError) as unauthenticated:
        await stranger.sources.create(source_body())
    assert unauthenticated.value.status_code == 401


async def test_a_stale_if_match_raises_precondition_failed(api: AsyncClient) -> None:
    source = await text_source(api)
    created = await api.incidents.create(incident_body(source))
    etag = (await api.with_raw_response.incidents.get(created.id)).etag
    assert etag is not None
    await api.incidents.update(created.id, IncidentPatch(summary="first writer"), if_match=etag)
    with pytest.raises(PreconditionFailedError) as stale:
        await api.incidents.update(created.id, IncidentPatch(summary="second writer"), if_match=etag)
    assert stale.value.status_code == 412 and stale.value.problem is not None


async def test_database_gone_raises_server_error_after_retries(
    api: AsyncClient, server_url: str, database_url: str, sleeps: list[float]
) -> None:
    await api.health.live()
    await drop_database(server_url, database_url.split("?", maxsplit=1)[0].rsplit("/", 1)[1])
    with pytest.raises(ServerError) as unavailable:
        await api.incidents.list()
    assert unavailable.value.status_code >= 500 and unavailable.value.problem is not None
    assert len(sleeps) == 2  # max_retries=2: three attempts


async def test_connection_refused_raises_api_connection_error(sleeps: list[float]) -> None:
    async with AsyncClient(base_url=closed_port_url(), max_retries=1) as unreachable:
        with pytest.raises(APIConnectionError) as refused:
            await unreachable.health.live()
    assert not isinstance(refused.value, APITimeoutError)
    assert len(sleeps) == 1


@pytest.fixture
def silent_url() -> Iterator[str]:
    with silent_server() as url:
        yield url


async def test_no_answer_raises_api_timeout_error(silent_url: str, sleeps: list[float]) -> None:
    async with AsyncClient(base_url=silent_url, timeout=0.2, max_retries=0) as silent:
        with pytest.raises(APITimeoutError):
            await silent.health.ready()
    assert sleeps == []


async def test_exports_stream_and_import_back(api: AsyncClient, tmp_path: Path) -> None:
    async with await api.exports.sources(format="ndjson") as export:
        lines = [line async for line in export.iter_lines() if line]
    # Every record, then the line that says the export is complete (and how many records it had).
    *records, trailer = lines
    assert records and all(line.startswith('{"type":"source"') for line in records)
    assert msgspec.json.decode(trailer) == {"type": "export_complete", "count": len(records)}

    written = await (await api.exports.incidents(format="geojson")).write_to(tmp_path / "incidents.geojson")
    assert written == (tmp_path / "incidents.geojson").stat().st_size > 0

    body = msgspec.json.encode({"type": "source", "record": source_body("https://example.org/async-import")})
    result = await api.imports.records(body + b"\n")
    assert result.created == {"source": 1} and result.lines == 1
