"""The resource descriptor: what one resource declares about itself, once.

Each ``resources/<r>/__init__.py`` builds its :class:`Resource`; ``resources/__init__.py`` lists
them in ``ALL``. The app (routes, tags), revisions, exports and the change feed loop over that
list, so adding a resource is one folder and one line (docs/DESIGN.md, "Adding a resource").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar import Controller
from litestar.openapi.spec import Tag

from secevents.schemas.records import RecordType
from secevents.server.sql.records import RecordTable
from secevents.server.writes.flows import WriteModel


@dataclass(frozen=True, slots=True)
class Resource:
    collection: str
    """The URL segment (``/v1/<collection>``), the OpenAPI tag and the export's name."""
    description: str
    """The tag's description in the OpenAPI document."""
    record: RecordTable
    controller: type[Controller]
    writes: WriteModel[Any, Any]
    export_columns: tuple[tuple[str, str], ...]
    """CSV columns of the export: (header, dotted path in the document)."""
    filters: type[Any]
    """The list filters (``filters.py``): also the filters of the export."""
    provide_filters: Callable[..., Any]
    """The dependency that reads :attr:`filters` from the query string."""
    export_formats: tuple[str, ...] = ("ndjson", "csv", "stix")

    @property
    def record_type(self) -> RecordType:
        return self.record.record_type

    @property
    def tag(self) -> Tag:
        return Tag(name=self.collection, description=self.description)


def csv_columns(*paths: str) -> tuple[tuple[str, str], ...]:
    """CSV columns named after dotted document paths (``occurred.start`` → ``occurred_start``;
    ``casualties.breakdown.[group=civilians].killed.best`` → ``casualties_civilians_killed_best``:
    the element of a list whose ``group`` is ``civilians``)."""
    return tuple((_header(p), p) for p in paths)


def _header(path: str) -> str:
    steps = [s[1:-1].partition("=")[2] if s.startswith("[") else s for s in path.split(".")]
    if (
        "[" in path and "breakdown" in steps
    ):  # casualties_breakdown_civilians_… says no more than casualties_civilians_…
        steps.remove("breakdown")
    return "_".join(steps)


def breakdown_columns(*groups: str) -> tuple[str, ...]:
    """The casualty breakdown as columns: killed and injured (low, best, high) per group."""
    return tuple(
        f"casualties.breakdown.[group={g}].{what}.{bound}"
        for g in groups
        for what in ("killed", "injured")
        for bound in ("low", "best", "high")
    )
