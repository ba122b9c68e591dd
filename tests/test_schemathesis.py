"""Schemathesis over every operation of the committed spec, against the app over a real
database: all of its checks (server errors, status codes, content types, headers, response
schemas, negative data rejection, missing required headers, unsupported methods, ignored auth)
and its stateful phase, which follows the spec's links from each POST to GET/PATCH/DELETE.

``SECEVENTS_FUZZ_EXAMPLES`` sets the examples per operation (CI: a few dozen; ``make fuzz``:
many more); CI runs are derandomized (reproducible), ``make fuzz`` random, and
``SECEVENTS_FUZZ_SEEDS=1,2,…`` adds one more run of every operation per seed
(``test_every_operation_seed_<n>``; each repeats schemathesis's deterministic coverage phase, so
CI keeps one). About half of the bodies go as MessagePack, the rest
as JSON (:func:`as_msgpack_half_the_time`), in both phases. Every bug it found has a regression
test of its own (see SECURITY.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import hypothesis
import msgspec
import pytest
import schemathesis
from litestar import Litestar
from schemathesis.core.parameters import ParameterLocation

from secevents.server import db
from secevents.server.app import create_app
from secevents.server.http import auth
from secevents.server.settings import ChangesSettings, WebhookSettings
from tests.conftest import create_database, drop_database, make_settings

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"
SPEC = json.loads(SPEC_PATH.read_text())  # schemathesis adds the links it infers to this dict
EXAMPLES = int(os.environ.get("SECEVENTS_FUZZ_EXAMPLES", "30"))
RANDOM = os.environ.get("SECEVENTS_FUZZ_RANDOM") is not None
EXTRA_SEEDS = [int(seed) for seed in os.environ.get("SECEVENTS_FUZZ_SEEDS", "").split(",") if seed]
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
            # A 422 to valid data is a reference to a record that does not exist, a fact of the
            # state like a 404; `valid_data_is_refused_only_for_state` keeps every other 422 a
            # failure.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 412, 422, 429, "5xx"]
            },
            # Without `If-Match` a write is a 428 Precondition Required (RFC 6585), as specified.
            "missing_required_header": {"expected-statuses": [400, 401, 403, 406, 415, 422, 428]},
        },
        "operations": [
            # An import is NDJSON: a string in the spec, since JSON Schema cannot describe a
            # stream of lines. A string the fuzzer calls "valid" is rarely a valid import, and the
            # server answers it with a 400 or 422 problem; every other check still applies.
            # One filter, by name: schemathesis ORs separate `include-*` keys, and an
            # `include-path` + `include-method` pair matched every POST (hiding their 400s).
            {
                "include-name": "POST /v1/imports",
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
# The change feed's positions are opaque and signed too (`after`, `Last-Event-ID`); a long-poll
# (`wait`) would hold each call up to a minute.
FEED_PATHS = frozenset({"/v1/changes", "/v1/changes/stream"})
FEED_QUERY_DROPPED = ("after", "wait")


# Pairs of query parameters where the first must not be after the second (a 400 otherwise).
ORDERED_PAIRS = (("occurred_after", "occurred_before"), ("issued_after", "issued_before"))


@schema.hook("map_case")
def within_cross_field_rules(context: Any, case: schemathesis.Case) -> schemathesis.Case:
    """Make *valid* cases follow the rules JSON Schema cannot state, so that
    ``positive_data_acceptance`` stays strict on everything else. Invalid cases are left alone
    and must be rejected. Applies to every phase, the stateful one included (its calls are
    generated by the same strategies and hooks).

    Query parameters (each rule's rejection has a plain test: ``tests/test_read_api.py``):

    - No ``cursor``: cursors are opaque and HMAC-signed, so no string the fuzzer makes up is one
      the server issued, and rejecting it (400) is the contract.
    - ``sort=relevance`` only with ``q`` (closeness to it): dropped otherwise.
    - ``occurred_after`` ≤ ``occurred_before``, ``issued_after`` ≤ ``issued_before``, and a
      ``bbox`` with south ≤ north: the two values are swapped when the fuzzer drew them reversed.

    Bodies (POST/PATCH of every resource, and each JSON line of an import): see
    :func:`within_body_rules`.
    """
    if case.query and _generated_valid(case, ParameterLocation.QUERY):
        case.query = within_query_rules(case, dict(case.query))
    if case.path in FEED_PATHS and case.headers and _generated_valid(case, ParameterLocation.HEADER):
        case.headers = {k: v for k, v in case.headers.items() if k.lower() != "last-event-id"}
    if not _generated_valid(case, ParameterLocation.BODY):
        return case
    if isinstance(case.body, (dict, list)):
        case.body = within_body_rules(case.body)
    elif isinstance(case.body, str) and case.path == "/v1/imports":
        case.body = "\n".join(_within_rules_if_json(line) for line in case.body.split("\n"))
    return case


def _generated_valid(case: schemathesis.Case, location: ParameterLocation) -> bool:
    """Whether this part of the case was generated valid. Per part, not per case: a case whose
    only invalid part is then replaced (the auth header is set after generation, stateful
    links fill headers) is re-judged valid as a whole, with the other parts as drawn."""
    meta = case.meta
    if meta is None:
        return False
    component = meta.components.get(location)
    return (component.mode if component is not None else meta.generation.mode).is_positive


def within_query_rules(case: schemathesis.Case, query: dict[str, Any]) -> dict[str, Any]:
    if (case.method.upper(), case.path) in CURSOR_OPERATIONS:
        query.pop("cursor", None)
    if case.path in FEED_PATHS:
        for name in FEED_QUERY_DROPPED:
            query.pop(name, None)
    if query.get("sort") == "relevance" and query.get("q") is None:
        query.pop("sort")
    for low, high in ORDERED_PAIRS:
        if isinstance(query.get(low), str) and isinstance(query.get(high), str) and query[low] > query[high]:
            query[low], query[high] = query[high], query[low]
    bbox = query.get("bbox")
    if isinstance(bbox, str) and bbox.count(",") == 3:
        west, south, east, north = bbox.split(",")
        if float(south) > float(north):
            query["bbox"] = ",".join((west, north, east, south))
    return query


# Bounds that must come in order wherever an object holds both (date spans, relationship periods).
BODY_ORDERED_PAIRS = (("start", "end"), ("since", "until"))
# Keys that must be given together or not at all (a location's coordinates).
BODY_TOGETHER = (("lat", "lon"),)
# An estimate's bounds, in the order their values must follow where given.
BODY_SORTED = ("low", "best", "high")
# What makes an object in a list the same as another one the server refuses to take twice:
# a participant is an organisation in a role, a casualty breakdown has one entry per group.
BODY_IDENTITIES = (("organisation_id", "role"), ("group",))


def within_body_rules(value: Any) -> Any:
    """A JSON body repaired, at every depth, for the cross-field rules the server enforces
    (``__post_init__`` of the ``schemas`` Structs, and unique constraints) but JSON Schema
    cannot express: without this, the fuzzer's "valid" bodies break them and are a 400 or a
    409, and ``positive_data_acceptance`` fails on the fuzzer, not the server. Each rule's
    rejection has plain tests of its own (``tests/test_writes.py``, ``tests/test_lifecycle.py``).

    - ``start``/``end`` and ``since``/``until``: swapped when drawn reversed;
    - ``lat``/``lon``: both dropped when only one is given (``null`` counts as not given);
    - ``low`` ≤ ``best`` ≤ ``high``: the given values sorted into the given keys;
    - lists: repeated values dropped (``aliases``, ``organisation_ids``,
      ``related_incident_ids``), and repeated objects by :data:`BODY_IDENTITIES`.

    References to records that do not exist stay as drawn: they are a 422 naming the field,
    a fact of the server's state like the 404 of an unknown id.
    """
    if isinstance(value, list):
        return _without_repeats([within_body_rules(item) for item in value])
    if not isinstance(value, dict):
        return value
    body = {key: within_body_rules(item) for key, item in value.items()}
    for low, high in BODY_ORDERED_PAIRS:
        if _comparable(body.get(low), body.get(high)) and body[low] > body[high]:
            body[low], body[high] = body[high], body[low]
    for keys in BODY_TOGETHER:
        if len({body.get(key) is None for key in keys}) > 1:
            for key in keys:
                body.pop(key, None)
    given = [key for key in BODY_SORTED if isinstance(body.get(key), (int, float))]
    if given:
        for key, number in zip(given, sorted(body[k] for k in given), strict=True):
            body[key] = number
    return body


def _comparable(low: Any, high: Any) -> bool:
    return isinstance(low, str) and isinstance(high, str)


def _without_repeats(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    kept = []
    for item in items:
        identity = _identity(item)
        if identity is None or identity not in seen:
            kept.append(item)
        if identity is not None:
            seen.add(identity)
    return kept


def _identity(item: Any) -> Any:
    """What the server compares list items by (ids as UUIDs, so case does not matter), or
    ``None`` for items that may repeat."""
    if isinstance(item, str):
        try:
            return uuid.UUID(item)
        except ValueError:
            return item
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return item
    if isinstance(item, dict):
        for keys in BODY_IDENTITIES:
            if all(key in item for key in keys):
                return tuple(str(item[key]).lower() for key in keys)
    return None


def _within_rules_if_json(line: str) -> str:
    """One import line with the body rules applied when it is a JSON object, as it is."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    return json.dumps(within_body_rules(record)) if isinstance(record, dict) else line


# The 422s that depend on the server's state rather than on the request: an id naming no live
# record, a quote not in its source's text, an Idempotency-Key already used for another body, a
# webhook URL this server will not call (its host does not resolve to a public address, or it is
# `http`: facts of DNS and of the server's configuration, not of the request's shape).
STATE_DEPENDENT_422 = frozenset(
    {"invalid_reference", "quotes_not_in_text", "idempotency_key_reused", "webhook_url_refused"}
)


@schemathesis.check
def valid_data_is_refused_only_for_state(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """``positive_data_acceptance`` allows 422 to valid data for its state-dependent causes only:
    any other 422 (e.g. ``constraint_violation``, a rule the database caught but validation
    missed) still fails. Imports answer 422 for whole-stream problems and are exempt."""
    meta = case.meta
    if response.status_code != 422 or meta is None or not meta.generation.mode.is_positive:
        return None
    if case.path == "/v1/imports":
        return None
    code = _problem_code(response.content)
    assert code in STATE_DEPENDENT_422, f"Schema-valid request refused with 422 `{code}`"
    return None


def _problem_code(content: bytes) -> Any:
    try:
        problem = json.loads(content)
    except ValueError:
        problem = msgspec.msgpack.decode(content)
    return problem.get("code") if isinstance(problem, dict) else None


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


def as_msgpack_half_the_time(case: schemathesis.Case) -> schemathesis.Case:
    """Send about half of the JSON bodies as MessagePack instead (the spec offers both for every
    body; schemathesis itself draws only the first). Which half is a function of the body, so a
    seed reproduces the same requests. Bodies MessagePack cannot carry (lone surrogates) stay JSON."""
    if case.media_type != "application/json" or not isinstance(case.body, (dict, list)):
        return case
    try:
        msgspec.msgpack.encode(_msgpack_safe(case.body))
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        return case
    if zlib.crc32(json.dumps(case.body, sort_keys=True, default=str).encode()) % 2:
        # Schemathesis re-judges a body changed since generation (by `map_case`) lazily, against
        # the case's media type, and MessagePack is an `x-alternative-media-types` it has no schema
        # for: judged after the switch, a valid body would count as invalid (and a 201 to it as
        # "negative data accepted"). Reading `meta` judges it now, as the JSON it was drawn as.
        _ = case.meta
        case.media_type = "application/msgpack"
    return case


@schemathesis.serializer("application/msgpack")
def to_msgpack(context: Any, value: Any) -> bytes:
    """Bodies the MessagePack middleware (:mod:`secevents.server.http.msgpack`) accepts like JSON ones."""
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
    derandomize=not RANDOM,  # CI runs are reproducible
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
    url = db.url_with_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        key = (await auth.create_key(conn, name="schemathesis", scopes=["admin"])).key
    finally:
        await conn.close()
    # Without the rate limit (hundreds of requests a second) and the failed-authentication
    # budget (`ignored_auth` sends wrong credentials on purpose), otherwise as served — but
    # webhooks the fuzzer creates for public addresses are not delivered, and a test event
    # gives up fast.
    settings = make_settings(url, rate_limit_window_seconds=0, auth_failure_limit=0)
    settings = dataclasses.replace(settings, webhooks=WebhookSettings(worker=False, timeout=0.5))
    # Event streams end after a moment (they would run forever), as a server may end them.
    settings = dataclasses.replace(
        settings, changes=ChangesSettings(heartbeat_seconds=0.05, stream_max_seconds=0.2)
    )
    Target.app = create_app(settings)
    Target.key = key
    # Also where checks make requests of their own (e.g. fetching a record after its 201).
    schema.app = Target.app
    yield Target()
    Target.app = None
    # The app's pool (kept by schemathesis until exit) is cut off by the forced drop.
    await drop_database(server_url, name)


def _every_operation(case: schemathesis.Case, fuzzed_app: Target) -> None:
    # A check that sends a request of its own (`ignored_auth`'s probe without credentials)
    # takes its transport from the operation's schema, which `parametrize` copied before the
    # fixture set `schema.app`: without this it falls back to HTTP and needs a base URL.
    case.operation.schema.app = fuzzed_app.app
    as_msgpack_half_the_time(case)
    case.call_and_validate(app=fuzzed_app.app)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation(case: schemathesis.Case, fuzzed_app: Target) -> None:
    _every_operation(case, fuzzed_app)


def _seeded(seed: int) -> Any:
    """``test_every_operation_seed_<seed>``: every operation again, from that seed."""

    def test(case: schemathesis.Case, fuzzed_app: Target) -> None:
        _every_operation(case, fuzzed_app)

    test.__name__ = test.__qualname__ = f"test_every_operation_seed_{seed}"
    seeded = hypothesis.settings(FUZZ_SETTINGS, derandomize=False)(test)
    return schema.parametrize()(hypothesis.seed(seed)(seeded))


for _seed in EXTRA_SEEDS:
    globals()[f"test_every_operation_seed_{_seed}"] = _seeded(_seed)


class Workflows(schema.as_state_machine()):  # type: ignore[misc]
    def before_call(self, case: schemathesis.Case) -> None:
        # Not every step's case is drawn through the `map_case` hook (the cases behind its
        # failures never reached it), so each is repaired here, just before it is sent.
        within_cross_field_rules(None, case)
        as_msgpack_half_the_time(case)

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        return {"app": Target.app}


def test_stateful_workflows(fuzzed_app: Target) -> None:
    Workflows.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_STEPS,
            stateful_step_count=6,
            deadline=None,
            derandomize=not RANDOM,
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
