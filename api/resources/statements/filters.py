"""Filters of statement lists (and of ``/v1/organisations/{id}/statements``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from litestar.params import QueryParameter

from secevents.schemas.statements import StatementForm, StatementRole
from secevents.server.reads.filters import SearchText, SqlBuilder, UpdatedAfter, check_range, instant

IssuedAfter = Annotated[
    dt.date | None,
    QueryParameter(description="Only statements whose issued span starts on or after this date"),
]
IssuedBefore = Annotated[
    dt.date | None,
    QueryParameter(description="Only statements whose issued span starts on or before this date"),
]
Forms = Annotated[list[StatementForm] | None, QueryParameter(description="Form; repeat for any of several")]
Roles = Annotated[
    list[StatementRole] | None,
    QueryParameter(
        description="…as issuer, addressee or mentioned in a claim (with `organisation`, or alone)"
    ),
]


@dataclass(frozen=True, slots=True)
class StatementFilters:
    issued_after: dt.date | None = None
    issued_before: dt.date | None = None
    form: tuple[str, ...] = ()
    organisation: tuple[UUID, ...] = ()
    role: tuple[str, ...] = ()
    q: str | None = None
    updated_after: dt.datetime | None = None

    def apply(self, sql: SqlBuilder) -> None:
        """Add the conditions on ``statements s`` (live records only)."""
        sql.where("s.deleted_at IS NULL")
        if self.issued_after is not None:
            sql.where(f"s.issued_start >= {sql.param(self.issued_after)}")
        if self.issued_before is not None:
            sql.where(f"s.issued_start <= {sql.param(self.issued_before)}")
        if self.form:
            sql.where(f"s.form = ANY({sql.param(list(self.form))}::text[])")
        if self.organisation or self.role:
            sql.where(f"s.id IN ({involvement(sql, self.organisation, self.role)})")
        if self.q is not None:
            query = f"websearch_to_tsquery('english'::regconfig, {sql.param(self.q)})"
            sql.where(
                f"""s.id IN (SELECT t.id FROM statements t WHERE t.search @@ {query}
                     UNION SELECT c.statement_id FROM statement_claims c
                            WHERE to_tsvector('english'::regconfig, c.text) @@ {query}
                     UNION SELECT c.statement_id FROM citations c
                            WHERE c.statement_id IS NOT NULL
                              AND to_tsvector('english'::regconfig, c.quote) @@ {query})"""
            )
        if self.updated_after is not None:
            sql.where(f"s.updated_at > {sql.param(self.updated_after)}")


def involvement(sql: SqlBuilder, organisations: tuple[UUID, ...] | str, roles: tuple[str, ...]) -> str:
    """Ids of statements involving one of ``organisations`` (ids, or one SQL expression) in one
    of ``roles`` (any when empty)."""
    conditions = []
    if isinstance(organisations, str):
        conditions.append(f"so.organisation_id = {organisations}")
    elif organisations:
        conditions.append(f"so.organisation_id = ANY({sql.param(list(organisations))}::uuid[])")
    if roles:
        conditions.append(f"so.role = ANY({sql.param(list(roles))}::text[])")
    return f"SELECT so.statement_id FROM statement_organisations so WHERE {' AND '.join(conditions)}"


def _build(
    issued_after: dt.date | None,
    issued_before: dt.date | None,
    form: list[StatementForm] | None,
    organisation: list[UUID] | None,
    role: list[StatementRole] | None,
    q: str | None,
    updated_after: str | None,
) -> StatementFilters:
    check_range("issued_after", issued_after, "issued_before", issued_before)
    return StatementFilters(
        issued_after=issued_after,
        issued_before=issued_before,
        form=tuple(form or ()),
        organisation=tuple(organisation or ()),
        role=tuple(role or ()),
        q=q,
        updated_after=instant("updated_after", updated_after),
    )


def provide_statement_filters(
    issued_after: IssuedAfter = None,
    issued_before: IssuedBefore = None,
    form: Forms = None,
    organisation: Annotated[
        list[UUID] | None,
        QueryParameter(description="Only statements involving this organisation; repeat for any of several"),
    ] = None,
    role: Roles = None,
    q: SearchText = None,
    updated_after: UpdatedAfter = None,
) -> StatementFilters:
    """Statement filters. ``q`` searches titles, summaries, claims and quotes."""
    return _build(issued_after, issued_before, form, organisation, role, q, updated_after)


def provide_organisation_statement_filters(
    issued_after: IssuedAfter = None,
    issued_before: IssuedBefore = None,
    form: Forms = None,
    role: Roles = None,
    q: SearchText = None,
    updated_after: UpdatedAfter = None,
) -> StatementFilters:
    """The filters of ``/v1/organisations/{id}/statements``; ``role`` is the organisation's."""
    return _build(issued_after, issued_before, form, None, role, q, updated_after)
