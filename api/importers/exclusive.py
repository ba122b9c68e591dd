"""Exclusive bulk loads: PostgreSQL's own recipe for loading much data at once.

Keeping a dozen indexes up to date row by row is most of what an import costs: on a 200,000-row
NDJSON import, maintaining the indexes of ``incidents`` (full-text GIN, GiST, ten B-trees) and
checking foreign keys row by row took about three times as long as writing the rows. The
PostgreSQL manual ("Populating a Database") advises to drop indexes and foreign keys before a
large load and to create them again afterwards — building an index from sorted data at once is
much cheaper than inserting into it row by row, and a foreign key added to a full table is
checked with one join. ``pg_restore`` loads that way.

:func:`indexes_rebuilt` does that inside the import's own transaction, so nothing changes for
the all-or-nothing promise: if anything fails (a row, the rebuild, the process), the rollback
restores every index and constraint as it was. The price is the lock: the tables are locked
(``ACCESS EXCLUSIVE``) from the start of the write phase until the import commits, so API reads
and writes of those tables wait meanwhile. That is why it is an option (``--exclusive``) of the
command-line imports only, meant for initial loads and loads that are large next to what the
tables hold (the rebuild costs in proportion to the whole table, not to the rows imported).
Constraint indexes (primary keys, unique constraints) stay: they guard the data during the load.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext

import asyncpg

from secevents.server.importers import ImportFailed
from secevents.server.importers.progress import Phases

# Every table a bulk import writes many rows to. Organisations and sources keep their indexes
# and stay readable (few of them per import); writes to them wait, as to every table the foreign
# keys of these point at.
BULK_TABLES = ("incidents", "incident_participants", "incident_casualties", "citations", "revisions")

# How long to wait for the tables: running API requests finish in well under this.
LOCK_TIMEOUT = "10s"
# Memory for each index build (the session's default, 64 MB, sorts 1M rows on disk).
BUILD_MEMORY = "256MB"

# Indexes that no constraint owns and no foreign key relies on; foreign keys of the tables.
_SECONDARY_INDEXES = """
SELECT pg_get_indexdef(x.indexrelid) AS create, format('DROP INDEX %s', x.indexrelid::regclass) AS drop
  FROM pg_index x
 WHERE x.indrelid = ANY($1::regclass[])
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
 ORDER BY x.indexrelid
"""
_FOREIGN_KEYS = """
SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid)) AS create,
       format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop
  FROM pg_constraint c
 WHERE c.contype = 'f' AND c.conrelid = ANY($1::regclass[])
 ORDER BY c.oid
"""
_REFERENCED_TABLES = """
SELECT coalesce(array_agg(DISTINCT c.confrelid::regclass::text ORDER BY c.confrelid::regclass::text), '{}')
  FROM pg_constraint c
 WHERE c.contype = 'f' AND c.conrelid = ANY($1::regclass[]) AND NOT c.confrelid = ANY($1::regclass[])
"""


@asynccontextmanager
async def indexes_rebuilt(
    conn: asyncpg.Connection,
    tables: Sequence[str] = BULK_TABLES,
    *,
    lock_timeout: str = LOCK_TIMEOUT,
    phases: Phases | None = None,
) -> AsyncIterator[None]:
    """Within a transaction: lock ``tables``, drop their secondary indexes and foreign keys,
    run the body, then build and add them again (and ``ANALYZE``, as after any large load).

    :class:`ImportFailed` when the tables stay busy longer than ``lock_timeout``.
    """
    # Every lock up front, in one order: the tables referenced by the foreign keys are locked
    # against writes (dropping and adding a foreign key needs that), so that no API write can
    # take one of them half-way and deadlock with the import.
    referenced = await conn.fetchval(_REFERENCED_TABLES, list(tables))
    await conn.execute("SELECT set_config('lock_timeout', $1, true)", lock_timeout)
    try:
        await conn.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        if referenced:
            await conn.execute(f"LOCK TABLE {', '.join(referenced)} IN SHARE ROW EXCLUSIVE MODE")
    except asyncpg.LockNotAvailableError as exc:
        raise ImportFailed(
            f"the tables {', '.join(tables)} stayed in use for {lock_timeout}: an exclusive import "
            "needs them to itself; try again when they are idle, or import without --exclusive"
        ) from exc
    await conn.execute("SET LOCAL lock_timeout = 0")
    indexes = await conn.fetch(_SECONDARY_INDEXES, list(tables))
    foreign_keys = await conn.fetch(_FOREIGN_KEYS, list(tables))
    for row in [*foreign_keys, *indexes]:
        await conn.execute(row["drop"])
    yield
    with phases.phase("index") if phases is not None else nullcontext():
        await conn.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
        for row in [*indexes, *foreign_keys]:
            await conn.execute(row["create"])
        await conn.execute(f"ANALYZE {', '.join(tables)}")
