"""POST /v1/imports and `secevents import ndjson`: records in the API's shapes, validated by the
same Structs, references in any order, all or nothing with errors by line.
"""

from __future__ import annotations

import gc
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from secevents.server.cli import main as cli
from secevents.server.importers import collector_paused
from tests.writing import Keys, make_keys, snapshot

NDJSON = {"Content-Type": "application/x-ndjson"}
NOTHING_ELSE = {"updated": {}, "unchanged": {}, "skipped": {}, "skipped_records": []}
ALL_RESOURCES = ("sources", "organisations", "incidents", "statements")
TEXT = "Militants stormed the compound at dawn; at least 23 soldiers were killed."


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


def _lines(*records: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _source(source_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "source",
        "record": {"id": source_id, "kind": "news_article", "title": "Dawn report", "text": TEXT, **extra},
    }


def _organisation(org_id: str, source_id: str, **extra: Any) -> dict[str, Any]:
    record = {
        "id": org_id,
        "name": "Tehreek-e-Example",
        "aliases": ["TeE"],
        "kind": "armed_group",
        "citations": [{"source_id": source_id, "quote": "Militants stormed the compound"}],
        **extra,
    }
    return {"type": "organisation", "record": record}


def _incident(source_id: str, org_id: str | None = None, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "title": "Compound stormed",
        "type": "battle",
        "occurred": {"start": "2023-12-12", "end": "2023-12-12", "precision": "day"},
        "location": {"country": "PK", "precision": "country"},
        "casualties": {"killed": {"low": 23}},
        "citations": [{"source_id": source_id, "quote": "at least 23 soldiers were killed"}],
        **extra,
    }
    if org_id:
        record["participants"] = [{"organisation_id": org_id, "role": "perpetrator"}]
    return {"type": "incident", "record": record}


async def _post(client: httpx.AsyncClient, body: bytes, key: str) -> httpx.Response:
    return await client.post("/v1/imports", content=body, headers={**NDJSON, **Keys.header(key)})


async def test_import_records_referring_forward(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    source_id, org_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = _lines(_incident(source_id, org_id), {}, _organisation(org_id, source_id), _source(source_id))
    body = body.replace(b"{}\n", b"\n")  # a blank line is allowed (and counted)

    response = await _post(client, body, keys.admin)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "lines": 4,
        "created": {"source": 1, "organisation": 1, "incident": 1},
        **NOTHING_ELSE,
    }
    incident = await conn.fetchrow(
        "SELECT i.id, p.organisation_id FROM incidents i JOIN incident_participants p ON p.incident_id = i.id "
        "WHERE i.title = 'Compound stormed'"
    )
    assert str(incident["organisation_id"]) == org_id
    fetched = (await client.get(f"/v1/incidents/{incident['id']}")).json()
    assert fetched["participants"][0]["name"] == "Tehreek-e-Example"
    revisions = await conn.fetch(
        "SELECT record_type, operation, actor, api_key_id IS NOT NULL AS keyed FROM revisions "
        "WHERE actor = 'key:test-admin' ORDER BY seq"
    )
    assert [(r["record_type"], r["operation"], r["keyed"]) for r in revisions] == [
        ("source", "create", True),
        ("organisation", "create", True),
        ("incident", "create", True),
    ]


async def test_problems_are_reported_by_line_and_nothing_is_written(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    source_id, missing = str(uuid.uuid4()), str(uuid.uuid4())
    body = (
        _lines(
            _source(source_id),
            _incident(source_id, title=""),  # line 2: empty title
            _incident(missing),  # line 3: no such source
            {
                **_incident(source_id),
                "record": {
                    **_incident(source_id)["record"],
                    "citations": [{"source_id": source_id, "quote": "not in the text"}],
                },
            },
            {"type": "weapon", "record": {}},  # line 5: unknown type
            _incident(source_id, location={"country": "ZZ", "precision": "country"}),  # line 6
        )
        + b"{not json\n"
    )  # line 7
    before = await snapshot(conn)

    response = await _post(client, body, keys.admin)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "import_rejected"
    assert [e["field"] for e in problem["errors"]] == ["line 2: title", "line 5: type", "line 7"]
    assert problem["errors"][2]["message"].startswith("not valid JSON")
    assert await snapshot(conn) == before

    # Once the Struct errors are fixed, the checks that need the database speak up.
    body = _lines(
        _source(source_id),
        _incident(missing),
        {
            **_incident(source_id),
            "record": {
                **_incident(source_id)["record"],
                "citations": [{"source_id": source_id, "quote": "not in the text"}],
            },
        },
        _incident(source_id, location={"country": "ZZ", "precision": "country"}),
        _incident(source_id, str(uuid.uuid4())),
        _organisation(str(uuid.uuid4()), missing),
    )
    response = await _post(client, body, keys.admin)
    assert response.status_code == 422, response.text
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert errors == {
        "line 2: citations[0].source_id": "no such source",
        "line 3: citations[0].quote": "quote not found in the text of the source",
        "line 4: location.country": "unknown country code ZZ",
        "line 5: participants[0].organisation_id": "no such organisation",
        "line 6: citations[0].source_id": "no such source",
    }
    assert await snapshot(conn) == before


async def test_stored_ids_need_a_version_and_ids_are_not_repeated(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    existing = str(await conn.fetchval("SELECT id FROM sources WHERE version = 1 LIMIT 1"))
    fresh = str(uuid.uuid4())
    body = _lines(
        _source(existing, url="https://example.org/a"),
        _source(fresh),
        _source(fresh, url="https://example.org/b"),
    )

    response = await _post(client, body, keys.admin)

    assert response.status_code == 422
    errors = {(e["field"], e["message"]) for e in response.json()["errors"]}
    assert (
        "line 1: version",
        "a record with this id is stored (version 1): give the version this line brings to update it "
        "(a newer one) or keep it (the same)",
    ) in errors
    assert ("line 3: id", "the same id is on line 2") in errors


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("read", 403), ("write", 403)])
async def test_import_needs_admin(
    client: httpx.AsyncClient, keys: Keys, key: str | None, status: int
) -> None:
    headers = dict(NDJSON)
    if key is not None:
        headers.update(Keys.header(getattr(keys, key)))
    response = await client.post("/v1/imports", content=_lines(_source(str(uuid.uuid4()))), headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_unknown_field_is_refused(client: httpx.AsyncClient, keys: Keys) -> None:
    line = _source(str(uuid.uuid4()))
    line["record"]["colour"] = "red"
    response = await _post(client, _lines(line), keys.admin)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "line 1: record"
    assert "colour" in response.json()["errors"][0]["message"]


async def test_empty_body_is_400(client: httpx.AsyncClient, keys: Keys) -> None:
    """The body is required (as the spec says): none at all is not an import of nothing
    (schemathesis sent a POST without a body and got a 200)."""
    for headers in (Keys.header(keys.admin), {**NDJSON, **Keys.header(keys.admin)}):
        response = await client.post("/v1/imports", headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_body"
    assert (await _post(client, b"\n", keys.admin)).json() == {"lines": 1, "created": {}, **NOTHING_ELSE}


def test_cli_import_ndjson(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    source_id = str(uuid.uuid4())
    good = tmp_path / "good.ndjson"
    good.write_bytes(_lines(_source(source_id), _incident(source_id)))
    assert cli.main(["import", "ndjson", str(good)]) == 0
    printed = capsys.readouterr()
    assert "created 1 source(s), 1 incident(s)" in printed.out
    # Progress by phase, each with its rows (standard error, not a terminal: one line each).
    phases = [line.split(": ")[1] for line in printed.err.splitlines() if line.startswith("good.ndjson: ")]
    assert phases == ["read", "check", "write", "documents", "revisions"]
    assert "good.ndjson: read: 2 rows in " in printed.err
    assert gc.isenabled()

    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(_lines(_incident(str(uuid.uuid4()))))
    assert cli.main(["import", "ndjson", str(bad)]) == 1
    assert "line 1: citations[0].source_id: no such source" in capsys.readouterr().err


def test_the_cycle_collector_is_paused_only_while_a_command_imports() -> None:
    seen: list[bool] = []

    def failing_import() -> None:
        with collector_paused():
            seen.append(gc.isenabled())
            raise RuntimeError("an import that fails")

    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        failing_import()
    assert seen == [False]
    assert gc.isenabled()  # restored, whatever happened
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


async def _export_all(client: httpx.AsyncClient) -> bytes:
    """What `secevents export all` writes: every resource's NDJSON export, referenced ones first."""
    parts = []
    for resource in ALL_RESOURCES:
        response = await client.get(f"/v1/exports/{resource}", params={"format": "ndjson"})
        assert response.status_code == 200, response.text
        parts.append(response.content)
    return b"".join(parts)


def _record_lines(export: bytes) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in export.splitlines() if line]
    return [line for line in lines if line["type"] in ("source", "organisation", "incident", "statement")]


async def test_an_export_imported_into_the_same_database_changes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    export = await _export_all(client)
    records = _record_lines(export)
    before = await snapshot(conn)

    response = await _post(client, export, keys.admin)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["updated"], result["skipped"]) == ({}, {}, {})
    assert sum(result["unchanged"].values()) == len(records)
    assert await snapshot(conn) == before  # no row, no version, no revision


async def test_import_applies_newer_versions_keeps_equal_ones_and_skips_older_ones(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    source_id, org_id = str(uuid.uuid4()), str(uuid.uuid4())
    created = await _post(client, _lines(_source(source_id), _organisation(org_id, source_id)), keys.admin)
    assert created.status_code == 200, created.text
    incident_id = str(uuid.uuid4())
    first = _incident(source_id, org_id, id=incident_id)
    assert (await _post(client, _lines(first), keys.admin)).json()["created"] == {"incident": 1}
    older_copy = await _export_all(client)  # the incident at version 1

    # A newer version (as a sync from a newer copy brings it): applied, with its revision.
    newer = _incident(source_id, org_id, id=incident_id, version=3, title="Compound stormed at dawn")
    newer["record"]["participants"] = []
    response = await _post(client, _lines(newer), keys.admin)
    assert response.status_code == 200, response.text
    assert response.json()["updated"] == {"incident": 1}
    fetched = await client.get(f"/v1/incidents/{incident_id}")
    assert (fetched.json()["version"], fetched.json()["title"]) == (3, "Compound stormed at dawn")
    assert fetched.json()["participants"] == []
    assert fetched.headers["etag"] == f'"{incident_id}:3"'
    assert (
        await conn.fetchval("SELECT count(*) FROM incident_participants WHERE incident_id = $1", incident_id)
        == 0
    )
    revision = await conn.fetchrow(
        "SELECT version, operation, data::jsonb->>'title' AS title FROM revisions WHERE record_id = $1 "
        "ORDER BY seq DESC LIMIT 1",
        incident_id,
    )
    assert tuple(revision) == (3, "update", "Compound stormed at dawn")
    newest_copy = await _export_all(client)
    before = await snapshot(conn)

    # The older copy: the incident is skipped and reported, everything else is unchanged.
    response = await _post(client, older_copy, keys.admin)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["updated"], result["skipped"]) == ({}, {}, {"incident": 1})
    line = 1 + next(n for n, raw in enumerate(older_copy.splitlines()) if incident_id.encode() in raw)
    assert result["skipped_records"] == [
        {"type": "incident", "id": incident_id, "line": line, "version": 1, "stored_version": 3}
    ]
    # An equal version with other content is not applied either: the stored record stays.
    same_version = _incident(source_id, org_id, id=incident_id, version=3, title="Rewritten")
    assert (await _post(client, _lines(same_version), keys.admin)).json()["unchanged"] == {"incident": 1}
    assert (await _post(client, newest_copy, keys.admin)).json()["updated"] == {}
    assert await snapshot(conn) == before
    assert (await client.get(f"/v1/incidents/{incident_id}")).json()["title"] == "Compound stormed at dawn"


async def test_import_updates_every_record_type_from_a_newer_export(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    """Each record type's newer version replaces the stored one with its child rows."""
    export = await _export_all(client)
    newer: list[dict[str, Any]] = []
    for line in _record_lines(export):
        record = line["record"]
        record["version"] += 1
        record["updated_at"] = "2030-01-01T00:00:00Z"
        if line["type"] == "organisation":
            record["aliases"] = [*record["aliases"], f"{record['name']} (renamed)"]
        newer.append(line)
    counts = Counter(line["type"] for line in newer)

    response = await _post(client, _lines(*newer), keys.admin)

    assert response.status_code == 200, response.text
    assert response.json()["updated"] == dict(counts)
    for line in newer:
        stored = (await client.get(f"/v1/{line['type']}s/{line['record']['id']}")).json()
        assert (stored["version"], stored["updated_at"]) == (
            line["record"]["version"],
            "2030-01-01T00:00:00Z",
        )
        if line["type"] == "organisation":
            assert stored["aliases"] == line["record"]["aliases"]
    # The documents are those the rows render (stored once, no stale copy).
    assert await _export_all(client) != export
    again = await _post(client, await _export_all(client), keys.admin)
    assert sum(again.json()["unchanged"].values()) == len(newer)
