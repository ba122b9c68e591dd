"""SQL of the organisations resource."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID

import asyncpg

from secevents.schemas.organisations import OrganisationCreate, OrganisationPatch, RelationshipIn
from secevents.server.http.errors import InvalidParameter
from secevents.server.reads.filters import SqlBuilder
from secevents.server.reads.listing import page_sql
from secevents.server.reads.pagination import SortOrder, sort_orders
from secevents.server.resources.organisations.filters import OrganisationFilters
from secevents.server.sql import patching
from secevents.server.sql.records import RecordTable, as_json, citation_rows, insert_citations_sql
from secevents.server.writes.flows import WriteModel

# --- reads -------------------------------------------------------------------------------

# How close a name or alias is to `q` (the `$q` placeholder), the best of: trigram similarity of
# the whole name, and of its closest run of words (`word_similarity`, what `<%` thresholds), the
# very measures the `q` filter selects by. float8: the key a cursor carries must compare equal
# when it comes back as JSON, and real (float4) would not round-trip.
RELEVANCE = """greatest(
  similarity(fold_name(o.name), fold_name($q)),
  word_similarity(fold_name($q), fold_name(o.name)),
  (SELECT max(greatest(similarity(fold_name(a.alias), fold_name($q)), word_similarity(fold_name($q), fold_name(a.alias))))
     FROM organisation_aliases a WHERE a.organisation_id = o.id)
)::float8"""

SORTS = sort_orders(
    SortOrder("relevance", (RELEVANCE, "o.id"), (float, UUID), descending=True),
    SortOrder("name", ("fold_name(o.name)", "o.id"), (str, UUID), descending=False),
    SortOrder("-name", ("fold_name(o.name)", "o.id"), (str, UUID), descending=True),
    SortOrder("-updated", ("o.updated_at", "o.id"), (dt.datetime, UUID), descending=True),
    SortOrder("updated", ("o.updated_at", "o.id"), (dt.datetime, UUID), descending=False),
)
OrganisationSort = Literal["relevance", "name", "-name", "-updated", "updated"]


def sort_for(name: OrganisationSort | None, filters: OrganisationFilters) -> SortOrder:
    """The order asked for; by default the closest names first when searching by `q`, by name
    otherwise."""
    if name is None:
        name = "relevance" if filters.q is not None else "name"
    if name == "relevance" and filters.q is None:
        raise InvalidParameter("sort", "`relevance` ranks by closeness to `q`: give `q` too")
    return SORTS[name]


READ = "SELECT o.doc, o.version FROM organisations o WHERE o.id = $1 AND o.deleted_at IS NULL"


def list_query(
    filters: OrganisationFilters, sort: SortOrder, after: tuple[Any, ...] | None, limit: int
) -> tuple[str, list[Any]]:
    sql = SqlBuilder()
    filters.apply(sql)
    if sort.name == "relevance":
        placeholder = sql.param(filters.q)
        sort = dataclasses.replace(sort, columns=tuple(c.replace("$q", placeholder) for c in sort.columns))
    return page_sql("organisations", "o", sql, sort, after, limit), sql.args


# --- writes ------------------------------------------------------------------------------

INSERT = f"""
WITH o AS (
  INSERT INTO organisations (id, name, kind, country, status, description, external_ids)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
  RETURNING id
), aliases AS (
  INSERT INTO organisation_aliases (organisation_id, ordinal, alias)
  SELECT o.id, t.ord, t.alias FROM o, unnest($8::text[]) WITH ORDINALITY AS t(alias, ord)
), cited AS ({insert_citations_sql("organisation_id", "(SELECT id FROM o)", "$9")})
SELECT id FROM o
"""

# Relationships are inserted one statement per organisation (their citations need the new
# relationship ids); ordinals continue after any existing ones.
INSERT_RELATIONSHIPS = """
WITH r AS (
  INSERT INTO organisation_relationships (organisation_id, ordinal, type, related_organisation_id, since, until)
  SELECT $1, t.ord, t.e->>'type', (t.e->>'organisation_id')::uuid, (t.e->>'since')::date, (t.e->>'until')::date
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord)
  RETURNING id, ordinal
), cited AS (
  INSERT INTO citations (relationship_id, ordinal, source_id, quote)
  SELECT r.id, c.ord, (c.e->>'source_id')::uuid, c.e->>'quote'
    FROM r JOIN jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, ord) ON t.ord = r.ordinal,
         jsonb_array_elements(t.e->'citations') WITH ORDINALITY AS c(e, ord)
)
SELECT count(*) FROM r
"""


async def insert(conn: asyncpg.Connection, record_id: UUID, data: OrganisationCreate) -> None:
    """Insert an organisation with its aliases, citations and relationships."""
    await conn.execute(
        INSERT,
        record_id,
        data.name,
        data.kind,
        data.country,
        data.status,
        data.description,
        as_json(data.external_ids),
        list(data.aliases),
        citation_rows(list(data.citations)),
    )
    if data.relationships:
        await insert_relationships(conn, record_id, data.relationships)


async def insert_relationships(
    conn: asyncpg.Connection, record_id: UUID, relationships: Sequence[RelationshipIn]
) -> None:
    await conn.execute(INSERT_RELATIONSHIPS, record_id, as_json(list(relationships)))


# --- writes (PATCH): aliases, relationships and citations are replaced whole ---------------

REPLACE_ALIASES = """
INSERT INTO organisation_aliases (organisation_id, ordinal, alias)
SELECT $1, t.ord, t.alias FROM unnest($2::text[]) WITH ORDINALITY AS t(alias, ord)
"""

REPLACE_CITATIONS = insert_citations_sql("organisation_id", "$1::uuid", "$2")


async def update(conn: asyncpg.Connection, record_id: UUID, data: OrganisationPatch) -> None:
    """Apply a partial update (an absent field is unchanged; lists are replaced whole)."""
    columns: dict[str, Any] = {}
    patching.plain(columns, data, "name", "kind", "country", "status", "description")
    patching.external_ids(columns, data)
    await patching.update_row(conn, "organisations", record_id, columns)
    if patching.is_set(data.aliases):
        await conn.execute("DELETE FROM organisation_aliases WHERE organisation_id = $1", record_id)
        await conn.execute(REPLACE_ALIASES, record_id, list(data.aliases))
    if patching.is_set(data.relationships):
        # Their citations go with them (ON DELETE CASCADE).
        await conn.execute("DELETE FROM organisation_relationships WHERE organisation_id = $1", record_id)
        await insert_relationships(conn, record_id, data.relationships)
    if patching.is_set(data.citations):
        await conn.execute("DELETE FROM citations WHERE organisation_id = $1", record_id)
        await conn.execute(REPLACE_CITATIONS, record_id, citation_rows(list(data.citations)))


RECORD = RecordTable("organisation", "organisations", "o")
WRITES: WriteModel[OrganisationCreate, OrganisationPatch] = WriteModel(
    RECORD, "/v1/organisations", insert, update
)
