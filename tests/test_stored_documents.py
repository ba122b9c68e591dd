"""Stored documents (issue 13): the document at version v never changes. A change to what GET
returns — a record's own write or a write of an organisation its document embeds — is a new
version with a revision and one change-feed entry; GET, the revision of the current version and
the feed's last entry hold the same bytes."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from secevents.server import db
from secevents.server.sql import documents
from secevents.server.sql.documents import cascade
from tests.writing import Keys, incident_body, live_server, make_keys

COLLECTIONS = {
    "incident": "incidents",
    "organisation": "organisations",
    "statement": "statements",
    "source": "sources",
}
EMBEDDED_EVERYWHERE = "Government of Pakistan"  # the sample's organisation that all three kinds embed


class _RawRevision(msgspec.Struct):
    version: int
    cause: dict[str, Any] | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")


class _RawChange(msgspec.Struct):
    seq: int
    type: str
    id: uuid.UUID
    version: int
    deleted: bool = False
    data: msgspec.Raw = msgspec.Raw(b"null")


class _RawChangePage(msgspec.Struct):
    data: list[_RawChange]
    next_cursor: str
    has_more: bool = False


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


async def _feed(client: httpx.AsyncClient, after: str = "0") -> tuple[list[_RawChange], str]:
    """Every change after ``after``, in order, and the cursor to go on from."""
    changes: list[_RawChange] = []
    while True:
        response = await client.get("/v1/changes", params={"after": after, "limit": 1000})
        assert response.status_code == 200, response.text
        page = msgspec.json.decode(response.content, type=_RawChangePage)
        changes.extend(page.data)
        after = page.next_cursor
        if not page.has_more:
            return changes, after


async def _organisation_named(conn: asyncpg.Connection, name: str) -> uuid.UUID:
    found: uuid.UUID = await conn.fetchval("SELECT id FROM organisations WHERE name = $1", name)
    return found


async def _patch(client: httpx.AsyncClient, keys: Keys, path: str, body: dict[str, Any]) -> httpx.Response:
    etag = (await client.get(path)).headers["etag"]
    return await client.patch(path, json=body, headers={**keys.header(keys.write), "If-Match": etag})


async def test_renaming_an_organisation_moves_every_record_that_embeds_it(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    org_id = await _organisation_named(conn, EMBEDDED_EVERYWHERE)
    async with conn.transaction():
        embedders = await cascade.referrers(conn, "organisation", org_id)
    assert {t for t, _ in embedders} == {"incident", "statement", "organisation"}
    before: dict[tuple[str, uuid.UUID], httpx.Response] = {}
    for record_type, ids in embedders:
        for record_id in ids:
            before[record_type, record_id] = await client.get(f"/v1/{COLLECTIONS[record_type]}/{record_id}")
    list_before = await client.get("/v1/incidents")
    _, cursor = await _feed(client)

    renamed = await _patch(
        client, keys, f"/v1/organisations/{org_id}", {"name": "Federal Government of Pakistan"}
    )
    assert renamed.status_code == 200, renamed.text
    org_version = renamed.json()["version"]

    for (record_type, record_id), old in before.items():
        path = f"/v1/{COLLECTIONS[record_type]}/{record_id}"
        again = await client.get(path, headers={"If-None-Match": old.headers["etag"]})
        assert again.status_code == 200  # not 304: the body changed
        assert again.headers["etag"] != old.headers["etag"]
        document = again.json()
        assert document["version"] == old.json()["version"] + 1
        assert (
            "Federal Government of Pakistan" in again.text
            and EMBEDDED_EVERYWHERE not in again.text.replace("Federal Government of Pakistan", "")
        )
        revision = await client.get(f"{path}/revisions/{document['version']}")
        assert msgspec.json.decode(revision.content, type=_RawRevision).cause == {
            "type": "organisation",
            "id": str(org_id),
            "version": org_version,
        }
    list_after = await client.get("/v1/incidents", headers={"If-None-Match": list_before.headers["etag"]})
    assert list_after.status_code == 200

    changes, _ = await _feed(client, cursor)
    assert (changes[0].type, changes[0].id) == ("organisation", org_id)
    assert sorted((c.type, c.id) for c in changes[1:]) == sorted(before)  # one entry each


async def test_get_revision_and_feed_hold_the_same_bytes_and_a_feed_replica_equals_get(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    # Writes of every kind first: creates, updates, a cascade, a delete.
    created = await client.post(
        "/v1/incidents", json=await incident_body(conn), headers=keys.header(keys.write)
    )
    assert created.status_code == 201, created.text
    for name in ("Tehreek-i-Taliban Pakistan", "Taliban", "Islamic State"):
        org_id = await _organisation_named(conn, name)
        response = await _patch(client, keys, f"/v1/organisations/{org_id}", {"name": f"{name} (renamed)"})
        assert response.status_code == 200, response.text
    gone = await client.post("/v1/incidents", json=await incident_body(conn), headers=keys.header(keys.write))
    deleted = await client.delete(
        gone.headers["location"], headers={**keys.header(keys.write), "If-Match": gone.headers["etag"]}
    )
    assert deleted.status_code == 204

    changes, _ = await _feed(client)
    replica: dict[tuple[str, uuid.UUID], bytes] = {}
    last: dict[tuple[str, uuid.UUID], _RawChange] = {}
    for change in changes:
        last[change.type, change.id] = change
        if change.deleted:
            replica.pop((change.type, change.id), None)
        else:
            replica[change.type, change.id] = bytes(change.data)

    live = 0
    for record_type, collection in COLLECTIONS.items():
        for row in await conn.fetch(
            f"SELECT id, version, deleted_at IS NOT NULL AS deleted FROM {collection}"
        ):
            key = (record_type, row["id"])
            if row["deleted"]:
                assert key not in replica
                continue
            live += 1
            got = await client.get(f"/v1/{collection}/{row['id']}")
            assert got.status_code == 200
            revision = await client.get(f"/v1/{collection}/{row['id']}/revisions/{row['version']}")
            assert bytes(msgspec.json.decode(revision.content, type=_RawRevision).data) == got.content
            assert last[key].version == row["version"]
            assert bytes(last[key].data) == got.content
            assert replica[key] == got.content
    assert live == len(replica) >= 20


async def test_a_patch_that_changes_nothing_makes_no_version(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    incident = (await client.get("/v1/incidents", params={"limit": 1})).json()["data"][0]
    path = f"/v1/incidents/{incident['id']}"
    current = await client.get(path)
    same = {"title": incident["title"], "location": incident["location"]}
    response = await _patch(client, keys, path, same)
    assert response.status_code == 200, response.text
    assert response.content == current.content
    # The same version's tag (the compressed read's is weak: W/, compared weakly).
    assert response.headers["etag"] == current.headers["etag"].removeprefix("W/")
    assert (
        await conn.fetchval("SELECT count(*) FROM revisions WHERE record_id = $1", uuid.UUID(incident["id"]))
        == 1
    )
    changed = await _patch(client, keys, path, {"title": incident["title"] + " (corrected)"})
    assert changed.json()["version"] == incident["version"] + 1


async def test_if_match_of_the_version_before_a_cascade_is_412(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    org_id = await _organisation_named(conn, "Tehreek-i-Taliban Pakistan")
    incident_id = await conn.fetchval(
        "SELECT incident_id FROM incident_participants WHERE organisation_id = $1 LIMIT 1", org_id
    )
    read_by_curator = await client.get(f"/v1/incidents/{incident_id}")
    renamed = await _patch(client, keys, f"/v1/organisations/{org_id}", {"name": "TTP (renamed)"})
    assert renamed.status_code == 200
    stale = await client.patch(
        f"/v1/incidents/{incident_id}",
        json={"title": "A curator's edit"},
        headers={**keys.header(keys.write), "If-Match": read_by_curator.headers["etag"]},
    )
    assert stale.status_code == 412
    assert stale.json()["code"] == "version_mismatch"
    assert stale.headers["etag"] != read_by_curator.headers["etag"]


async def test_deleting_an_organisation_that_records_embed_is_409_naming_them(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys
) -> None:
    org_id = await _organisation_named(conn, "Pakistan Army")
    path = f"/v1/organisations/{org_id}"
    etag = (await client.get(path)).headers["etag"]
    refused = await client.delete(path, headers={**keys.header(keys.write), "If-Match": etag})
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "still_referenced"
    incident_id = await conn.fetchval(
        "SELECT incident_id FROM incident_participants WHERE organisation_id = $1", org_id
    )
    assert problem["errors"] == [{"field": "referrers[0]", "message": f"incident {incident_id}"}]
    assert (await client.get(path)).status_code == 200

    # Once nothing embeds it, it can go; a write that names it afterwards is refused.
    incident_path = f"/v1/incidents/{incident_id}"
    incident = (await client.get(incident_path)).json()
    remaining = [
        {"organisation_id": p["organisation_id"], "role": p["role"]}
        for p in incident["participants"]
        if p["organisation_id"] != str(org_id)
    ]
    assert (await _patch(client, keys, incident_path, {"participants": remaining})).status_code == 200
    assert (
        await client.delete(path, headers={**keys.header(keys.write), "If-Match": etag})
    ).status_code == 204
    again = await _patch(
        client,
        keys,
        incident_path,
        {"participants": [*remaining, {"organisation_id": str(org_id), "role": "target"}]},
    )
    assert again.status_code == 422


async def test_concurrent_writers_of_organisations_and_their_incidents_lose_no_cascade(
    database_url: str, conn: asyncpg.Connection, keys: Keys
) -> None:
    """8 writers at once: 4 rename organisations, 4 edit incidents that embed them (titles and
    participants), each retrying as a client does. Afterwards every stored document is what
    rendering the rows gives now — no document kept a name that changed — and no client saw a
    deadlock error (only 200, 412 for a lost If-Match race, or 503 with Retry-After)."""
    names = ["Government of Pakistan", "Tehreek-i-Taliban Pakistan", "Islamic State", "Pakistan Army"]
    orgs = [str(await _organisation_named(conn, n)) for n in names]
    incidents = [
        str(r["id"])
        for r in await conn.fetch(
            "SELECT DISTINCT incident_id AS id FROM incident_participants WHERE organisation_id = ANY($1::uuid[])",
            [uuid.UUID(o) for o in orgs],
        )
    ]
    statuses: list[int] = []
    landed: list[int] = []
    rng = random.Random(13)

    async def writer(client: httpx.AsyncClient, n: int) -> None:
        for step in range(8):
            if n < 4:
                path, body = f"/v1/organisations/{orgs[n]}", {"name": f"{names[n]} {step}"}
            else:
                picked = rng.sample(orgs, 2)
                path = f"/v1/incidents/{rng.choice(incidents)}"
                body = {
                    "title": f"edited by {n} at {step}",
                    "participants": [
                        {"organisation_id": picked[0], "role": "perpetrator"},
                        {"organisation_id": picked[1], "role": "target"},
                    ],
                }
            # As a client does: a 412 re-reads and tries again, a 503 waits as told and retries.
            for _ in range(50):
                response = await _patch(client, keys, path, body)
                statuses.append(response.status_code)
                if response.status_code == 503:
                    assert "retry-after" in response.headers
                    await asyncio.sleep(0.05)
                elif response.status_code != 412:
                    break
            landed.append(response.status_code)

    async with (
        live_server(database_url) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=120) as client,
    ):
        await asyncio.gather(*(writer(client, n) for n in range(8)))
    assert set(statuses) <= {200, 412, 503}, statuses
    assert landed == [200] * 64  # in the end every writer's every change went in
    for record_type, renderer in documents.RENDERERS.items():
        stored = {
            r["id"]: r["doc"]
            for r in await conn.fetch(f"SELECT id, doc FROM {renderer.table} WHERE deleted_at IS NULL")
        }
        async with conn.transaction():
            fresh = await documents.render(conn, record_type, list(stored))
        assert [i for i in stored if stored[i] != fresh[i]] == [], record_type


async def test_migration_0005_keeps_each_served_document_and_versions_the_stale_ones(
    empty_database_url: str,
) -> None:
    """Before 0005 documents were rendered per read: a renamed organisation changed incidents'
    bodies without a new version. The backfill keeps the revision's bytes where they still say
    what the record renders, and moves the others to a new version with a revision."""
    await asyncio.to_thread(db.upgrade, empty_database_url, "0004")
    async with db.connect(empty_database_url) as old:
        await old.execute(OLD_WORLD)
        revised_before = {
            r["record_id"]: r["data"] for r in await old.fetch("SELECT record_id, data FROM revisions")
        }
        # The bug: a rename that no incident's version followed.
        await old.execute(
            "UPDATE organisations SET name = 'Renamed group', version = 2 WHERE name = 'Group A'"
        )
        await old.execute(
            "INSERT INTO revisions (record_type, record_id, version, operation, data, actor)"
            " SELECT 'organisation', o.id, o.version, 'update', organisation_doc(o), 'test' FROM organisations o"
            " WHERE o.name = 'Renamed group'"
        )
    await asyncio.to_thread(db.upgrade, empty_database_url)
    async with db.connect(empty_database_url) as conn:
        incidents = {r["title"]: r for r in await conn.fetch("SELECT id, title, version, doc FROM incidents")}
        stale, kept = incidents["Names group A"], incidents["Names group B"]
        assert stale["version"] == 2 and b"Renamed group" in stale["doc"]
        assert kept["version"] == 1 and kept["doc"] == revised_before[kept["id"]]
        revision = await conn.fetchrow(
            "SELECT operation, actor, data FROM revisions WHERE record_id = $1 AND version = 2", stale["id"]
        )
        assert (revision["operation"], revision["actor"], revision["data"]) == (
            "update",
            "migration 0005_stored_documents",
            stale["doc"],
        )
        assert await conn.fetchval("SELECT count(*) FROM incidents WHERE doc IS NULL") == 0
        assert await conn.fetchval("SELECT to_regproc('incident_doc') IS NULL")


OLD_WORLD = """
INSERT INTO sources (kind, title) VALUES ('report', 'Old report');
INSERT INTO organisations (name, kind) VALUES ('Group A', 'armed_group'), ('Group B', 'armed_group');
INSERT INTO incidents (title, type, occurred_start, occurred_end, occurred_precision, country, location_precision)
VALUES ('Names group A', 'battle', '2020-01-01', '2020-01-01', 'day', 'PK', 'country'),
       ('Names group B', 'battle', '2020-01-02', '2020-01-02', 'day', 'PK', 'country');
INSERT INTO incident_participants (incident_id, ordinal, organisation_id, role)
SELECT i.id, 1, o.id, 'perpetrator' FROM incidents i JOIN organisations o ON o.name = replace(i.title, 'Names group', 'Group');
INSERT INTO revisions (record_type, record_id, version, operation, data, actor)
SELECT 'source', s.id, 1, 'create', source_doc(s), 'test' FROM sources s;
INSERT INTO revisions (record_type, record_id, version, operation, data, actor)
SELECT 'organisation', o.id, 1, 'create', organisation_doc(o), 'test' FROM organisations o;
INSERT INTO revisions (record_type, record_id, version, operation, data, actor)
SELECT 'incident', i.id, 1, 'create', incident_doc(i), 'test' FROM incidents i
"""
