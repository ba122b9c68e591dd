"""Incidents: something that happened, where, when, who took part, and how many were hurt."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

from msgspec import UNSET, Meta, UnsetType, field

from secevents.schemas.common import (
    Base,
    Citation,
    CitationIn,
    CountryCode,
    DateSpan,
    DateSpanIn,
    Estimate,
    EstimateIn,
    ExternalIds,
    Label,
    LongText,
    RequestBase,
    ShortText,
)

IncidentType = Literal[
    "battle",
    "explosion_remote_violence",
    "violence_against_civilians",
    "riot",
    "protest",
    "strategic_development",
]
LocationPrecision = Literal["exact", "near", "admin2", "admin1", "country"]
ParticipantRole = Literal["perpetrator", "claimed_by", "suspected", "target", "responder"]
CasualtyGroup = Literal["security_forces", "civilians", "militants", "unknown"]
Latitude = Annotated[float, Meta(ge=-90, le=90)]
Longitude = Annotated[float, Meta(ge=-180, le=180)]
Subtype = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]


class Location(Base, kw_only=True):
    country: str
    admin1: str | None = None
    admin2: str | None = None
    place: str | None = None
    lat: float | None = None
    lon: float | None = None
    precision: LocationPrecision


class LocationIn(Location, RequestBase, kw_only=True):
    country: CountryCode
    admin1: Label | None = None
    admin2: Label | None = None
    place: Label | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None

    def __post_init__(self) -> None:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("`lat` and `lon` must be given together")


class Participant(Base, kw_only=True):
    organisation_id: UUID
    name: str = ""
    role: ParticipantRole


class ParticipantIn(RequestBase, kw_only=True):
    organisation_id: UUID
    role: ParticipantRole


class CasualtyBreakdown(Base, kw_only=True):
    group: CasualtyGroup
    killed: Estimate | None = None
    injured: Estimate | None = None


class CasualtyBreakdownIn(CasualtyBreakdown, RequestBase, kw_only=True):
    killed: EstimateIn | None = None
    injured: EstimateIn | None = None


class Casualties(Base, kw_only=True):
    killed: Estimate | None = None
    injured: Estimate | None = None
    breakdown: list[CasualtyBreakdown] = field(default_factory=list)


class CasualtiesIn(RequestBase, kw_only=True):
    killed: EstimateIn | None = None
    injured: EstimateIn | None = None
    breakdown: Annotated[list[CasualtyBreakdownIn], Meta(max_length=4)] = field(default_factory=list)

    def __post_init__(self) -> None:
        groups = [b.group for b in self.breakdown]
        if len(groups) != len(set(groups)):
            raise ValueError("each casualty group may appear once in `breakdown`")


class Incident(Base, kw_only=True):
    """An incident as the API returns it."""

    id: UUID
    version: int
    title: str
    summary: str | None = None
    type: IncidentType
    subtype: str | None = None
    occurred: DateSpan
    location: Location
    participants: list[Participant] = field(default_factory=list)
    casualties: Casualties = field(default_factory=Casualties)
    external_ids: dict[str, str] = field(default_factory=dict)
    citations: list[Citation] = field(default_factory=list)
    created_at: dt.datetime
    updated_at: dt.datetime


Participants = Annotated[list[ParticipantIn], Meta(max_length=100)]
Citations = Annotated[list[CitationIn], Meta(min_length=1, max_length=50)]


class IncidentCreate(RequestBase, kw_only=True):
    """A new incident. At least one citation: every record says where it came from."""

    title: ShortText
    summary: LongText | None = None
    type: IncidentType
    subtype: Subtype | None = None
    occurred: DateSpanIn
    location: LocationIn
    participants: Participants = field(default_factory=list)
    casualties: CasualtiesIn = field(default_factory=CasualtiesIn)
    external_ids: ExternalIds = field(default_factory=dict)
    citations: Citations


class IncidentPatch(RequestBase, kw_only=True):
    """A partial update: an absent field is unchanged, ``null`` clears it, lists are replaced whole."""

    title: ShortText | UnsetType = UNSET
    summary: LongText | UnsetType | None = UNSET
    type: IncidentType | UnsetType = UNSET
    subtype: Subtype | UnsetType | None = UNSET
    occurred: DateSpanIn | UnsetType = UNSET
    location: LocationIn | UnsetType = UNSET
    participants: Participants | UnsetType = UNSET
    casualties: CasualtiesIn | UnsetType = UNSET
    external_ids: ExternalIds | UnsetType = UNSET
    citations: Citations | UnsetType = UNSET


class IncidentPage(Base, kw_only=True):
    data: list[Incident]
    next_cursor: str | None = None
