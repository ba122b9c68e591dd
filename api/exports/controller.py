"""``GET /v1/exports/{resource}``: every matching record, streamed, as a file download."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import asyncpg
from litestar import Request, Router, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import Stream

from secevents.server import resources
from secevents.server.exports import formats
from secevents.server.http.errors import PROBLEM_RESPONSES, ServiceUnavailable
from secevents.server.resources.base import Resource
from secevents.server.settings import Settings

FORMAT_DESCRIPTIONS = {
    "ndjson": "`ndjson` (the import format)",
    "csv": "`csv`",
    "geojson": "`geojson` (points)",
    "stix": "`stix` (a STIX 2.1 bundle)",
}


def _format_parameter(choices: tuple[str, ...]) -> Any:
    named = [FORMAT_DESCRIPTIONS[c] for c in choices]
    description = ", ".join(named[:-1]) + (" or " if len(named) > 1 else "") + named[-1]
    return Annotated[Literal[choices], QueryParameter(name="format", description=description)]


DOWNLOAD_HEADERS = [
    ResponseHeader(
        name="Content-Disposition",
        description='`attachment; filename="<resource>.<ext>"`',
        documentation_only=True,
    )
]


def _responses(description: str) -> dict[int, ResponseSpec]:
    return {
        200: ResponseSpec(
            str,
            description=f"{description}, streamed. Media type by `format`: application/x-ndjson, "
            "text/csv, application/geo+json, application/stix+json;version=2.1",
            media_type="application/x-ndjson",
        ),
        **PROBLEM_RESPONSES,
    }


async def _release_after(
    pool: asyncpg.Pool, conn: asyncpg.Connection, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await pool.release(conn)


async def _download(request: Request[Any, Any, Any], resource: str, fmt: str, filters: Any) -> Stream:
    """The stream holds a connection of its own for as long as it runs (the request's pooled
    connection is released when the handler returns, before the body is sent)."""
    settings: Settings = request.app.state.settings
    pool: asyncpg.Pool = request.app.state.pool
    try:
        conn = await pool.acquire(timeout=settings.database.pool_acquire_timeout)
    except TimeoutError as exc:
        raise ServiceUnavailable("No database connection became free in time; retry later.") from exc
    return Stream(
        _release_after(pool, conn, formats.export(conn, resource, fmt, filters)),
        media_type=formats.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{formats.filename(resource, fmt)}"'},
    )


def _export_handler(resource: Resource) -> HTTPRouteHandler:
    """``GET /v1/exports/<collection>``, from the resource's descriptor: its filters (the list's)
    and its formats."""

    async def export(request: Request[Any, Any, Any], filters: Any, export_format: str = "ndjson") -> Stream:
        return await _download(request, resource.collection, export_format, filters)

    # Litestar reads the parameters' types from the annotations: each resource's own.
    export.__annotations__ = {
        "request": Request[Any, Any, Any],
        "filters": NamedDependency[resource.filters],  # type: ignore[misc,name-defined]  # chosen at run time
        "export_format": _format_parameter(resource.export_formats),
        "return": Stream,
    }
    export.__name__ = export.__qualname__ = f"export_{resource.collection}"
    what = resource.record_type
    return get(
        f"/{resource.collection}",
        operation_id=f"export_{resource.collection}",
        summary=f"Export {resource.collection}",
        description=f"Every {what} matching the list filters, in constant memory.",
        responses=_responses(f"The {resource.collection}"),
        response_headers=DOWNLOAD_HEADERS,
        dependencies={"filters": Provide(resource.provide_filters, sync_to_thread=False)},
    )(export)


def export_router() -> Router:
    return Router(
        path="/v1/exports", route_handlers=[_export_handler(r) for r in resources.ALL], tags=["exports"]
    )


def document_export_media_types(spec: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI post-processing: the 200 of each export offers every media type its ``format``
    can select (a ``ResponseSpec`` documents only one). JSON-based formats are objects; the
    others are text."""
    for path, item in spec.get("paths", {}).items():
        operation = item.get("get") if path.startswith("/v1/exports/") else None
        if not isinstance(operation, dict) or "200" not in operation.get("responses", {}):
            continue
        choices: list[str] = next(
            (p["schema"].get("enum", []) for p in operation.get("parameters", ()) if p["name"] == "format"),
            [],
        )
        media_types = [formats.MEDIA_TYPES[choice] for choice in choices]
        operation["responses"]["200"]["content"] = {
            media_type: {"schema": {"type": "object" if "+json" in media_type else "string"}}
            for media_type in media_types
        }
    return spec
