"""Schemathesis over every operation of the committed spec, against the app over a real
database: all of its checks (server errors, status codes, content types, headers, response
schemas, negative data rejection, missing required headers, unsupported methods, ignored auth)
and its stateful phase, which follows the spec's links from each POST to GET/PATCH/DELETE.

``SECEVENTS_FUZZ_EXAMPLES`` sets the examples per operation (CI: a few dozen; ``make fuzz``:
many more). Every bug it found has a regression test of its own (see SECURITY.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import hypothesis
import msgspec
import pytest
import schemathesis
from litestar import Litestar

from api import auth
from api.app import create_app
from tests.conftest import _with_database, create_database, drop_database, make_settings

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"
SPEC = json.loads(SPEC_PATH.read_text())  # schemathesis adds the links it infers to this dict
EXAMPLES = int(os.environ.get("SECEVENTS_FUZZ_EXAMPLES", "30"))
STATEFUL_STEPS = int(os.environ.get("SECEVENTS_FUZZ_STATEFUL_EXAMPLES", "15"))


CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        # 413 (body too large) and 414 (query string too long, api/limits.py) are rejections too.
        # A write with an `If-Match` of the right syntax that names another version is a 412,
        # a fact of the server's state (like a 404 for an unknown id), not a rejected input.
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 414, 415, 422, 428, 429, "5xx"]
            },
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 412, 429, "5xx"]
            },
            # Without `If-Match` a write is a 428 Precondition Required (RFC 6585), as specified.
            "missing_required_header": {"expected-statuses": [400, 401, 403, 406, 415, 422, 428]},
        },
        "operations": [
            # An import is NDJSON: a string in the spec, since JSON Schema cannot describe a
            # stream of lines. A string the fuzzer calls "valid" is rarely a valid import, and the
            # server answers it with a 400 or 422 problem; every other check still applies.
            {
                "include-path": "/v1/imports",
                "include-method": "POST",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "3xx", 400, 401, 403, 404, 409, 413, 422, 429, "5xx"]
                    }
                },
            }
        ],
    }
)
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG)
# Operations whose `cursor` is opaque (signed), as opposed to a documented number pattern.
CURSOR_OPERATIONS = frozenset(
    (method.upper(), path)
    for path, item in SPEC["paths"].items()
    for method, operation in item.items()
    for parameter in operation.get("parameters", ())
    if parameter["in"] == "query" and parameter["name"] == "cursor" and "pattern" not in parameter["schema"]
)


# Pairs of query parameters where the first must not be after the second (a 400 otherwise).
ORDERED_PAIRS = (("occurred_after", "occurred_before"), ("issued_after", "issued_before"))


@schema.hook("map_case")
def within_cross_parameter_rules(context: Any, case: schemathesis.Case) -> schemathesis.Case:
    """Make *valid* cases follow the rules JSON Schema cannot state, so that
    ``positive_data_acceptance`` stays strict on everything else (each rule's rejection has a
    plain test: ``tests/test_read_api.py``). Invalid cases are left alone and must be rejected.

    - No ``cursor``: cursors are opaque and HMAC-signed, so no string the fuzzer makes up is one
      the server issued, and rejecting it (400) is the contract.
    - ``occurred_after`` ≤ ``occurred_before``, ``issued_after`` ≤ ``issued_before``, and a
      ``bbox`` with south ≤ north: the two values are swapped when the fuzzer drew them reversed.
    """
    meta = case.meta
    if not case.query or meta is None or not meta.generation.mode.is_positive:
        return case
    query = dict(case.query)
    if (case.method.upper(), case.path) in CURSOR_OPERATIONS:
        query.pop("cursor", None)
    for low, high in ORDERED_PAIRS:
        if isinstance(query.get(low), str) and isinstance(query.get(high), str) and query[low] > query[high]:
            query[low], query[high] = query[high], query[low]
    bbox = query.get("bbox")
    if isinstance(bbox, str) and bbox.count(",") == 3:
        west, south, east, north = bbox.split(",")
        if float(south) > float(north):
            query["bbox"] = ",".join((west, north, east, south))
    case.query = query
    return case


def _msgpack_safe(value: Any) -> Any:
    """MessagePack has no integers beyond 64 bits; such a (schema-violating) integer is sent as a
    float, which the server rejects just the same."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, dict):
        return {k: _msgpack_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_msgpack_safe(v) for v in value]
    return value


@schemathesis.serializer("application/msgpack")
def to_msgpack(context: Any, value: Any) -> bytes:
    """Bodies the MessagePack middleware (:mod:`api.msgpack`) accepts like JSON ones."""
    return msgspec.msgpack.encode(_msgpack_safe(value))


@schemathesis.deserializer("application/msgpack")
def from_msgpack(context: Any, response: Any) -> Any:
    return msgspec.msgpack.decode(response.content)


@schemathesis.serializer("application/x-ndjson")
def to_ndjson(context: Any, value: Any) -> bytes:
    """The import body: a string in the spec, sent as it is."""
    return value.encode("utf-8") if isinstance(value, str) else msgspec.json.encode(value)


FUZZ_SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("SECEVENTS_FUZZ_RANDOM") is None,  # CI runs are reproducible
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)


class Target:
    """The app under test and an admin key for its keyed operations."""

    app: Litestar | None = None
    key: str = ""


@schema.auth()
class AdminKey:
    """The fixture's admin key as a bearer token on every request, writes included. Declared as
    schemathesis auth (not merged into the call's headers, where a generated `Authorization`
    would override it) so that the `ignored_auth` check knows what to strip."""

    def get(self, case: schemathesis.Case, context: Any) -> str:
        return Target.key

    def set(self, case: schemathesis.Case, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="module")
async def fuzzed_app(server_url: str, template_database: str) -> AsyncIterator[Target]:
    name = await create_database(server_url, template_database)
    url = _with_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        key = (await auth.create_key(conn, name="schemathesis", scopes=["admin"])).key
    finally:
        await conn.close()
    # Without the rate limit (hundreds of requests a second), otherwise as served.
    Target.app = create_app(make_settings(url, rate_limit_window_seconds=0))
    Target.key = key
    # Also where checks make requests of their own (e.g. fetching a record after its 201).
    schema.app = Target.app
    yield Target()
    Target.app = None
    # The app's pool (kept by schemathesis until exit) is cut off by the forced drop.
    await drop_database(server_url, name)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation(case: schemathesis.Case, fuzzed_app: Target) -> None:
    case.call_and_validate(app=fuzzed_app.app)


class Workflows(schema.as_state_machine()):  # type: ignore[misc]
    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        return {"app": Target.app}


def test_stateful_workflows(fuzzed_app: Target) -> None:
    Workflows.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_STEPS,
            stateful_step_count=6,
            deadline=None,
            derandomize=os.environ.get("SECEVENTS_FUZZ_RANDOM") is None,
            suppress_health_check=list(hypothesis.HealthCheck),
            database=None,
        )
    )


def test_the_spec_links_every_create_to_its_record() -> None:
    committed = json.loads(SPEC_PATH.read_text())
    for resource in ("incidents", "organisations", "statements", "sources"):
        links = committed["paths"][f"/v1/{resource}"]["post"]["responses"]["201"]["links"]
        singular = resource.removesuffix("s").title()
        assert set(links) == {
            f"Get{singular}",
            f"Update{singular}",
            f"Delete{singular}",
            f"List{singular}Revisions",
        }
        assert links[f"Update{singular}"]["parameters"]["header.If-Match"] == "$response.header.ETag"
