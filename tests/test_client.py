"""The sync SDK against the real app served by uvicorn on a local port (real HTTP) and a real
PostgreSQL: every operation of the spec, pagination, raw responses, MessagePack, retries.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import replace

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar

from secevents import Client, NotFoundError, SyncPage
from secevents.schemas.incidents import IncidentPatch
from secevents.schemas.organisations import OrganisationPatch
from secevents.schemas.sources import Source, SourcePatch
from secevents.schemas.statements import StatementPatch
from secevents.schemas.webhooks import WebhookCreate, WebhookPatch
from secevents.server.http import auth
from secevents.server.settings import Settings, WebhookSettings
from tests.client_helpers import (
    Interference,
    InterferingTransport,
    incident_body,
    organisation_body,
    serve,
    source_body,
    statement_body,
)
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Webhook endpoints may point at loopback here: the SDK's webhook calls use this test's
    own server as the receiver."""
    return replace(make_settings(database_url), webhooks=WebhookSettings(worker=False, allow_private=True))


@pytest.fixture
async def admin_key(conn: asyncpg.Connection) -> str:
    return (await auth.create_key(conn, name="sdk-admin", scopes=["admin"])).key


@pytest.fixture
def base_url(app: Litestar) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
def api(base_url: str, admin_key: str, sent: list[httpx.Request]) -> Iterator[Client]:
    """The SDK with an ``httpx.Client`` of its own that records every request it sends."""
    http = httpx.Client(event_hooks={"request": [sent.append]})
    with http, Client(base_url=base_url, api_key=admin_key, http_client=http) as sdk:
        yield sdk


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr("secevents._base._sleep", recorded.append)
    return recorded


def text_source(api: Client) -> Source:
    return next(s for s in api.sources.list() if s.text)


def etag(api: Client, resource: str, record_id: object) -> str:
    """The current ETag of a record, as a caller gets it: from the raw response of ``get``."""
    response = getattr(api.with_raw_response, resource).get(record_id)
    assert response.etag, f"GET {resource}/{record_id} has no ETag"
    value: str = response.etag
    return value


def spec_operations(app: Litestar) -> dict[str, tuple[str, re.Pattern[str]]]:
    """operation_id → (method, path pattern) of every operation the app documents."""
    schema = app.openapi_schema.to_schema()
    operations = {}
    for path, item in schema["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                operations[operation["operationId"]] = (method.upper(), pattern)
    return operations


def test_every_operation_of_the_spec_through_the_sdk(
    app: Litestar, api: Client, sent: list[httpx.Request], base_url: str
) -> None:
    """One call of every generated method, checked against the app's spec at the end: an
    operation added to the API fails this test until a call of its method is added here.
    """
    assert api.health.live().status == "ok"
    assert api.health.ready().database == "ok"

    # sources
    source = api.sources.create(source_body())
    assert api.sources.get(source.id) == source
    assert source.id in {s.id for s in api.sources.list(kind="news_article")}
    renamed = api.sources.update(
        source.id, SourcePatch(title="SDK test article, renamed"), if_match=etag(api, "sources", source.id)
    )
    assert renamed.version == 2
    assert [r.version for r in api.sources.revisions(source.id)] == [1, 2]
    assert api.sources.revision(source.id, 2).data["title"] == "SDK test article, renamed"

    # organisations
    organisation = api.organisations.create(organisation_body(source))
    assert api.organisations.get(organisation.id).aliases == ["STF"]
    assert organisation.id in {o.id for o in api.organisations.list(country="PK", limit=3)}
    patched = api.organisations.update(
        organisation.id,
        OrganisationPatch(status="banned"),
        if_match=etag(api, "organisations", organisation.id),
    )
    assert patched.status == "banned"
    assert len(list(api.organisations.revisions(organisation.id))) == 2
    assert api.organisations.revision(organisation.id, 1).data["status"] == "unknown"

    # incidents
    incident = api.incidents.create(incident_body(source))
    assert api.incidents.get(incident.id).title == incident.title
    assert incident.id in {i.id for i in api.incidents.list(country="PK", type="battle", limit=2)}
    stats = api.incidents.stats(group_by="country", country="PK")
    assert stats.data and stats.data[0].country == "PK" and stats.data[0].incidents >= 1
    updated = api.incidents.update(
        incident.id,
        IncidentPatch(summary="Reported by the SDK test."),
        if_match=etag(api, "incidents", incident.id),
    )
    assert updated.summary == "Reported by the SDK test."
    assert [r.operation for r in api.incidents.revisions(incident.id)] == ["create", "update"]
    assert api.incidents.revision(incident.id, 2).version == 2

    # statements, and the organisation's related lists
    statement = api.statements.create(statement_body(source, organisation.id))
    assert api.statements.get(statement.id).figures[0].value == 12
    assert statement.id in {s.id for s in api.statements.list(form="written_reply")}
    assert statement.id in {s.id for s in api.organisations.statements(organisation.id)}
    assert list(api.organisations.incidents(organisation.id)) == []
    reworded = api.statements.update(
        statement.id, StatementPatch(speaker="A spokesperson"), if_match=etag(api, "statements", statement.id)
    )
    assert reworded.speaker == "A spokesperson"
    assert len(list(api.statements.revisions(statement.id))) == 2
    assert api.statements.revision(statement.id, 1).version == 1

    # exports stream; an NDJSON export is the import format
    with api.exports.incidents(country="PK", format="ndjson") as export:
        assert export.content_type.startswith("application/x-ndjson")
        exported = [json.loads(line) for line in export.iter_lines() if line]
    *records, trailer = exported
    assert trailer == {"type": "export_complete", "count": len(records)}
    assert str(incident.id) in {line["record"]["id"] for line in records}
    with api.exports.organisations(format="csv") as export:
        assert export.read().decode().splitlines()[0].startswith("id,")
    assert b'"type":"source"' in api.exports.sources(kind="news_article").read()
    assert str(statement.id).encode() in api.exports.statements(form="written_reply").read()
    with api.exports.all(format="stix") as export:
        bundle = json.loads(export.read())
    assert bundle["type"] == "bundle"
    # Every record in the one bundle names its record id in the project's STIX extension.
    record_ids = {
        extension.get("record_id")
        for o in bundle["objects"]
        for extension in o.get("extensions", {}).values()
    }
    assert {str(incident.id), str(organisation.id), str(statement.id), str(source.id)} <= record_ids
    imported = api.imports.records(
        msgspec.json.encode({"type": "source", "record": source_body("https://example.org/imported")}) + b"\n"
    )
    assert imported.created == {"source": 1}

    # webhooks (admin): an endpoint on this test's own server, a signed test event, its log
    hook = api.webhooks.create(WebhookCreate(url=f"{base_url}/receiver", types=["incident"]))
    assert hook.secret.startswith("whsec_")
    assert hook.id in {h.id for h in api.webhooks.list()}
    assert api.webhooks.get(hook.id).url == f"{base_url}/receiver"
    assert api.webhooks.update(hook.id, WebhookPatch(description="SDK")).description == "SDK"
    attempt = api.webhooks.test(hook.id)
    assert attempt.id in {d.id for d in api.webhooks.deliveries(hook.id)}
    api.webhooks.delete(hook.id)
    with pytest.raises(NotFoundError):
        api.webhooks.get(hook.id)

    # deletes, newest first (a deleted record may not be referenced any more)
    api.statements.delete(statement.id, if_match=etag(api, "statements", statement.id))
    api.incidents.delete(incident.id, if_match=etag(api, "incidents", incident.id))
    api.organisations.delete(organisation.id, if_match=etag(api, "organisations", organisation.id))
    api.sources.delete(source.id, if_match=etag(api, "sources", source.id))
    with pytest.raises(NotFoundError):
        api.sources.get(source.id)

    # the change feed saw all of it, in commit order
    feed = list(api.changes.follow(types=["incident", "statement"], until_caught_up=True))
    ours = [(c.type, c.operation) for c in feed if c.id in {incident.id, statement.id}]
    assert ours == [
        ("incident", "create"),
        ("incident", "update"),
        ("statement", "create"),
        ("statement", "update"),
        ("statement", "delete"),
        ("incident", "delete"),
    ]
    last = api.changes.list(after=feed[-1].cursor, types="incident")
    assert last.data == [] and last.has_next_page() is False
    # the same changes from the event stream (which the SDK resumes by itself), and the raw one
    streamed = api.changes.stream(types=["incident", "statement"])
    assert [next(streamed).seq for _ in feed] == [c.seq for c in feed]
    streamed.close()
    with api.changes.event_stream(after=feed[-1].cursor) as events:
        assert events.content_type.startswith("text/event-stream")

    called = {
        operation_id
        for request in sent
        for operation_id, (method, pattern) in spec_operations(app).items()
        if request.method == method and pattern.match(request.url.path)
    }
    assert sorted(set(spec_operations(app)) - called) == []


def test_list_iterates_every_page(api: Client) -> None:
    everything = api.incidents.list(limit=500).data
    assert len(everything) >= 5
    page = api.incidents.list(limit=2)
    assert isinstance(page, SyncPage) and len(page.data) == 2 and page.next_cursor
    assert [i.id for i in page] == [i.id for i in everything]
    pages = list(page.iter_pages())
    assert [len(p.data) for p in pages] == [2] * (len(everything) // 2) + (
        [len(everything) % 2] if len(everything) % 2 else []
    )
    assert pages[1].data == page.next_page().data
    link = page.response.headers.get("link", "")
    assert 'rel="next"' in link


def test_raw_responses(api: Client) -> None:
    first = api.incidents.list(limit=1).data[0]
    raw = api.with_raw_response.incidents.get(first.id)
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("application/json")
    assert raw.request_id and raw.etag
    assert raw.parse() == first and raw.parse() is raw.parse()
    raw_page = api.incidents.with_raw_response.list(limit=1)
    assert raw_page.parse().data == [first]


def test_msgpack_reads_and_writes(base_url: str, admin_key: str, api: Client) -> None:
    with Client(base_url=base_url, api_key=admin_key, msgpack=True) as packed:
        raw = packed.with_raw_response.incidents.list(limit=2)
        assert raw.headers["content-type"].startswith("application/msgpack")
        assert list(raw.parse()) == list(api.incidents.list(limit=2))
        first = api.incidents.list(limit=1).data[0]
        assert packed.incidents.get(first.id) == first

        body = source_body("https://example.org/msgpack")
        body.retrieved_at = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
        created = packed.with_raw_response.sources.create(body)
        assert created.status_code == 201 and created.headers["content-type"].startswith(
            "application/msgpack"
        )
        assert created.parse().retrieved_at == body.retrieved_at
        assert api.sources.get(created.parse().id) == created.parse()
        with pytest.raises(NotFoundError) as missing:
            packed.sources.get(first.id)
        assert missing.value.problem is not None and missing.value.problem.code == "not_found"


def test_environment_variables_are_the_defaults(
    base_url: str, admin_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECEVENTS_BASE_URL", base_url)
    monkeypatch.setenv("SECEVENTS_API_KEY", admin_key)
    with Client() as from_env:
        created = from_env.sources.create(source_body("https://example.org/from-env"))  # needs the key
        assert from_env.sources.get(created.id).url == "https://example.org/from-env"


def test_lost_responses_are_retried_over_http_with_one_idempotency_key(
    base_url: str, admin_key: str, sleeps: list[float]
) -> None:
    interference = Interference(lose_responses=2)
    http = httpx.Client(transport=InterferingTransport(httpx.HTTPTransport(), interference))
    with http, Client(base_url=base_url, api_key=admin_key, http_client=http) as api:
        created = api.sources.create(source_body("https://example.org/created-once"))
        assert api.sources.get(created.id) == created
    posts = [r for r in interference.requests if r.method == "POST"]
    assert len(posts) == 3 and len({r.headers["idempotency-key"] for r in posts}) == 1
    assert len(sleeps) == 2
    with Client(base_url=base_url) as reader:
        same_url = [s for s in reader.sources.list() if s.url == "https://example.org/created-once"]
    assert [s.id for s in same_url] == [created.id]
