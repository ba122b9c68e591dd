"""The committed OpenAPI document matches the app's; /docs works offline."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import httpx
import msgspec
import pytest

from secevents.schemas.common import RequestBase
from secevents.schemas.sources import SourcePatch
from secevents.server.cli.openapi_dump import SPEC_PATH, render
from secevents.server.http import etags
from secevents.server.writes import idempotency


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
                    # Problems come as problem+json, or MessagePack when asked for (api/msgpack.py).
                    content = response.get("content", {})
                    problem_types = {"application/problem+json", "application/msgpack"}
                    assert "application/problem+json" in content, (where, status)
                    assert set(content) <= problem_types, (where, status)
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


def _query_parameter(spec: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    parameters = spec["paths"][path]["get"]["parameters"]
    schema: dict[str, Any] = next(p["schema"] for p in parameters if p["in"] == "query" and p["name"] == name)
    return schema


def _array_items(schema: dict[str, Any]) -> dict[str, Any]:
    array = next(branch for branch in schema.get("oneOf", [schema]) if branch.get("type") == "array")
    items: dict[str, Any] = array["items"]
    return items


def test_parameter_constraints_the_server_enforces_are_in_the_spec() -> None:
    """Regressions found by schemathesis: each constraint was enforced (400) but undocumented,
    because Litestar drops constraints inside list items, inside Optional, or equal to 0."""
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    for path in ("/v1/incidents", "/v1/incidents/stats", "/v1/organisations", "/v1/exports/incidents"):
        assert _array_items(_query_parameter(spec, path, "country"))["pattern"] == "^[A-Z]{2}$", path
    admin1 = _array_items(_query_parameter(spec, "/v1/incidents", "admin1"))
    assert (admin1["minLength"], admin1["maxLength"]) == (1, 200)
    types = _array_items(_query_parameter(spec, "/v1/changes", "types"))
    assert types["enum"] == ["incident", "organisation", "source", "statement"]
    bbox = re.compile(_query_parameter(spec, "/v1/incidents", "bbox")["pattern"])
    assert bbox.fullmatch("-180,-90,180,90") and bbox.fullmatch("179.5,10.25,-170.125,80")
    assert not bbox.fullmatch("181,0,0,0") and not bbox.fullmatch("0,0,0")
    assert _query_parameter(spec, "/v1/incidents", "min_killed")["minimum"] == 0
    group_by = _query_parameter(spec, "/v1/incidents/stats", "group_by")
    assert (group_by["minItems"], group_by["maxItems"], group_by["uniqueItems"]) == (1, 2, True)
    for path in ("/v1/sources", "/v1/exports/sources", "/v1/exports/statements"):
        updated_after = _query_parameter(spec, path, "updated_after")
        assert {"type": "string", "format": "date-time"} in updated_after["oneOf"], path


def test_integer_or_float_is_any_of() -> None:
    # Found by schemathesis: `oneOf: [integer, number]` rejects every integer (it matches both).
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    value = spec["components"]["schemas"]["Figure"]["properties"]["value"]
    assert "oneOf" not in value
    assert {branch["type"] for branch in value["anyOf"]} == {"integer", "number"}


def test_every_operation_documents_414() -> None:
    # RequestLimitsMiddleware refuses over-long query strings on every route.
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "414" in operation["responses"], f"{method.upper()} {path}"


_FORMATS = {
    msgspec.inspect.DateTimeType: "date-time",
    msgspec.inspect.DateType: "date",
    msgspec.inspect.UUIDType: "uuid",
}


def _formats_of(info: msgspec.inspect.Type) -> set[str]:
    """The string formats a field's type takes, through unions (``| UnsetType | None``) and lists."""
    if isinstance(info, msgspec.inspect.UnionType):
        return set().union(*(_formats_of(t) for t in info.types))
    if isinstance(info, msgspec.inspect.ListType):
        return _formats_of(info.item_type)
    return {_FORMATS[type(info)]} if type(info) in _FORMATS else set()


def _documented_formats(schema: dict[str, Any]) -> set[str]:
    branches = [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
    nested = [schema["items"]] if isinstance(schema.get("items"), dict) else []
    found = {schema["format"]} if "format" in schema else set()
    return found.union(*(_documented_formats(b) for b in branches + nested))


def _request_structs() -> list[type[msgspec.Struct]]:
    pending: list[type[msgspec.Struct]] = [RequestBase]
    structs = []
    while pending:
        struct = pending.pop()
        pending.extend(struct.__subclasses__())
        structs.append(struct)
    return structs


def test_request_bodies_keep_their_formats() -> None:
    """Every date, date-time and uuid field of a request body is documented with its format,
    also inside ``| UnsetType`` (PATCH) and ``| None``: without it, schemathesis generates any
    string for it as valid (``{"retrieved_at": "]"}``) and clients validate nothing."""
    components = json.loads(SPEC_PATH.read_text(encoding="utf-8"))["components"]["schemas"]
    checked = 0
    for struct in _request_structs():
        if struct.__name__ not in components:
            continue
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        for field in info.fields:
            wanted = _formats_of(field.type)
            if wanted:
                documented = components[struct.__name__]["properties"][field.encode_name]
                assert _documented_formats(documented) == wanted, (struct.__name__, field.name)
                checked += 1
    assert checked > 10  # the walk found the fields it is about (ids, dates, retrieved_at)
    retrieved_at = components["SourcePatch"]["properties"]["retrieved_at"]
    assert retrieved_at == {"type": "string", "format": "date-time"}


def test_a_date_time_needs_its_offset() -> None:
    """What ``format: date-time`` (RFC 3339) promises: a time without an offset is refused
    rather than read in the database session's time zone."""
    for value in (b'"2024-05-01T12:30:00"', b'"]"'):
        with pytest.raises(msgspec.ValidationError, match="retrieved_at"):
            msgspec.json.decode(b'{"retrieved_at": ' + value + b"}", type=SourcePatch)
    patch = msgspec.json.decode(b'{"retrieved_at": "2024-05-01T12:30:00+02:00"}', type=SourcePatch)
    assert patch.retrieved_at == dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "if_match",
    [
        "*",
        '"0190a0b2-0000-7000-8000-000000000000:3"',
        'W/"a:1"',
        '"a:1" ,\t"b:2"',
        '""',
        '"-#"  , "52\\XO8"  , ">YP-+nD\t\t;" , "DL"',
        '"a"b"',
        '"a",',
        "",
        '* , "a"',
        '"a b"',
        "W/*",
    ],
)
def test_if_match_pattern_and_parser_agree(if_match: str) -> None:
    """The documented ``If-Match`` pattern accepts exactly what the server does: a value the
    spec calls valid is never a 400 (positive cases), nor an invalid one a 2xx (negative)."""
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    operation = spec["paths"]["/v1/organisations/{record_id}"]["patch"]
    (parameter,) = (p for p in operation["parameters"] if p["name"] == "If-Match")
    documented = re.search(parameter["schema"]["pattern"], if_match) is not None
    assert documented == etags.is_valid_if_match(if_match)


@pytest.mark.parametrize(
    "key",
    ["a", "0190a0b2-0000-7000-8000-000000000000", "a b", "~" * 255, "", " a", "a ", "x" * 256, "caf\u00e9"],
)
def test_idempotency_key_pattern_and_parser_agree(key: str) -> None:
    """The documented ``Idempotency-Key`` pattern accepts exactly the keys the server takes."""
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    operation = spec["paths"]["/v1/incidents"]["post"]
    (parameter,) = (p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    documented = re.search(parameter["schema"]["pattern"], key) is not None
    try:
        idempotency.validate_key(key)
    except idempotency.InvalidIdempotencyKey:
        accepted = False
    else:
        accepted = True
    assert documented == accepted


def test_the_read_after_token_is_declared_on_every_api_read_and_write() -> None:
    """``Secevents-Read-After``: what every write answers and every read may send back."""
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    reads = writes = 0
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            if method == "get":
                names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
                assert "Secevents-Read-After" in names, operation["operationId"]
                reads += 1
            elif method in {"post", "put", "patch", "delete"}:
                succeeded = [r for status, r in operation["responses"].items() if status.startswith("2")]
                assert succeeded, operation["operationId"]
                assert all("Secevents-Read-After" in r.get("headers", {}) for r in succeeded), operation[
                    "operationId"
                ]
                writes += 1
    assert reads > 10 and writes > 10
