"""The schema is built by the real migrations, and they run both ways."""

from __future__ import annotations

import asyncio

import asyncpg

from secevents.server import db

TABLES = {
    "sources",
    "citations",
    "organisations",
    "organisation_aliases",
    "organisation_relationships",
    "incidents",
    "incident_participants",
    "incident_casualties",
    "statements",
    "statement_claims",
    "claim_organisations",
    "statement_figures",
    "statement_incidents",
    "revisions",
    "api_keys",
    "idempotency_keys",
    "countries",
    "webhook_endpoints",
    "webhook_deliveries",
}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    await asyncio.to_thread(db.upgrade, empty_database_url)
    assert await _tables(empty_database_url) >= TABLES
    assert await asyncio.to_thread(db.current, empty_database_url) is not None

    await asyncio.to_thread(db.downgrade, empty_database_url, "base")
    assert await _tables(empty_database_url) == {"alembic_version"}
    assert await asyncio.to_thread(db.current, empty_database_url) is None

    await asyncio.to_thread(db.upgrade, empty_database_url)
    assert await _tables(empty_database_url) >= TABLES


async def test_constraints_reject_inconsistent_rows(conn: asyncpg.Connection) -> None:
    source_id = await conn.fetchval("SELECT id FROM sources LIMIT 1")
    bad_rows = [
        # low > best
        "INSERT INTO incidents (title, type, occurred_start, occurred_end, occurred_precision, country,"
        " location_precision, killed_low, killed_best) VALUES ('x', 'battle', '2020-01-01', '2020-01-01',"
        " 'day', 'PK', 'country', 5, 3)",
        # unknown country code
        "INSERT INTO incidents (title, type, occurred_start, occurred_end, occurred_precision, country,"
        " location_precision) VALUES ('x', 'battle', '2020-01-01', '2020-01-01', 'day', 'QQ', 'country')",
        # end before start
        "INSERT INTO incidents (title, type, occurred_start, occurred_end, occurred_precision, country,"
        " location_precision) VALUES ('x', 'battle', '2020-01-02', '2020-01-01', 'day', 'PK', 'country')",
        # unknown enumeration value
        "INSERT INTO organisations (name, kind) VALUES ('x', 'club')",
        # citation owned by nothing
        f"INSERT INTO citations (source_id, quote, ordinal) VALUES ('{source_id}', 'Pakistan', 1)",
    ]
    for sql in bad_rows:
        try:
            await conn.execute(sql)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.CheckViolationError) as exc:
            assert exc.sqlstate.startswith("23")
        else:
            raise AssertionError(f"accepted: {sql}")


async def test_quote_must_be_in_source_text(conn: asyncpg.Connection) -> None:
    source_id, incident_id = await conn.fetchrow(
        "SELECT c.source_id, c.incident_id FROM citations c WHERE c.incident_id IS NOT NULL LIMIT 1"
    )
    try:
        await conn.execute(
            "INSERT INTO citations (source_id, quote, ordinal, incident_id) VALUES ($1, $2, 99, $3)",
            source_id,
            "words that the article never printed",
            incident_id,
        )
    except asyncpg.CheckViolationError as exc:
        assert exc.constraint_name == "citation_quote_in_source"
    else:
        raise AssertionError("a quote absent from the source text was accepted")
