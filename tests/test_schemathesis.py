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

schema = schemathesis.openapi.from_dict(SPEC)

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
    headers: dict[str, str] = {}


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
    Target.headers = {"Authorization": f"Bearer {key}"}
    yield Target()
    Target.app = None
    # The app's pool (kept by schemathesis until exit) is cut off by the forced drop.
    await drop_database(server_url, name)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation(case: schemathesis.Case, fuzzed_app: Target) -> None:
    headers = {**fuzzed_app.headers, **(case.headers or {})}
    case.call_and_validate(app=fuzzed_app.app, headers=headers)


class Workflows(schema.as_state_machine()):  # type: ignore[misc]
    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        return {"app": Target.app, "headers": {**Target.headers, **(case.headers or {})}}


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
