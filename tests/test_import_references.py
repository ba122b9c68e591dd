"""A bulk import's foreign keys checked as a set (``secevents.server.importers.references``):
the rows it points at are held until it commits, one gone meanwhile fails the import with
nothing written, the schema's own triggers fire whatever the session's replication role, and a
role without the privilege imports through the row-by-row checks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from secevents.server import db
from secevents.server.importers import ImportFailed, ndjson, references, ucdp
from secevents.server.importers.ndjson.sql import INSERT_ROWS
from secevents.server.importers.ucdp.load import dataset_source
from secevents.server.importers.ucdp.sql import REVISE_INCIDENTS

PAKISTAN = Path(__file__).resolve().parent.parent / "data" / "ucdp" / "ged_pakistan.csv"
TEXT = "Militants stormed the compound at dawn; at least 23 soldiers were killed."
REVISIONS = "INSERT INTO revisions"

Probe = Callable[[], Awaitable[None]]


class ProbedConnection(asyncpg.Connection):  # type: ignore[misc]
    """Runs a probe just before a statement of the import: where its transaction stands is
    then known exactly, not raced against."""

    probes: dict[str, Probe]

    async def execute(self, query: str, *args: Any, **options: Any) -> str:
        for marker, probe in list(getattr(self, "probes", {}).items()):
            if marker in query:
                del self.probes[marker]
                await probe()
        result: str = await super().execute(query, *args, **options)
        return result


@pytest.fixture
async def probed(database_url: str) -> AsyncIterator[ProbedConnection]:
    connection = await asyncpg.connect(database_url, connection_class=ProbedConnection)
    await db.init_connection(connection)
    connection.probes = {}
    yield connection
    await connection.close()


def _ndjson(*records: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _source(source_id: str) -> dict[str, Any]:
    record = {"id": source_id, "kind": "news_article", "title": "Dawn report", "text": TEXT}
    return {"type": "source", "record": record}


def _incident_citing(source_id: str) -> dict[str, Any]:
    record = {
        "title": "Compound stormed",
        "type": "battle",
        "occurred": {"start": "2023-12-12", "end": "2023-12-12", "precision": "day"},
        "location": {"country": "PK", "precision": "country"},
        "citations": [{"source_id": source_id, "quote": "at least 23 soldiers were killed"}],
    }
    return {"type": "incident", "record": record}


async def _import(conn: asyncpg.Connection, body: bytes) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield body

    await ndjson.import_lines(conn, chunks(), actor="test")


async def _stored_source(conn: asyncpg.Connection) -> str:
    """A source that nothing stored cites (a delete of it has nothing to trip over)."""
    source_id = str(uuid.uuid4())
    await _import(conn, _ndjson(_source(source_id)))
    return source_id


async def _delete_source(database_url: str, source_id: str) -> None:
    other = await asyncpg.connect(database_url)
    try:
        await other.execute("SET lock_timeout = '200ms'")
        await other.execute("DELETE FROM sources WHERE id = $1", uuid.UUID(source_id))
    finally:
        await other.close()


async def _incidents(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM incidents")
    return count


async def test_the_schema_triggers_fire_in_every_session(conn: asyncpg.Connection) -> None:
    # An import skips the foreign keys' triggers with session_replication_role = replica; every
    # other trigger must still fire, so every one the schema defines is enabled ALWAYS.
    ordinary = await conn.fetch(
        "SELECT tgrelid::regclass::text AS table, tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'A'"
    )
    assert [dict(r) for r in ordinary] == []
    assert await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal") >= 4

    source_id = await _stored_source(conn)
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        with pytest.raises(asyncpg.CheckViolationError, match="quote not found in source"):
            await conn.execute(
                "INSERT INTO citations (organisation_id, ordinal, source_id, quote)"
                " SELECT id, 99, $1, 'words the source does not have' FROM organisations LIMIT 1",
                uuid.UUID(source_id),
            )


async def test_an_import_holds_what_it_points_at_until_it_commits(
    probed: ProbedConnection, database_url: str
) -> None:
    assert await references.may_skip_row_checks(probed)  # the tests' role: the set-based path
    source_id = await _stored_source(probed)
    refused: list[BaseException] = []

    async def delete_meanwhile() -> None:
        # The import has written its rows and not committed: its lock on the source makes the
        # delete wait (and give up after lock_timeout), as a foreign key check's lock would.
        with pytest.raises(asyncpg.LockNotAvailableError) as raised:
            await _delete_source(database_url, source_id)
        refused.append(raised.value)

    probed.probes[REVISIONS] = delete_meanwhile
    await _import(probed, _ndjson(_incident_citing(source_id)))
    assert len(refused) == 1
    with pytest.raises(asyncpg.ForeignKeyViolationError):  # now the import's citation holds it
        await _delete_source(database_url, source_id)


async def test_an_import_fails_whole_when_what_it_points_at_is_deleted_meanwhile(
    probed: ProbedConnection, database_url: str
) -> None:
    source_id = await _stored_source(probed)
    before = await _incidents(probed)

    async def delete_after_the_checks() -> None:
        await _delete_source(database_url, source_id)  # nothing holds it yet: committed

    probed.probes[INSERT_ROWS] = delete_after_the_checks
    with pytest.raises(ImportFailed, match=f"source {source_id}: deleted by another session"):
        await _import(probed, _ndjson(_incident_citing(source_id)))
    assert await _incidents(probed) == before
    assert (
        await probed.fetchval("SELECT count(*) FROM citations WHERE source_id = $1", uuid.UUID(source_id))
        == 0
    )


async def test_a_ucdp_import_holds_its_dataset_source(probed: ProbedConnection, database_url: str) -> None:
    async with probed.transaction():
        source_id, _ = await dataset_source(probed, "25.1")  # stored, cited by nothing yet

    async def delete_meanwhile() -> None:
        with pytest.raises(asyncpg.LockNotAvailableError):
            await _delete_source(database_url, str(source_id))

    probed.probes[REVISE_INCIDENTS] = delete_meanwhile
    summary = await ucdp.import_file(probed, PAKISTAN, release="25.1")
    assert summary.created > 0
    assert REVISE_INCIDENTS not in probed.probes  # the probe ran


async def test_a_role_without_the_privilege_imports_through_row_checks(
    conn: asyncpg.Connection, database_url: str
) -> None:
    role = f"se_importer_{uuid.uuid4().hex[:12]}"
    await conn.execute(f"CREATE ROLE {role}")
    try:
        await conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        await conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        await conn.execute(f"SET ROLE {role}")
        assert not await references.may_skip_row_checks(conn)
        source_id = str(uuid.uuid4())
        before = await _incidents(conn)
        await _import(conn, _ndjson(_source(source_id), _incident_citing(source_id)))
        assert await _incidents(conn) == before + 1

        await conn.execute("RESET ROLE")
        await conn.execute(f"GRANT SET ON PARAMETER session_replication_role TO {role}")
        await conn.execute(f"SET ROLE {role}")
        assert await references.may_skip_row_checks(conn)  # the grant a deployment gives its role
    finally:
        await conn.execute("RESET ROLE")
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
