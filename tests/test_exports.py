"""GET /v1/exports/{resource}: NDJSON that round-trips into an empty database, CSV the csv module
reads, GeoJSON, STIX 2.1 bundles that the stix2 library accepts; filters; the CLI.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import stix2
from litestar import Litestar
from litestar.testing import AsyncTestClient

from secevents.server import db
from secevents.server.app import create_app
from secevents.server.cli import main as cli
from secevents.server.http import auth
from secevents.server.importers import ucdp
from secevents.server.openapi import document
from tests.conftest import make_settings

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "ucdp" / "ged_global_sample_1000.csv"
ORDER = ("sources", "organisations", "incidents", "statements")


@pytest.fixture
async def with_ucdp(conn: asyncpg.Connection) -> asyncpg.Connection:
    """The sample dataset plus the 1,000-event UCDP sample: every kind of record and link."""
    await ucdp.import_file(conn, SAMPLE)
    return conn


@pytest.fixture
async def empty_url(empty_database_url: str) -> str:
    """A migrated database without the sample dataset."""
    await asyncio.to_thread(db.upgrade, empty_database_url)
    return empty_database_url


@pytest.fixture
async def empty_client(empty_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncTestClient(
        app=create_app(make_settings(empty_url)), base_url="http://testserver.local"
    ) as c:
        yield c


async def _admin_key(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        created = await auth.create_key(conn, name="importer", scopes=["admin"])
    finally:
        await conn.close()
    return {"Authorization": f"Bearer {created.key}"}


async def _export(
    client: httpx.AsyncClient, resource: str, fmt: str = "ndjson", **params: Any
) -> httpx.Response:
    response = await client.get(f"/v1/exports/{resource}", params={"format": fmt, **params})
    assert response.status_code == 200, response.text
    return response


async def _everything(client: httpx.AsyncClient) -> bytes:
    return b"".join([(await _export(client, r)).content for r in ORDER])


async def test_ndjson_round_trips_into_an_empty_database(
    client: httpx.AsyncClient, with_ucdp: asyncpg.Connection, empty_client: httpx.AsyncClient, empty_url: str
) -> None:
    exported = await _everything(client)
    lines = exported.splitlines()
    counts = {t: sum(1 for line in lines if json.loads(line)["type"] == t) for t in ("incident", "source")}
    assert counts["incident"] == await with_ucdp.fetchval("SELECT count(*) FROM incidents")

    response = await empty_client.post(
        "/v1/imports",
        content=exported,
        headers={**await _admin_key(empty_url), "Content-Type": "application/x-ndjson"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["lines"] == len(lines)
    assert response.json()["created"]["incident"] == counts["incident"]
    assert await _everything(empty_client) == exported  # identical records: ids, versions, times


async def test_ndjson_lines_are_import_envelopes(client: httpx.AsyncClient) -> None:
    response = await _export(client, "incidents")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["content-disposition"] == 'attachment; filename="incidents.ndjson"'
    first = json.loads(response.content.splitlines()[0])
    assert set(first) == {"type", "record"} and first["type"] == "incident"
    single = await client.get(f"/v1/incidents/{first['record']['id']}")
    assert single.json() == first["record"]


def _without_trailer(text: str) -> tuple[str, str]:
    """A CSV export without its last line (``# export_complete: N records``), and that line."""
    body, _, trailer = text.removesuffix("\r\n").rpartition("\r\n")
    return body + "\r\n", trailer


async def test_csv_parses_with_the_csv_module(
    client: httpx.AsyncClient, with_ucdp: asyncpg.Connection
) -> None:
    response = await _export(client, "incidents", "csv", country="PK")
    assert response.headers["content-type"].startswith("text/csv")
    body, trailer = _without_trailer(response.text)
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert len(rows) == await with_ucdp.fetchval("SELECT count(*) FROM incidents WHERE country = 'PK'")
    assert trailer == f"# export_complete: {len(rows)} records"
    assert {r["location_country"] for r in rows} == {"PK"}
    ucdp_row = next(r for r in rows if '"ucdp_ged_id"' in r["external_ids"])
    doc = json.loads(
        await with_ucdp.fetchval("SELECT i.doc::text FROM incidents i WHERE id = $1", ucdp_row["id"])
    )
    assert int(ucdp_row["casualties_killed_best"]) == doc["casualties"]["killed"]["best"]
    assert json.loads(ucdp_row["participants"]) == doc["participants"]
    assert ucdp_row["summary"] == doc["summary"]  # commas, quotes and line breaks survive
    for resource in ("organisations", "statements", "sources"):
        body, _ = _without_trailer((await _export(client, resource, "csv")).text)
        parsed = list(csv.DictReader(io.StringIO(body, newline="")))
        assert parsed and all(row["id"] for row in parsed)


async def test_geojson_feature_collection(client: httpx.AsyncClient, with_ucdp: asyncpg.Connection) -> None:
    response = await _export(client, "incidents", "geojson")
    assert response.headers["content-type"] == "application/geo+json"
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == await with_ucdp.fetchval("SELECT count(*) FROM incidents")
    for feature in features:
        assert feature["type"] == "Feature" and feature["id"] == feature["properties"]["id"]
        location = feature["properties"]["location"]
        if location["lat"] is None:
            assert feature["geometry"] is None
        else:
            assert feature["geometry"] == {"type": "Point", "coordinates": [location["lon"], location["lat"]]}
    assert any(f["geometry"] is None for f in features)  # the seed's Daraban attack has no coordinates

    wrong = await client.get("/v1/exports/organisations", params={"format": "geojson"})
    assert wrong.status_code == 400
    assert wrong.headers["content-type"].startswith("application/problem+json")


async def test_stix_bundles_validate(client: httpx.AsyncClient, with_ucdp: asyncpg.Connection) -> None:
    objects: dict[str, Any] = {}
    for resource in ORDER:
        response = await _export(client, resource, "stix")
        bundle = stix2.parse(response.text, allow_custom=True)  # raises on any invalid object
        assert bundle.type == "bundle"
        raw = response.json()
        assert raw["objects"][0]["identity_class"] == "system"  # the producer, created_by_ref of all
        for obj in raw["objects"]:
            objects[obj["id"]] = obj
        again = await _export(client, resource, "stix")
        assert again.content == response.content  # deterministic ids

    types = [o["type"] for o in objects.values()]
    assert types.count("incident") == await with_ucdp.fetchval("SELECT count(*) FROM incidents")
    armed = await with_ucdp.fetchval("SELECT count(*) FROM organisations WHERE kind = 'armed_group'")
    assert types.count("threat-actor") == armed
    participants = await with_ucdp.fetchval("SELECT count(*) FROM incident_participants")
    relationships = await with_ucdp.fetchval("SELECT count(*) FROM organisation_relationships")
    assert types.count("relationship") == participants + relationships
    # Every reference between exported objects resolves within the four bundles.
    for obj in objects.values():
        for ref in [obj.get("source_ref"), obj.get("target_ref"), *obj.get("object_refs", [])]:
            assert ref is None or ref in objects, ref
    incident = next(o for o in objects.values() if o["type"] == "incident" and "x_secevents_casualties" in o)
    assert {"x_secevents_occurred", "x_secevents_location", "x_secevents_type"} <= set(incident)


async def test_filters_and_unknown_parameters(
    client: httpx.AsyncClient, with_ucdp: asyncpg.Connection
) -> None:
    response = await _export(
        client, "incidents", type="violence_against_civilians", occurred_after="2010-01-01"
    )
    *lines, trailer = response.content.splitlines()
    records = [json.loads(line)["record"] for line in lines]
    assert json.loads(trailer) == {"type": "export_complete", "count": len(records)}
    expected = await with_ucdp.fetchval(
        "SELECT count(*) FROM incidents WHERE type = 'violence_against_civilians' AND occurred_start >= '2010-01-01'"
    )
    assert len(records) == expected > 0
    assert all(r["type"] == "violence_against_civilians" for r in records)

    empty = await _export(client, "incidents", country="ZZ")
    assert empty.content == b'{"type":"export_complete","count":0}\n'  # nothing, completely

    for params in ({"bogus": "1"}, {"format": "xml"}, {"country": "Pakistan"}, {"country": ""}):
        bad = await client.get("/v1/exports/incidents", params=params)
        assert bad.status_code == 400, params
        assert bad.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("resource", ["incidents", "organisations", "statements", "sources"])
async def test_updated_after_must_be_a_date_time(client: httpx.AsyncClient, resource: str) -> None:
    # Found by schemathesis: `updated_after=0.5` was read as a Unix timestamp (200).
    for value in ("0.5", "1700000000"):
        bad = await client.get(f"/v1/exports/{resource}", params={"updated_after": value})
        assert bad.status_code == 400, (resource, value, bad.text)
        assert bad.json()["errors"][0]["field"] == "updated_after"
    good = await client.get(f"/v1/exports/{resource}", params={"updated_after": "2000-01-01T00:00:00Z"})
    assert good.status_code == 200


@pytest.mark.parametrize(("fmt", "media_type"), [("csv", "text/csv"), ("stix", "application/stix+json")])
async def test_every_export_media_type_is_documented(
    client: httpx.AsyncClient, app: Litestar, fmt: str, media_type: str
) -> None:
    # Found by schemathesis: the spec offered only application/x-ndjson.
    response = await client.get("/v1/exports/sources", params={"format": fmt})
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["content-type"].count("charset") <= 1
    documented = document(app)["paths"]["/v1/exports/sources"]["get"]["responses"]["200"]["content"]
    assert response.headers["content-type"].split(";")[0] in {m.split(";")[0] for m in documented}


def test_cli_export_all_then_import(
    database_url: str,
    empty_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dump = tmp_path / "all.ndjson"
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert cli.main(["export", "all", "-o", str(dump)]) == 0
    geo = tmp_path / "incidents.geojson"
    assert cli.main(["export", "incidents", "--format", "geojson", "-o", str(geo)]) == 0
    assert json.loads(geo.read_text())["type"] == "FeatureCollection"
    assert cli.main(["export", "organisations", "--format", "geojson"]) == 2

    monkeypatch.setenv("DATABASE_URL", empty_url)
    assert cli.main(["import", "ndjson", str(dump)]) == 0
    assert "created" in capsys.readouterr().out
    again = tmp_path / "again.ndjson"
    assert cli.main(["export", "all", "-o", str(again)]) == 0
    assert again.read_bytes() == dump.read_bytes()
