"""Read API v1: every filter alone and combined against an independent count, keyset pages for
every sort (also while records are inserted), cursors, parameter errors, ETags.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from secevents.schemas import IncidentPage, OrganisationPage, Problem
from secevents.schemas.stats import IncidentStats
from tests.support import store_documents

N = 160
COUNTRIES = ["PK", "AF", "IN", "IR", "MX"]
ADMIN1 = ["North", "South", "East", "West"]
TYPES = ["battle", "explosion_remote_violence", "violence_against_civilians", "riot", "protest"]
ROLES = ["perpetrator", "target", "claimed_by"]


@dataclass(frozen=True)
class Row:
    id: uuid.UUID
    occurred_start: dt.date
    updated_at: dt.datetime
    country: str
    admin1: str | None
    type: str
    lat: float | None
    lon: float | None
    killed: int | None
    participants: frozenset[tuple[uuid.UUID, str]]
    text: str


# Deterministic, varied incidents: dates over ~4 years with ties, NULL admin1/coordinates/
# casualties on some, 0–2 participants among the seed organisations, a cited quote on some.
GENERATE = """
WITH src AS (
  INSERT INTO sources (kind, title, publisher) VALUES ('report', 'Generated test report', 'Test desk')
  RETURNING id
), orgs AS (
  SELECT array_agg(id ORDER BY id) AS ids FROM organisations
), new AS (
  INSERT INTO incidents (title, summary, type, occurred_start, occurred_end, occurred_precision,
                         country, admin1, lat, lon, location_precision, killed_low, killed_best)
  SELECT 'Generated incident ' || g || CASE WHEN g % 7 = 0 THEN ' near the border crossing' ELSE '' END,
         CASE WHEN g % 5 = 0 THEN 'Gunmen attacked a checkpoint' ELSE 'A protest march' END,
         ($1::text[])[1 + g % 5],
         date '2020-01-01' + (g * 9) % 1400, date '2020-01-01' + (g * 9) % 1400, 'day',
         ($2::text[])[1 + g % 5],
         CASE WHEN g % 6 = 0 THEN NULL ELSE ($3::text[])[1 + g % 4] END,
         CASE WHEN g % 4 = 0 THEN NULL ELSE -60 + (g * 37) % 120 END,
         CASE WHEN g % 4 = 0 THEN NULL ELSE -170 + (g * 53) % 340 END,
         'exact',
         CASE WHEN g % 3 = 0 THEN NULL ELSE g % 7 END,
         CASE WHEN g % 2 = 0 THEN g % 7 + g % 11 ELSE NULL END
    FROM generate_series(1, $4::int) g
  RETURNING id, title
), numbered AS (
  SELECT id, row_number() OVER (ORDER BY title) AS g FROM new
), parts AS (
  INSERT INTO incident_participants (incident_id, ordinal, organisation_id, role)
  SELECT n.id, k, (SELECT ids FROM orgs)[1 + (n.g * k) % cardinality((SELECT ids FROM orgs))],
         ($5::text[])[1 + (n.g + k) % 3]
    FROM numbered n, generate_series(1, 2) k
   WHERE k <= n.g % 3
)
INSERT INTO citations (incident_id, ordinal, source_id, quote)
SELECT n.id, 1, (SELECT id FROM src), 'Witnesses described an ambush on the convoy'
  FROM numbered n WHERE n.g % 11 = 0
"""


@pytest.fixture
async def dataset(conn: asyncpg.Connection) -> list[Row]:
    await conn.execute(GENERATE, TYPES, COUNTRIES, ADMIN1, N, ROLES)
    await store_documents(conn)
    return await load_rows(conn)


async def load_rows(conn: asyncpg.Connection) -> list[Row]:
    rows = await conn.fetch(
        """
        SELECT i.id, i.occurred_start, i.updated_at, i.country::text AS country, i.admin1, i.type,
               i.lat, i.lon, coalesce(i.killed_best, i.killed_low) AS killed,
               coalesce(i.summary, '') || ' ' || i.title AS text,
               coalesce((SELECT array_agg(p.organisation_id::text || '/' || p.role)
                           FROM incident_participants p WHERE p.incident_id = i.id), '{}') AS parts
          FROM incidents i WHERE i.deleted_at IS NULL"""
    )
    return [
        Row(
            id=r["id"],
            occurred_start=r["occurred_start"],
            updated_at=r["updated_at"],
            country=r["country"],
            admin1=r["admin1"],
            type=r["type"],
            lat=r["lat"],
            lon=r["lon"],
            killed=r["killed"],
            participants=frozenset((uuid.UUID(p.split("/")[0]), p.split("/")[1]) for p in r["parts"]),
            text=r["text"],
        )
        for r in rows
    ]


async def walk(client: httpx.AsyncClient, path: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every record of a list, following `next_cursor` (and checking `Link` agrees)."""
    records: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = params + ([("cursor", cursor)] if cursor else [])
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        records.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            assert "link" not in response.headers
            return records
        assert 'rel="next"' in response.headers["link"]
        assert f"cursor={cursor}" in response.headers["link"]
    raise AssertionError("pagination did not end")


def problem_of(response: httpx.Response, status: int) -> Problem:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return msgspec.json.decode(response.content, type=Problem, strict=True)


# --- filters against an independent count ---------------------------------------------------


def _in_box(r: Row, west: float, south: float, east: float, north: float) -> bool:
    if r.lat is None or r.lon is None:
        return False
    in_lon = west <= r.lon <= east if west <= east else (r.lon >= west or r.lon <= east)
    return south <= r.lat <= north and in_lon


FILTER_CASES: list[tuple[str, list[tuple[str, str]], Any]] = [
    ("country", [("country", "PK")], lambda r, o: r.country == "PK"),
    ("country OR", [("country", "PK"), ("country", "MX")], lambda r, o: r.country in {"PK", "MX"}),
    ("admin1", [("admin1", "North")], lambda r, o: r.admin1 == "North"),
    ("type OR", [("type", "riot"), ("type", "battle")], lambda r, o: r.type in {"riot", "battle"}),
    (
        "occurred range",
        [("occurred_after", "2021-03-01"), ("occurred_before", "2022-06-30")],
        lambda r, o: dt.date(2021, 3, 1) <= r.occurred_start <= dt.date(2022, 6, 30),
    ),
    (
        "occurred_after",
        [("occurred_after", "2023-01-01")],
        lambda r, o: r.occurred_start >= dt.date(2023, 1, 1),
    ),
    ("min_killed", [("min_killed", "10")], lambda r, o: r.killed is not None and r.killed >= 10),
    ("min_killed 0", [("min_killed", "0")], lambda r, o: r.killed is not None),
    ("bbox", [("bbox", "-50,-30,60,40")], lambda r, o: _in_box(r, -50, -30, 60, 40)),
    ("bbox antimeridian", [("bbox", "100,-60,-100,60")], lambda r, o: _in_box(r, 100, -60, -100, 60)),
    ("organisation", [("organisation", "{org}")], lambda r, o: any(p[0] == o for p in r.participants)),
    (
        "organisation + role",
        [("organisation", "{org}"), ("role", "target")],
        lambda r, o: (o, "target") in r.participants,
    ),
    ("role alone", [("role", "claimed_by")], lambda r, o: any(p[1] == "claimed_by" for p in r.participants)),
    ("q title/summary", [("q", "checkpoint")], lambda r, o: "checkpoint" in r.text),
    ("q stemmed phrase", [("q", '"border crossings"')], lambda r, o: "border crossing" in r.text),
    (
        "combined",
        [
            ("country", "PK"),
            ("country", "AF"),
            ("type", "battle"),
            ("type", "riot"),
            ("min_killed", "1"),
            ("occurred_after", "2020-06-01"),
        ],
        lambda r, o: (
            r.country in {"PK", "AF"}
            and r.type in {"battle", "riot"}
            and r.killed is not None
            and r.killed >= 1
            and r.occurred_start >= dt.date(2020, 6, 1)
        ),
    ),
]


async def _busiest_organisation(rows: list[Row]) -> uuid.UUID:
    counts: dict[uuid.UUID, int] = {}
    for r in rows:
        for org, _ in r.participants:
            counts[org] = counts.get(org, 0) + 1
    return max(counts, key=lambda o: (counts[o], str(o)))


@pytest.mark.parametrize(("name", "params", "predicate"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
async def test_incident_filter_matches_independent_count(
    client: httpx.AsyncClient, dataset: list[Row], name: str, params: list[tuple[str, str]], predicate: Any
) -> None:
    org = await _busiest_organisation(dataset)
    query = [(k, v.replace("{org}", str(org))) for k, v in params] + [("limit", "500")]
    got = await walk(client, "/v1/incidents", query)
    expected = {r.id for r in dataset if predicate(r, org)}
    assert expected, f"the dataset should exercise {name}"
    assert {uuid.UUID(d["id"]) for d in got} == expected
    assert len(got) == len(expected)


async def test_q_searches_citation_quotes(
    client: httpx.AsyncClient, dataset: list[Row], conn: asyncpg.Connection
) -> None:
    expected = {
        r["incident_id"]
        for r in await conn.fetch(
            "SELECT incident_id FROM citations WHERE quote LIKE '%ambush%' AND incident_id IS NOT NULL"
        )
    }
    got = await walk(client, "/v1/incidents", [("q", "ambushes")])
    assert {uuid.UUID(d["id"]) for d in got} == expected
    assert len(expected) == N // 11


async def test_updated_after(client: httpx.AsyncClient, dataset: list[Row], conn: asyncpg.Connection) -> None:
    touched = dataset[:3]
    await conn.execute(
        "UPDATE incidents SET updated_at = now() + interval '1 hour' WHERE id = ANY($1::uuid[])",
        [r.id for r in touched],
    )
    await store_documents(conn, "incident", [r.id for r in touched])
    since = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)).isoformat()
    got = await walk(client, "/v1/incidents", [("updated_after", since)])
    assert {uuid.UUID(d["id"]) for d in got} == {r.id for r in touched}


async def test_organisation_relations_both_ways(client: httpx.AsyncClient, dataset: list[Row]) -> None:
    org = await _busiest_organisation(dataset)
    got = await walk(client, f"/v1/organisations/{org}/incidents", [("limit", "9")])
    assert {uuid.UUID(d["id"]) for d in got} == {
        r.id for r in dataset if any(p[0] == org for p in r.participants)
    }
    # …and each incident names the organisation inline, with its role.
    for doc in got:
        assert any(p["organisation_id"] == str(org) and p["name"] for p in doc["participants"])
    as_target = await walk(client, f"/v1/organisations/{org}/incidents", [("role", "target")])
    assert {uuid.UUID(d["id"]) for d in as_target} == {
        r.id for r in dataset if (org, "target") in r.participants
    }
    # The organisation filter is the path's: passing another is an unknown parameter.
    problem = problem_of(
        await client.get(f"/v1/organisations/{org}/incidents", params={"organisation": str(org)}), 400
    )
    assert problem.errors and problem.errors[0].field == "organisation"


async def test_organisation_statements(client: httpx.AsyncClient) -> None:
    statement = (await client.get("/v1/statements")).json()["data"][0]
    issuer = statement["issuer_id"]
    as_issuer = await walk(client, f"/v1/organisations/{issuer}/statements", [("role", "issuer")])
    assert [s["id"] for s in as_issuer] == [statement["id"]]
    assert any(o["role"] == "issuer" and o["organisation_id"] == issuer for o in statement["organisations"])
    as_addressee = await walk(client, f"/v1/organisations/{issuer}/statements", [("role", "addressed_to")])
    assert as_addressee == []
    via_filter = await walk(client, "/v1/statements", [("organisation", issuer), ("role", "issuer")])
    assert [s["id"] for s in via_filter] == [statement["id"]]


async def test_relation_lists_of_unknown_organisation_are_404(client: httpx.AsyncClient) -> None:
    for relation in ("incidents", "statements"):
        problem = problem_of(await client.get(f"/v1/organisations/{uuid.uuid4()}/{relation}"), 404)
        assert problem.code == "not_found"


async def test_organisation_search_is_typo_and_accent_tolerant(client: httpx.AsyncClient) -> None:
    async def names(q: str) -> set[str]:
        page = msgspec.json.decode(
            (await client.get("/v1/organisations", params={"q": q})).content, type=OrganisationPage
        )
        return {o.name for o in page.data}

    assert "Islamic State" in await names("daesh")  # an alias
    assert "Islamic State" in await names("DÁESH")  # case and accents
    assert "Tehreek-i-Taliban Pakistan" in await names("Tehrik-i-Taliban Pakistn")  # typos
    assert "Tehreek-i-Taliban Pakistan" in await names("TTP")


async def test_organisation_search_ranks_the_closest_names_first(client: httpx.AsyncClient) -> None:
    async def ranked(q: str, *extra: tuple[str, str]) -> list[str]:
        return [o["name"] for o in await walk(client, "/v1/organisations", [("q", q), *extra])]

    # By name, a typo's best match came after names that only share a word with it.
    assert (await ranked("Tehrik-i-Taliban Pakistn"))[0] == "Tehreek-i-Taliban Pakistan"
    assert (await ranked("daesh"))[0] == "Islamic State"  # an alias counts as the name
    # The same order page by page (the cursor carries the score), and by name when asked.
    closest = await ranked("Taliban")
    assert len(closest) > 1
    assert await ranked("Taliban", ("limit", "1")) == closest
    assert await ranked("Taliban", ("sort", "relevance")) == closest
    by_name = await ranked("Taliban", ("sort", "name"))
    assert sorted(by_name) == sorted(closest)
    assert by_name == sorted(by_name, key=str.casefold)
    # Relevance is closeness to `q`: without one it is a 400 naming `sort`.
    problem = problem_of(await client.get("/v1/organisations", params={"sort": "relevance"}), 400)
    assert problem.errors and problem.errors[0].field == "sort"


async def test_statement_and_source_search(client: httpx.AsyncClient) -> None:
    statements = (await client.get("/v1/statements", params={"q": "refugees"})).json()["data"]
    assert len(statements) == 1
    assert (await client.get("/v1/statements", params={"q": "zzzunmatched"})).json()["data"] == []
    sources = (await client.get("/v1/sources", params={"kind": "news_article"})).json()["data"]
    assert len(sources) == 1
    assert (await client.get("/v1/sources", params={"kind": "dataset"})).json()["data"] == []


# --- keyset pagination ------------------------------------------------------------------------

SORT_KEYS = {
    "-occurred": (lambda r: (r.occurred_start, r.id), True),
    "occurred": (lambda r: (r.occurred_start, r.id), False),
    "-updated": (lambda r: (r.updated_at, r.id), True),
    "updated": (lambda r: (r.updated_at, r.id), False),
}


@pytest.mark.parametrize("sort", list(SORT_KEYS))
async def test_every_page_once_in_order(client: httpx.AsyncClient, dataset: list[Row], sort: str) -> None:
    key, descending = SORT_KEYS[sort]
    got = await walk(client, "/v1/incidents", [("sort", sort), ("limit", "7")])
    assert [uuid.UUID(d["id"]) for d in got] == [r.id for r in sorted(dataset, key=key, reverse=descending)]


@pytest.mark.parametrize("sort", ["-occurred", "occurred", "-updated", "updated"])
async def test_pages_stay_exact_while_records_are_inserted(
    client: httpx.AsyncClient, dataset: list[Row], conn: asyncpg.Connection, sort: str
) -> None:
    key, descending = SORT_KEYS[sort]
    expected = [r.id for r in sorted(dataset, key=key, reverse=descending)]
    seen: list[uuid.UUID] = []
    cursor = None
    inserted = 0
    while True:
        params = {"sort": sort, "limit": "11", **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/v1/incidents", params=params)).json()
        seen.extend(uuid.UUID(d["id"]) for d in body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # New incidents at both ends of the order and in the middle, between page requests.
        for day in ("2019-01-01", "2021-07-01", "2030-01-01"):
            await conn.execute(
                "INSERT INTO incidents (title, type, occurred_start, occurred_end, occurred_precision, "
                "country, location_precision) VALUES ('late', 'riot', $1::date, $1::date, 'day', 'PK', 'country')",
                dt.date.fromisoformat(day),
            )
            await store_documents(conn)
            inserted += 1
    assert inserted > 0
    old = [i for i in seen if i in set(expected)]
    assert old == expected  # every record that existed at the start exactly once, in order
    assert len(seen) == len(set(seen))


async def test_organisations_and_statements_paginate(client: httpx.AsyncClient) -> None:
    one_by_one = await walk(client, "/v1/organisations", [("limit", "1")])
    all_at_once = (await client.get("/v1/organisations", params={"limit": "500"})).json()["data"]
    assert one_by_one == all_at_once
    backwards = await walk(client, "/v1/organisations", [("limit", "2"), ("sort", "-name")])
    assert backwards == list(reversed(all_at_once))
    for path, sort in (("/v1/statements", "issued"), ("/v1/sources", "-created"), ("/v1/sources", "updated")):
        assert len(await walk(client, path, [("limit", "1"), ("sort", sort)])) == 1


# --- cursors and parameter errors --------------------------------------------------------------


async def _first_cursor(client: httpx.AsyncClient, params: dict[str, str]) -> str:
    body = (await client.get("/v1/incidents", params={"limit": "2", **params})).json()
    cursor: str = body["next_cursor"]
    assert cursor
    return cursor


async def test_tampered_cursor_is_400(client: httpx.AsyncClient, dataset: list[Row]) -> None:
    cursor = await _first_cursor(client, {})
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    for bad in (flipped, cursor[:-3], "not a cursor!", "x" * 600):
        problem = problem_of(await client.get("/v1/incidents", params={"cursor": bad}), 400)
        assert problem.errors and problem.errors[0].field == "cursor"


async def test_foreign_cursor_is_400(client: httpx.AsyncClient, dataset: list[Row]) -> None:
    cursor = await _first_cursor(client, {"country": "PK"})
    # Same query, another page size: fine.
    assert (
        await client.get("/v1/incidents", params={"country": "PK", "limit": "3", "cursor": cursor})
    ).status_code == 200
    for path, params in (
        ("/v1/incidents", {"country": "AF"}),  # another filter
        ("/v1/incidents", {}),  # a filter dropped
        ("/v1/incidents", {"country": "PK", "sort": "occurred"}),  # another sort
        ("/v1/incidents", {"country": "PK", "type": "riot"}),  # a filter added
        ("/v1/statements", {}),  # another resource
    ):
        problem = problem_of(await client.get(path, params={**params, "cursor": cursor}), 400)
        assert problem.code == "invalid_parameter"
        assert problem.errors and problem.errors[0].field == "cursor"


async def test_cursor_from_another_secret_is_400(client: httpx.AsyncClient, dataset: list[Row]) -> None:
    from secevents.server.reads.pagination import CursorCodec

    forged = CursorCodec(b"another-secret").encode("0" * 16, ("2020-01-01", str(uuid.uuid4())))
    problem_of(await client.get("/v1/incidents", params={"cursor": forged}), 400)


BAD_PARAMETERS = [
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"occurred_after": "2023-13-01"}, "occurred_after"),
    ({"occurred_before": "yesterday"}, "occurred_before"),
    ({"occurred_after": "2024-01-02", "occurred_before": "2024-01-01"}, "occurred_before"),
    ({"updated_after": "2024-01-01T00:00:00"}, "updated_after"),
    # Found by schemathesis: numbers were taken as Unix timestamps, though the spec says date-time.
    ({"updated_after": "0.5"}, "updated_after"),
    ({"updated_after": "1700000000"}, "updated_after"),
    ({"updated_after": "2024-01-01"}, "updated_after"),
    ({"bbox": "1,2,3"}, "bbox"),
    ({"bbox": "a,b,c,d"}, "bbox"),
    ({"bbox": "0,10,10,0"}, "bbox"),
    ({"bbox": "0,-91,10,0"}, "bbox"),
    ({"bbox": "-181,0,10,10"}, "bbox"),
    ({"bbox": "nan,0,10,10"}, "bbox"),
    ({"country": "pk"}, "country"),
    ({"country": ""}, "country"),
    ({"country": "PK\n"}, "country"),
    ({"admin1": ""}, "admin1"),
    ({"type": "picnic"}, "type"),
    ({"role": "bystander"}, "role"),
    ({"organisation": "not-a-uuid"}, "organisation"),
    ({"min_killed": "-1"}, "min_killed"),
    ({"min_killed": "99999999999"}, "min_killed"),
    ({"sort": "title"}, "sort"),
    ({"q": ""}, "q"),
    ({"q": "x" * 201}, "q"),
    ({"q": "a\x00b"}, "q"),
    ({"contry": "PK"}, "contry"),
    ({"page": "2"}, "page"),
]


@pytest.mark.parametrize(("params", "field"), BAD_PARAMETERS, ids=[f"{k}" for k, _ in BAD_PARAMETERS])
async def test_bad_parameters_are_400_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    problem = problem_of(await client.get("/v1/incidents", params=params), 400)
    assert problem.code in {"invalid_parameter", "invalid_request"}
    assert problem.errors, problem
    assert problem.errors[0].field == field
    assert field in (problem.detail or "")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/organisations?kind=spy",
        "/v1/statements?issued_after=2024-02-01&issued_before=2024-01-01",
        "/v1/sources?kind=rumour",
        "/v1/statements?foo=1",
        "/v1/incidents/abc",
        "/health/live?x=1",
    ],
)
async def test_bad_parameters_everywhere(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code in {400, 404}
    problem_of(response, response.status_code)


async def test_bad_parameters_do_not_leak_connections(client: httpx.AsyncClient) -> None:
    # More bad requests than the pool has connections, then a good one must still be served.
    for _ in range(20):
        problem_of(await client.get("/v1/incidents", params={"occurred_after": "nope"}), 400)
    assert (await client.get("/v1/incidents")).status_code == 200


# --- stats -------------------------------------------------------------------------------------


async def test_stats_one_and_two_keys(
    client: httpx.AsyncClient, dataset: list[Row], conn: asyncpg.Connection
) -> None:
    response = await client.get("/v1/incidents/stats", params=[("group_by", "country"), ("group_by", "type")])
    stats = msgspec.json.decode(response.content, type=IncidentStats, strict=True)
    assert stats.group_by == ["country", "type"]
    expected = {
        (r["country"], r["type"]): (r["n"], r["killed_low"], r["killed_best"])
        for r in await conn.fetch(
            "SELECT country::text, type, count(*) AS n, sum(killed_low) AS killed_low, sum(killed_best) AS killed_best "
            "FROM incidents WHERE deleted_at IS NULL GROUP BY 1, 2"
        )
    }
    got = {(g.country, g.type): (g.incidents, g.killed.low, g.killed.best) for g in stats.data}
    assert got == expected
    assert [(g.country, g.type) for g in stats.data] == sorted(got, key=lambda k: (k[0] or "", k[1] or ""))

    filtered = (await client.get("/v1/incidents/stats", params={"group_by": "year", "country": "PK"})).json()
    assert sum(g["incidents"] for g in filtered["data"]) == sum(1 for r in dataset if r.country == "PK")
    assert all(set(g) == {"year", "incidents", "killed", "injured"} for g in filtered["data"])


async def test_stats_by_organisation_and_month(client: httpx.AsyncClient, dataset: list[Row]) -> None:
    data = (await client.get("/v1/incidents/stats", params={"group_by": "organisation"})).json()["data"]
    expected: dict[uuid.UUID, int] = {}
    for r in dataset:
        for org in {p[0] for p in r.participants}:
            expected[org] = expected.get(org, 0) + 1
    assert {uuid.UUID(g["organisation_id"]): g["incidents"] for g in data} == expected
    assert all(g["organisation_name"] for g in data)
    months = (await client.get("/v1/incidents/stats", params={"group_by": "month"})).json()["data"]
    assert sum(g["incidents"] for g in months) == len(dataset)
    assert all(len(g["month"]) == 7 for g in months)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"group_by": "weekday"},
        [("group_by", "year"), ("group_by", "year")],
        [("group_by", "year"), ("group_by", "type"), ("group_by", "country")],
    ],
)
async def test_stats_bad_group_by(client: httpx.AsyncClient, params: Any) -> None:
    problem = problem_of(await client.get("/v1/incidents/stats", params=params), 400)
    assert "group_by" in (problem.detail or "")


# --- HTTP semantics ----------------------------------------------------------------------------


async def test_record_etag_and_304(client: httpx.AsyncClient, conn: asyncpg.Connection) -> None:
    incident = (await client.get("/v1/incidents", params={"limit": "1"})).json()["data"][0]
    # The identity representation's strong tag (a compressed one's is weak: tests/test_compression.py).
    identity = {"Accept-Encoding": "identity"}
    response = await client.get(f"/v1/incidents/{incident['id']}", headers=identity)
    etag = response.headers["etag"]
    assert etag == f'"{incident["id"]}:{incident["version"]}"'
    assert response.headers["cache-control"] == "public, no-cache"
    assert "Accept" in response.headers["vary"]
    again = await client.get(f"/v1/incidents/{incident['id']}", headers={**identity, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert (
        await client.get(
            f"/v1/incidents/{incident['id']}", headers={**identity, "If-None-Match": '"other", ' + etag}
        )
    ).status_code == 304
    await conn.execute("UPDATE incidents SET version = version + 1 WHERE id = $1", uuid.UUID(incident["id"]))
    await store_documents(conn, "incident", [uuid.UUID(incident["id"])])
    changed = await client.get(f"/v1/incidents/{incident['id']}", headers={**identity, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_page_etag_and_304(client: httpx.AsyncClient, conn: asyncpg.Connection) -> None:
    first = await client.get("/v1/organisations", params={"limit": "3"})
    etag = first.headers["etag"]
    same = await client.get("/v1/organisations", params={"limit": "3"}, headers={"If-None-Match": etag})
    assert same.status_code == 304
    changed_id = uuid.UUID(first.json()["data"][0]["id"])
    # As every write does: a changed document is a new version (a page's ETag is made of its
    # records' ids and versions).
    await conn.execute(
        "UPDATE organisations SET description = 'changed', version = version + 1 WHERE id = $1", changed_id
    )
    await store_documents(conn, "organisation", [changed_id])
    changed = await client.get("/v1/organisations", params={"limit": "3"}, headers={"If-None-Match": etag})
    assert changed.status_code == 200


async def test_msgpack_on_request_and_406(client: httpx.AsyncClient) -> None:
    import msgpack

    as_json = (await client.get("/v1/incidents")).json()
    response = await client.get("/v1/incidents", headers={"Accept": "application/msgpack"})
    assert response.headers["content-type"] == "application/msgpack"
    assert msgpack.unpackb(response.content) == as_json
    problem = problem_of(await client.get("/v1/incidents", headers={"Accept": "text/csv"}), 406)
    assert problem.code == "not_acceptable"
    ok = await client.get("/v1/incidents", headers={"Accept": "text/html, */*;q=0.1"})
    assert ok.headers["content-type"].startswith("application/json")


async def test_litestar_errors_are_problems(client: httpx.AsyncClient) -> None:
    assert problem_of(await client.get("/v1/no-such-thing"), 404).code == "not_found"
    assert problem_of(await client.get(f"/v1/incidents/{uuid.uuid4()}"), 404).code == "not_found"
    not_allowed = problem_of(await client.put("/v1/incidents/stats"), 405)
    assert not_allowed.code == "method_not_allowed"
    assert "GET" in not_allowed.detail or "allow" in {
        h.lower() for h in (await client.put("/v1/incidents/stats")).headers
    }


async def test_request_id_in_and_out_of_lists(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/incidents", headers={"X-Request-ID": "read-42"})
    assert response.headers["x-request-id"] == "read-42"
    problem = problem_of(await client.get("/v1/incidents?nope=1", headers={"X-Request-ID": "read-43"}), 400)
    assert problem.request_id == "read-43"


async def test_incident_page_decodes_strictly(client: httpx.AsyncClient, dataset: list[Row]) -> None:
    page = msgspec.json.decode(
        (await client.get("/v1/incidents", params={"limit": "500"})).content, type=IncidentPage, strict=True
    )
    assert len(page.data) == len(dataset)


async def test_revision_cursor_beyond_int4_is_an_empty_page(client: httpx.AsyncClient) -> None:
    # Found by schemathesis: `cursor=2316814512` (allowed by its pattern) was a 500.
    incident = (await client.get("/v1/incidents", params={"limit": "1"})).json()["data"][0]
    response = await client.get(f"/v1/incidents/{incident['id']}/revisions", params={"cursor": "2316814512"})
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}
    assert len((await client.get(f"/v1/incidents/{incident['id']}/revisions")).json()["data"]) >= 1


def test_accepted_query_parameters_never_come_from_another_handler() -> None:
    # Intermittent 400 "format: unknown query parameter" on /v1/exports/organisations: the cache
    # was keyed by id(handler), and a handler of a dropped app left its id to a new one.
    from litestar.handlers import HTTPRouteHandler

    from secevents.server.app import create_app
    from secevents.server.cli.openapi_dump import spec_settings
    from secevents.server.reads import filters

    def get_handler(path: str) -> HTTPRouteHandler:
        route = next(r for r in create_app(spec_settings()).routes if r.path == path)
        return next(
            h for h in route.route_handlers if isinstance(h, HTTPRouteHandler) and "GET" in h.http_methods
        )

    incidents, exports = get_handler("/v1/incidents"), get_handler("/v1/exports/organisations")
    # What a reused id looked like: another handler's entry under this handler's id.
    filters._ACCEPTED[(id(exports), ())] = (incidents, *filters._accepted_parameters(incidents, ()))
    accepted, _ = filters._accepted_parameters(exports, ())
    assert "format" in accepted
    assert "sort" not in accepted
