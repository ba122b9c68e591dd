"""OpenAPI assembly: the config of the generated document and the post-processing of the whole
spec (what Litestar cannot derive from the handlers). It imports from every room and nothing
imports it but the app and the CLI: the vocabulary handlers use to describe themselves lives
beside what it describes (:mod:`secevents.server.http.errors`, :mod:`secevents.server.reads.filters`)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin

from secevents.server.exports.controller import document_export_media_types
from secevents.server.http.consistency import document_read_after
from secevents.server.http.deprecation import document_deprecations
from secevents.server.http.etags import IF_MATCH_PATTERN
from secevents.server.http.msgpack import add_msgpack_media_types
from secevents.server.importers.controller import REQUEST_BODY
from secevents.server.writes.flows import document_write_headers
from secevents.server.writes.idempotency import IDEMPOTENCY_KEY_PATTERN


def with_formats(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with what Litestar cannot derive from the handlers: ``application/msgpack``
    offered next to every JSON request body and response (the MessagePack middleware,
    :mod:`secevents.server.http.msgpack`, serves them all) and the NDJSON body of ``POST /v1/imports``. Apply it
    to the dict of the app's spec wherever the spec is built, served or committed."""
    operation = spec.get("paths", {}).get("/v1/imports", {}).get("post")
    if isinstance(operation, dict):
        operation["requestBody"] = REQUEST_BODY
    document_write_headers(spec)
    document_read_after(spec)
    document_export_media_types(spec)
    document_query_string_limit(spec)
    request_components_from_msgspec(spec)
    document_webhooks(spec)
    _overlapping_unions_as_any_of(spec)
    return without_content_when_nothing_follows(add_msgpack_media_types(spec))


def document_webhooks(spec: dict[str, Any]) -> None:
    """The messages webhook endpoints receive, under OpenAPI 3.1's top-level ``webhooks``: the
    body (:class:`secevents.schemas.webhooks.WebhookEvent`) and the Standard Webhooks headers."""
    from secevents.schemas.webhooks import WebhookEvent

    _, derived = msgspec.json.schema_components([WebhookEvent], ref_template="#/components/schemas/{name}")
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    for name, component in derived.items():
        components.setdefault(name, component)

    def header(name: str, description: str, example: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "header",
            "required": True,
            "description": description,
            "schema": {"type": "string"},
            "example": example,
        }

    spec["webhooks"] = {
        "change": {
            "post": {
                "operationId": "receive_change",
                "summary": "A change, delivered to a webhook endpoint",
                "description": "One message per change, POSTed to the endpoint's URL in feed order "
                "(the next waits until this one is answered 2xx), at least once: drop repeats by "
                "`webhook-id`. Verify `webhook-signature` with the endpoint's secret before trusting "
                "the body (`secevents.webhooks.verify(body, headers, secret)`, or any Standard "
                "Webhooks library). Answer 2xx quickly; any other status, a redirect or no answer "
                "within the server's timeout is retried with exponential backoff, and when the "
                "retries run out the endpoint is disabled; 410 disables it at once. "
                "`POST /v1/webhooks/{webhook_id}/test` sends the same shape with type `webhook.test` "
                "and `data: null`.",
                "tags": ["webhooks"],
                "parameters": [
                    header(
                        "webhook-id",
                        "The message's id: the same on every attempt of one change to one endpoint",
                        "msg_6c0f2b8e4f6d5a1b9c3e7d2f0a4b8c6e",
                    ),
                    header("webhook-timestamp", "Seconds since the epoch, of this attempt", "1767225600"),
                    header(
                        "webhook-signature",
                        "`v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` "
                        "under the secret (`whsec_<base64 key>`)",
                        "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/WebhookEvent"}}
                    },
                },
                "responses": {
                    "2XX": {"description": "Received: the endpoint's next change follows"},
                    "410": {"description": "Gone: the endpoint is disabled"},
                    "default": {"description": "Not received: retried later"},
                },
            }
        }
    }


def without_content_when_nothing_follows(spec: dict[str, Any]) -> dict[str, Any]:
    """A 204 has no content (RFC 9110 §15.3.5), but Litestar documents a handler returning
    ``None`` as a JSON ``null`` body: a client (or schemathesis) would expect a
    ``Content-Type`` and a JSON document that never come."""
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                no_content = operation.get("responses", {}).get("204")
                if isinstance(no_content, dict):
                    no_content.pop("content", None)
    return spec


def document_query_string_limit(spec: dict[str, Any]) -> None:
    """Every operation can answer 414: :class:`secevents.server.http.limits.RequestLimitsMiddleware` refuses
    over-long query strings before routing."""
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault(
                    "414",
                    {
                        "description": "Query string too long",
                        "content": {
                            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                        },
                    },
                )


def request_components_from_msgspec(spec: dict[str, Any]) -> None:
    """The components of request bodies (``secevents.schemas.common.RequestBase``) as msgspec, which
    validates them, describes them. Litestar's derivation loses what the server enforces:
    constraints inside ``Optional`` or equal to 0, dict key patterns (``propertyNames``), and
    ``additionalProperties: false`` for structs that forbid unknown fields."""
    from secevents.schemas.common import RequestBase

    components = spec.get("components", {}).get("schemas", {})
    structs: list[type] = []
    pending: list[type] = [RequestBase]
    while pending:
        struct = pending.pop()
        pending.extend(struct.__subclasses__())
        if struct.__name__ in components:
            structs.append(struct)
    _, derived = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    for name, component in derived.items():
        if name in components or any(struct.__name__ == name for struct in structs):
            components[name] = component
        else:
            components.setdefault(name, component)


def _overlapping_unions_as_any_of(node: Any) -> None:
    """``int | float`` comes out of Litestar as ``oneOf: [integer, number]``, which no integer
    satisfies (it matches both branches): such a union is an ``anyOf``."""
    if isinstance(node, dict):
        branches = node.get("oneOf")
        if isinstance(branches, list) and {"integer", "number"} <= {
            b.get("type") for b in branches if isinstance(b, dict)
        }:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _overlapping_unions_as_any_of(value)
    elif isinstance(node, list):
        for value in node:
            _overlapping_unions_as_any_of(value)


def without_generated_examples(app: Litestar) -> None:
    """Turn off Litestar's random examples on every documented response: they are drawn afresh
    (around the current time) on each build, which would make the committed spec
    (``openapi/openapi.json``) drift on every run. Examples written in the schemas stay."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for spec in (getattr(handler, "responses", None) or {}).values():
                spec.generate_examples = False


def add_write_links(app: Litestar) -> None:
    """Declare OpenAPI links from each ``POST /v1/{resource}`` (its 201) to the operations on
    the record it created — get, update, delete, revisions — with the new ``id`` and ``ETag``.
    Clients and tools (schemathesis's stateful phase) follow them to chain calls. Idempotent:
    :func:`document` calls it each time."""
    from litestar.openapi.spec import Link, OpenAPIResponse

    schema = app.openapi_schema
    operation_ids = {
        operation.operation_id
        for item in (schema.paths or {}).values()
        for operation in (item.get, item.post, item.patch, item.delete)
        if operation is not None
    }
    for path, item in (schema.paths or {}).items():
        created = item.post.responses.get("201") if item.post and item.post.responses else None
        # Records only: their operations take `record_id` and `If-Match` (webhook endpoints do not).
        if not isinstance(created, OpenAPIResponse) or f"{path}/{{record_id}}" not in (schema.paths or {}):
            continue
        singular = path.rsplit("/", 1)[1].removesuffix("s")
        by_id = {"path.record_id": "$response.body#/id"}
        with_etag = {**by_id, "header.If-Match": "$response.header.ETag"}
        wanted = {
            f"Get{singular.title()}": (f"get_{singular}", by_id),
            f"Update{singular.title()}": (f"update_{singular}", with_etag),
            f"Delete{singular.title()}": (f"delete_{singular}", with_etag),
            f"List{singular.title()}Revisions": (f"list_{singular}_revisions", by_id),
        }
        created.links = {
            name: Link(operation_id=operation_id, parameters=dict(parameters))
            for name, (operation_id, parameters) in wanted.items()
            if operation_id in operation_ids
        }


def document(app: Litestar) -> dict[str, Any]:
    """The app's OpenAPI document, complete: what Litestar derives from the handlers plus
    :func:`with_formats`. The same document is served at ``/schema/openapi.json``, committed as
    ``openapi/openapi.json`` and read by the SDK generator.

    Litestar derives the schema on first use, here, not when the app is built: that derivation
    is half of building an app, which a server does once but the tests do for every test."""
    add_write_links(app)
    spec = with_formats(msgspec.json.decode(msgspec.json.encode(app.openapi_schema.to_schema())))
    document_header_parameters(spec, require_if_match=app.state["settings"].api.require_if_match)
    document_deprecations(app, spec)
    return spec


def document_header_parameters(spec: dict[str, Any], *, require_if_match: bool) -> None:
    """Header parameters as the server takes them: never null (``str | None`` only means
    "optional"; a header cannot hold null), and ``If-Match`` in its accepted syntax and
    required when this server answers 428 without it (``SECEVENTS_REQUIRE_IF_MATCH``), and
    ``Idempotency-Key`` in its accepted syntax."""
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") != "header":
                    continue
                schema = parameter["schema"]
                branches = [b for b in schema.pop("oneOf", []) if b.get("type") != "null"]
                if len(branches) == 1:
                    schema.update(branches[0])
                elif branches:
                    schema["oneOf"] = branches
                if parameter["name"] == "If-Match":
                    # The very pattern `secevents.server.http.etags.is_valid_if_match` matches with.
                    schema["pattern"] = IF_MATCH_PATTERN
                    parameter["required"] = require_if_match
                if parameter["name"] == "Idempotency-Key":
                    # The very pattern `secevents.server.writes.idempotency.validate_key` matches with.
                    schema["pattern"] = IDEMPOTENCY_KEY_PATTERN


class DocumentRenderPlugin(JsonRenderPlugin):
    """Serves :func:`document` rather than Litestar's bare derivation, so the served spec and
    the committed one never differ."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return msgspec.json.encode(document(request.app))
