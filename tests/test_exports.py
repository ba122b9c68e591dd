"""GET /v1/exports/{resource}: NDJSON that round-trips into an empty database, CSV the csv module
reads, GeoJSON, STIX 2.1 bundles that the stix2 library accepts; filters; the CLI.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pandas as pd
import pytest
import stix2
from litestar import Litestar
from litestar.testing import AsyncTestClient
from stix2validator import ValidationOptions, validate_string

from secevents.server import db
from secevents.server.app import create_app
from secevents.server.cli import main as cli
from secevents.server.exports import formats, stix
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


async def _admin_key_on(conn: asyncpg.Connection) -> dict[str, str]:
    created = await auth.create_key(conn, name="curator", scopes=["admin"])
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
    """A CSV export without its last line (``# export_complete: N records``) and the attribution
    lines above its header (``# attribution: …``), and that last line."""
    body, _, trailer = text.removesuffix("\r\n").rpartition("\r\n")
    while body.startswith("# attribution: "):
        body = body.split("\r\n", 1)[1]
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


FORMULAS = (
    '=HYPERLINK("http://example.invalid","click")',
    "+1-555-0100 hotline",
    "-2+3",
    "@SUM(A1:A9)",
    "\tindented",
)


def _pandas_csv(body: bytes, **options: Any) -> pd.DataFrame:
    """How an analyst reads an export: pandas, without the attribution lines above the header
    and the trailer line."""
    lines = body.decode("utf-8-sig").split("\r\n")
    attribution = next(n for n, line in enumerate(lines) if not line.startswith("# attribution: "))
    return pd.read_csv(
        io.BytesIO(body),
        skiprows=attribution,
        skipfooter=1,
        engine="python",
        **{"keep_default_na": False, **options},
    )


async def test_csv_neutralises_formulas_for_spreadsheets(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    key = await _admin_key_on(conn)
    titles = {*FORMULAS, "Dawn, Islamabad — «Peshawar» زخمی"}
    for title in titles:
        created = await client.post("/v1/sources", json={"kind": "news_article", "title": title}, headers=key)
        assert created.status_code == 201, created.text

    response = await _export(client, "sources", "csv")
    body, _ = _without_trailer(response.text)
    by_csv = {row["title"] for row in csv.DictReader(io.StringIO(body, newline=""))}
    by_pandas = set(_pandas_csv(response.content)["title"])
    for read in (by_csv, by_pandas):
        # Shown as text by a spreadsheet: the value behind a leading quote, other text untouched.
        assert {"'" + t for t in FORMULAS} <= read
        assert not [t for t in read if t.startswith(formats.FORMULA_TRIGGERS)]
        assert "Dawn, Islamabad — «Peshawar» زخمی" in read


async def test_csv_bom_for_excel(client: httpx.AsyncClient) -> None:
    plain = await _export(client, "organisations", "csv")
    excel = await _export(client, "organisations", "csv", bom="true")
    assert excel.content == "\ufeff".encode() + plain.content
    assert excel.headers["content-type"].startswith("text/csv")
    frame = _pandas_csv(excel.content, encoding="utf-8-sig")
    assert frame.columns[0] == "id"  # the mark is not part of the first header
    body, _ = _without_trailer(excel.content.decode("utf-8-sig"))
    assert next(csv.reader(io.StringIO(body)))[0] == "id"

    # Only CSV carries the mark; other formats ignore the option.
    ndjson = await client.get("/v1/exports/organisations", params={"format": "ndjson", "bom": "true"})
    assert ndjson.status_code == 200
    assert not ndjson.content.startswith(b"\xef\xbb\xbf")


async def test_csv_columns_are_scalars_where_the_record_is(
    client: httpx.AsyncClient, with_ucdp: asyncpg.Connection
) -> None:
    response = await _export(client, "incidents", "csv")
    frame = _pandas_csv(response.content, keep_default_na=True)
    # Numbers stay numbers (not neutralised): negative longitudes of the Americas among them.
    assert frame["location_lon"].dtype == "float64" and frame["location_lon"].min() < 0
    assert pd.api.types.is_numeric_dtype(frame["casualties_killed_best"])
    assert pd.api.types.is_numeric_dtype(frame["casualties_civilians_killed_best"])
    row = frame[frame["casualties_civilians_killed_best"].notna()].iloc[0]
    doc = json.loads(await with_ucdp.fetchval("SELECT doc::text FROM incidents WHERE id = $1", row["id"]))
    civilians = next(b for b in doc["casualties"]["breakdown"] if b["group"] == "civilians")
    assert row["casualties_civilians_killed_best"] == civilians["killed"]["best"]
    assert json.loads(row["casualties_breakdown"]) == doc["casualties"]["breakdown"]  # still there too
    assert frame["occurred_start"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()


async def test_geojson_feature_collection(client: httpx.AsyncClient, with_ucdp: asyncpg.Connection) -> None:
    response = await _export(client, "incidents", "geojson")
    assert response.headers["content-type"] == "application/geo+json"
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == await with_ucdp.fetchval("SELECT count(*) FROM incidents")
    for feature in features:
        assert feature["type"] == "Feature" and feature["id"] == feature["properties"]["id"]
        location = feature["properties"]["detail"]["location"]
        if location["lat"] is None:
            assert feature["geometry"] is None
        else:
            assert feature["geometry"] == {"type": "Point", "coordinates": [location["lon"], location["lat"]]}
    assert any(f["geometry"] is None for f in features)  # the seed's Daraban attack has no coordinates

    wrong = await client.get("/v1/exports/organisations", params={"format": "geojson"})
    assert wrong.status_code == 400
    assert wrong.headers["content-type"].startswith("application/problem+json")


# The OASIS validator's strictest useful options: no custom properties or object types (the
# project's data is in the published property extension), and every SRO's ends in the bundle.
STRICT = ValidationOptions(version="2.1", strict_properties=True, strict_types=True, enforce_refs=True)
ACCEPTED_WARNINGS = {
    # {103}: ids are UUIDv5 of the record's id (STIX: "SHOULD be UUIDv4"), so that every export
    # names a record by the same id and a consumer that imports two bundles merges, not duplicates.
    "{103}",
    # {302}: a source's URL comes with a SHA-256 only when its text is stored (most have no text).
    "{302}",
    # {218}: our report types are project vocabulary (x-government-statement, x-news-article…): STIX's
    # report-type-ov has nothing for a ministry's statement or a news article. An open
    # vocabulary: other values are allowed, the validator only notes them.
    "{218}",
    # {202}: relationships between organisations (branch-of, splinter-of, allied-with, rival-of,
    # part-of…) and `attributed-to`/`targets` from incidents are not among the spec's suggested
    # relationship types for those objects (nor incidents among their sources); STIX 2.1 §5.1
    # allows any relationship type between any objects.
    "{202}",
}


def _validated(text: str) -> dict[str, Any]:
    """A bundle the OASIS validator accepts with zero errors and only :data:`ACCEPTED_WARNINGS`,
    that ``stix2`` parses without allowing anything custom; returns its objects by id."""
    results = validate_string(text, STRICT)  # the bundle: one object
    errors = [str(e) for e in results.errors]
    assert results.is_valid and not errors, errors[:5]
    unexpected = [str(w) for w in results.warnings if not any(a in str(w) for a in ACCEPTED_WARNINGS)]
    assert not unexpected, unexpected[:5]
    bundle = stix2.parse(text, allow_custom=False)
    objects = [o["id"] for o in bundle.objects]
    assert len(objects) == len(set(objects))  # each object once
    return {o["id"]: o for o in json.loads(text)["objects"]}


def _objects(response: httpx.Response) -> dict[str, Any]:
    objects = response.json()["objects"]
    by_id = {o["id"]: o for o in objects}
    assert len(by_id) == len(objects)  # each object once
    return by_id


def _assert_self_contained(objects: dict[str, Any]) -> None:
    """Every reference of every object ends at an object of the same bundle."""
    for obj in objects.values():
        refs = [
            obj.get("source_ref"),
            obj.get("target_ref"),
            obj.get("created_by_ref"),
            *obj.get("object_refs", []),
        ]
        refs += list(obj.get("extensions", {}))
        for ref in refs:
            assert ref is None or ref in objects, (obj["id"], ref)


def _extension(obj: dict[str, Any]) -> dict[str, Any]:
    ((key, extension),) = obj["extensions"].items()
    assert key == stix.EXTENSION_ID and extension["extension_type"] == "property-extension"
    return dict(extension)


STIX_EXPORTS = [(r, {}) for r in ORDER] + [
    ("incidents", {"country": "PK"}),
    ("organisations", {"country": "PK"}),
]


def _ogrinfo(path: Path, *options: str) -> str:
    """GDAL's own reading of a file (Debian's gdal-bin, .ci/apt-packages)."""
    done = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-al", *options, str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_geojson_properties_are_typed_for_gis(
    client: httpx.AsyncClient, with_ucdp: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "incidents.geojson"
    path.write_bytes((await _export(client, "incidents", "geojson")).content)
    info = _ogrinfo(path)
    fields = dict(re.findall(r"^(\w+): (\S+) \(", info, re.MULTILINE))
    assert fields["occurred_start"] == fields["occurred_end"] == "Date"
    assert fields["updated_at"] == "DateTime"
    # GDAL infers a type from the values: the sample's injured counts are all unknown (null).
    for name in ("version", "killed_low", "killed_best", "killed_high", "injured_low"):
        assert fields[name] == "Integer", (name, fields)
    for name in ("id", "title", "type", "country", "admin1", "admin2", "location_precision"):
        assert fields[name] == "String", (name, fields)
    assert fields["detail"] == "String(JSON)"  # the whole record, nested, in one property
    total = int(re.search(r"Feature Count: (\d+)", info).group(1))  # type: ignore[union-attr]
    assert total == await with_ucdp.fetchval("SELECT count(*) FROM incidents")

    for where, sql in [
        ("killed_best >= 1", "(doc->'casualties'->'killed'->>'best')::int >= 1"),
        (
            "country = 'PK' AND occurred_start >= '2010-01-01'",
            "country = 'PK' AND occurred_start >= '2010-01-01'",
        ),
        ("type = 'battle'", "type = 'battle'"),
    ]:
        filtered = _ogrinfo(path, "-where", where)
        count = int(re.search(r"Feature Count: (\d+)", filtered).group(1))  # type: ignore[union-attr]
        assert count == await with_ucdp.fetchval(f"SELECT count(*) FROM incidents WHERE {sql}") > 0, where


async def test_stix_bundles_validate(client: httpx.AsyncClient) -> None:
    # The sample dataset: every kind of record and link, few enough objects for the validator
    # (about 40 ms an object); the UCDP-sized bundles are checked by the next test.
    for resource, params in [*STIX_EXPORTS, ("all", {})]:
        response = await _export(client, resource, "stix", **params)
        objects = _validated(response.text)
        _assert_self_contained(objects)
        assert not [k for o in objects.values() for k in o if k.startswith("x_")]
        raw = response.json()["objects"]
        assert raw[0]["identity_class"] == "system"  # the producer, created_by_ref of all
        assert raw[1]["type"] == "extension-definition" and raw[1]["extension_types"] == [
            "property-extension"
        ]
        assert all(_extension(o) for o in raw[2:])
        again = await _export(client, resource, "stix", **params)
        assert again.content == response.content  # deterministic ids


async def test_stix_bundles_hold_what_they_refer_to(
    client: httpx.AsyncClient, with_ucdp: asyncpg.Connection
) -> None:
    for resource, params in STIX_EXPORTS:
        _assert_self_contained(_objects(await _export(client, resource, "stix", **params)))

    pk = _validated((await _export(client, "incidents", "stix", country="PK")).text)
    incidents = [o for o in pk.values() if o["type"] == "incident"]
    assert len(incidents) == await with_ucdp.fetchval("SELECT count(*) FROM incidents WHERE country = 'PK'")
    organisations = await with_ucdp.fetchval(
        """SELECT count(DISTINCT p.organisation_id) FROM incident_participants p
             JOIN incidents i ON i.id = p.incident_id WHERE i.country = 'PK' AND i.deleted_at IS NULL"""
    )
    assert len([o for o in pk.values() if o["type"] in ("threat-actor", "identity")]) == organisations + 1
    detail = _extension(next(o for o in incidents if "killed" in _extension(o)["casualties"]))
    doc = json.loads(
        await with_ucdp.fetchval("SELECT doc::text FROM incidents WHERE id = $1", detail["record_id"])
    )
    assert detail["type"] == doc["type"] and detail["occurred"] == doc["occurred"]
    assert detail["casualties"]["killed"] == {
        k: v for k, v in doc["casualties"]["killed"].items() if v is not None
    }
    assert detail["location"]["country"] == "PK"


async def test_stix_all_is_one_bundle_of_everything(
    client: httpx.AsyncClient, with_ucdp: asyncpg.Connection
) -> None:
    response = await _export(client, "all", "stix")
    assert response.headers["content-type"].startswith("application/stix+json")
    assert response.headers["content-disposition"] == 'attachment; filename="all.stix.json"'
    objects = _objects(response)
    _assert_self_contained(objects)
    types = [o["type"] for o in objects.values()]
    counts = {
        t: await with_ucdp.fetchval(f"SELECT count(*) FROM {t} WHERE deleted_at IS NULL")
        for t in ("incidents", "organisations", "statements", "sources")
    }
    assert types.count("incident") == counts["incidents"]
    assert types.count("threat-actor") + types.count("identity") == counts["organisations"] + 1  # + producer
    assert types.count("report") == counts["statements"] + counts["sources"]
    participants = await with_ucdp.fetchval("SELECT count(*) FROM incident_participants")
    relationships = await with_ucdp.fetchval("SELECT count(*) FROM organisation_relationships")
    assert types.count("relationship") == participants + relationships


async def test_stix_bundle_leaves_out_deleted_records(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    # A statement may name an incident that was deleted since; its report must not point to it.
    statement_id, incident_id = await conn.fetchrow(
        "SELECT statement_id, incident_id FROM statement_incidents ORDER BY statement_id LIMIT 1"
    )
    key = await _admin_key_on(conn)
    current = await client.get(f"/v1/incidents/{incident_id}")
    deleted = await client.delete(
        f"/v1/incidents/{incident_id}", headers={**key, "If-Match": current.headers["ETag"]}
    )
    assert deleted.status_code == 204, deleted.text
    for resource in ("statements", "sources"):
        objects = _validated((await _export(client, resource, "stix")).text)
        _assert_self_contained(objects)
        assert stix.stix_id("incident", "incident", str(incident_id)) not in objects
    assert stix.stix_id("report", "statement", str(statement_id)) in objects


async def test_filters_and_unknown_parameters(
    client: httpx.AsyncClient, with_ucdp: asyncpg.Connection
) -> None:
    response = await _export(
        client, "incidents", type="violence_against_civilians", occurred_after="2010-01-01"
    )
    *lines, trailer = response.content.splitlines()
    records = [json.loads(line)["record"] for line in lines if not line.startswith(b'{"type":"attribution"')]
    assert json.loads(trailer) == {"type": "export_complete", "count": len(records)}
    expected = await with_ucdp.fetchval(
        "SELECT count(*) FROM incidents WHERE type = 'violence_against_civilians' AND occurred_start >= '2010-01-01'"
    )
    assert len(records) == expected > 0
    assert all(r["type"] == "violence_against_civilians" for r in records)

    empty = await _export(client, "incidents", country="ZZ")
    # nothing, completely (after the attribution of the licensed sources)
    assert empty.content.splitlines()[-1] == b'{"type":"export_complete","count":0}'
    assert all(line.startswith(b'{"type":"attribution"') for line in empty.content.splitlines()[:-1])

    for params in ({"bogus": "1"}, {"format": "xml"}, {"country": "Pakistan"}, {"country": ""}):
        bad = await client.get("/v1/exports/incidents", params=params)
        assert bad.status_code == 400, params
        assert bad.headers["content-type"].startswith("application/problem+json")
        # The problem names the parameter as the request spelled it.
        assert [e["field"] for e in bad.json()["errors"]] == [next(iter(params))], bad.text


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
