"""Input that is not UTF-8 (issue 18, item 4): both importers name the true line of every bad
byte (up to the report's cap), over HTTP a 4xx, on the command line a message and exit status 1,
and nothing is written."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Collection
from pathlib import Path

import asyncpg
import httpx
import pytest

from secevents.server.cli import main as cli
from secevents.server.importers import MAX_REPORTED_ERRORS, ImportFailed, ucdp
from tests.writing import Keys, make_keys, snapshot

PAKISTAN = Path(__file__).resolve().parent.parent / "data" / "ucdp" / "ged_pakistan.csv"
BAD = b"\xff\xfe"


def _source_line(title: str) -> bytes:
    record = {"id": str(uuid.uuid4()), "kind": "report", "title": title}
    return json.dumps({"type": "source", "record": record}).encode() + b"\n"


def _ndjson_with_bad_bytes_on(lines: set[int], total: int = 6) -> bytes:
    return b"".join(
        _source_line("MARK").replace(b"MARK", BAD if n in lines else b"fine") for n in range(1, total + 1)
    )


async def test_ndjson_import_names_each_line_that_is_not_utf8(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    keys = await make_keys(conn)
    before = await snapshot(conn)
    response = await client.post(
        "/v1/imports",
        content=_ndjson_with_bad_bytes_on({3, 5}),
        headers={"Content-Type": "application/x-ndjson", **Keys.header(keys.admin)},
    )
    column = _source_line("MARK").index(b"MARK") + 1
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "import_rejected"
    assert [(e["field"], e["message"]) for e in problem["errors"]] == [
        ("line 3", f"not valid UTF-8: byte 0xff at column {column}"),
        ("line 5", f"not valid UTF-8: byte 0xff at column {column}"),
    ]
    assert await snapshot(conn) == before


def test_cli_ndjson_import_names_the_line(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    path = tmp_path / "bad.ndjson"
    path.write_bytes(_ndjson_with_bad_bytes_on({5}))
    assert cli.main(["import", "ndjson", str(path)]) == 1
    err = capsys.readouterr().err
    assert "line 5: not valid UTF-8: byte 0xff" in err
    assert "Traceback" not in err


def _ucdp_file(
    tmp_path: Path, rows: int, bad_rows: Collection[int], bad_date_rows: Collection[int] = ()
) -> tuple[Path, dict[int, int]]:
    """The first ``rows`` Pakistan events, bytes that are not UTF-8 in ``dyad_name`` of the rows
    at ``bad_rows`` (0-based) and a broken date in those at ``bad_date_rows``; also the physical
    line each row starts on (quoted fields hold line breaks)."""
    with PAKISTAN.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        events = [next(reader) for _ in range(rows)]
    out, starts, line = io.BytesIO(), {}, 1
    for index, values in enumerate([header, *events]):
        row = index - 1
        values = list(values)
        if row in bad_rows:
            values[header.index("dyad_name")] = "Government of Pakistan - MARK"
        if row in bad_date_rows:
            values[header.index("date_start")] = "someday"
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerow(values)
        encoded = text.getvalue().encode().replace(b"MARK", BAD)
        starts[row] = line
        line += encoded.count(b"\n")
        out.write(encoded)
    path = tmp_path / "ged.csv"
    path.write_bytes(out.getvalue())
    return path, starts


async def test_ucdp_import_names_the_true_line_and_every_error(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    path, starts = _ucdp_file(tmp_path, rows=400, bad_rows={3, 350}, bad_date_rows={200})
    assert starts[350] != 350 + 2  # line breaks inside quoted fields: lines are not rows
    before = await snapshot(conn)
    with pytest.raises(ImportFailed) as failure:
        await ucdp.import_file(conn, path)
    reported = [(e.line, e.field, e.message) for e in failure.value.errors]
    assert reported == [
        (starts[3], "dyad_name", "not valid UTF-8: byte 0xff"),
        (starts[200], "date_start", "not a date: 'someday'"),
        (starts[350], "dyad_name", "not valid UTF-8: byte 0xff"),
    ]
    assert await snapshot(conn) == before


async def test_ucdp_errors_are_reported_up_to_the_cap(conn: asyncpg.Connection, tmp_path: Path) -> None:
    rows = MAX_REPORTED_ERRORS + 50
    path, starts = _ucdp_file(tmp_path, rows=rows, bad_rows=set(range(rows)))
    with pytest.raises(ImportFailed) as failure:
        await ucdp.import_file(conn, path)
    assert [e.line for e in failure.value.errors] == [starts[r] for r in range(MAX_REPORTED_ERRORS)]
    assert failure.value.total_errors == rows
    assert f"… and {rows - MAX_REPORTED_ERRORS} more" in str(failure.value)


def test_cli_ucdp_import_names_the_line(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    path, starts = _ucdp_file(tmp_path, rows=10, bad_rows={4})
    assert cli.main(["import", "ucdp", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"line {starts[4]}: dyad_name: not valid UTF-8: byte 0xff" in err
    assert "Traceback" not in err


async def test_a_header_that_is_not_utf8_is_refused(conn: asyncpg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "ged.csv"
    path.write_bytes(PAKISTAN.read_bytes().replace(b"relid", b"rel" + BAD, 1))
    with pytest.raises(ImportFailed) as failure:
        await ucdp.import_file(conn, path)
    assert [(e.line, e.message) for e in failure.value.errors] == [(1, "not valid UTF-8: byte 0xff")]
