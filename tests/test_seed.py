"""The sample dataset: the seed article's records, each with a verbatim quote."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import msgspec
import pytest

from secevents.schemas import Incident, Organisation, Statement
from secevents.server.cli import main as cli
from secevents.server.importers import seed
from tests.writing import snapshot

ARTICLE = (seed.SAMPLE_DIR / "article.txt").read_text(encoding="utf-8")
DATASET = json.loads((seed.SAMPLE_DIR / "dataset.json").read_text(encoding="utf-8"))


def _quotes(value: object) -> list[str]:
    """Every citation quote anywhere in a document."""
    if isinstance(value, dict):
        found = [value["quote"]] if "quote" in value and "source" in value else []
        return found + [q for v in value.values() for q in _quotes(v)]
    if isinstance(value, list):
        return [q for v in value for q in _quotes(v)]
    return []


def test_every_quote_in_the_dataset_is_verbatim_in_the_article() -> None:
    quotes = _quotes(DATASET)
    assert len(quotes) >= 20
    missing = [q for q in quotes if q not in ARTICLE]
    assert missing == []


async def test_sample_dataset_loaded(conn: asyncpg.Connection) -> None:
    counts = dict(await conn.fetch("SELECT record_type, count(*) FROM revisions GROUP BY record_type"))
    assert counts == {
        "source": len(DATASET["sources"]),
        "organisation": len(DATASET["organisations"]),
        "incident": len(DATASET["incidents"]),
        "statement": len(DATASET["statements"]),
    }
    # Every citation stored is found verbatim in its source's text.
    rows = await conn.fetch("SELECT c.quote, s.text FROM citations c JOIN sources s ON s.id = c.source_id")
    assert len(rows) == len(_quotes(DATASET))
    assert all(r["quote"] in r["text"] for r in rows)
    # Every record carries at least one citation.
    uncited = await conn.fetchval("""
        SELECT (SELECT count(*) FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM citations c WHERE c.incident_id = i.id))
             + (SELECT count(*) FROM organisations o WHERE NOT EXISTS (SELECT 1 FROM citations c WHERE c.organisation_id = o.id))
             + (SELECT count(*) FROM statements s WHERE NOT EXISTS (SELECT 1 FROM citations c WHERE c.statement_id = s.id))
    """)
    assert uncited == 0


async def test_daraban_attack(conn: asyncpg.Connection) -> None:
    raw = await conn.fetchval("SELECT i.doc FROM incidents i WHERE place = 'Daraban'")
    incident = msgspec.json.decode(raw, type=Incident)
    assert incident.occurred.start.isoformat() == "2023-12-12"
    assert incident.occurred.precision == "day"
    assert incident.location.country == "PK"
    assert incident.location.admin2 == "Dera Ismail Khan"
    assert incident.casualties.killed is not None and incident.casualties.killed.low == 23
    assert incident.casualties.injured is not None and incident.casualties.injured.low == 31
    roles = {(p.name, p.role) for p in incident.participants}
    assert ("Tehreek-i-Jihad Pakistan", "perpetrator") in roles


async def test_precisions_of_month_incidents(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT occurred_start, occurred_end, occurred_precision FROM incidents"
        " WHERE occurred_start IN ('2022-11-01', '2017-03-01')"
    )
    spans = {
        (r["occurred_start"].isoformat(), r["occurred_end"].isoformat(), r["occurred_precision"])
        for r in rows
    }
    assert ("2022-11-01", "2022-11-30", "month") in spans
    assert ("2017-03-01", "2017-03-31", "month") in spans


async def test_statement_holds_only_what_the_ministry_said(conn: asyncpg.Connection) -> None:
    raw = await conn.fetchval("SELECT s.doc FROM statements s")
    statement = msgspec.json.decode(raw, type=Statement)
    issuer = await conn.fetchval("SELECT name FROM organisations WHERE id = $1", statement.issuer_id)
    addressee = await conn.fetchval("SELECT name FROM organisations WHERE id = $1", statement.addressed_to_id)
    assert "Interior" in issuer
    assert "Senate" in addressee
    assert statement.form == "written_reply"
    figures = {f.value: f for f in statement.figures}
    assert figures[16522].period is not None and figures[16522].period.start.isoformat() == "2022-01-01"
    assert 1450000 in figures
    # The article's own narration is not put in the ministry's mouth.
    said = [c.text for c in statement.claims] + [q.quote for c in statement.claims for q in c.citations]
    assert not any("2,640" in s or "March 2017" in s for s in said)


async def test_aliases_are_entities(conn: asyncpg.Connection) -> None:
    docs = [
        msgspec.json.decode(r[0], type=Organisation)
        for r in await conn.fetch("SELECT o.doc FROM organisations o")
    ]
    by_alias = {a.lower(): o.name for o in docs for a in [o.name, *o.aliases]}
    assert by_alias["ttp"] == by_alias["tehreek-i-taliban pakistan"]
    assert by_alias["daesh"] == by_alias["isis"]
    # Lookup by alias is accent- and case-insensitive, and tolerant of spelling.
    found = await conn.fetchval(
        "SELECT o.name FROM organisation_aliases a JOIN organisations o ON o.id = a.organisation_id"
        " WHERE fold_name(a.alias) % fold_name($1) ORDER BY similarity(fold_name(a.alias), fold_name($1)) DESC LIMIT 1",
        "Tehrik-i-Taliban Pakistán",
    )
    assert found == by_alias["ttp"]


async def test_seed_is_not_loaded_twice(conn: asyncpg.Connection) -> None:
    assert await seed.load_if_empty(conn) is None


def test_db_seed_loads_the_sample_once(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    assert cli.main(["db", "seed"]) == 0
    assert "loaded the sample dataset: 1 source(s)" in capsys.readouterr().out

    async def state() -> dict[str, object]:
        conn = await asyncpg.connect(empty_database_url)
        try:
            return await snapshot(conn)
        finally:
            await conn.close()

    before = asyncio.run(state())
    assert cli.main(["db", "seed"]) == 0
    assert capsys.readouterr().out == "the sample dataset is already present: nothing written\n"
    assert asyncio.run(state()) == before
