"""OpenAPI: shared response specs and the config of the generated document."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec

from schemas.problems import Problem


def problem(description: str) -> ResponseSpec:
    return ResponseSpec(Problem, description=description, media_type="application/problem+json")


# Every read can fail these ways; handlers add their own (404, 412, …) on top.
PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    400: problem("Invalid query parameter or request"),
    404: problem("No such record or route"),
    503: problem("The database is unavailable; retry after `Retry-After` seconds"),
}


def with_formats(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with what Litestar cannot derive from the handlers: ``application/msgpack``
    offered next to every JSON request body and response (the MessagePack middleware,
    :mod:`api.msgpack`, serves them all) and the NDJSON body of ``POST /v1/imports``. Apply it
    to the dict of the app's spec wherever the spec is built, served or committed."""
    from api.msgpack import add_msgpack_media_types
    from api.resources.imports.controller import REQUEST_BODY
    from api.writes import document_write_headers

    operation = spec.get("paths", {}).get("/v1/imports", {}).get("post")
    if isinstance(operation, dict):
        operation["requestBody"] = REQUEST_BODY
    document_write_headers(spec)
    return add_msgpack_media_types(spec)


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
    Clients and tools (schemathesis's stateful phase) follow them to chain calls."""
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
        if not isinstance(created, OpenAPIResponse) or path.count("/") != 2:
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
