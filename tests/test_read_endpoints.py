"""The minimal read endpoints serve the seed records in their documented shapes."""

from __future__ import annotations

import uuid
from typing import TypeVar

import httpx
import msgspec
import pytest

from secevents.schemas import (
    Incident,
    IncidentPage,
    Organisation,
    OrganisationPage,
    Problem,
    Source,
    SourcePage,
    Statement,
    StatementPage,
)

T = TypeVar("T")

RESOURCES = [
    ("incidents", IncidentPage, Incident, 5),
    ("organisations", OrganisationPage, Organisation, 12),
    ("statements", StatementPage, Statement, 1),
    ("sources", SourcePage, Source, 1),
]


def _strict(body: bytes, type_: type[T]) -> T:
    return msgspec.json.decode(body, type=type_, strict=True)


@pytest.mark.parametrize(("resource", "page_type", "record_type", "count"), RESOURCES)
async def test_list_and_get(
    client: httpx.AsyncClient, resource: str, page_type: type, record_type: type, count: int
) -> None:
    response = await client.get(f"/v1/{resource}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    page = _strict(response.content, page_type)
    assert len(page.data) == count
    # Every documented field is present in the JSON, not just defaulted by the decoder — but
    # those that may be left out (UNSET: added after documents were stored, like a source's
    # licence, and absent where they do not apply).
    raw = response.json()["data"][0]
    fields = msgspec.structs.fields(record_type)
    always = {f.encode_name for f in fields if f.default is not msgspec.UNSET}
    assert always <= set(raw) <= {f.encode_name for f in fields}
    one = page.data[0]
    response = await client.get(f"/v1/{resource}/{one.id}")
    assert response.status_code == 200
    assert _strict(response.content, record_type) == one


async def test_daraban_attack_is_served(client: httpx.AsyncClient) -> None:
    page = _strict((await client.get("/v1/incidents")).content, IncidentPage)
    daraban = [i for i in page.data if i.location.place == "Daraban"]
    assert len(daraban) == 1
    assert daraban[0].casualties.killed is not None
    assert daraban[0].casualties.killed.low == 23


@pytest.mark.parametrize("resource", [r[0] for r in RESOURCES])
async def test_unknown_id_is_a_problem(client: httpx.AsyncClient, resource: str) -> None:
    response = await client.get(f"/v1/{resource}/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = _strict(response.content, Problem)
    assert problem.code == "not_found"
    assert problem.request_id == response.headers["x-request-id"]


async def test_unknown_route_and_bad_limit_are_problems(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    response = await client.get("/v1/incidents", params={"limit": "0"})
    assert response.status_code == 400
    problem = _strict(response.content, Problem)
    assert problem.code == "invalid_request"
    assert problem.errors and problem.errors[0].field == "limit"


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
