"""Sources: the documents records are drawn from, optionally with their full text."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

from msgspec import UNSET, Meta, UnsetType, field

from secevents.schemas.common import NO_NUL, Base, ExternalIds, Label, RequestBase, ShortText

SourceKind = Literal["news_article", "official_document", "report", "dataset"]
# Explicit ranges, not `\s`: regex engines disagree on which control characters are spaces,
# and the spec's pattern must mean the same to every client as to the server.
Url = Annotated[str, Meta(max_length=2000, pattern=r"^https?://[^\x00-\x20\x7f]+$")]
Language = Annotated[str, Meta(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", examples=["en"])]
SourceText = Annotated[str, Meta(min_length=1, max_length=1_000_000, pattern=NO_NUL)]
# An instant with its UTC offset (RFC 3339 `date-time`): a naive time would be read in the
# database session's time zone. `tz=True` is also what makes msgspec document the format.
Instant = Annotated[dt.datetime, Meta(tz=True)]
Licence = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9.+-]{1,64}$",
        examples=["CC-BY-4.0"],
        description="SPDX licence identifier of the source's terms",
    ),
]
Attribution = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=5000,
        pattern=NO_NUL,
        description="The credit and citation the licence asks for; exports repeat it",
    ),
]


class Source(Base, kw_only=True):
    id: UUID
    version: int
    kind: SourceKind
    title: str
    url: str | None = None
    publisher: str | None = None
    published_on: dt.date | None = None
    retrieved_at: dt.datetime
    language: str | None = None
    text: str | None = None
    sha256: str | None = None
    external_ids: dict[str, str] = field(default_factory=dict)
    # Left out of a document when not set (unset, not null), so the documents of sources without
    # a licence, stored before these fields existed, are still what their records render.
    licence: str | UnsetType = UNSET
    """SPDX licence identifier (``CC-BY-4.0``), when the source's terms ask something of reusers."""
    attribution: str | UnsetType = UNSET
    """The credit and citation the licence asks for (every export repeats it)."""
    created_at: dt.datetime
    updated_at: dt.datetime


class SourceCreate(RequestBase, kw_only=True):
    kind: SourceKind
    title: ShortText
    url: Url | None = None
    publisher: Label | None = None
    published_on: dt.date | None = None
    retrieved_at: Instant | None = None
    language: Language | None = None
    text: SourceText | None = None
    external_ids: ExternalIds = field(default_factory=dict)
    licence: Licence | None = None
    attribution: Attribution | None = None


class SourcePatch(RequestBase, kw_only=True):
    kind: SourceKind | UnsetType = UNSET
    title: ShortText | UnsetType = UNSET
    url: Url | UnsetType | None = UNSET
    publisher: Label | UnsetType | None = UNSET
    published_on: dt.date | UnsetType | None = UNSET
    retrieved_at: Instant | UnsetType = UNSET
    language: Language | UnsetType | None = UNSET
    text: SourceText | UnsetType | None = UNSET
    external_ids: ExternalIds | UnsetType = UNSET
    licence: Licence | UnsetType | None = UNSET
    attribution: Attribution | UnsetType | None = UNSET


class SourcePage(Base, kw_only=True):
    data: list[Source]
    next_cursor: str | None = None
