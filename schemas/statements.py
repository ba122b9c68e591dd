"""Statements: something a government body said, with its claims and figures."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

from msgspec import UNSET, Meta, UnsetType, field

from secevents.schemas.common import (
    NO_NUL,
    Base,
    Citation,
    CitationIn,
    DateSpan,
    DateSpanIn,
    ExternalIds,
    Label,
    LongText,
    RequestBase,
    ShortText,
)

StatementForm = Literal[
    "written_reply",
    "press_release",
    "speech",
    "interview",
    "report",
    "social_media",
    "other",
]
StatementRole = Literal["issuer", "addressed_to", "mentioned"]
Topic = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
FigureValue = Annotated[float, Meta(ge=-1e15, le=1e15)]
NestedCitations = Annotated[list[CitationIn], Meta(max_length=20)]


class Claim(Base, kw_only=True):
    text: str
    topics: list[str] = field(default_factory=list)
    organisation_ids: list[UUID] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)


class ClaimIn(RequestBase, kw_only=True):
    text: LongText
    topics: Annotated[list[Topic], Meta(max_length=20)] = field(default_factory=list)
    organisation_ids: Annotated[list[UUID], Meta(max_length=50)] = field(default_factory=list)
    citations: NestedCitations = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.organisation_ids) != len(set(self.organisation_ids)):
            raise ValueError("`organisation_ids` must not repeat an id")


class Figure(Base, kw_only=True):
    """A number the statement gives: "16,522 complaints forwarded … during 2022"."""

    label: str
    value: int | float
    unit: str | None = None
    period: DateSpan | None = None
    citations: list[Citation] = field(default_factory=list)


class FigureIn(RequestBase, kw_only=True):
    label: Label
    value: FigureValue
    unit: Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)] | None = None
    period: DateSpanIn | None = None
    citations: NestedCitations = field(default_factory=list)


class StatementOrganisation(Base, kw_only=True):
    """An organisation a statement involves, inline: its issuer, addressee and those mentioned."""

    organisation_id: UUID
    name: str
    role: StatementRole


class Statement(Base, kw_only=True):
    id: UUID
    version: int
    title: str
    issuer_id: UUID
    addressed_to_id: UUID | None = None
    speaker: str | None = None
    form: StatementForm
    issued: DateSpan
    summary: str | None = None
    claims: list[Claim] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    related_incident_ids: list[UUID] = field(default_factory=list)
    organisations: list[StatementOrganisation] = field(default_factory=list)
    external_ids: dict[str, str] = field(default_factory=dict)
    citations: list[Citation] = field(default_factory=list)
    created_at: dt.datetime
    updated_at: dt.datetime


Claims = Annotated[list[ClaimIn], Meta(max_length=200)]
Figures = Annotated[list[FigureIn], Meta(max_length=200)]
RelatedIncidents = Annotated[list[UUID], Meta(max_length=200)]
Citations = Annotated[list[CitationIn], Meta(min_length=1, max_length=50)]


class StatementCreate(RequestBase, kw_only=True):
    title: ShortText
    issuer_id: UUID
    addressed_to_id: UUID | None = None
    speaker: Label | None = None
    form: StatementForm
    issued: DateSpanIn
    summary: LongText | None = None
    claims: Claims = field(default_factory=list)
    figures: Figures = field(default_factory=list)
    related_incident_ids: RelatedIncidents = field(default_factory=list)
    external_ids: ExternalIds = field(default_factory=dict)
    citations: Citations


class StatementPatch(RequestBase, kw_only=True):
    title: ShortText | UnsetType = UNSET
    issuer_id: UUID | UnsetType = UNSET
    addressed_to_id: UUID | UnsetType | None = UNSET
    speaker: Label | UnsetType | None = UNSET
    form: StatementForm | UnsetType = UNSET
    issued: DateSpanIn | UnsetType = UNSET
    summary: LongText | UnsetType | None = UNSET
    claims: Claims | UnsetType = UNSET
    figures: Figures | UnsetType = UNSET
    related_incident_ids: RelatedIncidents | UnsetType = UNSET
    external_ids: ExternalIds | UnsetType = UNSET
    citations: Citations | UnsetType = UNSET


class StatementPage(Base, kw_only=True):
    data: list[Statement]
    next_cursor: str | None = None
