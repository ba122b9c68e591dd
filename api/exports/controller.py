"""``GET /v1/exports/{resource}``: every matching record, streamed, as a file download."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import asyncpg
from litestar import Controller, Request, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import Stream

from api.errors import ServiceUnavailable
from api.exports import formats
from api.openapi import PROBLEM_RESPONSES
from api.resources.incidents.filters import IncidentFilters, provide_incident_filters
from api.resources.organisations.filters import OrganisationFilters, provide_organisation_filters
from api.resources.sources.filters import SourceFilters, provide_source_filters
from api.resources.statements.filters import StatementFilters, provide_statement_filters
from api.settings import Settings

IncidentFormat = Annotated[
    Literal["ndjson", "csv", "geojson", "stix"],
    QueryParameter(
        name="format",
        description="`ndjson` (the import format), `csv`, `geojson` (points) or `stix` (a STIX 2.1 bundle)",
    ),
]
RecordFormat = Annotated[
    Literal["ndjson", "csv", "stix"],
    QueryParameter(
        name="format", description="`ndjson` (the import format), `csv` or `stix` (a STIX 2.1 bundle)"
    ),
]

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


class ExportController(Controller):
    path = "/v1/exports"
    tags = ["exports"]

    @get(
        "/incidents",
        operation_id="export_incidents",
        summary="Export incidents",
        description="Every incident matching the list filters, in constant memory.",
        responses=_responses("The incidents"),
        response_headers=DOWNLOAD_HEADERS,
        dependencies={"filters": Provide(provide_incident_filters, sync_to_thread=False)},
    )
    async def export_incidents(
        self,
        request: Request[Any, Any, Any],
        filters: NamedDependency[IncidentFilters],
        export_format: IncidentFormat = "ndjson",
    ) -> Stream:
        return await _download(request, "incidents", export_format, filters)

    @get(
        "/organisations",
        operation_id="export_organisations",
        summary="Export organisations",
        description="Every organisation matching the list filters, in constant memory.",
        responses=_responses("The organisations"),
        response_headers=DOWNLOAD_HEADERS,
        dependencies={"filters": Provide(provide_organisation_filters, sync_to_thread=False)},
    )
    async def export_organisations(
        self,
        request: Request[Any, Any, Any],
        filters: NamedDependency[OrganisationFilters],
        export_format: RecordFormat = "ndjson",
    ) -> Stream:
        return await _download(request, "organisations", export_format, filters)

    @get(
        "/statements",
        operation_id="export_statements",
        summary="Export statements",
        description="Every statement matching the list filters, in constant memory.",
        responses=_responses("The statements"),
        response_headers=DOWNLOAD_HEADERS,
        dependencies={"filters": Provide(provide_statement_filters, sync_to_thread=False)},
    )
    async def export_statements(
        self,
        request: Request[Any, Any, Any],
        filters: NamedDependency[StatementFilters],
        export_format: RecordFormat = "ndjson",
    ) -> Stream:
        return await _download(request, "statements", export_format, filters)

    @get(
        "/sources",
        operation_id="export_sources",
        summary="Export sources",
        description="Every source matching the list filters, in constant memory.",
        responses=_responses("The sources"),
        response_headers=DOWNLOAD_HEADERS,
        dependencies={"filters": Provide(provide_source_filters, sync_to_thread=False)},
    )
    async def export_sources(
        self,
        request: Request[Any, Any, Any],
        filters: NamedDependency[SourceFilters],
        export_format: RecordFormat = "ndjson",
    ) -> Stream:
        return await _download(request, "sources", export_format, filters)


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
