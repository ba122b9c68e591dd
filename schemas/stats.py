"""Aggregates: incident counts and summed casualty estimates per group."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from msgspec import field

from secevents.schemas.common import Base, Estimate

StatsKey = Literal["month", "year", "country", "admin1", "type", "organisation"]


class IncidentStatsGroup(Base, kw_only=True):
    """One group. Only the keys grouped by are present: ``month`` ("2023-12"), ``year``,
    ``country``, ``admin1``, ``type``, or ``organisation_id`` with ``organisation_name``.
    ``killed``/``injured`` sum each bound over the group's incidents that give it (``null``
    when none does)."""

    month: str | None = None
    year: int | None = None
    country: str | None = None
    admin1: str | None = None
    type: str | None = None
    organisation_id: UUID | None = None
    organisation_name: str | None = None
    incidents: int
    killed: Estimate = field(default_factory=Estimate)
    injured: Estimate = field(default_factory=Estimate)


class IncidentStats(Base, kw_only=True):
    group_by: list[StatsKey]
    data: list[IncidentStatsGroup]
