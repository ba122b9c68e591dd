"""Filters of source lists."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from litestar.params import QueryParameter

from secevents.schemas.sources import SourceKind
from secevents.server.reads.filters import SearchText, SqlBuilder, UpdatedAfter, instant


@dataclass(frozen=True, slots=True)
class SourceFilters:
    kind: tuple[str, ...] = ()
    q: str | None = None
    updated_after: dt.datetime | None = None

    def apply(self, sql: SqlBuilder) -> None:
        """Add the conditions on ``sources s`` (live records only)."""
        sql.where("s.deleted_at IS NULL")
        if self.kind:
            sql.where(f"s.kind = ANY({sql.param(list(self.kind))}::text[])")
        if self.q is not None:
            sql.where(f"s.search @@ websearch_to_tsquery('english'::regconfig, {sql.param(self.q)})")
        if self.updated_after is not None:
            sql.where(f"s.updated_at > {sql.param(self.updated_after)}")


def provide_source_filters(
    kind: Annotated[
        list[SourceKind] | None, QueryParameter(description="Kind; repeat for any of several")
    ] = None,
    q: SearchText = None,
    updated_after: UpdatedAfter = None,
) -> SourceFilters:
    """Source filters. ``q`` searches titles and publishers."""
    return SourceFilters(kind=tuple(kind or ()), q=q, updated_after=instant("updated_after", updated_after))
