"""What every list filter shares: a builder of parameterised WHERE clauses, the check that
rejects unknown query parameters, and parsers of values with a shape (bbox, ranges).

Each resource declares its filters as a dependency (``api/resources/<r>/filters.py``) so lists,
relation lists, stats and exports take the same parameters, documented once in OpenAPI.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.params import QueryParameter

from secevents.schemas.common import INT4_MAX, NO_NUL
from secevents.server.http.errors import InvalidParameter

# A search's text: bounded, and never a NUL (PostgreSQL text cannot hold one). Every `q` has
# these bounds, whatever it searches.
SEARCH_MAX_LENGTH = 200
SearchText = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=SEARCH_MAX_LENGTH,
        pattern=NO_NUL,
        description='Full-text search (PostgreSQL `websearch_to_tsquery`: words, "phrases", -exclusions, or)',
    ),
]
# Taken as text and parsed by `instant`: Litestar's lax conversion to `datetime` also turns
# numbers ("0.5", "1700000000") into Unix timestamps, which the spec (date-time) does not allow.
UpdatedAfter = Annotated[
    str | None,
    QueryParameter(
        description="Only records changed after this instant (RFC 3339, with a time zone)",
        schema_extra={
            "oneOf": [
                Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
                Schema(type=OpenAPIType.NULL),
            ]
        },
    ),
]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size (1–500)")]
Cursor = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=512,
        description="`next_cursor` of the previous page (opaque; keep every other parameter the same)",
    ),
]
MinCount = Annotated[int | None, QueryParameter(ge=0, le=INT4_MAX, schema_extra={"minimum": 0})]


class SqlBuilder:
    """Collects ``AND``-ed conditions and their arguments as ``$n`` placeholders."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.args: list[Any] = []

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def where(self, condition: str) -> None:
        self.conditions.append(condition)

    def where_sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "true"


def check_range(low_name: str, low: Any, high_name: str, high: Any) -> None:
    if low is not None and high is not None and low > high:
        raise InvalidParameter(high_name, f"must not be before `{low_name}`")


def instant(name: str, value: str | None) -> dt.datetime | None:
    """An RFC 3339 date-time with a time zone (``updated_after``), and nothing else."""
    if value is None:
        return None
    try:
        parsed = msgspec.convert(value, dt.datetime, strict=True)
    except msgspec.ValidationError:
        raise InvalidParameter(name, "is not an RFC 3339 date-time (e.g. `2024-01-01T00:00:00Z`)") from None
    require_timezone(name, parsed)
    return parsed


def require_timezone(name: str, value: dt.datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidParameter(name, "needs a time zone (e.g. `2024-01-01T00:00:00Z`)")


@dataclass(frozen=True, slots=True)
class BoundingBox:
    west: float
    south: float
    east: float
    north: float

    @property
    def crosses_antimeridian(self) -> bool:
        return self.west > self.east


def parse_bbox(value: str | None) -> BoundingBox | None:
    """``west,south,east,north`` in degrees; ``west > east`` crosses the antimeridian."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) != 4:
        raise InvalidParameter("bbox", "must be four numbers: west,south,east,north")
    try:
        west, south, east, north = (float(p) for p in parts)
    except ValueError as exc:
        raise InvalidParameter("bbox", "must be four numbers: west,south,east,north") from exc
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise InvalidParameter("bbox", "must be finite numbers")
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise InvalidParameter("bbox", "west and east must be longitudes between -180 and 180")
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise InvalidParameter("bbox", "south and north must be latitudes between -90 and 90")
    if south > north:
        raise InvalidParameter("bbox", "south must not be greater than north")
    return BoundingBox(west, south, east, north)


def bbox_condition(sql: SqlBuilder, box: BoundingBox, point: str) -> str:
    """``point`` (a ``point(lon, lat)`` expression with a GiST index) inside the box."""
    if box.crosses_antimeridian:
        east_part = (
            f"box(point({sql.param(box.west)}, {sql.param(box.south)}), point(180, {sql.param(box.north)}))"
        )
        west_part = (
            f"box(point(-180, {sql.param(box.south)}), point({sql.param(box.east)}, {sql.param(box.north)}))"
        )
        return f"({point} <@ {east_part} OR {point} <@ {west_part})"
    corners = (
        f"box(point({sql.param(box.west)}, {sql.param(box.south)}), "
        f"point({sql.param(box.east)}, {sql.param(box.north)}))"
    )
    return f"{point} <@ {corners}"


# Query parameters each handler accepts, worked out once from its signature and dependencies.
# Keyed by id(); the handler itself is kept with its entry and compared, because an id is
# reused once its object is gone (apps built and dropped one after another, as in tests, got
# another handler's parameters: /v1/exports/organisations answered with /v1/incidents' list).
_ACCEPTED: dict[tuple[int, tuple[str, ...]], tuple[HTTPRouteHandler, frozenset[str], frozenset[str]]] = {}


def _accepted_parameters(
    handler: HTTPRouteHandler, path_params: tuple[str, ...]
) -> tuple[frozenset[str], frozenset[str]]:
    """The query parameters the handler declares, and those of them that take one value."""
    key = (id(handler), path_params)
    entry = _ACCEPTED.get(key)
    if entry is None or entry[0] is not handler:
        model = handler.create_kwargs_model(path_parameters=dict.fromkeys(path_params))  # type: ignore[arg-type]
        params = model.expected_query_params
        entry = (
            handler,
            frozenset(p.field_alias for p in params),
            frozenset(p.field_alias for p in params if not p.is_sequence),
        )
        _ACCEPTED[key] = entry
    return entry[1], entry[2]


async def reject_unknown_query_parameters(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: a query parameter the handler does not declare is a 400 naming
    it. (Litestar ignores unknown parameters, which turns a typo into a silently wrong result.)"""
    handler = request.route_handler
    if not isinstance(handler, HTTPRouteHandler) or not request.scope.get("query_string"):
        return
    if handler.opt.get("client_query"):
        return  # a page whose query string is its script's state (system/explorer.py)
    accepted, single = _accepted_parameters(handler, tuple(sorted(request.path_params)))
    query = request.query_params  # a new MultiDict on every access: once
    for name in query:
        if name not in accepted:
            known = ", ".join(sorted(accepted)) or "none"
            raise InvalidParameter(name, f"unknown query parameter (this endpoint accepts: {known})")
        if name in single and len(query.getall(name)) > 1:
            # Litestar would keep one of the values silently.
            raise InvalidParameter(name, "given more than once; this parameter takes one value")


def optional_list_of(item: Schema) -> dict[str, Any]:
    """``schema_extra`` for an optional list query parameter (``list[str] | None``) whose items
    have constraints: Litestar drops constraints written inside list items, so the parameter's
    ``oneOf`` is declared whole here, next to the parameter it documents."""
    return {"oneOf": [Schema(type=OpenAPIType.ARRAY, items=item), Schema(type=OpenAPIType.NULL)]}
