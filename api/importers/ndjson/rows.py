"""NDJSON lines → validated records staged in batches (no SQL beyond the staging tables' shape)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from secevents.schemas.common import Citation
from secevents.schemas.imports import (
    ImportLine,
    IncidentImport,
    OrganisationImport,
    SourceImport,
    StatementImport,
)
from secevents.server.importers import LineError
from secevents.server.importers.ndjson.sql import TABLE_COLUMNS
from secevents.server.sql.documents import incidents as incident_documents
from secevents.server.sql.documents.shape import bounds

BATCH_ROWS = 5_000
MAX_LINE_BYTES = 4 * 1_048_576
_decoder = msgspec.json.Decoder(ImportLine)
_json = msgspec.json.encode


class ImportDocuments:
    """Renders the documents of the incidents being imported while they are parsed (the rows
    written later say the same: :func:`incident_documents.from_import`).

    A document names each participant's organisation: names come from the organisations of the
    same import (:meth:`add_name`) and, batch by batch, from the database (:meth:`resolve`,
    which locks them like every renderer does). An incident whose organisation is not known yet
    (it comes later in the file, or does not exist: the import's checks report that) gets no
    document here; it is rendered from its rows once they are written.
    """

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self._names: dict[UUID, str] = {}
        self._looked_up: set[UUID] = set()
        self._encode = msgspec.json.Encoder().encode

    def add_name(self, organisation_id: UUID, name: str) -> None:
        self._names[organisation_id] = name

    async def resolve(self, conn: asyncpg.Connection, incidents: Iterable[IncidentImport]) -> None:
        """Look up, in one query, the organisations of ``incidents`` not named yet."""
        wanted = {
            p.organisation_id
            for r in incidents
            for p in r.participants
            if p.organisation_id not in self._names and p.organisation_id not in self._looked_up
        }
        if not wanted:
            return
        self._looked_up |= wanted
        rows = await conn.fetch(
            "SELECT id, name FROM organisations WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL"
            " ORDER BY id FOR SHARE",
            list(wanted),
        )
        for row in rows:
            self._names[row["id"]] = row["name"]

    def render(self, r: IncidentImport) -> bytes | None:
        document = incident_documents.from_import(r, self._names, self.now)
        return None if document is None else self._encode(document)


@dataclass(slots=True)
class _Batches:
    """Rows waiting to be COPYed, per staging table; incidents wait with their records, whose
    documents are rendered when the batch is flushed."""

    docs: ImportDocuments
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t in TABLE_COLUMNS})
    incidents: list[tuple[tuple[Any, ...], IncidentImport]] = field(default_factory=list)
    records: int = 0
    staged: int = 0
    columns: dict[str, list[str]] = field(default_factory=dict)

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows[table].append(row)

    def count_record(self) -> bool:
        """Count one more staged record; True when the batch is full. Records, not rows, are
        counted: each record has a bounded number of rows (participants, citations…)."""
        self.records += 1
        self.staged += 1
        return self.records >= BATCH_ROWS

    async def flush(self, conn: asyncpg.Connection) -> None:
        self.records = 0
        if self.incidents:
            await self.docs.resolve(conn, (r for _, r in self.incidents))
            render = self.docs.render
            self.rows["nd_incidents"] = [(*row, render(r)) for row, r in self.incidents]
            self.incidents.clear()
        for table, rows in self.rows.items():
            if rows:
                await conn.copy_records_to_table(
                    table, records=rows, columns=await self._columns(conn, table)
                )
                rows.clear()

    async def _columns(self, conn: asyncpg.Connection, table: str) -> list[str]:
        """The columns a batch fills: the first :data:`TABLE_COLUMNS` of the table's (read for
        every staging table at once, on the first batch)."""
        if not self.columns:
            for row in await conn.fetch(
                "SELECT attrelid::regclass::text AS name, array_agg(attname ORDER BY attnum) AS columns"
                "  FROM pg_attribute WHERE attrelid = ANY($1::regclass[]) AND attnum > 0 AND NOT attisdropped"
                " GROUP BY attrelid",
                list(TABLE_COLUMNS),
            ):
                self.columns[row["name"]] = list(row["columns"][: TABLE_COLUMNS[row["name"]]])
        return self.columns[table]


def _cite(batches: _Batches, line: int, prefix: str, citations: Iterable[Citation]) -> None:
    for k, c in enumerate(citations):
        batches.add("nd_refs", (line, f"{prefix}citations[{k}].source_id", "source", c.source_id, c.quote))


def _owned_citations(
    batches: _Batches, line: int, owner_type: str, owner_id: UUID, citations: Iterable[Citation]
) -> None:
    for k, c in enumerate(citations, start=1):
        batches.add("nd_citations", (line, owner_type, owner_id, k, c.source_id, c.quote))


def _ref(batches: _Batches, line: int, field_name: str, target_type: str, target_id: UUID) -> None:
    batches.add("nd_refs", (line, field_name, target_type, target_id, None))


def _stage_source(b: _Batches, line: int, r: SourceImport) -> None:
    b.add(
        "nd_sources",
        (line, r.id, r.kind, r.title, r.url, r.publisher, r.published_on, r.retrieved_at, r.language,
         r.text, _json(r.external_ids), r.licence, r.attribution, r.version, r.created_at, r.updated_at),
    )  # fmt: skip


def _stage_organisation(b: _Batches, line: int, r: OrganisationImport) -> None:
    assert r.id is not None
    b.add(
        "nd_organisations",
        (line, r.id, r.name, r.kind, r.country, r.status, r.description, _json(r.external_ids),
         r.version, r.created_at, r.updated_at),
    )  # fmt: skip
    b.docs.add_name(r.id, r.name)
    for k, alias in enumerate(r.aliases, start=1):
        b.add("nd_aliases", (line, r.id, k, alias))
    for k, rel in enumerate(r.relationships, start=1):
        cites = [{"source_id": c.source_id, "quote": c.quote} for c in rel.citations]
        b.add(
            "nd_relationships",
            (line, r.id, k, rel.type, rel.organisation_id, rel.since, rel.until, _json(cites)),
        )
        _ref(b, line, f"relationships[{k - 1}].organisation_id", "organisation", rel.organisation_id)
        _cite(b, line, f"relationships[{k - 1}].", rel.citations)
    _owned_citations(b, line, "organisation", r.id, r.citations)


def _stage_incident(b: _Batches, line: int, r: IncidentImport) -> None:
    assert r.id is not None
    loc, cas = r.location, r.casualties
    b.incidents.append((
        (line, r.id, r.title, r.summary, r.type, r.subtype, r.occurred.start, r.occurred.end,
         r.occurred.precision, loc.country, loc.admin1, loc.admin2, loc.place, loc.lat, loc.lon,
         loc.precision, *bounds(cas.killed), *bounds(cas.injured), _json(r.external_ids),
         r.version, r.created_at, r.updated_at),
        r,
    ))  # fmt: skip
    for k, p in enumerate(r.participants, start=1):
        b.add("nd_participants", (line, r.id, k, p.organisation_id, p.role))
    for k, g in enumerate(cas.breakdown, start=1):
        b.add("nd_casualties", (line, r.id, k, g.group, *bounds(g.killed), *bounds(g.injured)))
    _owned_citations(b, line, "incident", r.id, r.citations)


def _stage_statement(b: _Batches, line: int, r: StatementImport) -> None:
    assert r.id is not None
    b.add("nd_statements", (line, r.id, _json(r), r.version, r.created_at, r.updated_at))
    _ref(b, line, "issuer_id", "organisation", r.issuer_id)
    if r.addressed_to_id is not None:
        _ref(b, line, "addressed_to_id", "organisation", r.addressed_to_id)
    for k, claim in enumerate(r.claims):
        for j, org in enumerate(claim.organisation_ids):
            _ref(b, line, f"claims[{k}].organisation_ids[{j}]", "organisation", org)
        _cite(b, line, f"claims[{k}].", claim.citations)
    for k, figure in enumerate(r.figures):
        _cite(b, line, f"figures[{k}].", figure.citations)
    for k, incident_id in enumerate(r.related_incident_ids):
        _ref(b, line, f"related_incident_ids[{k}]", "incident", incident_id)
    _cite(b, line, "", r.citations)


_STAGERS: dict[type, Callable[[_Batches, int, Any], None]] = {
    SourceImport: _stage_source,
    OrganisationImport: _stage_organisation,
    IncidentImport: _stage_incident,
    StatementImport: _stage_statement,
}


def _validation_error(line: int, exc: msgspec.ValidationError) -> LineError:
    """``Expected `int`, got `str` - at `$.record.casualties.killed.low``` → a field and a message."""
    message, _, where = str(exc).partition(" - at `")
    path = where.rstrip("`")
    if path.startswith("$.record."):
        path = path.removeprefix("$.record.")
    else:
        path = path.removeprefix("$").removeprefix(".")
    return LineError(line, path or None, message)
