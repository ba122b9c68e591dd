"""``GET /v1/exports/{resource}``: every matching record, streamed, as a file download."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request, Router, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import Stream

from secevents.server import resources
from secevents.server.exports import formats, streaming
from secevents.server.http.dependencies import acquire
from secevents.server.http.errors import PROBLEM_RESPONSES, problem
from secevents.server.resources.base import Resource
from secevents.server.settings import ApiSettings, Settings

FORMAT_DESCRIPTIONS = {
    "ndjson": "`ndjson` (the import format)",
    "csv": "`csv`",
    "geojson": "`geojson` (points)",
    "stix": "`stix` (a STIX 2.1 bundle)",
}


def _format_description(choices: tuple[str, ...]) -> str:
    named = [FORMAT_DESCRIPTIONS[c] for c in choices]
    return ", ".join(named[:-1]) + (" or " if len(named) > 1 else "") + named[-1]


def _format_parameter(choices: tuple[str, ...]) -> Any:
    return Annotated[
        Literal[choices], QueryParameter(name="format", description=_format_description(choices))
    ]


AllFormat = Annotated[
    Literal["ndjson", "stix"],
    QueryParameter(name="format", description=_format_description(formats.ALL_FORMATS)),
]

COMPLETENESS = (
    "A complete export says so at its end: NDJSON with the line "
    '`{"type":"export_complete","count":N}`, CSV with the line `# export_complete: N records`, '
    "GeoJSON and STIX with the end of their JSON document. A response cut short (the client "
    "stalled past `SECEVENTS_EXPORT_STALL_TIMEOUT`, or the database failed mid-stream) lacks it "
    "and ends without the terminating chunk. Exports run at most a few at a time per client "
    "(429 beyond) and per server (503 beyond), both with `Retry-After`."
)

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
        429: problem("This client already runs as many exports as it may; retry after `Retry-After`"),
        **PROBLEM_RESPONSES,
    }


Bom = Annotated[
    bool,
    QueryParameter(
        description="With `format=csv`: start the file with a UTF-8 byte order mark, which Excel "
        "needs to read non-ASCII text (names, places) right. Other formats ignore it."
    ),
]


async def _download(
    request: Request[Any, Any, Any], resource: str, fmt: str, filters: Any, bom: bool = False
) -> Stream:
    """The export, read ahead by a task of its own on a pooled connection that it returns when
    the last row is read (:mod:`secevents.server.exports.streaming`). A connection that does not
    become free in time is a 503 before anything is sent."""
    settings: Settings = request.app.state.settings
    pool, conn, _ = await acquire(request, settings)
    export = (
        formats.export_all(conn, fmt)
        if resource == formats.ALL
        else formats.export(conn, resource, fmt, filters, bom=bom)
    )
    chunks = streaming.read_ahead(request.scope, pool, conn, export, settings.api, formats.FLUSH_BYTES)
    return Stream(
        chunks,
        media_type=formats.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{formats.filename(resource, fmt)}"'},
    )


def _export_handler(resource: Resource) -> HTTPRouteHandler:
    """``GET /v1/exports/<collection>``, from the resource's descriptor: its filters (the list's)
    and its formats."""

    async def export(
        request: Request[Any, Any, Any], filters: Any, export_format: str = "ndjson", bom: bool = False
    ) -> Stream:
        # Only CSV carries the mark (for Excel); the other formats ignore it, as documented.
        return await _download(
            request, resource.collection, export_format, filters, bom and export_format == "csv"
        )

    # Litestar reads the parameters' types from the annotations: each resource's own.
    export.__annotations__ = {
        "request": Request[Any, Any, Any],
        "filters": NamedDependency[resource.filters],  # type: ignore[misc,name-defined]  # chosen at run time
        "export_format": _format_parameter(resource.export_formats),
        "bom": Bom,
        "return": Stream,
    }
    export.__name__ = export.__qualname__ = f"export_{resource.collection}"
    what = resource.record_type
    return get(
        f"/{resource.collection}",
        operation_id=f"export_{resource.collection}",
        summary=f"Export {resource.collection}",
        description=f"Every {what} matching the list filters, in constant memory. {COMPLETENESS}",
        responses=_responses(f"The {resource.collection}"),
        response_headers=DOWNLOAD_HEADERS,
        dependencies={"filters": Provide(resource.provide_filters, sync_to_thread=False)},
    )(export)


@get(
    f"/{formats.ALL}",
    operation_id="export_all",
    summary="Export everything",
    description="Every live record of every resource in one file: NDJSON (sources, organisations, "
    "incidents, statements, in that order, so it imports as is into an empty database; one "
    "trailer counting them all) or one STIX 2.1 bundle, in which every reference resolves. "
    f"No filters. {COMPLETENESS}",
    responses=_responses("Every record"),
    response_headers=DOWNLOAD_HEADERS,
)
async def export_all(request: Request[Any, Any, Any], export_format: AllFormat = "ndjson") -> Stream:
    return await _download(request, formats.ALL, export_format, None)


def export_router(settings: ApiSettings) -> Router:
    """The export routes, behind the caps and stall bound of :func:`streaming.export_guard`."""
    return Router(
        path="/v1/exports",
        route_handlers=[*(_export_handler(r) for r in resources.ALL), export_all],
        tags=["exports"],
        middleware=[streaming.export_guard(streaming.ExportSlots(settings))],
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
