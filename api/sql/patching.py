"""Helpers for PATCH SQL: the columns a partial update sets, and the one UPDATE that sets them.

Column names always come from the code (each resource's ``update``), never from the request;
values are parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard, TypeVar
from uuid import UUID

import asyncpg
import msgspec

from secevents.schemas.common import DateSpanIn, EstimateIn
from secevents.server.sql.records import as_json

T = TypeVar("T")


def is_set(value: T | msgspec.UnsetType) -> TypeGuard[T]:
    """Whether a PATCH field was given (``None`` counts: it clears the field)."""
    return value is not msgspec.UNSET


def plain(columns: dict[str, Any], data: msgspec.Struct, *names: str) -> None:
    """Copy the fields that are set (``None`` included: it clears) to same-named columns."""
    for name in names:
        value = getattr(data, name)
        if is_set(value):
            columns[name] = value


def external_ids(columns: dict[str, Any], data: msgspec.Struct) -> None:
    value = getattr(data, "external_ids", msgspec.UNSET)
    if is_set(value):
        columns["external_ids"] = as_json(value)


def span(columns: dict[str, Any], prefix: str, value: DateSpanIn | None) -> None:
    columns[f"{prefix}_start"] = value.start if value else None
    columns[f"{prefix}_end"] = value.end if value else None
    columns[f"{prefix}_precision"] = value.precision if value else None


def estimate(columns: dict[str, Any], prefix: str, value: EstimateIn | None) -> None:
    columns[f"{prefix}_low"] = value.low if value else None
    columns[f"{prefix}_best"] = value.best if value else None
    columns[f"{prefix}_high"] = value.high if value else None


async def update_row(
    conn: asyncpg.Connection, table: str, record_id: UUID, columns: Mapping[str, Any]
) -> None:
    """Set ``columns`` and move the record to its next version (also when only nested lists
    changed: the version is the record's, not the row's)."""
    assignments = [f'"{name}" = ${i}' for i, name in enumerate(columns, start=2)]
    assignments += ["version = version + 1", "updated_at = now()"]
    await conn.execute(
        f"UPDATE {table} SET {', '.join(assignments)} WHERE id = $1", record_id, *columns.values()
    )
