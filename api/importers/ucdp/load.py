"""A UCDP import, step by step: read and stage the rows, check them, write, record revisions."""

from __future__ import annotations

import io
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from secevents.schemas.incidents import CasualtyBreakdown, ParticipantIn
from secevents.server.importers import (
    BULK_SETTINGS,
    MAX_REPORTED_ERRORS,
    ErrorLog,
    ImportFailed,
    LineError,
    analyse_staging,
)
from secevents.server.importers.exclusive import indexes_rebuilt as exclusive_load
from secevents.server.importers.progress import Phases
from secevents.server.importers.references import foreign_keys_held
from secevents.server.importers.ucdp.rows import (
    CountryResolver,
    RowMapper,
    UcdpSummary,
    _CountingReader,
    iterate_rows,
)
from secevents.server.importers.ucdp.sql import (
    ANALYZE_STAGE,
    COMPARE_INCIDENTS,
    COUNT_ACTIONS,
    COUNTRIES,
    CREATE_ORGANISATIONS,
    CREATE_STAGE,
    CREATED_COLUMNS,
    CREATED_DOCUMENT_ROWS,
    DATASET_SOURCE,
    DUPLICATE_IDS,
    INSERT_CHILD_ROWS,
    LINK_ACTORS_BY_NAME,
    LOCK_NAMED_ORGANISATIONS,
    RESOLVE_INCIDENTS,
    REVISE_INCIDENTS,
    REVISE_ORGANISATIONS,
    REVISE_SOURCE,
    SKIP_OLDER,
    SKIPPED_OLDER,
    UPDATE_INCIDENTS,
    UPDATED_DOCUMENT_ROWS,
    UPSERT_DATASET_SOURCE,
    WRITE_CITATIONS,
)
from secevents.server.importers.ucdp.vocabulary import (
    DATASET_LICENCE,
    DATASET_PUBLISHER,
    DATASET_SOURCE_TITLE,
    DATASET_SOURCE_URL,
    RELEASE,
    STAGE_COLUMNS,
    citation,
    release_from_name,
)
from secevents.server.sql import documents
from secevents.server.sql.documents import incidents as incident_documents
from secevents.server.sql.documents.shape import bounds

_encode = msgspec.json.Encoder().encode


async def import_file(
    conn: asyncpg.Connection,
    path: Path,
    *,
    actor: str = "import:ucdp",
    skip_invalid: bool = False,
    phases: Phases | None = None,
    exclusive: bool = False,
    release: str | None = None,
) -> UcdpSummary:
    """Import one UCDP GED CSV file in one transaction; raise :class:`ImportFailed` (nothing
    written) when the file cannot be read or — unless ``skip_invalid`` — any row is rejected.

    ``release``: the GED release the file is (``25.1``); when None, read from the file's name if
    it says (``GEDEvent_v25_1.csv``). An incident a newer release wrote is skipped, never
    overwritten (nor by a file of unknown release). ``conn`` must have the codecs of
    :func:`secevents.server.db.init_connection`. ``exclusive``: write with the bulk tables locked
    and their indexes rebuilt after the load (:mod:`secevents.server.importers.exclusive`).
    """
    phases = phases or Phases()
    release = release or release_from_name(path.name)
    if release is not None and not RELEASE.match(release):
        raise ImportFailed(f"{path}: release {release!r} is not a UCDP release number (e.g. 25.1)")
    summary = UcdpSummary(path=str(path), release=release)
    mapper = RowMapper(await CountryResolver.load(conn), release)
    errors = ErrorLog()
    async with conn.transaction():
        await conn.execute(BULK_SETTINGS)
        await conn.execute(CREATE_STAGE)
        with phases.phase("read") as read, path.open("rb") as raw:
            stream = io.BufferedReader(_CountingReader(raw, phases.bytes_read), buffer_size=1 << 16)
            rows = iterate_rows(stream, mapper, errors, summary)
            await conn.copy_records_to_table("ucdp_stage", records=rows, columns=STAGE_COLUMNS)
            read.rows = summary.rows_read
        with phases.phase("check", summary.rows_read):
            await _reject_duplicate_ids(conn, errors, summary)
        summary.rejections, summary.repaired = errors.errors, mapper.repaired
        if errors and not skip_invalid:
            raise ImportFailed(
                f"{path}: {summary.rejected} of {summary.rows_read} rows rejected; nothing was imported",
                errors.errors,
                errors.total,
            )
        with phases.phase("match", summary.rows_read):
            await conn.copy_records_to_table(
                "ucdp_actors",
                records=[
                    (a.actor_id, a.name, a.kind, a.country, a.first_line) for a in mapper.actors.values()
                ],
            )
            source_id, source_action = await dataset_source(conn, release)
            linked: list[UUID] = [r["id"] for r in await conn.fetch(LINK_ACTORS_BY_NAME)]
            created: list[UUID] = await conn.fetchval(CREATE_ORGANISATIONS, source_id)
            summary.organisations_linked, summary.organisations_created = len(linked), len(created)
            summary.source_created = source_action == "create"
            await analyse_staging(conn, ANALYZE_STAGE)
            await conn.execute(RESOLVE_INCIDENTS)
            await conn.execute(SKIP_OLDER, release)
            await conn.execute(COMPARE_INCIDENTS, source_id)
        counts = {r["action"]: r["count"] for r in await conn.fetch(COUNT_ACTIONS)}
        written = counts.get("create", 0) + counts.get("update", 0)
        names = {r["id"]: r["name"] for r in await conn.fetch(LOCK_NAMED_ORGANISATIONS)}
        with phases.phase("documents", counts.get("update", 0)):
            await _render_documents(
                conn, source_id, names, UPDATED_DOCUMENT_ROWS, "ucdp_docs", ("line", "doc")
            )
        async with exclusive_load(conn, phases=phases) if exclusive else nullcontext():
            with phases.phase("write", written):
                await conn.execute(UPDATE_INCIDENTS)
                async with foreign_keys_held(conn, [COUNTRIES, DATASET_SOURCE.given(source_id)]):
                    await _render_documents(
                        conn, source_id, names, CREATED_DOCUMENT_ROWS, "incidents", CREATED_COLUMNS
                    )
                    await conn.execute(INSERT_CHILD_ROWS)
                    await conn.execute(WRITE_CITATIONS, source_id)
                # The few records written before their documents could be rendered.
                if source_action is not None:
                    await documents.store(conn, "source", [source_id])
                await documents.store(conn, "organisation", [*linked, *created])
            with phases.phase("revisions", written):
                if source_action is not None:
                    await conn.execute(REVISE_SOURCE, source_id, actor, source_action)
                await conn.execute(REVISE_ORGANISATIONS, [*linked, *created], actor)
                # Analysed before `action` was filled in: again, so the planner knows how many
                # incidents get a revision.
                await analyse_staging(conn, ANALYZE_STAGE)
                await conn.execute(REVISE_INCIDENTS, actor)
        summary.skipped_older_ids = [r[0] for r in await conn.fetch(SKIPPED_OLDER, MAX_REPORTED_ERRORS)]
    summary.created = counts.get("create", 0)
    summary.updated = counts.get("update", 0)
    summary.unchanged = counts.get("unchanged", 0)
    summary.skipped_deleted = counts.get("deleted", 0)
    summary.skipped_older = counts.get("older", 0)
    return summary


async def _render_documents(
    conn: asyncpg.Connection,
    source_id: UUID,
    names: dict[UUID, str],
    rows: str,
    table: str,
    columns: tuple[str, ...],
) -> None:
    """Render the documents of the incidents of ``rows`` (CREATED_DOCUMENT_ROWS or
    UPDATED_DOCUMENT_ROWS) from their staged rows, and COPY ``columns`` of each (the document
    last) into ``table``, page by page: created incidents straight into ``incidents``, written
    once with their document; updated ones into ``ucdp_docs``, which UPDATE_INCIDENTS reads."""
    fields = columns[:-1]
    page: list[tuple[Any, ...]] = []
    # Iterated, not fetched page by page: the iterator closes the cursor at its end, and an open
    # one on `incidents` would keep an --exclusive import from altering the table.
    async for r in conn.cursor(rows, source_id, prefetch=documents.CHUNK):
        page.append((*(r[f] for f in fields), _encode(incident_documents.build(_named(r, names)))))
        if len(page) == documents.CHUNK:
            await conn.copy_records_to_table(table, records=page, columns=columns)
            page.clear()
    if page:
        await conn.copy_records_to_table(table, records=page, columns=columns)


_participants = msgspec.json.Decoder(list[ParticipantIn])
_breakdown = msgspec.json.Decoder(list[CasualtyBreakdown])


def _named(r: asyncpg.Record, names: dict[UUID, str]) -> dict[str, Any]:
    """A row of CREATED_DOCUMENT_ROWS or UPDATED_DOCUMENT_ROWS as :func:`incident_documents.build`
    reads it: participants as (organisation id, name, role), breakdown groups as (group, killed
    low/best/high, injured low/best/high), as the renderer's own query gives them."""
    row = dict(r.items())
    row["participants"] = [
        (p.organisation_id, names[p.organisation_id], p.role) for p in _participants.decode(r["participants"])
    ]
    row["breakdown"] = [
        (g.group, *bounds(g.killed), *bounds(g.injured)) for g in _breakdown.decode(r["breakdown"])
    ]
    return row


async def _reject_duplicate_ids(conn: asyncpg.Connection, errors: ErrorLog, summary: UcdpSummary) -> None:
    """Rows repeating an earlier row's UCDP id are rejected (found in SQL rather than with a set
    of ids in memory, which would grow with the file)."""
    for row in sorted(await conn.fetch(DUPLICATE_IDS), key=lambda r: r["line"]):
        errors.add(
            LineError(row["line"], "id", f"duplicate id {row['ged_id']} (first on line {row['first_line']})")
        )
        summary.rejected += 1


async def dataset_source(conn: asyncpg.Connection, release: str | None) -> tuple[UUID, str | None]:
    """The one ``dataset`` source of UCDP GED, created or brought up to date: its licence, the
    citation UCDP asks for and the newest release imported (an older or unknown release leaves it
    as it is). Its id and what happened to it: ``create``, ``update`` or None."""
    row = await conn.fetchrow(
        UPSERT_DATASET_SOURCE,
        DATASET_SOURCE_TITLE,
        DATASET_SOURCE_URL,
        DATASET_PUBLISHER,
        DATASET_LICENCE,
        citation(release),
        release,
    )
    assert row is not None
    return row["id"], row["action"]
