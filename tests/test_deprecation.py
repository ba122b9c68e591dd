"""Deprecations: an operation, a query parameter and a response field marked deprecated answer
``Deprecation`` (RFC 9745), ``Sunset`` (RFC 8594) and ``Link: rel="deprecation"``, say
``deprecated: true`` in the OpenAPI document, and make the SDK warn."""

from __future__ import annotations

import datetime as dt
import email.utils
from typing import Annotated

import httpx
import msgspec
import pytest
from litestar import Litestar, get
from litestar.params import QueryParameter

from secevents import Client
from secevents._base import Call
from secevents.schemas.health import Health
from secevents.server.app import create_app
from secevents.server.http.deprecation import (
    Deprecation,
    deprecated,
    deprecated_fields,
    deprecated_parameters,
)
from secevents.server.openapi import document
from secevents.server.settings import Settings
from tests.client_helpers import serve
from tests.conftest import make_settings

OLD = Deprecation(
    since=dt.date(2026, 6, 1), sunset=dt.date(2027, 6, 1), link="https://example.invalid/migrating"
)
SOFT = Deprecation(since=dt.date(2026, 9, 1), link="https://example.invalid/colours")


class Thing(msgspec.Struct):
    status: str
    legacy_name: str | None = None


@get("/v1/test/old", operation_id="old_operation", **deprecated(OLD), sync_to_thread=False)
def old_operation() -> Thing:
    return Thing(status="ok")


@get(
    "/v1/test/things",
    operation_id="list_test_things",
    opt={**deprecated_parameters(colour=SOFT), **deprecated_fields(Thing, legacy_name=OLD)},
    sync_to_thread=False,
)
def things(
    colour: Annotated[str | None, QueryParameter()] = None, size: Annotated[int, QueryParameter()] = 1
) -> Thing:
    return Thing(status="ok", legacy_name=colour)


@get("/v1/test/current", operation_id="current_operation", sync_to_thread=False)
def current(colour: Annotated[str | None, QueryParameter()] = None) -> Thing:
    return Thing(status="ok")


def deprecated_app(settings: Settings) -> Litestar:
    app = create_app(settings)
    for handler in (old_operation, things, current):
        app.register(handler)
    return app


@pytest.fixture
def app(database_url: str) -> Litestar:
    return deprecated_app(make_settings(database_url))


def _assert_headers(response: httpx.Response, deprecation: Deprecation) -> None:
    since = dt.datetime.combine(deprecation.since, dt.time(), tzinfo=dt.UTC)
    assert response.headers["deprecation"] == f"@{int(since.timestamp())}"
    assert response.headers["link"] == f'<{deprecation.link}>; rel="deprecation"; type="text/html"'
    if deprecation.sunset is None:
        assert "sunset" not in response.headers
    else:
        sunset = email.utils.parsedate_to_datetime(response.headers["sunset"])
        assert sunset.date() == deprecation.sunset


async def test_deprecated_operation_parameter_and_field_announce_it(app: Litestar) -> None:
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        _assert_headers(await client.get("/v1/test/old"), OLD)
        # A response field: every response of the operation that returns it.
        _assert_headers(await client.get("/v1/test/things", params={"size": 2}), OLD)
        current_response = await client.get("/v1/test/current", params={"colour": "red"})
        assert "deprecation" not in current_response.headers and "sunset" not in current_response.headers
        incidents = await client.get("/v1/incidents", params={"limit": 1})
        assert "deprecation" not in incidents.headers


async def test_a_deprecated_parameter_is_announced_only_when_used(database_url: str) -> None:
    app = create_app(make_settings(database_url))
    only_parameter = get(
        "/v1/test/paint", operation_id="paint", opt=deprecated_parameters(colour=SOFT), sync_to_thread=False
    )(current.fn)
    app.register(only_parameter)
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        _assert_headers(await client.get("/v1/test/paint", params={"colour": "red"}), SOFT)
        assert "deprecation" not in (await client.get("/v1/test/paint")).headers


def test_the_spec_marks_what_is_deprecated(app: Litestar) -> None:
    spec = document(app)
    old = spec["paths"]["/v1/test/old"]["get"]
    assert old["deprecated"] is True
    assert {"Deprecation", "Sunset", "Link"} <= set(old["responses"]["200"]["headers"])
    listing = spec["paths"]["/v1/test/things"]["get"]
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert parameters["colour"]["deprecated"] is True
    assert parameters["size"].get("deprecated") is not True
    assert spec["components"]["schemas"]["Thing"]["properties"]["legacy_name"]["deprecated"] is True
    assert spec["components"]["schemas"]["Thing"]["properties"]["status"].get("deprecated") is not True
    assert spec["paths"]["/v1/test/current"]["get"].get("deprecated") is not True
    # Nothing of the real API is deprecated yet.
    real = document(create_app(Settings()))
    assert not [p for p, item in real["paths"].items() for o in item.values() if o.get("deprecated")]


def test_the_sdk_warns_when_a_response_says_deprecated(app: Litestar) -> None:
    with serve(app) as base_url, Client(base_url=base_url) as client:
        with pytest.warns(
            DeprecationWarning, match=r"GET /v1/test/old is deprecated .* removed after .*2027"
        ):
            client.request(Health, Call("GET", "/v1/test/old", "old_operation"))
        with pytest.warns(DeprecationWarning, match="example.invalid/migrating"):
            client.request(Health, Call("GET", "/v1/test/things", "list_test_things"))
        client.health.live()  # nothing deprecated: no warning (warnings are errors in the tests)
