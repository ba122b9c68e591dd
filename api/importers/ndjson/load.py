"""An NDJSON import, step by step: read lines, stage batches, check, write, record revisions."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import nullcontext
from typing import BinaryIO
from uuid import UUID

import asyncpg
import msgspec
from uuid_utils.compat import uuid7

from secevents.schemas.imports import (
    AttributionLine,
    ExportCompleteLine,
    ImportResult,
    SkippedRecord,
    StatementImport,
)
from secevents.server.importers import (
    BULK_SETTINGS,
    MAX_REPORTED_ERRORS,
    ErrorLog,
    ImportFailed,
    LineError,
    analyse_staging,
    not_utf8,
)
from secevents.server.importers.exclusive import indexes_rebuilt as exclusive_load
from secevents.server.importers.ndjson.rows import (
    _STAGERS,
    MAX_LINE_BYTES,
    ImportDocuments,
    _Batches,
    _decoder,
    _validation_error,
)
from secevents.server.importers.ndjson.sql import (
    ANALYZE_STAGING,
    CHECKS,
    INSERT_ROWS,
    OUTCOMES,
    RECORD_TABLES,
    REFERENCES,
    RESOLVE,
    REVISION_STATEMENTS,
    REWRITE_UPDATED,
    STAGING,
    STAMP_STATEMENTS,
    STATEMENTS_TO_WRITE,
    STORED_LATER,
    WRITE_RECORDS,
)
from secevents.server.importers.progress import Phases
from secevents.server.importers.references import foreign_keys_held
from secevents.server.resources.statements import queries as statements
from secevents.server.sql import documents


async def file_chunks(f: BinaryIO, progress: Callable[[int], None] | None = None) -> AsyncIterator[bytes]:
    done = 0
    while chunk := f.read(1 << 20):
        yield chunk
        # Reported once the chunk is handled (validated and staged), not when it was read.
        done += len(chunk)
        if progress is not None:
            progress(done)


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
    phases: Phases | None = None,
) -> ImportResult:
    """Import NDJSON from ``chunks`` in one transaction; :class:`ImportFailed` (nothing
    written) lists the problems by line. ``conn`` needs the codecs of ``secevents.server.db.init_connection``.

    A record whose id is stored is applied by version (:class:`ImportResult` says how each went).
    ``exclusive``: write with the bulk tables locked and their indexes rebuilt after the load
    (see :mod:`secevents.server.importers.exclusive`). ``phases`` hears the progress."""
    phases = phases or Phases()
    async with conn.transaction():
        await conn.execute(BULK_SETTINGS)
        await conn.execute(STAGING)
        batches = _Batches(ImportDocuments(await conn.fetchval("SELECT now()")))
        with phases.phase("read") as read:
            lines, errors = await _stage(conn, chunks, batches)
            read.rows = batches.staged
        if errors:
            raise _failed(errors)
        with phases.phase("check", read.rows):
            await analyse_staging(conn, ANALYZE_STAGING)
            await conn.execute(RESOLVE)
            for row in await conn.fetch(CHECKS):
                errors.add(LineError(row[0], row[1], row[2]))
        if errors:
            raise _failed(errors)
        result = await _outcomes(conn, lines)
        written = sum(result.created.values()) + sum(result.updated.values())
        async with exclusive_load(conn, phases=phases) if exclusive else nullcontext():
            with phases.phase("write", written):
                await conn.execute(WRITE_RECORDS)
                if any(result.updated.values()):
                    await conn.execute(REWRITE_UPDATED)
                async with foreign_keys_held(conn, REFERENCES):
                    await conn.execute(INSERT_ROWS)
                await _write_statements(conn)
            with phases.phase("documents") as rendered:
                rendered.rows = await _store_documents(conn)
            with phases.phase("revisions", written):
                for statement in REVISION_STATEMENTS:
                    await conn.execute(statement, api_key_id, actor)
    return result


async def _stage(
    conn: asyncpg.Connection, chunks: AsyncIterable[bytes], batches: _Batches
) -> tuple[int, ErrorLog]:
    """Validate every line and stage the records in batches (staging stops at the first error,
    validation goes on, to report every problem); the lines read and the errors."""
    errors = ErrorLog()
    lines = 0
    records_since_trailer = 0
    async for number, raw in _lines(chunks):
        lines = number
        if not raw.strip():
            continue
        try:
            line = _decoder.decode(raw)
        except msgspec.ValidationError as exc:
            errors.add(_validation_error(number, exc))
            continue
        except msgspec.DecodeError as exc:
            errors.add(LineError(number, None, f"not valid JSON: {exc}"))
            continue
        except UnicodeDecodeError:
            errors.add(LineError(number, None, not_utf8(raw)))
            continue
        if isinstance(line, AttributionLine):
            continue  # credit for the reader; the source itself is a record of the file
        if isinstance(line, ExportCompleteLine):
            if line.count != records_since_trailer:
                errors.add(LineError(number, "count", _incomplete(line.count, records_since_trailer)))
            records_since_trailer = 0
            continue
        records_since_trailer += 1
        record = line.record
        if errors:
            continue  # keep validating, stop staging: nothing will be written
        if record.id is None:
            record.id = uuid7()
        _STAGERS[type(record)](batches, number, record)
        if batches.count_record():
            await batches.flush(conn)
    if not errors:
        await batches.flush(conn)
    return lines, errors


def _failed(errors: ErrorLog) -> ImportFailed:
    return ImportFailed(f"{errors.total} problem(s) found; nothing was imported", errors.errors, errors.total)


_TYPE_ORDER = {record_type: n for n, record_type in enumerate(RECORD_TABLES)}


async def _outcomes(conn: asyncpg.Connection, lines: int) -> ImportResult:
    result = ImportResult(lines=lines)
    by_action = {
        "create": result.created,
        "update": result.updated,
        "unchanged": result.unchanged,
        "older": result.skipped,
    }
    # In the order of RECORD_TABLES (referenced types first), as an export lists them.
    rows = sorted(
        await conn.fetch(OUTCOMES, MAX_REPORTED_ERRORS), key=lambda r: _TYPE_ORDER[r["record_type"]]
    )
    for row in rows:
        by_action[row["action"]][row["record_type"]] = row["count"]
        result.skipped_records += [
            SkippedRecord(type=row["record_type"], line=line, id=id_, version=version, stored_version=stored)
            for line, id_, version, stored in row["older"] or ()
        ]
    result.skipped_records.sort(key=lambda r: r.line)
    del result.skipped_records[MAX_REPORTED_ERRORS:]
    return result


def _incomplete(announced: int, seen: int) -> str:
    return (
        f"the export says {announced} record(s) came before this line, {seen} did: "
        "the file is incomplete or was edited"
    )


async def _store_documents(conn: asyncpg.Connection) -> int:
    """Documents of what the import wrote, rendered from the rows (the incidents whose document
    was rendered while parsing already have it); how many."""
    stored = 0
    for record_type, sql in STORED_LATER.items():
        ids = [r[0] for r in await conn.fetch(sql)]
        if ids:
            await documents.store(conn, record_type, ids)
            stored += len(ids)
    return stored


async def _write_statements(conn: asyncpg.Connection) -> None:
    for row in await conn.fetch(STATEMENTS_TO_WRITE):
        if row["action"] == "update":
            await conn.execute("DELETE FROM statements WHERE id = $1", row["id"])
        await statements.insert(conn, row["id"], msgspec.json.decode(row["record"], type=StatementImport))
    await conn.execute(STAMP_STATEMENTS)
