"""Bulk importers: UCDP GED CSV files and NDJSON in the API's own shapes.

Both load through COPY into temporary staging tables, check everything there, then move the
rows into the real tables with ``INSERT … SELECT`` and write one revision per record (the change
feed sees imports). Each file (or request) is one transaction: all of it or none of it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import asyncpg

# Errors reported per import: enough to fix a file, not so many that a wrong file floods the
# terminal or the response.
MAX_REPORTED_ERRORS = 100

# Settings for the import's transaction. The checks' correlated subqueries get huge cost
# estimates that trip JIT compilation: on a 50,000-row import compiling took 1.3 s of the
# checks' 1.4 s, running them 0.1 s. Not by `jit = off`: asyncpg, introspecting a type inside the
# transaction, reads `jit`, turns it off for the session and "restores" the value it read, so a
# transaction-local `off` outlived the transaction on that connection.
#
# `work_mem`: the writes join and sort staging tables of tens of megabytes (the incidents carry
# their documents); at the default 4 MB those spill to disk.
BULK_SETTINGS = "SET LOCAL jit_above_cost = -1; SET LOCAL work_mem = '64MB'"

# Statistics target for analysing the staging tables. Their checks and joins need the tables'
# sizes and rough distinct counts, which a 3,000-row sample gives; the default target samples
# 30,000 rows, which took 0.3 s of a 50,000-incident import.
STAGING_STATISTICS_TARGET = 10


async def analyse_staging(conn: asyncpg.Connection, statement: str) -> None:
    """Run ``statement`` (an ``ANALYZE`` of staging tables) with the small sample of
    :data:`STAGING_STATISTICS_TARGET`, then put the setting back for the rest of the
    transaction: an ``--exclusive`` import analyses the real tables at the end."""
    previous = await conn.fetchval("SHOW default_statistics_target")
    await conn.execute(f"SET LOCAL default_statistics_target = {STAGING_STATISTICS_TARGET}")
    await conn.execute(statement)
    await conn.execute("SELECT set_config('default_statistics_target', $1, true)", previous)


@dataclass(frozen=True, slots=True)
class LineError:
    """Something wrong on one line of the input (1-based physical line number)."""

    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f": {self.field}" if self.field else "")
        return f"{where}: {self.message}"


class ImportFailed(Exception):
    """The input was refused; nothing was written. ``errors`` lists what is wrong, by line."""

    def __init__(self, message: str, errors: list[LineError] | None = None, total_errors: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self.total_errors = max(total_errors, len(self.errors))

    def __str__(self) -> str:
        lines = [self.message, *(f"  {e}" for e in self.errors)]
        if self.total_errors > len(self.errors):
            lines.append(f"  … and {self.total_errors - len(self.errors)} more")
        return "\n".join(lines)


def not_utf8(raw: bytes) -> str:
    """What is wrong with a line that is not valid UTF-8: the first bad byte and its column."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
    return "not valid UTF-8"


class UnknownLayout(ImportFailed):
    """The file is not in a layout the importer knows."""


@dataclass(slots=True)
class ErrorLog:
    """Collects line errors, keeping the first :data:`MAX_REPORTED_ERRORS` and a total count."""

    errors: list[LineError] = field(default_factory=list)
    total: int = 0

    def add(self, error: LineError) -> None:
        self.total += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)

    def __bool__(self) -> bool:
        return self.total > 0


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector for a command-line import.

    An import allocates millions of short-lived objects (Structs, rows, documents) and no
    reference cycles, yet each of the collector's passes walks every live object: on a
    200,000-row NDJSON import the passes took 4 of 22 seconds. Only the ``secevents import``
    commands pause it — a server process keeps collecting for its other requests. Restored on
    exit, whatever happens.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
