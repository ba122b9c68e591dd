"""Building blocks shared by every record: the base Structs, date spans, estimates, citations.

Response Structs accept unknown fields (an older SDK keeps working when v1 adds a field);
request Structs (``*Create``, ``*Patch`` and the ``*In`` parts) forbid them. Every field added
within v1 gets a default.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

__all__ = [
    "INT4_MAX",
    "UUID",
    "Base",
    "Citation",
    "CitationIn",
    "Count",
    "CountryCode",
    "DatePrecision",
    "DateSpan",
    "DateSpanIn",
    "Estimate",
    "EstimateIn",
    "ExternalIds",
    "Label",
    "LongText",
    "RequestBase",
    "ShortText",
]

INT4_MAX = 2_147_483_647
"""Largest value a PostgreSQL ``integer`` column holds: every count is bounded by it."""

# PostgreSQL text cannot hold NUL; rejecting it here keeps it from ever reaching the database.
NO_NUL = r"^[^\x00]*$"
ShortText = Annotated[str, Meta(min_length=1, max_length=500, pattern=NO_NUL)]
Label = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
LongText = Annotated[str, Meta(min_length=1, max_length=20_000, pattern=NO_NUL)]
Quote = Annotated[str, Meta(min_length=1, max_length=5_000, pattern=NO_NUL)]
CountryCode = Annotated[
    str, Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code", examples=["PK"])
]
Count = Annotated[int, Meta(ge=0, le=INT4_MAX)]
ExternalIds = dict[
    Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")],
    Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)],
]
DatePrecision = Literal["day", "week", "month", "year"]


class Base(msgspec.Struct, kw_only=True):
    """Base of every Struct: keyword-only, snake_case as written."""


class RequestBase(Base, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are an error, not silently dropped."""


class DateSpan(Base, kw_only=True):
    """A span of dates and how precisely it is known: "Dec 12" is a day, "in November 2022" a
    month (start and end cover the whole month), "March 2017" a month, "2023" a year."""

    start: dt.date
    end: dt.date
    precision: DatePrecision


class DateSpanIn(DateSpan, RequestBase, kw_only=True):
    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("`end` must not be before `start`")


class Estimate(Base, kw_only=True):
    """An uncertain count: "at least 23" is ``low=23``; "more than 30" is ``low=31``."""

    low: int | None = None
    best: int | None = None
    high: int | None = None


class EstimateIn(Estimate, RequestBase, kw_only=True):
    low: Count | None = None
    best: Count | None = None
    high: Count | None = None

    def __post_init__(self) -> None:
        # Pairwise rather than sorting a list: this runs for every estimate of a bulk import.
        low, best, high = self.low, self.best, self.high
        if (
            (low is not None and best is not None and low > best)
            or (best is not None and high is not None and best > high)
            or (low is not None and high is not None and low > high)
        ):
            raise ValueError("estimate must satisfy low <= best <= high where given")


class Citation(Base, kw_only=True):
    """The exact excerpt of a source that supports a record."""

    source_id: UUID
    quote: str


class CitationIn(Citation, RequestBase, kw_only=True):
    quote: Quote
