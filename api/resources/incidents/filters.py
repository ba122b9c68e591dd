"""Filters of incident lists, relation lists, stats (and exports): declared once as a
dependency, so every endpoint takes and documents the same parameters."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import QueryParameter

from secevents.schemas.common import NO_NUL
from secevents.schemas.incidents import IncidentType, ParticipantRole
from secevents.server.http.errors import InvalidParameter
from secevents.server.reads.filters import (
    BoundingBox,
    MinCount,
    SearchText,
    SqlBuilder,
    UpdatedAfter,
    bbox_condition,
    check_range,
    instant,
    optional_list_of,
    parse_bbox,
)

_COUNTRY = re.compile(r"^[A-Z]{2}$")

OccurredAfter = Annotated[
    dt.date | None, QueryParameter(description="Only incidents that started on or after this date")
]
OccurredBefore = Annotated[
    dt.date | None, QueryParameter(description="Only incidents that started on or before this date")
]
Countries = Annotated[
    list[str] | None,
    QueryParameter(
        description="ISO 3166-1 alpha-2 country code; repeat for any of several",
        examples=None,
        schema_extra=optional_list_of(Schema(type=OpenAPIType.STRING, pattern=_COUNTRY.pattern)),
    ),
]
Admin1s = Annotated[
    list[str] | None,
    QueryParameter(
        description="First-level region, exact name; repeat for any of several",
        # What `_labels` accepts: 1–200 characters, never a NUL (PostgreSQL text cannot hold one).
        schema_extra=optional_list_of(
            Schema(type=OpenAPIType.STRING, min_length=1, max_length=200, pattern=NO_NUL)
        ),
    ),
]
Types = Annotated[
    list[IncidentType] | None,
    QueryParameter(description="Incident type; repeat for any of several"),
]
Organisations = Annotated[
    list[UUID] | None,
    QueryParameter(description="Only incidents this organisation took part in; repeat for any of several"),
]
Roles = Annotated[
    list[ParticipantRole] | None,
    QueryParameter(description="…in one of these roles (with `organisation`, or alone: any organisation)"),
]
MinKilled = Annotated[
    MinCount,
    QueryParameter(
        ge=0,
        description="Killed at least this many (best estimate, else the lower bound)",
        schema_extra={"minimum": 0},  # Litestar drops a bound equal to 0
    ),
]
# The syntax and ranges `parse_bbox` accepts, in decimal notation (it also takes what Python's
# float() does); south ≤ north, a rule between values, is in the description only.
_LONGITUDE = r"-?(180(\.0+)?|(1[0-7][0-9]|[1-9]?[0-9])(\.[0-9]+)?)"
_LATITUDE = r"-?(90(\.0+)?|[1-8]?[0-9](\.[0-9]+)?)"
Bbox = Annotated[
    str | None,
    QueryParameter(
        max_length=200,
        # Documented, not validated here: `parse_bbox` checks it and says what is wrong in words
        # (a pattern mismatch would answer with this regex).
        schema_extra={"pattern": f"^{_LONGITUDE},{_LATITUDE},{_LONGITUDE},{_LATITUDE}$"},
        description="`west,south,east,north` in degrees (south ≤ north); west > east crosses the "
        "antimeridian",
    ),
]


@dataclass(frozen=True, slots=True)
class IncidentFilters:
    occurred_after: dt.date | None = None
    occurred_before: dt.date | None = None
    country: tuple[str, ...] = ()
    admin1: tuple[str, ...] = ()
    type: tuple[str, ...] = ()
    organisation: tuple[UUID, ...] = ()
    role: tuple[str, ...] = ()
    min_killed: int | None = None
    bbox: BoundingBox | None = None
    q: str | None = None
    updated_after: dt.datetime | None = None

    def apply(self, sql: SqlBuilder) -> None:
        """Add the conditions on ``incidents i`` (live records only)."""
        sql.where("i.deleted_at IS NULL")
        if self.occurred_after is not None:
            sql.where(f"i.occurred_start >= {sql.param(self.occurred_after)}")
        if self.occurred_before is not None:
            sql.where(f"i.occurred_start <= {sql.param(self.occurred_before)}")
        if self.country:
            sql.where(one_of(sql, "i.country", self.country, "bpchar"))
        if self.admin1:
            sql.where(one_of(sql, "i.admin1", self.admin1, "text"))
        if self.type:
            sql.where(one_of(sql, "i.type", self.type, "text"))
        if self.organisation or self.role:
            sql.where(f"i.id IN ({participation(sql, self.organisation, self.role)})")
        if self.min_killed is not None:
            sql.where(f"coalesce(i.killed_best, i.killed_low) >= {sql.param(self.min_killed)}")
        if self.bbox is not None:
            sql.where(bbox_condition(sql, self.bbox, "point(i.lon, i.lat)"))
        if self.q is not None:
            query = f"websearch_to_tsquery('english'::regconfig, {sql.param(self.q)})"
            sql.where(
                f"""i.id IN (SELECT t.id FROM incidents t WHERE t.search @@ {query}
                     UNION SELECT c.incident_id FROM citations c
                            WHERE c.incident_id IS NOT NULL
                              AND to_tsvector('english'::regconfig, c.quote) @@ {query})"""
            )
        if self.updated_after is not None:
            sql.where(f"i.updated_at > {sql.param(self.updated_after)}")


def one_of(sql: SqlBuilder, column: str, values: tuple[str, ...], sql_type: str) -> str:
    """``column`` equal to one of ``values``. One value is written ``column = $n``, not
    ``= ANY($n)``: the planner then knows the value even in a generic plan and walks an index
    that starts with the column in the list's order (``country = 'PK'`` reads
    ``incidents_country_type_occurred_idx``; ``country = ANY('{PK}')`` walked
    ``incidents_occurred_idx`` backwards, discarding the other countries' rows)."""
    if len(values) == 1:
        return f"{column} = {sql.param(values[0])}::{sql_type}"
    return f"{column} = ANY({sql.param(list(values))}::{sql_type}[])"


def participation(sql: SqlBuilder, organisations: tuple[UUID, ...] | str, roles: tuple[str, ...]) -> str:
    """Ids of incidents with a participant among ``organisations`` (ids, or one SQL expression)
    in one of ``roles`` (any role when empty)."""
    conditions = []
    if isinstance(organisations, str):
        conditions.append(f"p.organisation_id = {organisations}")
    elif organisations:
        conditions.append(f"p.organisation_id = ANY({sql.param(list(organisations))}::uuid[])")
    if roles:
        conditions.append(f"p.role = ANY({sql.param(list(roles))}::text[])")
    return f"SELECT p.incident_id FROM incident_participants p WHERE {' AND '.join(conditions)}"


def _countries(values: list[str] | None) -> tuple[str, ...]:
    for value in values or ():
        if not _COUNTRY.fullmatch(value):  # `$` alone would let "PK\n" through
            raise InvalidParameter("country", f"{value!r} is not an ISO 3166-1 alpha-2 code (e.g. PK)")
    return tuple(values or ())


def _labels(name: str, values: list[str] | None) -> tuple[str, ...]:
    for value in values or ():
        if not 1 <= len(value) <= 200 or "\x00" in value:
            raise InvalidParameter(name, "each value must be 1–200 characters")
    return tuple(values or ())


def _build(
    occurred_after: dt.date | None,
    occurred_before: dt.date | None,
    country: list[str] | None,
    admin1: list[str] | None,
    type_: list[IncidentType] | None,
    organisation: list[UUID] | None,
    role: list[ParticipantRole] | None,
    min_killed: int | None,
    bbox: str | None,
    q: str | None,
    updated_after: str | None,
) -> IncidentFilters:
    check_range("occurred_after", occurred_after, "occurred_before", occurred_before)
    return IncidentFilters(
        occurred_after=occurred_after,
        occurred_before=occurred_before,
        country=_countries(country),
        admin1=_labels("admin1", admin1),
        type=tuple(type_ or ()),
        organisation=tuple(organisation or ()),
        role=tuple(role or ()),
        min_killed=min_killed,
        bbox=parse_bbox(bbox),
        q=q,
        updated_after=instant("updated_after", updated_after),
    )


def provide_incident_filters(
    occurred_after: OccurredAfter = None,
    occurred_before: OccurredBefore = None,
    country: Countries = None,
    admin1: Admin1s = None,
    type: Types = None,  # the documented parameter name
    organisation: Organisations = None,
    role: Roles = None,
    min_killed: MinKilled = None,
    bbox: Bbox = None,
    q: SearchText = None,
    updated_after: UpdatedAfter = None,
) -> IncidentFilters:
    """Every incident filter. Repeated parameters mean OR; different parameters, AND."""
    return _build(
        occurred_after,
        occurred_before,
        country,
        admin1,
        type,
        organisation,
        role,
        min_killed,
        bbox,
        q,
        updated_after,
    )


def provide_organisation_incident_filters(
    occurred_after: OccurredAfter = None,
    occurred_before: OccurredBefore = None,
    country: Countries = None,
    admin1: Admin1s = None,
    type: Types = None,  # the documented parameter name
    role: Roles = None,
    min_killed: MinKilled = None,
    bbox: Bbox = None,
    q: SearchText = None,
    updated_after: UpdatedAfter = None,
) -> IncidentFilters:
    """The filters of ``/v1/organisations/{id}/incidents``: the organisation is the path's;
    ``role`` is its role."""
    return _build(
        occurred_after,
        occurred_before,
        country,
        admin1,
        type,
        None,
        role,
        min_killed,
        bbox,
        q,
        updated_after,
    )
