"""Bulk import (``POST /v1/imports``, ``secevents import ndjson``) and exports.

An import is NDJSON: one JSON object per line, ``{"type": "<record type>", "record": {…}}``,
where ``record`` is the record in the API's own shape — the body ``POST /v1/<resource>`` takes —
validated by the same Structs. It may also carry the read-only fields of the record as
``GET`` returns it, which is exactly what ``GET /v1/exports/{resource}?format=ndjson`` writes,
so an export imports as is:

- ``id``, ``version``, ``created_at``, ``updated_at`` are kept (the record keeps its identity
  and history stamps when moved between databases); without ``id`` a new one is assigned;
- ``participants[].name``, ``relationships[].name``, ``organisations`` (statements) and
  ``sha256`` (sources) are derived by the server and ignored.

Records may refer to records earlier or later in the same import, or already stored. Every
import is all-or-nothing; errors name the line: ``line 3: citations[0].source_id``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

from msgspec import Meta, field

from secevents.schemas.common import INT4_MAX, Base, RequestBase
from secevents.schemas.incidents import IncidentCreate, ParticipantIn
from secevents.schemas.organisations import OrganisationCreate, RelationshipIn
from secevents.schemas.sources import SourceCreate
from secevents.schemas.statements import StatementCreate, StatementOrganisation

Version = Annotated[int, Meta(ge=1, le=INT4_MAX)]


class ParticipantImport(ParticipantIn, kw_only=True):
    name: str | None = None
    """Ignored: the organisation's current name is shown on read."""


class RelationshipImport(RelationshipIn, kw_only=True):
    name: str | None = None
    """Ignored: the related organisation's current name is shown on read."""


class SourceImport(SourceCreate, kw_only=True):
    id: UUID | None = None
    version: Version | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    sha256: str | None = None
    """Ignored: computed from ``text``."""


# The read shape's items (with `name`) in place of the create shape's: msgspec needs the concrete
# list type, which mypy sees as an incompatible override of an invariant `list`.
class OrganisationImport(OrganisationCreate, kw_only=True):
    relationships: Annotated[list[RelationshipImport], Meta(max_length=100)] = field(default_factory=list)  # type: ignore[assignment]
    id: UUID | None = None
    version: Version | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class IncidentImport(IncidentCreate, kw_only=True):
    participants: Annotated[list[ParticipantImport], Meta(max_length=100)] = field(default_factory=list)  # type: ignore[assignment]
    id: UUID | None = None
    version: Version | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class StatementImport(StatementCreate, kw_only=True):
    organisations: list[StatementOrganisation] = field(default_factory=list)
    """Ignored: derived from issuer, addressee and claims."""
    id: UUID | None = None
    version: Version | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class SourceLine(RequestBase, tag_field="type", tag="source", kw_only=True):
    record: SourceImport


class OrganisationLine(RequestBase, tag_field="type", tag="organisation", kw_only=True):
    record: OrganisationImport


class IncidentLine(RequestBase, tag_field="type", tag="incident", kw_only=True):
    record: IncidentImport


class StatementLine(RequestBase, tag_field="type", tag="statement", kw_only=True):
    record: StatementImport


class ExportCompleteLine(RequestBase, tag_field="type", tag="export_complete", kw_only=True):
    """The last line of a complete NDJSON export: ``count`` records came before it (since the
    previous such line, when exports are concatenated). An import checks the count."""

    count: Annotated[int, Meta(ge=0)]


class AttributionLine(RequestBase, tag_field="type", tag="attribution", kw_only=True):
    """A line of an NDJSON export before its records: a licensed source and the credit its
    licence asks for (whoever republishes the records must give it). An import skips it."""

    source_id: UUID
    title: str
    licence: str
    attribution: str


ImportLine = (
    SourceLine | OrganisationLine | IncidentLine | StatementLine | ExportCompleteLine | AttributionLine
)
"""One line of an NDJSON import (and of an NDJSON export)."""


class SkippedRecord(Base, kw_only=True):
    """A record of the import that was not applied: the stored one is newer."""

    type: str
    id: UUID
    line: int
    """The line of the import it is on."""
    version: int
    """Its version in the import."""
    stored_version: int
    """The version stored, which stays."""


class ImportResult(Base, kw_only=True):
    """What an import did, by record type. A record whose id is stored is applied by version: a
    newer one in the import updates the stored record, the same version leaves it unchanged, an
    older one is skipped (counted in ``skipped`` and listed in ``skipped_records``)."""

    lines: int
    """Lines read (blank lines included)."""
    created: dict[str, int] = field(default_factory=dict)
    """Records created, by type."""
    updated: dict[str, int] = field(default_factory=dict)
    """Stored records updated (the import has a newer version), by type."""
    unchanged: dict[str, int] = field(default_factory=dict)
    """Records stored at the same version, left as they are, by type."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Records older than the stored ones, not applied, by type."""
    skipped_records: list[SkippedRecord] = field(default_factory=list)
    """The skipped records, in line order (the first 100)."""


ExportFormat = Literal["ndjson", "csv", "geojson", "stix"]
