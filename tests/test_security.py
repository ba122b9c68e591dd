"""Security: headers on every response, CORS off unless configured, the docs page's CSP, SQL
injection in every text parameter, no mass assignment, keys compared in constant time.
"""

from __future__ import annotations

import inspect
import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from secevents.server.app import create_app
from secevents.server.http import auth
from secevents.server.http.security import API_CSP
from tests.conftest import make_settings
from tests.writing import Keys, incident_body, make_keys, snapshot

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert "content-security-policy" in response.headers
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/incidents", 200),
        ("GET", f"/v1/incidents/{uuid.UUID(int=0)}", 404),
        ("GET", "/no/such/path", 404),
        ("DELETE", "/v1/incidents", 405),
        ("GET", "/v1/incidents?limit=0", 400),
        ("POST", "/v1/incidents", 401),
        ("GET", "/health/ready", 200),
        ("GET", "/metrics", 200),
    ],
)
async def test_every_response_has_security_headers(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    status: int,
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert_security_headers(response)
    assert response.headers["content-security-policy"] == API_CSP


async def test_docs_page_has_a_strict_csp_and_only_local_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert_security_headers(page)
    csp = dict(
        part.strip().split(" ", 1)
        for part in page.headers["content-security-policy"].split(";")
        if part.strip()
    )
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"  # no inline script, no eval, no CDN
    assert csp["frame-ancestors"] == "'none'"
    html = page.text
    # The CSP allows no inline script: the page must not need one.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset  # same origin
        assert (await client.get(asset)).status_code == 200, asset


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    origin = {"Origin": "https://evil.example"}
    preflight = await client.options(
        "/v1/incidents",
        headers={**origin, "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    response = await client.get("/v1/incidents", headers=origin)
    assert response.status_code == 200
    assert not any(name.startswith("access-control-") for name in response.headers)


async def test_cors_allows_only_the_configured_origins(database_url: str) -> None:
    app = create_app(make_settings(database_url, cors_origins=("https://dash.example",)))
    async with AsyncTestClient(app=app) as client:
        allowed = await client.get("/v1/incidents", headers={"Origin": "https://dash.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
        assert "access-control-allow-credentials" not in allowed.headers
        other = await client.get("/v1/incidents", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = await client.options(
            "/v1/incidents",
            headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code in (200, 204)
        assert preflight.headers["access-control-allow-origin"] == "https://dash.example"


# --- SQL injection ---------------------------------------------------------------------------

INJECTIONS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    "1) OR (1=1",
    "'; DROP TABLE incidents; --",
    "'; SELECT pg_terminate_backend(pg_backend_pid()); --",
    "' UNION SELECT NULL, version(), NULL --",
    "%' OR '%'='",
    '" OR ""="',
    "$1",
    "\\'; DELETE FROM organisations; --",
]


def text_parameters(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(path, parameter name, where) of every string-valued parameter of every GET
    operation in the app's own OpenAPI document.
    """

    def is_text(schema: dict[str, Any]) -> bool:
        options = schema.get("oneOf") or schema.get("anyOf") or [schema]
        for option in options:
            if option.get("type") == "string":
                return True
            if option.get("type") == "array" and option.get("items", {}).get("type") == "string":
                return True
        return False

    found = []
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if get is None:
            continue
        for parameter in get.get("parameters", []):
            if parameter["in"] in ("query", "path") and is_text(parameter.get("schema", {})):
                found.append((path, parameter["name"], parameter["in"]))
    return found


async def test_sql_injection_in_every_text_parameter(database_url: str, conn: asyncpg.Connection) -> None:
    # Hundreds of requests: without the rate limit (tested in test_auth).
    app = create_app(make_settings(database_url, rate_limit_window_seconds=0))
    async with AsyncTestClient(app=app) as client:
        await assert_injections_are_harmless(client, conn)


async def assert_injections_are_harmless(client: httpx.AsyncClient, conn: asyncpg.Connection) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    parameters = text_parameters(spec)
    assert len(parameters) > 40  # the filters of every list, export and stats endpoint
    some_org = await conn.fetchval("SELECT id::text FROM organisations LIMIT 1")
    some_incident = await conn.fetchval("SELECT id::text FROM incidents LIMIT 1")
    # An admin key, so that the admin-only reads (webhooks) reach their handlers too.
    admin = {
        "Authorization": f"Bearer {(await auth.create_key(conn, name='injections', scopes=['admin'])).key}"
    }
    before = await snapshot(conn)
    totals: dict[str, int] = {}
    checked = 0
    for path, name, where in parameters:
        for payload in INJECTIONS:
            url = path
            params: dict[str, str] = {}
            if where == "path":
                url = re.sub(r"\{" + name + r"\}", httpx.URL("/" + payload).path[1:].replace("/", "%2F"), url)
            else:
                params[name] = payload
            # Other path parameters get a real record's id.
            url = url.replace("{record_id}", some_org if "organisations" in url else some_incident)
            url = url.replace("{version}", "1")
            response = await client.get(url, params=params, headers=admin)
            checked += 1
            context = (path, name, payload, response.status_code, response.text[:300])
            # Answered, never crashed: data, or a clear 4xx problem.
            assert response.status_code in (200, 400, 404), context
            if response.status_code >= 400:
                assert response.headers["content-type"] == "application/problem+json", context
            elif response.headers["content-type"] == "application/json" and "data" in response.json():
                # A payload that ORs in "true" would return every record.
                if path not in totals:
                    unfiltered = await client.get(url.split("?")[0])
                    totals[path] = len(unfiltered.json().get("data", []))
                if totals[path] > 0:
                    assert len(response.json()["data"]) < totals[path], context
    assert checked == len(parameters) * len(INJECTIONS)
    # Nothing was dropped, deleted or written.
    assert await snapshot(conn) == before
    assert await conn.fetchval("SELECT count(*) FROM incidents") > 0


async def test_sql_injection_in_write_bodies_is_stored_as_text(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
) -> None:
    keys = await make_keys(conn)
    title = "'); DROP TABLE incidents; --"
    body = await incident_body(conn, title=title, summary="' OR '1'='1")
    response = await client.post("/v1/incidents", json=body, headers=Keys.header(keys.write))
    assert response.status_code == 201, response.text
    stored = await conn.fetchrow(
        "SELECT title, summary FROM incidents WHERE id = $1", uuid.UUID(response.json()["id"])
    )
    assert stored is not None and stored["title"] == title and stored["summary"] == "' OR '1'='1"


# --- mass assignment -------------------------------------------------------------------------

SERVER_OWNED = {
    "id": "00000000-0000-7000-8000-000000000001",
    "version": 99,
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
}


@pytest.mark.parametrize("field", sorted(SERVER_OWNED))
async def test_server_owned_fields_are_refused_in_a_create(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    field: str,
) -> None:
    keys = await make_keys(conn)
    before = await snapshot(conn)
    body = await incident_body(conn, **{field: SERVER_OWNED[field]})
    response = await client.post("/v1/incidents", json=body, headers=Keys.header(keys.write))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.text
    assert await snapshot(conn) == before


@pytest.mark.parametrize("field", sorted(SERVER_OWNED))
async def test_server_owned_fields_are_refused_in_a_patch(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    field: str,
) -> None:
    keys = await make_keys(conn)
    record = (await client.get("/v1/incidents?limit=1")).json()["data"][0]
    before = await snapshot(conn)
    response = await client.patch(
        f"/v1/incidents/{record['id']}",
        json={"title": "renamed", field: SERVER_OWNED[field]},
        headers={**Keys.header(keys.write), "If-Match": f'"{record["version"]}"'},
    )
    assert response.status_code == 400, response.text
    assert await snapshot(conn) == before


async def test_a_create_gets_its_id_version_and_times_from_the_server(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
) -> None:
    keys = await make_keys(conn)
    response = await client.post(
        "/v1/incidents",
        json=await incident_body(conn),
        headers=Keys.header(keys.write),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["version"] == 1
    assert created["id"] != SERVER_OWNED["id"]
    assert not created["created_at"].startswith("2000")


# --- API keys --------------------------------------------------------------------------------


def test_keys_are_compared_in_constant_time() -> None:
    # The stored hash is compared with hmac.compare_digest, also when the prefix is unknown
    # (so timing tells nothing about which prefixes exist).
    source = inspect.getsource(auth.principal_for_key)
    assert "hmac.compare_digest(" in source
    assert "==" not in source.split("compare_digest", 1)[0].split("fetchrow", 1)[1]


async def test_a_key_with_a_known_prefix_and_a_wrong_secret_is_401(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
) -> None:
    keys = await make_keys(conn)
    prefix = keys.write.rsplit("_", 1)[0]
    forged = prefix + "_" + "A" * 43
    response = await client.post("/v1/incidents", json={}, headers=Keys.header(forged))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_every_test_named_in_security_md_exists() -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    text = (repo / "SECURITY.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| API")]
    assert [row.split("|")[1].strip() for row in rows] == [f"API{n}" for n in range(1, 11)]
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(named) > 30
    for path, function in named:
        source = (repo / path).read_text()
        if function:
            assert re.search(rf"^(async )?def {function}\(", source, re.MULTILINE), f"{path}::{function}"
    for row in rows:
        assert "`tests/" in row, row  # every item names at least one test


@pytest.mark.parametrize("resource", ["incidents", "organisations", "statements", "sources"])
async def test_options_lists_every_method_of_the_path(client: httpx.AsyncClient, resource: str) -> None:
    """Regression (schemathesis, litestar#4169): OPTIONS on a record path named only DELETE."""
    record_id = (await client.get(f"/v1/{resource}")).json()["data"][0]["id"]
    response = await client.options(f"/v1/{resource}/{record_id}")
    assert response.status_code == 204
    assert set(response.headers["allow"].split(", ")) >= {"GET", "PATCH", "DELETE", "OPTIONS"}
    listing = await client.options(f"/v1/{resource}")
    assert set(listing.headers["allow"].split(", ")) >= {"GET", "POST", "OPTIONS"}
