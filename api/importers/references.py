"""A bulk import's foreign keys, checked once per referenced row instead of once per inserted row.

PostgreSQL checks a foreign key row by row: every participant, breakdown group and citation an
import inserts runs a lookup of its incident, organisation, source or country and locks the row
it found (``FOR KEY SHARE``), so that nobody deletes it before the insert commits. On a
200,000-incident NDJSON import those checks took 7.2 s of the 16.2 s write phase (PostgreSQL 15,
``bench/results/import_round_trip.md``).

An import knows more than the trigger does. Its child rows point at the records of their own
lines, which the same import writes (and which nobody else sees or can delete before it
commits); what they point at outside the import is a short list of organisations, sources and
countries that the import's checks have already found (a missing one is reported by line). So
:func:`foreign_keys_held` runs the inserts with ``session_replication_role = replica``, which
skips the foreign keys' triggers — and only those: the schema's own triggers are enabled
``ALWAYS`` (migration 0009) — and then does what the skipped triggers would have done, once per
referenced row: it locks every row the inserted rows point at outside the import ``FOR KEY
SHARE`` and fails the import (nothing written) if one has gone since the checks. A delete that
comes after the lock waits for the import and then fails its own foreign-key check, as it would
have against the triggers' locks.

Changing ``session_replication_role`` takes a superuser or, from PostgreSQL 15, ``GRANT SET ON
PARAMETER session_replication_role TO <the app's role>``. Without that privilege the inserts run
with the row-by-row checks: slower, and as correct.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import asyncpg

from secevents.server.importers import ImportFailed

MAY_SKIP_ROW_CHECKS = """
SELECT current_setting('is_superuser')::bool OR has_parameter_privilege('session_replication_role', 'SET')
"""
# Missing references reported, at most: the first few say what happened.
MAX_REPORTED = 10


@dataclass(frozen=True, slots=True)
class Reference:
    """Rows of ``table`` (by its key column ``key`` of SQL type ``key_type``) that an import's
    inserted rows point at: ``named`` is SQL listing the keys (duplicates and NULLs allowed),
    taking ``args`` as its parameters."""

    what: str
    table: str
    key: str
    key_type: str
    named: str
    args: tuple[object, ...] = ()

    def given(self, *args: object) -> Reference:
        return replace(self, args=args)

    @property
    def wanted_sql(self) -> str:
        return f"SELECT DISTINCT k::text FROM ({self.named}) named(k) WHERE k IS NOT NULL"

    @property
    def held_sql(self) -> str:
        # The keys found, by index, each row locked as a foreign key's check locks it.
        return f"""
SELECT t.{self.key}::text FROM {self.table} t
 WHERE t.{self.key} = ANY($1::text[]::{self.key_type}[])
   FOR KEY SHARE OF t"""


async def may_skip_row_checks(conn: asyncpg.Connection) -> bool:
    """Whether this connection's role may set ``session_replication_role``."""
    return bool(await conn.fetchval(MAY_SKIP_ROW_CHECKS))


@asynccontextmanager
async def foreign_keys_held(conn: asyncpg.Connection, references: Sequence[Reference]) -> AsyncIterator[None]:
    """Run the block's inserts without the foreign keys' row-by-row checks when the role may,
    then lock ``references`` (every row the inserted rows point at outside the import) and raise
    :class:`ImportFailed` if one is gone.

    Only inserts belong in the block: deletes and key updates need the foreign keys' cascades,
    which the setting skips too. Inside the import's transaction (the setting is ``LOCAL``)."""
    skipped = await may_skip_row_checks(conn)
    if skipped:
        await conn.execute("SET LOCAL session_replication_role = replica")
    yield
    if skipped:
        await conn.execute("SET LOCAL session_replication_role = origin")
        await hold(conn, references)


async def hold(conn: asyncpg.Connection, references: Sequence[Reference]) -> None:
    """Lock the rows ``references`` name ``FOR KEY SHARE``; :class:`ImportFailed` names the
    ones that are not there."""
    missing: list[str] = []
    for reference in references:
        wanted = [r[0] for r in await conn.fetch(reference.wanted_sql, *reference.args)]
        if wanted:
            held = {r[0] for r in await conn.fetch(reference.held_sql, wanted)}
            missing += [f"{reference.what} {key}" for key in wanted if key not in held]
    if missing:
        raise ImportFailed(
            f"{', '.join(missing[:MAX_REPORTED])}{' …' if len(missing) > MAX_REPORTED else ''}: "
            "deleted by another session while the import ran; nothing was imported"
        )
