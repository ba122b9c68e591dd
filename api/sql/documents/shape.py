"""Small pieces every document shares: estimates, date spans, citations, external ids.

Each function turns column values into the Struct of ``schemas/`` that the API documents, so a
document's shape is written once, by those Structs.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec

from secevents.schemas.common import Citation, DateSpan, Estimate

_external_ids = msgspec.json.Decoder(dict[str, str])


def estimate(low: int | None, best: int | None, high: int | None) -> Estimate | None:
    """No bound known is ``null``, not an empty estimate."""
    if low is None and best is None and high is None:
        return None
    return Estimate(low=low, best=best, high=high)


def bounds(e: Estimate | None) -> tuple[int | None, int | None, int | None]:
    """An estimate's (low, best, high), as its columns hold it: the inverse of :func:`estimate`."""
    return (None, None, None) if e is None else (e.low, e.best, e.high)


def span(start: dt.date | None, end: dt.date | None, precision: str | None) -> DateSpan | None:
    if start is None or end is None or precision is None:
        return None
    return DateSpan(start=start, end=end, precision=precision)  # type: ignore[arg-type]  # CHECKed in SQL


def citations(rows: list[Any] | None) -> list[Citation]:
    """``(source_id, quote)`` rows, in order."""
    return [Citation(source_id=c[0], quote=c[1]) for c in rows or ()]


def external_ids(value: bytes | str | dict[str, str] | None) -> dict[str, str]:
    """A ``jsonb`` object (bytes with the server's codec), keys sorted: ``jsonb`` keeps no order
    of its own, so a document written from a request and one read back from the table agree."""
    if value is None:
        return {}
    ids = value if isinstance(value, dict) else _external_ids.decode(value)
    return dict(sorted(ids.items()))


def number(value: Decimal | float | int) -> int | float:
    """A ``numeric`` as JSON writes numbers: integral values without a fraction (1450000)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
