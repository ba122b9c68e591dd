"""The committed OpenAPI document matches the app's; /docs works offline."""

from __future__ import annotations

import json
import re

import httpx

from api.openapi_dump import SPEC_PATH, render


def test_committed_spec_matches_the_app() -> None:
    committed = SPEC_PATH.read_text(encoding="utf-8")
    assert render() == committed, "openapi/openapi.json is out of date: run `make openapi` and commit it"


def test_render_is_deterministic() -> None:
    assert render() == render()


def test_every_operation_is_documented() -> None:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    operation_ids = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            operation_ids.append(operation.get("operationId"))
            assert operation.get("operationId"), where
            assert operation.get("tags"), where
            for status, response in operation["responses"].items():
                # (/health/ready answers 503 with its health report, on purpose.)
                if status.startswith(("4", "5")) and path.startswith("/v1/"):
                    content = response.get("content", {})
                    assert list(content) == ["application/problem+json"], (where, status)
    assert len(operation_ids) == len(set(operation_ids))


def test_read_operations_document_their_parameters() -> None:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    listed = {p["name"] for p in spec["paths"]["/v1/incidents"]["get"]["parameters"]}
    assert {
        "country",
        "type",
        "bbox",
        "q",
        "min_killed",
        "cursor",
        "limit",
        "sort",
        "organisation",
        "role",
    } <= listed
    stats = spec["paths"]["/v1/incidents/stats"]["get"]
    assert {"group_by", "country"} <= {p["name"] for p in stats["parameters"]}
    assert "304" in spec["paths"]["/v1/incidents/{record_id}"]["get"]["responses"]


async def test_schema_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert (
        response.json()["paths"].keys() == json.loads(SPEC_PATH.read_text(encoding="utf-8"))["paths"].keys()
    )


async def test_docs_page_serves_every_asset_locally(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    html = page.text
    assert "<script>" not in html  # no inline script: the CSP can forbid them
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(references) >= 3
    for reference in references:
        assert reference.startswith("/"), f"{reference} is not served by the app"
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        assert len(asset.content) > 100
    init = (await client.get("/docs/assets/init.js")).text
    assert "/schema/openapi.json" in init
    for name in ("../app.py", "nothing.js"):
        missing = await client.get(f"/docs/assets/{name}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
