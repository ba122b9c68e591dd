"""HEAD on every GET route (RFC 9110 §9.3.2): the same status and headers as the GET, no body.
Walks the app's own route table, so a new GET route is covered without editing this test;
over real HTTP (uvicorn), with compression on, as clients see it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import asyncpg
import httpx
import pytest
from litestar.routes import HTTPRoute

from secevents.server.settings import Settings
from tests.client_helpers import serve
from tests.support import create_test_app
from tests.writing import Keys, make_keys

# Headers that differ between any two requests, whatever the method.
PER_REQUEST = {"date", "x-request-id", "ratelimit", "ratelimit-policy", "retry-after"}
# Bodies that change between two requests, so their length moves, nothing else: the metrics
# count the GET just made; the change feed's cursor is a snapshot of the database's
# transactions, which other transactions move.
VOLATILE_BODIES = {"/metrics", "/v1/changes"}


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    allowing = replace(settings, webhooks=replace(settings.webhooks, allow_private=True))
    with serve(create_test_app(allowing)) as url:
        yield url


def _concrete_paths(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+):\w+\}", lambda m: values[m.group(1)], template)


def _values_for(http: httpx.Client, template: str) -> dict[str, str]:
    """Real values for a route's path parameters, so that HEAD is compared on found records."""
    values = {"version": "1", "path": "openapi.json"}
    collection = template.split("/")[2] if template.startswith("/v1/") else ""
    if "{record_id" in template:
        values["record_id"] = http.get(f"/v1/{collection}", params={"limit": 1}).json()["data"][0]["id"]
    if "{webhook_id" in template:
        values["webhook_id"] = http.get("/v1/webhooks").json()["data"][0]["id"]
    if template.startswith("/docs/assets/"):
        values["name"] = re.findall(r"/docs/assets/([\w.-]+)", http.get("/docs").text)[0]
    if template.startswith("/explorer/"):
        values["name"] = re.findall(r"/explorer/([\w.-]+)", http.get("/").text)[0]
    return values


def _headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in PER_REQUEST}


def test_head_answers_like_get_on_every_get_route(base_url: str, settings: Settings, keys: Keys) -> None:
    app = create_test_app(settings)
    templates = sorted(
        {route.path for route in app.routes if isinstance(route, HTTPRoute) and "GET" in route.methods}
    )
    assert "/v1/incidents/{record_id:uuid}" in templates and "/v1/changes/stream" in templates
    headers = {**Keys.header(keys.admin), "Accept-Encoding": "gzip"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        created = http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "types": ["incident"]})
        assert created.status_code == 201, created.text
        compared = 0
        for template in templates:
            path = _concrete_paths(template, _values_for(http, template))
            # The GET's head only: streams (exports, the change stream) are not read to the end.
            with http.stream("GET", path) as got:
                got_headers, got_status = _headers(got), got.status_code
            head = http.head(path)
            assert head.status_code == got_status, path
            if template in VOLATILE_BODIES:
                got_headers.pop("content-length")
                head.headers.pop("content-length")
            assert _headers(head) == got_headers, path
            assert head.content == b"", path
            if got_status == 200:
                compared += 1
        # Every route answered 200 (on real records), not a 404 compared with a 404.
        assert compared == len(templates) - 1  # /schema/{path} has only openapi.json, a route of its own
        # HEAD is listed where GET is.
        allow = http.options("/v1/incidents").headers["allow"]
        assert "HEAD" in allow.split(", ") and "GET" in allow.split(", ")


def test_head_of_a_compressed_page_gives_its_compressed_length(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as http:
        for encoding in ("identity", "gzip", "zstd"):
            head = http.head("/v1/incidents?limit=100", headers={"Accept-Encoding": encoding})
            with http.stream("GET", "/v1/incidents?limit=100", headers={"Accept-Encoding": encoding}) as got:
                raw = b"".join(got.iter_raw())
            assert head.headers.get("content-encoding") == got.headers.get("content-encoding")
            assert int(head.headers["content-length"]) == len(raw)
            assert head.headers["etag"] == got.headers["etag"]


def test_head_of_a_stream_ends_and_frees_its_export_slot(base_url: str) -> None:
    """HEAD of an export or the change stream ends at once (the stream is told the client left);
    the export slots are free afterwards: more HEADs than the per-client cap all succeed."""
    with httpx.Client(base_url=base_url, timeout=60) as http:
        for _ in range(5):
            assert http.head("/v1/exports/incidents").status_code == 200
            assert http.head("/v1/changes/stream").status_code == 200
        assert http.get("/v1/exports/incidents").status_code == 200
