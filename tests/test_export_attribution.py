"""Exports carry the attribution of the licensed sources (UCDP's CC BY 4.0 asks for a citation),
in every format, where a reader of that format looks first."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import asyncpg
import httpx
import pytest

from secevents.server.cli import main as cli
from secevents.server.importers import ucdp
from tests.writing import Keys, make_keys

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "ucdp" / "ged_global_sample_1000.csv"
CITATION = "Sundberg, Ralph and Erik Melander (2013)"


@pytest.fixture
async def ucdp_events(conn: asyncpg.Connection, tmp_path: Path) -> str:
    """The first 20 events of the UCDP sample (release 23.1); the dataset source's id."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    small = tmp_path / "ged_sample_20.csv"
    small.write_text("".join(lines[:21]), encoding="utf-8")
    await ucdp.import_file(conn, small, release="23.1")
    source_id: str = await conn.fetchval("SELECT id::text FROM sources WHERE licence IS NOT NULL")
    return source_id


async def _export(client: httpx.AsyncClient, resource: str, fmt: str) -> bytes:
    response = await client.get(f"/v1/exports/{resource}", params={"format": fmt})
    assert response.status_code == 200, response.text
    return response.content


async def test_ndjson_export_starts_with_the_attribution_and_imports_as_is(
    client: httpx.AsyncClient, conn: asyncpg.Connection, ucdp_events: str
) -> None:
    body = await _export(client, "incidents", "ndjson")
    lines = [json.loads(line) for line in body.splitlines()]
    assert lines[0]["type"] == "attribution"
    assert (lines[0]["source_id"], lines[0]["licence"]) == (ucdp_events, "CC-BY-4.0")
    assert CITATION in lines[0]["attribution"]
    assert lines[-1] == {"type": "export_complete", "count": len(lines) - 2}  # records only

    keys: Keys = await make_keys(conn)
    imported = await client.post(
        "/v1/imports",
        content=body,
        headers={"Content-Type": "application/x-ndjson", **Keys.header(keys.admin)},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["unchanged"] == {"incident": len(lines) - 2}


async def test_csv_export_has_the_attribution_above_its_header(
    client: httpx.AsyncClient, ucdp_events: str
) -> None:
    text = (await _export(client, "incidents", "csv")).decode()
    first, rest = text.split("\r\n", 1)
    assert first.startswith("# attribution: UCDP Georeferenced Event Dataset (GED) — CC-BY-4.0 — ")
    assert CITATION in first
    rows = list(csv.DictReader(io.StringIO(rest.rsplit("# export_complete", 1)[0])))
    assert rows and all(row["id"] for row in rows)


async def test_geojson_export_has_an_attribution_member(client: httpx.AsyncClient, ucdp_events: str) -> None:
    collection = json.loads(await _export(client, "incidents", "geojson"))
    assert collection["type"] == "FeatureCollection"
    [credit] = collection["attribution"]
    assert (credit["source_id"], credit["licence"]) == (ucdp_events, "CC-BY-4.0")
    assert CITATION in credit["text"]
    assert collection["features"]


@pytest.mark.parametrize("resource", ["incidents", "organisations", "sources"])
async def test_stix_bundle_has_a_statement_marking(
    client: httpx.AsyncClient, ucdp_events: str, resource: str
) -> None:
    bundle = json.loads(await _export(client, resource, "stix"))
    markings = [o for o in bundle["objects"] if o["type"] == "marking-definition"]
    assert len(markings) == 1
    assert markings[0]["definition_type"] == "statement"
    assert CITATION in markings[0]["definition"]["statement"]
    assert markings[0]["name"] == "CC-BY-4.0: UCDP Georeferenced Event Dataset (GED)"


async def test_exports_without_licensed_sources_carry_no_attribution(client: httpx.AsyncClient) -> None:
    assert b'"type":"attribution"' not in await _export(client, "incidents", "ndjson")
    assert not (await _export(client, "incidents", "csv")).startswith(b"#")
    assert "attribution" not in json.loads(await _export(client, "incidents", "geojson"))


def test_cli_export_reports_the_records_written(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    for fmt in ("ndjson", "csv", "geojson"):
        output = tmp_path / f"incidents.{fmt}"
        assert cli.main(["export", "incidents", "--format", fmt, "-o", str(output)]) == 0
        err = capsys.readouterr().err
        written = len(json.loads(output.read_bytes())["features"]) if fmt == "geojson" else None
        if fmt == "ndjson":
            written = json.loads(output.read_bytes().splitlines()[-1])["count"]
        if fmt == "csv":
            written = int(output.read_text().splitlines()[-1].split()[2])
        assert written
        assert err.splitlines()[-1].startswith(
            f"export incidents: {written:,} records written to {output} in "
        )
    assert cli.main(["-q", "export", "incidents", "-o", str(tmp_path / "quiet.ndjson")]) == 0
    assert "records written" not in capsys.readouterr().err
