"""Filters of organisation lists."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated

from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import QueryParameter

from secevents.schemas.common import NO_NUL
from secevents.schemas.organisations import OrganisationKind, OrganisationStatus
from secevents.server.http.errors import InvalidParameter
from secevents.server.reads.filters import (
    SEARCH_MAX_LENGTH,
    SqlBuilder,
    UpdatedAfter,
    instant,
    optional_list_of,
)

_COUNTRY = re.compile(r"^[A-Z]{2}$")

NameSearch = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=SEARCH_MAX_LENGTH,
        pattern=NO_NUL,
        description="Name search: names and aliases close to this one, tolerating typos, case and "
        "accents (trigram similarity)",
    ),
]


@dataclass(frozen=True, slots=True)
class OrganisationFilters:
    country: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    q: str | None = None
    updated_after: dt.datetime | None = None

    def apply(self, sql: SqlBuilder) -> None:
        """Add the conditions on ``organisations o`` (live records only)."""
        sql.where("o.deleted_at IS NULL")
        if self.country:
            sql.where(f"o.country = ANY({sql.param(list(self.country))}::bpchar[])")
        if self.kind:
            sql.where(f"o.kind = ANY({sql.param(list(self.kind))}::text[])")
        if self.status:
            sql.where(f"o.status = ANY({sql.param(list(self.status))}::text[])")
        if self.q is not None:
            # Typo-tolerant, case- and accent-insensitive: trigram similarity of the whole name
            # (`%`) or of its closest word run (`<%`), over names and aliases (GIN trigram indexes).
            text = f"fold_name({sql.param(self.q)})"
            sql.where(
                f"""(fold_name(o.name) % {text} OR {text} <% fold_name(o.name)
                     OR o.id IN (SELECT a.organisation_id FROM organisation_aliases a
                                  WHERE fold_name(a.alias) % {text} OR {text} <% fold_name(a.alias)))"""
            )
        if self.updated_after is not None:
            sql.where(f"o.updated_at > {sql.param(self.updated_after)}")


def provide_organisation_filters(
    country: Annotated[
        list[str] | None,
        QueryParameter(
            description="ISO 3166-1 alpha-2 code; repeat for any of several",
            schema_extra=optional_list_of(Schema(type=OpenAPIType.STRING, pattern=_COUNTRY.pattern)),
        ),
    ] = None,
    kind: Annotated[
        list[OrganisationKind] | None, QueryParameter(description="Kind; repeat for any of several")
    ] = None,
    status: Annotated[
        list[OrganisationStatus] | None, QueryParameter(description="Status; repeat for any of several")
    ] = None,
    q: NameSearch = None,
    updated_after: UpdatedAfter = None,
) -> OrganisationFilters:
    """Organisation filters. ``q`` matches names and aliases, tolerating typos, case and accents."""
    for value in country or ():
        if not _COUNTRY.fullmatch(value):  # `$` alone would let "PK\n" through
            raise InvalidParameter("country", f"{value!r} is not an ISO 3166-1 alpha-2 code (e.g. PK)")
    return OrganisationFilters(
        country=tuple(country or ()),
        kind=tuple(kind or ()),
        status=tuple(status or ()),
        q=q,
        updated_after=instant("updated_after", updated_after),
    )
