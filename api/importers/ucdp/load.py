"""A UCDP import, step by step: read and stage the rows, check them, write, record revisions."""

from __future__ import annotations

import io
from contextlib import nullcontext
from pathlib import Path
from uuid import UUID

import asyncpg

from secevents.server.importers import (
    BULK_SETTINGS,
    ErrorLog,
    ImportFailed,
    LineError,
)
from secevents.server.importers.exclusive import indexes_rebuilt as exclusive_load
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
    CREATE_ORGANISATIONS,
    CREATE_STAGE,
    DUPLICATE_IDS,
    LINK_ACTORS_BY_NAME,
    RESOLVE_INCIDENTS,
    REVISE_INCIDENTS,
    REVISE_ORGANISATIONS,
    REVISE_SOURCE,
    UPSERT_DATASET_SOURCE,
    WRITE_CITATIONS,
    WRITE_INCIDENTS,
    WRITTEN_INCIDENTS,
)
from secevents.server.importers.ucdp.vocabulary import (
    DATASET_PUBLISHER,
    DATASET_SOURCE_TITLE,
    DATASET_SOURCE_URL,
    STAGE_COLUMNS,
    Progress,
)
from secevents.server.sql import documents


async def import_file(
    conn: asyncpg.Connection,
    path: Path,
    *,
    actor: str = "import:ucdp",
    skip_invalid: bool = False,
    progress: Progress | None = None,
    exclusive: bool = False,
) -> UcdpSummary:
    """Import one UCDP GED CSV file in one transaction; raise :class:`ImportFailed` (nothing
    written) when the file cannot be read or — unless ``skip_invalid`` — any row is rejected.

    ``conn`` must have the codecs of :func:`secevents.server.db.init_connection`. ``exclusive``: write with
    the bulk tables locked and their indexes rebuilt after the load (:mod:`secevents.server.importers.exclusive`).
    """
    summary = UcdpSummary(path=str(path))
    mapper = RowMapper(await CountryResolver.load(conn))
    errors = ErrorLog()
    async with conn.transaction():
        await conn.execute(BULK_SETTINGS)
        await conn.execute(CREATE_STAGE)
        with path.open("rb") as raw:
            stream = io.BufferedReader(_CountingReader(raw, progress), buffer_size=1 << 16)
            rows = iterate_rows(stream, mapper, errors, summary)
            await conn.copy_records_to_table("ucdp_stage", records=rows, columns=STAGE_COLUMNS)
        await _reject_duplicate_ids(conn, errors, summary)
        summary.rejections, summary.repaired = errors.errors, mapper.repaired
        if errors and not skip_invalid:
            raise ImportFailed(
                f"{path}: {summary.rejected} of {summary.rows_read} rows rejected; nothing was imported",
                errors.errors,
                errors.total,
            )
        await conn.copy_records_to_table(
            "ucdp_actors",
            records=[(a.actor_id, a.name, a.kind, a.country, a.first_line) for a in mapper.actors.values()],
        )
        source_id, summary.source_created = await _dataset_source(conn)
        linked: list[UUID] = [r["id"] for r in await conn.fetch(LINK_ACTORS_BY_NAME)]
        created: list[UUID] = await conn.fetchval(CREATE_ORGANISATIONS, source_id)
        summary.organisations_linked, summary.organisations_created = len(linked), len(created)
        await conn.execute(RESOLVE_INCIDENTS)
        await conn.execute(COMPARE_INCIDENTS, source_id)
        async with exclusive_load(conn) if exclusive else nullcontext():
            await conn.execute(WRITE_INCIDENTS)
            await conn.execute(WRITE_CITATIONS, source_id)
            # Documents: rendered from the rows just written (secevents.server.sql.documents).
            if summary.source_created:
                await documents.store(conn, "source", [source_id])
            await documents.store(conn, "organisation", [*linked, *created])
            await documents.store(conn, "incident", [r[0] for r in await conn.fetch(WRITTEN_INCIDENTS)])
            if summary.source_created:
                await conn.execute(REVISE_SOURCE, source_id, actor)
            await conn.execute(REVISE_ORGANISATIONS, [*linked, *created], actor)
            # Analysed before `action` was filled in: again, so the planner knows how many
            # incidents get a revision.
            await conn.execute(ANALYZE_STAGE)
            await conn.execute(REVISE_INCIDENTS, actor)
        counts = {r["action"]: r["count"] for r in await conn.fetch(COUNT_ACTIONS)}
    summary.created = counts.get("create", 0)
    summary.updated = counts.get("update", 0)
    summary.unchanged = counts.get("unchanged", 0)
    summary.skipped_deleted = counts.get("deleted", 0)
    return summary


async def _reject_duplicate_ids(conn: asyncpg.Connection, errors: ErrorLog, summary: UcdpSummary) -> None:
    """Rows repeating an earlier row's UCDP id are rejected (found in SQL rather than with a set
    of ids in memory, which would grow with the file)."""
    for row in sorted(await conn.fetch(DUPLICATE_IDS), key=lambda r: r["line"]):
        errors.add(
            LineError(row["line"], "id", f"duplicate id {row['ged_id']} (first on line {row['first_line']})")
        )
        summary.rejected += 1


async def _dataset_source(conn: asyncpg.Connection) -> tuple[UUID, bool]:
    row = await conn.fetchrow(
        UPSERT_DATASET_SOURCE, DATASET_SOURCE_TITLE, DATASET_SOURCE_URL, DATASET_PUBLISHER
    )
    assert row is not None
    return row["id"], row["created"]
