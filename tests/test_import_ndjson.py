"""POST /v1/imports and `secevents import ndjson`: records in the API's shapes, validated by the
same Structs, references in any order, all or nothing with errors by line.
"""

from __future__ import annotations

import gc
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from secevents.server.cli import main as cli
from secevents.server.importers import collector_paused
from tests.writing import Keys, make_keys, snapshot

NDJSON = {"Content-Type": "application/x-ndjson"}
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
    assert response.json() == {"lines": 4, "created": {"source": 1, "organisation": 1, "incident": 1}}
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


async def test_ids_already_taken_or_repeated(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    existing = str(await conn.fetchval("SELECT id FROM sources LIMIT 1"))
    fresh = str(uuid.uuid4())
    body = _lines(
        _source(existing, url="https://example.org/a"),
        _source(fresh),
        _source(fresh, url="https://example.org/b"),
    )

    response = await _post(client, body, keys.admin)

    assert response.status_code == 422
    errors = {(e["field"], e["message"]) for e in response.json()["errors"]}
    assert ("line 1: id", "a record with this id already exists") in errors
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
    assert (await _post(client, b"\n", keys.admin)).json() == {"lines": 1, "created": {}}


def test_cli_import_ndjson(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    source_id = str(uuid.uuid4())
    good = tmp_path / "good.ndjson"
    good.write_bytes(_lines(_source(source_id), _incident(source_id)))
    assert cli.main(["import", "ndjson", str(good)]) == 0
    assert "created 1 source(s), 1 incident(s)" in capsys.readouterr().out
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
