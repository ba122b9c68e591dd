"""Organisations: armed groups, government bodies, legislatures, security forces, regulators,
media outlets… as entities with aliases and typed relationships, not strings."""

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
    ExternalIds,
    Label,
    LongText,
    RequestBase,
    ShortText,
)

OrganisationKind = Literal[
    "armed_group",
    "government",
    "government_body",
    "legislature",
    "security_force",
    "regulator",
    "political_party",
    "media_outlet",
    "international_body",
    "other",
]
OrganisationStatus = Literal["active", "banned", "inactive", "dissolved", "unknown"]
RelationshipType = Literal[
    "branch_of",
    "splinter_of",
    "affiliate_of",
    "allied_with",
    "rival_of",
    "part_of",
    "hosted_by",
]


class Relationship(Base, kw_only=True):
    """A typed link from this organisation to another (``this <type> other``)."""

    type: RelationshipType
    organisation_id: UUID
    name: str = ""
    since: dt.date | None = None
    until: dt.date | None = None
    citations: list[Citation] = field(default_factory=list)


class RelationshipIn(RequestBase, kw_only=True):
    type: RelationshipType
    organisation_id: UUID
    since: dt.date | None = None
    until: dt.date | None = None
    citations: Annotated[list[CitationIn], Meta(max_length=50)] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise ValueError("`until` must not be before `since`")


class Organisation(Base, kw_only=True):
    id: UUID
    version: int
    name: str
    aliases: list[str] = field(default_factory=list)
    kind: OrganisationKind
    country: str | None = None
    status: OrganisationStatus = "unknown"
    description: str | None = None
    relationships: list[Relationship] = field(default_factory=list)
    external_ids: dict[str, str] = field(default_factory=dict)
    citations: list[Citation] = field(default_factory=list)
    created_at: dt.datetime
    updated_at: dt.datetime


Aliases = Annotated[list[Label], Meta(max_length=100)]
Relationships = Annotated[list[RelationshipIn], Meta(max_length=100)]
Citations = Annotated[list[CitationIn], Meta(min_length=1, max_length=50)]


def _check_aliases(aliases: list[str]) -> None:
    if len(aliases) != len(set(aliases)):
        raise ValueError("`aliases` must not repeat a value")


class OrganisationCreate(RequestBase, kw_only=True):
    name: ShortText
    aliases: Aliases = field(default_factory=list)
    kind: OrganisationKind
    country: CountryCode | None = None
    status: OrganisationStatus = "unknown"
    description: LongText | None = None
    relationships: Relationships = field(default_factory=list)
    external_ids: ExternalIds = field(default_factory=dict)
    citations: Citations

    def __post_init__(self) -> None:
        _check_aliases(self.aliases)


class OrganisationPatch(RequestBase, kw_only=True):
    name: ShortText | UnsetType = UNSET
    aliases: Aliases | UnsetType = UNSET
    kind: OrganisationKind | UnsetType = UNSET
    country: CountryCode | UnsetType | None = UNSET
    status: OrganisationStatus | UnsetType = UNSET
    description: LongText | UnsetType | None = UNSET
    relationships: Relationships | UnsetType = UNSET
    external_ids: ExternalIds | UnsetType = UNSET
    citations: Citations | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.aliases, UnsetType):
            _check_aliases(self.aliases)


class OrganisationPage(Base, kw_only=True):
    data: list[Organisation]
    next_cursor: str | None = None
