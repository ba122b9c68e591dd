"""NDJSON import of records in the API's own shapes (see :mod:`schemas.imports`).

One pass over the input: each line is validated by the same Structs as the API, turned into
rows and COPYed in batches into temporary staging tables (memory stays flat in input size).
Then SQL checks what a Struct cannot — references to records in the file or the database,
quotes against source texts, ids and unique external ids already taken, country codes — and
reports each problem by line. Only when nothing is wrong are the rows moved into the real
tables with ``INSERT … SELECT`` and one revision per record written. Incidents' revision
documents are rendered in Python batch by batch (:class:`documents.IncidentDocuments`) and
staged with the rows, so the database only stores them.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from uuid import UUID

import asyncpg
import msgspec
from uuid_utils.compat import uuid7

from api.importers import BULK_SETTINGS, ErrorLog, ImportFailed, LineError, documents
from api.importers.exclusive import indexes_rebuilt as exclusive_load
from api.resources.statements import queries as statements
from schemas.common import Citation, Estimate
from schemas.imports import (
    ImportLine,
    ImportResult,
    IncidentImport,
    OrganisationImport,
    SourceImport,
    StatementImport,
)

BATCH_ROWS = 5_000
MAX_LINE_BYTES = 4 * 1_048_576
_decoder = msgspec.json.Decoder(ImportLine)
_json = msgspec.json.encode

STAGING = """
CREATE TEMP TABLE nd_sources (
  line integer, id uuid, kind text, title text, url text, publisher text, published_on date,
  retrieved_at timestamptz, language text, text text, external_ids jsonb, version integer,
  created_at timestamptz, updated_at timestamptz) ON COMMIT DROP;
CREATE TEMP TABLE nd_organisations (
  line integer, id uuid, name text, kind text, country text, status text, description text,
  external_ids jsonb, version integer, created_at timestamptz, updated_at timestamptz) ON COMMIT DROP;
CREATE TEMP TABLE nd_aliases (line integer, organisation_id uuid, ordinal integer, alias text) ON COMMIT DROP;
CREATE TEMP TABLE nd_relationships (
  line integer, organisation_id uuid, ordinal integer, type text, related_organisation_id uuid,
  since date, until date, citations jsonb) ON COMMIT DROP;
CREATE TEMP TABLE nd_incidents (
  line integer, id uuid, title text, summary text, type text, subtype text, occurred_start date,
  occurred_end date, occurred_precision text, country text, admin1 text, admin2 text, place text,
  lat double precision, lon double precision, location_precision text, killed_low integer,
  killed_best integer, killed_high integer, injured_low integer, injured_best integer,
  injured_high integer, external_ids jsonb, version integer, created_at timestamptz,
  updated_at timestamptz, doc json) ON COMMIT DROP;
CREATE TEMP TABLE nd_participants (
  line integer, incident_id uuid, ordinal integer, organisation_id uuid, role text) ON COMMIT DROP;
CREATE TEMP TABLE nd_casualties (
  line integer, incident_id uuid, ordinal integer, "group" text, killed_low integer, killed_best integer,
  killed_high integer, injured_low integer, injured_best integer, injured_high integer) ON COMMIT DROP;
CREATE TEMP TABLE nd_citations (
  line integer, owner_type text, owner_id uuid, ordinal integer, source_id uuid, quote text) ON COMMIT DROP;
CREATE TEMP TABLE nd_statements (
  line integer, id uuid, record jsonb, version integer, created_at timestamptz, updated_at timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE nd_refs (
  line integer, field text, target_type text, target_id uuid, quote text) ON COMMIT DROP
"""

# Each check yields (line, field, message); all of them run before anything is written.
# References: those of participants and owned citations are read from their staging tables (most
# of a file's references: not copying them twice saves a row per reference); the rarer ones of
# relationships and statements are listed in nd_refs.
CHECKS = """
WITH refs AS (
  SELECT line, field, target_type, target_id, quote FROM nd_refs
  UNION ALL
  SELECT line, 'participants[' || (ordinal - 1) || '].organisation_id', 'organisation', organisation_id, NULL
    FROM nd_participants
  UNION ALL
  SELECT line, 'citations[' || (ordinal - 1) || '].source_id', 'source', source_id, quote FROM nd_citations
)
SELECT r.line, r.field, 'no such ' || r.target_type
  FROM refs r
 WHERE NOT CASE r.target_type
   WHEN 'source' THEN EXISTS (SELECT 1 FROM sources s WHERE s.id = r.target_id)
                   OR EXISTS (SELECT 1 FROM nd_sources s WHERE s.id = r.target_id)
   WHEN 'organisation' THEN EXISTS (SELECT 1 FROM organisations o WHERE o.id = r.target_id)
                   OR EXISTS (SELECT 1 FROM nd_organisations o WHERE o.id = r.target_id)
   WHEN 'incident' THEN EXISTS (SELECT 1 FROM incidents i WHERE i.id = r.target_id)
                   OR EXISTS (SELECT 1 FROM nd_incidents i WHERE i.id = r.target_id)
   END
UNION ALL
SELECT r.line, regexp_replace(r.field, 'source_id$', 'quote'), 'quote not found in the text of the source'
  FROM refs r
  LEFT JOIN nd_sources n ON n.id = r.target_id
  LEFT JOIN sources s ON s.id = r.target_id
 WHERE r.target_type = 'source' AND r.quote IS NOT NULL
   AND coalesce(n.text, s.text) IS NOT NULL AND strpos(coalesce(n.text, s.text), r.quote) = 0
UNION ALL
SELECT n.line, 'id', 'a record with this id already exists'
  FROM (SELECT line, id FROM nd_sources WHERE EXISTS (SELECT 1 FROM sources t WHERE t.id = nd_sources.id)
        UNION ALL
        SELECT line, id FROM nd_organisations WHERE EXISTS (SELECT 1 FROM organisations t WHERE t.id = nd_organisations.id)
        UNION ALL
        SELECT line, id FROM nd_incidents WHERE EXISTS (SELECT 1 FROM incidents t WHERE t.id = nd_incidents.id)
        UNION ALL
        SELECT line, id FROM nd_statements WHERE EXISTS (SELECT 1 FROM statements t WHERE t.id = nd_statements.id)
       ) n
UNION ALL
SELECT line, 'id', 'the same id is on line ' || first_line
  FROM (SELECT line, min(line) OVER (PARTITION BY id) AS first_line
          FROM (SELECT line, id FROM nd_sources UNION ALL SELECT line, id FROM nd_organisations
                UNION ALL SELECT line, id FROM nd_incidents UNION ALL SELECT line, id FROM nd_statements) a) d
 WHERE line <> first_line
UNION ALL
SELECT line, 'location.country', 'unknown country code ' || country
  FROM nd_incidents n WHERE NOT EXISTS (SELECT 1 FROM countries c WHERE c.code = n.country)
UNION ALL
SELECT line, 'country', 'unknown country code ' || country
  FROM nd_organisations n
 WHERE country IS NOT NULL AND NOT EXISTS (SELECT 1 FROM countries c WHERE c.code = n.country)
UNION ALL
SELECT line, 'url', 'another source has this url'
  FROM nd_sources n
 WHERE url IS NOT NULL
   AND (EXISTS (SELECT 1 FROM sources s WHERE s.url = n.url AND s.deleted_at IS NULL)
        OR EXISTS (SELECT 1 FROM nd_sources m WHERE m.url = n.url AND m.line < n.line))
UNION ALL
SELECT line, 'external_ids.ucdp_ged_id', 'another incident has this ucdp_ged_id'
  FROM nd_incidents n
 WHERE n.external_ids ? 'ucdp_ged_id'
   AND (EXISTS (SELECT 1 FROM incidents i WHERE i.external_ids ? 'ucdp_ged_id'
                   AND i.external_ids->>'ucdp_ged_id' = n.external_ids->>'ucdp_ged_id')
        OR EXISTS (SELECT 1 FROM nd_incidents m WHERE m.line < n.line AND m.external_ids ? 'ucdp_ged_id'
                   AND m.external_ids->>'ucdp_ged_id' = n.external_ids->>'ucdp_ged_id'))
UNION ALL
SELECT line, 'external_ids.ucdp_actor_id', 'another organisation has this ucdp_actor_id'
  FROM nd_organisations n
 WHERE n.external_ids ? 'ucdp_actor_id'
   AND (EXISTS (SELECT 1 FROM organisations o WHERE o.external_ids ? 'ucdp_actor_id'
                   AND o.external_ids->>'ucdp_actor_id' = n.external_ids->>'ucdp_actor_id')
        OR EXISTS (SELECT 1 FROM nd_organisations m WHERE m.line < n.line AND m.external_ids ? 'ucdp_actor_id'
                   AND m.external_ids->>'ucdp_actor_id' = n.external_ids->>'ucdp_actor_id'))
UNION ALL
SELECT line, 'relationships[' || (ordinal - 1) || '].organisation_id', 'an organisation cannot relate to itself'
  FROM nd_relationships WHERE organisation_id = related_organisation_id
ORDER BY 1, 2
LIMIT 101
"""

_STAMPS = "coalesce(version, 1), coalesce(created_at, now()), coalesce(updated_at, created_at, now())"

WRITE = f"""
INSERT INTO sources (id, kind, title, url, publisher, published_on, retrieved_at, language, text,
                     external_ids, version, created_at, updated_at)
SELECT id, kind, title, url, publisher, published_on, coalesce(retrieved_at, now()), language, text,
       external_ids, {_STAMPS}
  FROM nd_sources ORDER BY line;
INSERT INTO organisations (id, name, kind, country, status, description, external_ids, version, created_at, updated_at)
SELECT id, name, kind, country, status, description, external_ids, {_STAMPS}
  FROM nd_organisations ORDER BY line;
INSERT INTO organisation_aliases (organisation_id, ordinal, alias)
SELECT organisation_id, ordinal, alias FROM nd_aliases;
WITH r AS (
  INSERT INTO organisation_relationships (organisation_id, ordinal, type, related_organisation_id, since, until)
  SELECT organisation_id, ordinal, type, related_organisation_id, since, until
    FROM nd_relationships ORDER BY line, ordinal
  RETURNING id, organisation_id, ordinal
)
INSERT INTO citations (relationship_id, ordinal, source_id, quote)
SELECT r.id, c.ord, (c.e->>'source_id')::uuid, c.e->>'quote'
  FROM r JOIN nd_relationships n ON n.organisation_id = r.organisation_id AND n.ordinal = r.ordinal,
       jsonb_array_elements(n.citations) WITH ORDINALITY AS c(e, ord);
INSERT INTO incidents (id, title, summary, type, subtype, occurred_start, occurred_end, occurred_precision,
                       country, admin1, admin2, place, lat, lon, location_precision,
                       killed_low, killed_best, killed_high, injured_low, injured_best, injured_high,
                       external_ids, version, created_at, updated_at)
SELECT id, title, summary, type, subtype, occurred_start, occurred_end, occurred_precision,
       country, admin1, admin2, place, lat, lon, location_precision,
       killed_low, killed_best, killed_high, injured_low, injured_best, injured_high,
       external_ids, {_STAMPS}
  FROM nd_incidents ORDER BY line;
INSERT INTO incident_participants (incident_id, ordinal, organisation_id, role)
SELECT incident_id, ordinal, organisation_id, role FROM nd_participants;
INSERT INTO incident_casualties (incident_id, ordinal, "group", killed_low, killed_best, killed_high,
                                 injured_low, injured_best, injured_high)
SELECT incident_id, ordinal, "group", killed_low, killed_best, killed_high, injured_low, injured_best, injured_high
  FROM nd_casualties;
INSERT INTO citations (incident_id, organisation_id, ordinal, source_id, quote)
SELECT CASE WHEN owner_type = 'incident' THEN owner_id END,
       CASE WHEN owner_type = 'organisation' THEN owner_id END, ordinal, source_id, quote
  FROM nd_citations
"""

# Statements have nested claims and figures with citations of their own: few per import, so
# they go through the resource's own insert, one statement each.
STAMP_STATEMENTS = """
UPDATE statements s
   SET version = coalesce(n.version, 1), created_at = coalesce(n.created_at, s.created_at),
       updated_at = coalesce(n.updated_at, n.created_at, s.updated_at)
  FROM nd_statements n WHERE n.id = s.id
"""

# Incidents are most of a bulk import: their documents were rendered in Python while parsing,
# except those naming an organisation that was not known yet, rendered here set-based
# (api/importers/documents.py).
_LATE_DOCUMENTS = documents.incident_documents_sql(
    "SELECT id, line AS ord, 'create' AS operation FROM nd_incidents WHERE doc IS NULL"
)
_INCIDENT_REVISIONS = f"""
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT 'incident', n.id, coalesce(n.version, 1), 'create', coalesce(n.doc, d.doc), $1, $2
  FROM nd_incidents n LEFT JOIN ({_LATE_DOCUMENTS}) d ON d.id = n.id
 ORDER BY n.line"""
REVISIONS = f"""
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT 'source', r.id, r.version, 'create', source_doc(r), $1, $2
  FROM nd_sources n JOIN sources r ON r.id = n.id ORDER BY n.line;
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT 'organisation', r.id, r.version, 'create', organisation_doc(r), $1, $2
  FROM nd_organisations n JOIN organisations r ON r.id = n.id ORDER BY n.line;
{_INCIDENT_REVISIONS};
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT 'statement', r.id, r.version, 'create', statement_doc(r), $1, $2
  FROM nd_statements n JOIN statements r ON r.id = n.id ORDER BY n.line
"""
REVISION_STATEMENTS = [s for s in REVISIONS.split(";") if s.strip()]

COUNTS = """
SELECT (SELECT count(*) FROM nd_sources), (SELECT count(*) FROM nd_organisations),
       (SELECT count(*) FROM nd_incidents), (SELECT count(*) FROM nd_statements)
"""

TABLE_COLUMNS: dict[str, int] = {
    "nd_sources": 14,
    "nd_organisations": 11,
    "nd_aliases": 4,
    "nd_relationships": 8,
    "nd_incidents": 27,
    "nd_participants": 5,
    "nd_casualties": 10,
    "nd_citations": 6,
    "nd_statements": 6,
    "nd_refs": 5,
}

# Temporary tables have no statistics until analysed: without them the checks' anti-joins are
# planned for a handful of rows. Incidents only on the columns the checks read: analysing the
# documents too would take as long as the checks.
ANALYZE_STAGING = "ANALYZE " + ", ".join(
    "nd_incidents (line, id, country, external_ids)" if t == "nd_incidents" else t for t in TABLE_COLUMNS
)


def _estimate(e: Estimate | None) -> tuple[int | None, int | None, int | None]:
    return (None, None, None) if e is None else (e.low, e.best, e.high)


@dataclass(slots=True)
class _Batches:
    """Rows waiting to be COPYed, per staging table; incidents wait with their records, whose
    documents are rendered when the batch is flushed."""

    docs: documents.IncidentDocuments
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t in TABLE_COLUMNS})
    incidents: list[tuple[tuple[Any, ...], IncidentImport]] = field(default_factory=list)
    records: int = 0

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows[table].append(row)

    def count_record(self) -> bool:
        """Count one more staged record; True when the batch is full. Records, not rows, are
        counted: each record has a bounded number of rows (participants, citations…)."""
        self.records += 1
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
                await conn.copy_records_to_table(table, records=rows)
                rows.clear()


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
         r.text, _json(r.external_ids), r.version, r.created_at, r.updated_at),
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
         loc.precision, *_estimate(cas.killed), *_estimate(cas.injured), _json(r.external_ids),
         r.version, r.created_at, r.updated_at),
        r,
    ))  # fmt: skip
    for k, p in enumerate(r.participants, start=1):
        b.add("nd_participants", (line, r.id, k, p.organisation_id, p.role))
    for k, g in enumerate(cas.breakdown, start=1):
        b.add("nd_casualties", (line, r.id, k, g.group, *_estimate(g.killed), *_estimate(g.injured)))
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


async def file_chunks(f: BinaryIO, progress: Callable[[int], None] | None = None) -> AsyncIterator[bytes]:
    done = 0
    while chunk := f.read(1 << 20):
        done += len(chunk)
        if progress is not None:
            progress(done)
        yield chunk


async def _lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """Numbered lines (1-based) of a stream of byte chunks; a line longer than
    :data:`MAX_LINE_BYTES` is an error rather than a memory hog."""
    pending = b""
    number = 0
    async for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            number += 1
            yield number, raw
        if len(pending) > MAX_LINE_BYTES:
            raise ImportFailed(
                "line too long", [LineError(number + 1, None, f"longer than {MAX_LINE_BYTES} bytes")]
            )
    if pending:
        yield number + 1, pending


async def import_lines(
    conn: asyncpg.Connection,
    chunks: AsyncIterable[bytes],
    *,
    actor: str,
    api_key_id: UUID | None = None,
    exclusive: bool = False,
) -> ImportResult:
    """Import NDJSON from ``chunks`` in one transaction; :class:`ImportFailed` (nothing
    written) lists the problems by line. ``conn`` needs the codecs of ``api.db.init_connection``.

    ``exclusive``: write with the bulk tables locked and their indexes rebuilt after the load
    (see :mod:`api.importers.exclusive`)."""
    errors = ErrorLog()
    lines = 0
    async with conn.transaction():
        await conn.execute(BULK_SETTINGS)
        await conn.execute(STAGING)
        batches = _Batches(documents.IncidentDocuments(await conn.fetchval("SELECT now()")))
        async for number, raw in _lines(chunks):
            lines = number
            if not raw.strip():
                continue
            try:
                record = _decoder.decode(raw).record
            except msgspec.ValidationError as exc:
                errors.add(_validation_error(number, exc))
                continue
            except msgspec.DecodeError as exc:
                errors.add(LineError(number, None, f"not valid JSON: {exc}"))
                continue
            if errors:
                continue  # keep validating, stop staging: nothing will be written
            if record.id is None:
                record.id = uuid7()
            _STAGERS[type(record)](batches, number, record)
            if batches.count_record():
                await batches.flush(conn)
        if not errors:
            await batches.flush(conn)
            await conn.execute(ANALYZE_STAGING)
            for row in await conn.fetch(CHECKS):
                errors.add(LineError(row[0], row[1], row[2]))
        if errors:
            raise ImportFailed(
                f"{errors.total} problem(s) found; nothing was imported", errors.errors, errors.total
            )
        async with exclusive_load(conn) if exclusive else nullcontext():
            await conn.execute(WRITE)
            await _write_statements(conn)
            for statement in REVISION_STATEMENTS:
                await conn.execute(statement, api_key_id, actor)
        sources, organisations, incidents, statement_count = await conn.fetchrow(COUNTS)
    created = {
        "source": sources,
        "organisation": organisations,
        "incident": incidents,
        "statement": statement_count,
    }
    return ImportResult(lines=lines, created={k: v for k, v in created.items() if v})


async def _write_statements(conn: asyncpg.Connection) -> None:
    for row in await conn.fetch("SELECT id, record FROM nd_statements ORDER BY line"):
        await statements.insert(conn, row["id"], msgspec.json.decode(row["record"], type=StatementImport))
    await conn.execute(STAMP_STATEMENTS)
