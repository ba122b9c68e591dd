"""POST / PATCH / DELETE of every resource: status codes, headers, stored revisions, reference
checks, optimistic concurrency with If-Match, and bad bodies that leave the database as it was.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import make_settings
from tests.writing import Keys, first, incident_body, live_server, make_keys, snapshot, source_with_text


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


def _is_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    if code is not None:
        assert problem["code"] == code, problem
    return problem


async def _create_incident(client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys) -> httpx.Response:
    response = await client.post(
        "/v1/incidents", json=await incident_body(conn), headers=keys.header(keys.write)
    )
    assert response.status_code == 201, response.text
    return response


async def test_create_incident(client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys) -> None:
    body = await incident_body(conn)
    response = await client.post("/v1/incidents", json=body, headers=keys.header(keys.write))
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/v1/incidents/{created['id']}"
    assert response.headers["etag"] == f'"{created["id"]}:1"'
    assert created["version"] == 1
    assert created["title"] == body["title"]
    assert [p["role"] for p in created["participants"]] == ["perpetrator", "target"]
    assert created["casualties"]["killed"] == {"low": 23, "best": 23, "high": None}
    fetched = await client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == created
    revision = await conn.fetchrow(
        "SELECT operation, actor, api_key_id IS NOT NULL AS keyed FROM revisions WHERE record_id = $1",
        created["id"],
    )
    assert dict(revision) == {"operation": "create", "actor": "key:test-write", "keyed": True}


async def test_create_every_resource(client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys) -> None:
    auth = keys.header(keys.write)
    source = await client.post(
        "/v1/sources",
        json={"kind": "report", "title": "A report", "text": "Ten people were hurt in the blast."},
        headers=auth,
    )
    assert source.status_code == 201, source.text
    source_id = source.json()["id"]
    assert source.json()["sha256"] is not None
    citation = [{"source_id": source_id, "quote": "Ten people were hurt"}]
    org = await client.post(
        "/v1/organisations",
        json={
            "name": "Test Front",
            "aliases": ["TF"],
            "kind": "armed_group",
            "country": "PK",
            "citations": citation,
        },
        headers=auth,
    )
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    other = await first(client, "organisations")
    patched_org = await client.patch(
        f"/v1/organisations/{org_id}",
        json={
            "relationships": [{"type": "splinter_of", "organisation_id": other["id"], "citations": citation}]
        },
        headers={**auth, "If-Match": org.headers["etag"]},
    )
    assert patched_org.status_code == 200, patched_org.text
    assert patched_org.json()["relationships"][0]["name"] == other["name"]
    statement = await client.post(
        "/v1/statements",
        json={
            "title": "Ministry reply",
            "issuer_id": other["id"],
            "addressed_to_id": org_id,
            "form": "written_reply",
            "issued": {"start": "2023-12-01", "end": "2023-12-31", "precision": "month"},
            "claims": [{"text": "A claim", "organisation_ids": [org_id], "citations": citation}],
            "figures": [{"label": "people hurt", "value": 10, "unit": "people", "citations": citation}],
            "citations": citation,
        },
        headers=auth,
    )
    assert statement.status_code == 201, statement.text
    doc = statement.json()
    assert doc["claims"][0]["organisation_ids"] == [org_id]
    assert doc["figures"][0]["value"] == 10
    assert {o["role"] for o in doc["organisations"]} == {"issuer", "addressed_to", "mentioned"}


async def test_patch_semantics(client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys) -> None:
    created = await _create_incident(client, conn, keys)
    record = created.json()
    url = created.headers["location"]
    auth = keys.header(keys.write)
    # Absent fields stay, null clears, lists are replaced whole.
    response = await client.patch(
        url,
        json={
            "summary": "Now with a summary",
            "participants": [
                {"organisation_id": record["participants"][1]["organisation_id"], "role": "target"}
            ],
        },
        headers={**auth, "If-Match": created.headers["etag"]},
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["version"] == 2
    assert response.headers["etag"] == f'"{record["id"]}:2"'
    assert patched["summary"] == "Now with a summary"
    assert patched["title"] == record["title"]
    assert patched["citations"] == record["citations"]
    assert [p["role"] for p in patched["participants"]] == ["target"]
    response = await client.patch(
        url, json={"summary": None, "subtype": None}, headers={**auth, "If-Match": response.headers["etag"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["summary"] is None
    assert response.json()["version"] == 3
    # An empty patch changes nothing and makes no version.
    response = await client.patch(url, json={}, headers={**auth, "If-Match": response.headers["etag"]})
    assert response.status_code == 200
    assert response.json()["version"] == 3
    versions = await conn.fetch(
        "SELECT version, operation FROM revisions WHERE record_id = $1 ORDER BY version", record["id"]
    )
    assert [tuple(v) for v in versions] == [(1, "create"), (2, "update"), (3, "update")]


async def test_if_match_is_required_and_checked(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    created = await _create_incident(client, conn, keys)
    url = created.headers["location"]
    auth = keys.header(keys.write)
    before = await snapshot(conn)
    _is_problem(await client.patch(url, json={"title": "x"}, headers=auth), 428, "precondition_required")
    _is_problem(await client.delete(url, headers=auth), 428, "precondition_required")
    stale = f'"{created.json()["id"]}:7"'
    problem = await client.patch(url, json={"title": "x"}, headers={**auth, "If-Match": stale})
    _is_problem(problem, 412, "version_mismatch")
    assert problem.headers["etag"] == created.headers["etag"]
    _is_problem(await client.delete(url, headers={**auth, "If-Match": stale}), 412, "version_mismatch")
    _is_problem(await client.patch(url, json={"title": "x"}, headers={**auth, "If-Match": "7"}), 400)
    assert await snapshot(conn) == before
    # `*` matches any current version; weak tags compare like strong ones.
    ok = await client.patch(url, json={"title": "y"}, headers={**auth, "If-Match": "*"})
    assert ok.status_code == 200
    ok = await client.patch(url, json={"title": "z"}, headers={**auth, "If-Match": "W/" + ok.headers["etag"]})
    assert ok.status_code == 200


# Each a single quoted tag by a naive split on commas, none of them `If-Match` syntax: the
# server used to take them (schemathesis generated the first one from the spec's pattern).
MALFORMED_IF_MATCH = (
    '"-#"  , "52\\XO8"  , ">YP-+nD\t\t;" , "DL"',  # a tab inside a tag
    '"a"b"',  # a quote inside a tag
    '"a", ',  # an empty element
    '* , "a"',  # `*` is the whole header or nothing
    '"a b"',  # a space inside a tag
)


@pytest.mark.parametrize("if_match", MALFORMED_IF_MATCH)
async def test_if_match_outside_its_syntax_is_a_400(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys, if_match: str
) -> None:
    created = await _create_incident(client, conn, keys)
    headers = {**keys.header(keys.write), "If-Match": if_match}
    response = await client.patch(created.headers["location"], json={"title": "x"}, headers=headers)
    _is_problem(response, 400, "invalid_if_match")
    ok = await client.patch(
        created.headers["location"],
        json={"title": "x"},
        headers={**headers, "If-Match": f'"x" ,\t{created.headers["etag"]}'},
    )
    assert ok.status_code == 200


async def test_if_match_can_be_optional(database_url: str, conn: asyncpg.Connection) -> None:
    from litestar.testing import AsyncTestClient

    from secevents.server.app import create_app

    keys = await make_keys(conn)
    app = create_app(make_settings(database_url, require_if_match=False))
    async with AsyncTestClient(app=app) as client:
        created = await _create_incident(client, conn, keys)
        response = await client.patch(
            created.headers["location"], json={"title": "t"}, headers=keys.header(keys.write)
        )
        assert response.status_code == 200


async def test_delete_is_soft_and_leaves_a_tombstone(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    created = await _create_incident(client, conn, keys)
    url = created.headers["location"]
    auth = keys.header(keys.write)
    response = await client.delete(url, headers={**auth, "If-Match": created.headers["etag"]})
    assert response.status_code == 204
    assert response.content == b""
    _is_problem(await client.get(url), 404)
    _is_problem(await client.delete(url, headers={**auth, "If-Match": "*"}), 404)
    _is_problem(await client.patch(url, json={"title": "x"}, headers={**auth, "If-Match": "*"}), 404)
    assert await conn.fetchval(
        "SELECT deleted_at IS NOT NULL FROM incidents WHERE id = $1", created.json()["id"]
    )
    history = await client.get(f"{url}/revisions")
    assert [r["operation"] for r in history.json()["data"]] == ["create", "delete"]
    # A deleted record cannot be referenced any more.
    body = await incident_body(conn)
    statement = {
        "title": "t",
        "issuer_id": body["participants"][0]["organisation_id"],
        "form": "other",
        "issued": {"start": "2023-01-01", "end": "2023-01-01", "precision": "day"},
        "related_incident_ids": [created.json()["id"]],
        "citations": body["citations"],
    }
    problem = _is_problem(
        await client.post("/v1/statements", json=statement, headers=auth), 422, "invalid_reference"
    )
    assert problem["errors"][0]["field"] == "related_incident_ids[0]"


async def test_revisions_endpoints(client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys) -> None:
    created = await _create_incident(client, conn, keys)
    url = created.headers["location"]
    await client.patch(
        url,
        json={"title": "Second"},
        headers={**keys.header(keys.write), "If-Match": created.headers["etag"]},
    )
    page = await client.get(f"{url}/revisions", params={"limit": 1})
    assert page.status_code == 200
    assert [r["version"] for r in page.json()["data"]] == [1]
    assert page.json()["next_cursor"] == "1"
    page = await client.get(f"{url}/revisions", params={"cursor": "1"})
    assert [r["version"] for r in page.json()["data"]] == [2]
    assert page.json()["next_cursor"] is None
    one = await client.get(f"{url}/revisions/2")
    assert one.status_code == 200
    revision = one.json()
    assert revision["data"]["title"] == "Second"
    assert revision["actor"] == "key:test-write"
    assert revision["api_key_id"] is not None
    assert (await client.get(f"{url}/revisions/1")).json()["data"] == created.json()
    _is_problem(await client.get(f"{url}/revisions/3"), 404)
    _is_problem(await client.get("/v1/incidents/00000000-0000-7000-8000-000000000000/revisions"), 404)
    _is_problem(await client.get(f"{url}/revisions/0"), 400)


async def test_references_are_checked_and_named(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    before = await snapshot(conn)
    body = await incident_body(conn)
    body["participants"][1]["organisation_id"] = "00000000-0000-7000-8000-000000000001"
    body["citations"].append(
        {"source_id": body["citations"][0]["source_id"], "quote": "words nowhere in the text"}
    )
    body["citations"].append({"source_id": "00000000-0000-7000-8000-000000000002", "quote": "q"})
    problem = _is_problem(
        await client.post("/v1/incidents", json=body, headers=keys.header(keys.write)),
        422,
        "invalid_reference",
    )
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"participants[1].organisation_id", "citations[1].quote", "citations[2].source_id"}
    assert await snapshot(conn) == before


async def test_source_text_must_keep_cited_quotes(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    source_id, text = await source_with_text(conn)
    before = await snapshot(conn)
    response = await client.patch(
        f"/v1/sources/{source_id}",
        json={"text": "Completely different text."},
        headers={**keys.header(keys.write), "If-Match": "*"},
    )
    problem = _is_problem(response, 422, "quotes_not_in_text")
    assert problem["errors"][0]["field"] == "text"
    assert await snapshot(conn) == before
    response = await client.patch(
        f"/v1/sources/{source_id}",
        json={"text": text + " Appendix."},
        headers={**keys.header(keys.write), "If-Match": "*"},
    )
    assert response.status_code == 200, response.text


def _bad_bodies(valid: dict[str, Any]) -> list[tuple[str, Any, int]]:
    return [
        ("wrong type", {**valid, "title": 12}, 400),
        ("unknown field", {**valid, "colour": "red"}, 400),
        ("unknown nested field", {**valid, "location": {**valid["location"], "altitude": 3}}, 400),
        ("server-owned field", {**valid, "id": "00000000-0000-7000-8000-000000000003"}, 400),
        ("version in body", {**valid, "version": 5}, 400),
        ("low > high", {**valid, "casualties": {"killed": {"low": 30, "high": 20}}}, 400),
        ("best > high", {**valid, "casualties": {"injured": {"best": 5, "high": 2}}}, 400),
        ("int beyond int4", {**valid, "casualties": {"killed": {"low": 10**12}}}, 400),
        ("NUL in text", {**valid, "title": "a\u0000b"}, 400),
        (
            "end before start",
            {**valid, "occurred": {"start": "2023-12-12", "end": "2023-12-01", "precision": "day"}},
            400,
        ),
        ("no citation", {**valid, "citations": []}, 400),
        ("unknown country", {**valid, "location": {**valid["location"], "country": "XX"}}, 422),
        ("duplicate participant", {**valid, "participants": [valid["participants"][0]] * 2}, 422),
        ("not an object", [valid], 400),
    ]


async def test_bad_bodies_change_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    valid = await incident_body(conn)
    before = await snapshot(conn)
    auth = keys.header(keys.write)
    for name, body, status in _bad_bodies(valid):
        response = await client.post("/v1/incidents", json=body, headers=auth)
        assert response.status_code == status, (name, response.text)
        _is_problem(response, status)
    not_json = await client.post(
        "/v1/incidents", content=b'{"title": ', headers={**auth, "Content-Type": "application/json"}
    )
    _is_problem(not_json, 400)
    # Patches are held to the same rules.
    record = await first(client, "incidents")
    url = f"/v1/incidents/{record['id']}"
    for name, body, status in [
        ("wrong type", {"title": 12}, 400),
        ("unknown field", {"colour": "red"}, 400),
        ("server-owned field", {"version": 9}, 400),
        ("null for a required field", {"title": None}, 400),
        ("low > high", {"casualties": {"killed": {"low": 3, "high": 1}}}, 400),
        (
            "dangling reference",
            {"participants": [{"organisation_id": "00000000-0000-7000-8000-000000000004", "role": "target"}]},
            422,
        ),
        (
            "quote not in source",
            {"citations": [{"source_id": valid["citations"][0]["source_id"], "quote": "not there"}]},
            422,
        ),
    ]:
        response = await client.patch(url, json=body, headers={**auth, "If-Match": "*"})
        assert response.status_code == status, (name, response.text)
        _is_problem(response, status)
    assert await snapshot(conn) == before


async def test_oversized_body_is_413(database_url: str, conn: asyncpg.Connection) -> None:
    from litestar.testing import AsyncTestClient

    from secevents.server.app import create_app

    keys = await make_keys(conn)
    before = await snapshot(conn)
    app = create_app(make_settings(database_url, max_body_bytes=2048))
    async with AsyncTestClient(app=app) as client:
        body = await incident_body(conn, summary="x" * 4000)
        response = await client.post("/v1/incidents", json=body, headers=keys.header(keys.write))
        _is_problem(response, 413)
    assert await snapshot(conn) == before


async def test_concurrent_patches_with_one_etag_lose_no_update(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """50 PATCHes with the same If-Match at once (a real server, 16 pooled connections):
    exactly one applies, every other gets 412, and the record holds the winner's change.
    """
    keys = await make_keys(conn)
    async with (
        live_server(database_url) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=60) as client,
    ):
        created = await _create_incident(client, conn, keys)
        url, etag = created.headers["location"], created.headers["etag"]
        in_flight = 0
        peak = 0

        async def patch(n: int) -> httpx.Response:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await client.patch(
                    url, json={"title": f"writer {n}"}, headers={**keys.header(keys.write), "If-Match": etag}
                )
            finally:
                in_flight -= 1

        responses = await asyncio.gather(*(patch(n) for n in range(50)))
        assert peak > 1
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] + [412] * 49
        winner = next(r for r in responses if r.status_code == 200).json()
        current = (await client.get(url)).json()
        assert current["version"] == 2
        assert current["title"] == winner["title"]
        revisions = await conn.fetch("SELECT version FROM revisions WHERE record_id = $1", winner["id"])
        assert sorted(r["version"] for r in revisions) == [1, 2]


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("/v1/sources", {"retrieved_at": 0}),  # a number is not a date-time
        ("/v1/incidents", {"location": {"country": "PK", "precision": "country", "lat": "1.5", "lon": 2}}),
        ("/v1/incidents", {"casualties": {"killed": {"best": "12"}}}),  # a string is not a count
    ],
)
async def test_values_that_only_fit_by_coercion_are_refused(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys, path: str, change: dict[str, Any]
) -> None:
    """Regression (schemathesis ST201): Litestar converts bodies leniently; the API must not."""
    if path == "/v1/sources":
        body: dict[str, Any] = {"kind": "report", "title": "Lenient", **change}
    else:
        body = {**await incident_body(conn), **change}
    before = await snapshot(conn)
    response = await client.post(path, json=body, headers=keys.header(keys.write))
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert problem["errors"][0]["field"] in {"retrieved_at", "location.lat", "casualties.killed.best"}
    assert await snapshot(conn) == before


@pytest.mark.parametrize("url", ["https://exa mple.org", "https://\u001dexample.org", "ftp://example.org"])
async def test_source_url_outside_its_documented_pattern_is_400(
    client: httpx.AsyncClient, keys: Keys, url: str
) -> None:
    """Regression (schemathesis): the pattern used `\\s`, which engines read differently."""
    body = {"kind": "report", "title": "A report", "url": url}
    response = await client.post("/v1/sources", json=body, headers=keys.header(keys.write))
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "url"
