"""`secevents import ucdp`: the real UCDP GED files in data/ucdp/ → incidents, organisations,
a dataset source; re-imports change nothing; broken files change nothing and name the line.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import asyncpg
import msgspec
import pytest

from secevents.server.cli import main as cli
from secevents.server.importers import ImportFailed, UnknownLayout, ucdp
from tests.writing import snapshot

DATA = Path(__file__).resolve().parent.parent / "data" / "ucdp"
PAKISTAN = DATA / "ged_pakistan.csv"
PAKISTAN_HDX = DATA / "conflict_data_pak.csv"
SAMPLE = DATA / "ged_global_sample_1000.csv"

UCDP_INCIDENTS = "FROM incidents WHERE external_ids ? 'ucdp_ged_id'"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [row for row in csv.DictReader(f) if not row["id"].startswith("#") and row["id"]]


async def _revision_count(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM revisions")
    return count


async def test_pakistan_file_gives_every_event_once(conn: asyncpg.Connection) -> None:
    rows = _csv_rows(PAKISTAN)
    revisions_before = await _revision_count(conn)

    summary = await ucdp.import_file(conn, PAKISTAN)

    assert (summary.rows_read, summary.created, summary.updated, summary.rejected) == (len(rows), 6416, 0, 0)
    assert await conn.fetchval(f"SELECT count(*) {UCDP_INCIDENTS}") == 6416
    assert await conn.fetchval(f"SELECT sum(killed_best) {UCDP_INCIDENTS}") == 43225
    per_year = await conn.fetch(
        f"SELECT extract(year FROM occurred_start)::int AS y, count(*) {UCDP_INCIDENTS} GROUP BY 1"
    )
    assert {r["y"]: r["count"] for r in per_year} == Counter(int(r["date_start"][:4]) for r in rows)
    types = await conn.fetch(f"SELECT subtype, count(*) {UCDP_INCIDENTS} GROUP BY 1")
    assert {r["subtype"]: r["count"] for r in types} == {
        "state_based_conflict": 5388,
        "non_state_conflict": 469,
        "one_sided_violence": 559,
    }
    # Organisations: one per UCDP actor id, "Civilians" excluded.
    actors = {r[f"{side}_new_id"] for r in rows for side in ("side_a", "side_b") if r[side] != "Civilians"}
    assert await conn.fetchval(
        "SELECT count(*) FROM organisations WHERE external_ids ? 'ucdp_actor_id'"
    ) == len(actors)
    # Every written record is in the change feed: incidents, organisations, the dataset source.
    created_orgs = summary.organisations_created + summary.organisations_linked
    assert await _revision_count(conn) - revisions_before == 6416 + created_orgs + 1


async def test_one_event_mapped_field_by_field(conn: asyncpg.Connection) -> None:
    await ucdp.import_file(conn, PAKISTAN)
    row = next(r for r in _csv_rows(PAKISTAN) if r["id"] == "59553")
    doc = await conn.fetchval(
        "SELECT i.doc::jsonb FROM incidents i WHERE external_ids->>'ucdp_ged_id' = '59553'"
    )
    import json

    incident = json.loads(doc)
    assert incident["type"] == "battle" and incident["subtype"] == "state_based_conflict"
    assert incident["occurred"] == {"start": "1990-10-04", "end": "1990-10-04", "precision": "day"}
    assert incident["location"] == {
        "country": "PK",
        "admin1": "Azad Jammu & Kashmir",
        "admin2": "Neelam district",
        "place": "Kel village",
        "lat": 34.821865,
        "lon": 74.355544,
        "precision": "near",
    }
    assert incident["casualties"]["killed"] == {"low": 2, "best": 2, "high": 2}
    # side_a and side_b are both "Government of …": their deaths add up under security_forces.
    assert incident["casualties"]["breakdown"][0] == {
        "group": "security_forces",
        "killed": {"low": None, "best": int(row["deaths_a"]) + int(row["deaths_b"]), "high": None},
        "injured": None,
    }
    assert [(p["name"], p["role"]) for p in incident["participants"]] == [
        ("Government of India", "perpetrator"),
        ("Government of Pakistan", "perpetrator"),
    ]
    assert incident["citations"][0]["quote"] == row["source_article"]
    assert incident["external_ids"]["ucdp_ged_id"] == "59553"
    kinds = await conn.fetch(
        "SELECT name, kind, country FROM organisations WHERE name IN ('Government of India', 'Government of Pakistan')"
    )
    assert {(r["name"], r["kind"], r["country"]) for r in kinds} == {
        ("Government of India", "government", "IN"),
        ("Government of Pakistan", "government", "PK"),
    }


async def test_inconsistent_bounds_are_dropped_and_noted(conn: asyncpg.Connection) -> None:
    rows = _csv_rows(PAKISTAN)
    low_above_best = [r for r in rows if int(r["low"]) > int(r["best"])]
    best_above_high = [r for r in rows if int(r["best"]) > int(r["high"])]

    summary = await ucdp.import_file(conn, PAKISTAN)

    assert summary.repaired == {
        "low > best: low estimate dropped": len(low_above_best),
        "best > high: high estimate dropped": len(best_above_high),
    }
    example = low_above_best[0]
    stored = await conn.fetchrow(
        f"SELECT killed_low, killed_best, summary {UCDP_INCIDENTS} AND external_ids->>'ucdp_ged_id' = $1",
        example["id"],
    )
    assert stored["killed_low"] is None and stored["killed_best"] == int(example["best"])
    assert f"low estimate ({example['low']})" in stored["summary"]


async def test_importing_twice_changes_nothing(conn: asyncpg.Connection) -> None:
    await ucdp.import_file(conn, PAKISTAN)
    before = await snapshot(conn)

    again = await ucdp.import_file(conn, PAKISTAN)

    assert (again.created, again.updated, again.unchanged) == (0, 0, 6416)
    assert (again.organisations_created, again.source_created) == (0, False)
    assert await snapshot(conn) == before


async def test_hdx_file_with_hashtag_row_gives_the_same_records(conn: asyncpg.Connection) -> None:
    first = await ucdp.import_file(conn, PAKISTAN_HDX)
    assert (first.layout, first.rows_read, first.created) == ("hdx", 6416, 6416)
    assert await conn.fetchval(f"SELECT sum(killed_best) {UCDP_INCIDENTS}") == 43225
    before = await snapshot(conn)

    second = await ucdp.import_file(conn, PAKISTAN)

    assert (second.created, second.updated, second.unchanged) == (0, 0, 6416)
    assert await snapshot(conn) == before


async def test_newer_release_updates_in_place(conn: asyncpg.Connection) -> None:
    """The global sample (GED 23.1) shares 32 events with the Pakistan file (GED 22.1)."""
    pakistan_ids = {r["id"] for r in _csv_rows(PAKISTAN)}
    sample = _csv_rows(SAMPLE)
    shared = [r for r in sample if r["id"] in pakistan_ids]
    await ucdp.import_file(conn, PAKISTAN, release="22.1")

    summary = await ucdp.import_file(conn, SAMPLE, release="23.1")

    assert summary.layout == "ged"
    assert summary.created == len(sample) - len(shared)
    # Every shared event now says it is 23.1's (UCDP also reworded some of their sources).
    assert (summary.updated, summary.unchanged, summary.skipped_older) == (len(shared), 0, 0)
    assert await conn.fetchval(f"SELECT count(*) {UCDP_INCIDENTS}") == 6416 + len(sample) - len(shared)
    # Historical UCDP country names resolve through the alias table.
    countries = await conn.fetch(
        f"SELECT DISTINCT country {UCDP_INCIDENTS} AND external_ids->>'ucdp_ged_id' = ANY($1::text[])",
        [r["id"] for r in sample if r["country"] in ("DR Congo (Zaire)", "Russia (Soviet Union)", "Turkey")],
    )
    assert {r["country"] for r in countries} == {"CD", "RU", "TR"}
    stamps = await conn.fetch(
        f"SELECT DISTINCT version, external_ids->>'ucdp_release' AS release {UCDP_INCIDENTS}"
        " AND external_ids->>'ucdp_ged_id' = ANY($1::text[])",
        [r["id"] for r in shared],
    )
    assert [tuple(r) for r in stamps] == [(2, "23.1")]


async def _shared_incidents(conn: asyncpg.Connection, ids: list[str]) -> list[tuple[object, ...]]:
    rows = await conn.fetch(
        f"SELECT external_ids->>'ucdp_ged_id', version, doc::text {UCDP_INCIDENTS}"
        " AND external_ids->>'ucdp_ged_id' = ANY($1::text[]) ORDER BY 1",
        ids,
    )
    return [tuple(r) for r in rows]


async def test_an_older_release_never_overwrites_what_a_newer_one_wrote(conn: asyncpg.Connection) -> None:
    pakistan_ids = {r["id"] for r in _csv_rows(PAKISTAN)}
    shared = [r["id"] for r in _csv_rows(SAMPLE) if r["id"] in pakistan_ids]
    await ucdp.import_file(conn, SAMPLE, release="23.1")
    newer = await _shared_incidents(conn, shared)

    older = await ucdp.import_file(conn, PAKISTAN, release="22.1")

    assert (older.created, older.updated, older.skipped_older) == (6416 - len(shared), 0, len(shared))
    assert sorted(older.skipped_older_ids, key=int) == sorted(shared, key=int)
    assert "32 skipped (a newer release is stored)" in older.report()
    assert await _shared_incidents(conn, shared) == newer  # same version, same document
    before = await snapshot(conn)

    # A file of unknown release overwrites nothing a known release wrote; the same release
    # again changes nothing.
    unknown = await ucdp.import_file(conn, PAKISTAN)
    assert (unknown.release, unknown.created, unknown.updated, unknown.skipped_older) == (None, 0, 0, 6416)
    same = await ucdp.import_file(conn, SAMPLE, release="23.1")
    assert (same.updated, same.unchanged, same.skipped_older) == (0, 1000, 0)
    assert await snapshot(conn) == before


async def test_the_dataset_source_carries_licence_citation_and_newest_release(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    named = tmp_path / "GEDEvent_v23_1.csv"  # UCDP's own file name says the release
    named.write_bytes(SAMPLE.read_bytes())
    first = await ucdp.import_file(conn, named)
    assert (first.release, first.source_created) == ("23.1", True)
    await ucdp.import_file(conn, PAKISTAN, release="22.1")  # older: the source stays at 23.1

    source = await conn.fetchrow(
        "SELECT id, version, licence, attribution, external_ids->>'ucdp_release' AS release, doc::jsonb AS doc"
        " FROM sources WHERE url = 'https://ucdp.uu.se/downloads/'"
    )
    assert (source["version"], source["licence"], source["release"]) == (1, "CC-BY-4.0", "23.1")
    assert "Sundberg, Ralph and Erik Melander (2013)" in source["attribution"]
    assert "doi:10.1177/00223433231185169" in source["attribution"]  # the 23.1 article
    document = msgspec.json.decode(source["doc"])
    assert (document["licence"], document["attribution"]) == ("CC-BY-4.0", source["attribution"])

    newer = tmp_path / "ged241.csv"
    newer.write_bytes(SAMPLE.read_bytes())
    await ucdp.import_file(conn, newer)
    updated = await conn.fetchrow(
        "SELECT version, external_ids->>'ucdp_release' AS release, attribution FROM sources WHERE id = $1",
        source["id"],
    )
    assert (updated["version"], updated["release"]) == (2, "24.1")
    assert "version 24.1" in updated["attribution"]
    operations = await conn.fetch(
        "SELECT operation FROM revisions WHERE record_id = $1 ORDER BY seq", source["id"]
    )
    assert [r["operation"] for r in operations] == ["create", "update"]


async def test_a_release_that_is_not_a_number_is_refused(conn: asyncpg.Connection) -> None:
    before = await snapshot(conn)
    with pytest.raises(ImportFailed, match="not a UCDP release number"):
        await ucdp.import_file(conn, SAMPLE, release="latest")
    assert await snapshot(conn) == before


def _corrupt(tmp_path: Path) -> tuple[Path, int, int]:
    """A copy of the Pakistan file with a bad date on one row and a truncated row after it;
    returns the path and the physical line numbers of both rows (found in the raw text, so
    the rows' embedded line breaks count).
    """
    raw = PAKISTAN.read_bytes()
    rows = _csv_rows(PAKISTAN)
    bad_date_id, truncated_id = rows[3000]["id"], rows[5000]["id"]
    bad_start = raw.index(f"\r\n{bad_date_id},".encode()) + 2
    date = rows[3000]["date_start"].encode()
    bad_end = raw.index(date, bad_start)
    raw = raw[:bad_end] + b"2019-02-30 00:00:00.000" + raw[bad_end + len(date) :]
    cut_start = raw.index(f"\r\n{truncated_id},".encode()) + 2
    cut_end = raw.index(b"\r\n", cut_start)
    line_of_cut = raw[:cut_start].count(b"\n") + 1
    raw = raw[: cut_start + 40] + raw[cut_end:]
    path = tmp_path / "corrupt.csv"
    path.write_bytes(raw)
    return path, raw[:bad_start].count(b"\n") + 1, line_of_cut


async def test_corrupt_file_is_refused_with_line_numbers(conn: asyncpg.Connection, tmp_path: Path) -> None:
    path, bad_date_line, cut_line = _corrupt(tmp_path)
    assert bad_date_line != 3000 + 2  # embedded line breaks: physical lines ≠ row numbers
    before = await snapshot(conn)

    with pytest.raises(ImportFailed) as failure:
        await ucdp.import_file(conn, path)

    reported = {(e.line, e.field) for e in failure.value.errors}
    assert (bad_date_line, "date_start") in reported
    assert (cut_line, None) in reported
    assert "nothing was imported" in failure.value.message
    assert await snapshot(conn) == before


async def test_skip_invalid_imports_the_rest(conn: asyncpg.Connection, tmp_path: Path) -> None:
    path, bad_date_line, cut_line = _corrupt(tmp_path)

    summary = await ucdp.import_file(conn, path, skip_invalid=True)

    assert (summary.created, summary.rejected) == (6414, 2)
    assert {e.line for e in summary.rejections} == {bad_date_line, cut_line}


@pytest.mark.parametrize(
    ("mutation", "field", "message"),
    [
        (("date_prec", "9"), "date_prec", "unknown code 9"),
        (("where_prec", "0"), "where_prec", "unknown code 0"),
        (("type_of_violence", "4"), "type_of_violence", "unknown code 4"),
        (("country", "Atlantis"), "country", "unknown country"),
        (("best", "-3"), "best", "out of range"),
        (("date_end", "1990-10-03 00:00:00.000"), "date_end", "before date_start"),
        (("latitude", "north"), "latitude", "not a number"),
    ],
)
async def test_bad_values_are_named(
    conn: asyncpg.Connection, tmp_path: Path, mutation: tuple[str, str], field: str, message: str
) -> None:
    with PAKISTAN.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header, first = next(reader), next(reader)
    first[header.index(mutation[0])] = mutation[1]
    path = tmp_path / "one.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, first])
    before = await snapshot(conn)

    with pytest.raises(ImportFailed) as failure:
        await ucdp.import_file(conn, path)

    [error] = failure.value.errors
    assert (error.line, error.field) == (2, field)
    assert message in error.message
    assert await snapshot(conn) == before


async def test_a_repeated_ucdp_id_is_rejected_and_the_first_row_kept(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    with PAKISTAN.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header, first, second, third = next(reader), next(reader), next(reader), next(reader)
    repeat = list(second)
    repeat[header.index("id")] = first[header.index("id")]
    path = tmp_path / "repeated.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, first, repeat, third])
    before = await snapshot(conn)

    with pytest.raises(ImportFailed) as failure:
        await ucdp.import_file(conn, path)
    [error] = failure.value.errors
    assert (error.line, error.field) == (3, "id")
    assert error.message == f"duplicate id {first[header.index('id')]} (first on line 2)"
    assert await snapshot(conn) == before

    summary = await ucdp.import_file(conn, path, skip_invalid=True)
    assert (summary.rows_read, summary.created, summary.rejected) == (3, 2, 1)
    kept = await conn.fetchval(
        "SELECT killed_best FROM incidents WHERE external_ids->>'ucdp_ged_id' = $1", first[header.index("id")]
    )
    assert kept == int(first[header.index("best")])


async def test_unknown_layout_is_refused(conn: asyncpg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "acled.csv"
    path.write_text("event_id_cnty,event_date,year,actor1,fatalities\nPAK1,2023-12-12,2023,TJP,23\n")
    before = await snapshot(conn)

    with pytest.raises(UnknownLayout) as failure:
        await ucdp.import_file(conn, path)

    assert "not a UCDP GED CSV file" in failure.value.message
    assert "missing columns" in failure.value.message
    assert await snapshot(conn) == before


async def test_unterminated_quote_names_the_row(conn: asyncpg.Connection, tmp_path: Path) -> None:
    lines = PAKISTAN.read_bytes().split(b"\r\n")
    path = tmp_path / "open-quote.csv"
    path.write_bytes(b"\r\n".join([lines[0], lines[1], b'999999,"never closed', *lines[2:5]]))

    with pytest.raises(ImportFailed) as failure:
        await ucdp.import_file(conn, path)

    assert failure.value.errors[-1].line == 3
    assert "malformed CSV" in failure.value.errors[-1].message


async def test_existing_organisation_is_linked_by_alias(conn: asyncpg.Connection) -> None:
    """The sample dataset's TTP (alias "TTP", UCDP's name for it) gets the UCDP actor id
    instead of a duplicate organisation.
    """
    ttp = await conn.fetchval(
        "SELECT o.id FROM organisations o JOIN organisation_aliases a ON a.organisation_id = o.id "
        "WHERE a.alias = 'TTP'"
    )
    assert ttp is not None

    summary = await ucdp.import_file(conn, PAKISTAN)

    assert summary.organisations_linked >= 1
    linked = await conn.fetchrow("SELECT external_ids, version FROM organisations WHERE id = $1", ttp)
    assert b"ucdp_actor_id" in linked["external_ids"] and linked["version"] == 2
    assert await conn.fetchval("SELECT count(*) FROM organisations WHERE fold_name(name) = 'ttp'") == 0
    operation = await conn.fetchval(
        "SELECT operation FROM revisions WHERE record_id = $1 ORDER BY seq DESC LIMIT 1", ttp
    )
    assert operation == "update"


def test_cli_imports_and_reports(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    path, bad_date_line, _ = _corrupt(tmp_path)

    assert cli.main(["import", "ucdp", str(SAMPLE), "--release", "23.1"]) == 0
    printed = capsys.readouterr()
    assert "release 23.1): 1000 rows read, 1000 created" in printed.out
    phases = [line.split(": ")[1] for line in printed.err.splitlines() if line.startswith(f"{SAMPLE.name}: ")]
    assert phases == ["read", "check", "match", "documents", "write", "revisions"]
    assert f"{SAMPLE.name}: read: 1,000 rows in " in printed.err

    assert cli.main(["import", "ucdp", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"line {bad_date_line}: date_start: not a date" in err
