"""The SQL of an NDJSON import: staging tables, checks, writes and revisions."""

from __future__ import annotations

from secevents.schemas.records import RecordType
from secevents.server.importers.references import Reference

STAGING = """
CREATE TEMP TABLE nd_sources (
  line integer, id uuid, kind text, title text, url text, publisher text, published_on date,
  retrieved_at timestamptz, language text, text text, external_ids jsonb, licence text, attribution text,
  version integer, created_at timestamptz, updated_at timestamptz, action text DEFAULT 'create') ON COMMIT DROP;
CREATE TEMP TABLE nd_organisations (
  line integer, id uuid, name text, kind text, country text, status text, description text,
  external_ids jsonb, version integer, created_at timestamptz, updated_at timestamptz, action text DEFAULT 'create') ON COMMIT DROP;
CREATE TEMP TABLE nd_aliases (line integer, organisation_id uuid, ordinal integer, alias text) ON COMMIT DROP;
CREATE TEMP TABLE nd_relationships (
  line integer, organisation_id uuid, ordinal integer, type text, related_organisation_id uuid,
  since date, until date, citations jsonb) ON COMMIT DROP;
CREATE TEMP TABLE nd_incidents (
  line integer, id uuid, title text, summary text, type text, subtype text, occurred_start date,
  occurred_end date, occurred_precision text, country text, admin1 text, admin2 text, place text,
  lat double precision, lon double precision, location_precision text, killed_low integer,
  killed_best integer, killed_high integer, injured_low integer, injured_best integer,
  injured_high integer, external_ids jsonb, version integer, created_at timestamptz,
  updated_at timestamptz, doc json, action text DEFAULT 'create') ON COMMIT DROP;
CREATE TEMP TABLE nd_participants (
  line integer, incident_id uuid, ordinal integer, organisation_id uuid, role text) ON COMMIT DROP;
CREATE TEMP TABLE nd_casualties (
  line integer, incident_id uuid, ordinal integer, "group" text, killed_low integer, killed_best integer,
  killed_high integer, injured_low integer, injured_best integer, injured_high integer) ON COMMIT DROP;
CREATE TEMP TABLE nd_citations (
  line integer, owner_type text, owner_id uuid, ordinal integer, source_id uuid, quote text) ON COMMIT DROP;
CREATE TEMP TABLE nd_statements (
  line integer, id uuid, record jsonb, version integer, created_at timestamptz, updated_at timestamptz,
  action text DEFAULT 'create') ON COMMIT DROP;
-- The lines of records that are not written (unchanged, older…): their child rows are not either.
-- Few or none in most imports, so the child rows' inserts need not read the wide nd_incidents.
CREATE TEMP TABLE nd_unwritten (line integer) ON COMMIT DROP;
CREATE TEMP TABLE nd_refs (
  line integer, field text, target_type text, target_id uuid, quote text) ON COMMIT DROP
"""

# What each staged record does, by its version against the stored one (the upsert rule): no
# stored record → create (the staging column's default: only lines naming a stored id are
# rewritten, not every staged row); the file's version newer → update; equal → unchanged; older → older
# (skipped and reported). A line without a version for a stored record is reported by CHECKS.
RECORD_TABLES = {
    "source": "sources",
    "organisation": "organisations",
    "incident": "incidents",
    "statement": "statements",
}
RESOLVE = (
    ";\n".join(
        f"""WITH resolved AS (
  UPDATE nd_{table} n
     SET action = CASE WHEN n.version IS NULL THEN 'unversioned'
                       WHEN n.version > t.version THEN 'update'
                       WHEN n.version = t.version THEN 'unchanged' ELSE 'older' END
    FROM {table} t WHERE t.id = n.id
  RETURNING n.line, n.action
)
INSERT INTO nd_unwritten (line) SELECT line FROM resolved WHERE action <> 'update'"""
        for table in RECORD_TABLES.values()
    )
    + """;
UPDATE nd_incidents SET doc = NULL WHERE action = 'update' AND (created_at IS NULL OR updated_at IS NULL)"""
)

# Each check yields (line, field, message); all of them run before anything is written. Every
# branch is an anti-join or a window over whole tables (hash joins): correlated lookups into the
# unindexed staging tables cost a scan of the table per reference — 30–57 s on 6,502 records.
# References: those of participants and owned citations are read from their staging tables (most
# of a file's references: not copying them twice saves a row per reference); the rarer ones of
# relationships and statements are listed in nd_refs.
CHECKS = """
WITH refs AS (
  SELECT line, field, target_type, target_id, quote FROM nd_refs
  UNION ALL
  SELECT line, 'participants[' || (ordinal - 1) || '].organisation_id', 'organisation', organisation_id, NULL
    FROM nd_participants
  UNION ALL
  SELECT line, 'citations[' || (ordinal - 1) || '].source_id', 'source', source_id, quote FROM nd_citations
)
SELECT r.line, r.field, 'no such source'
  FROM refs r
 WHERE r.target_type = 'source'
   AND NOT EXISTS (SELECT 1 FROM sources s WHERE s.id = r.target_id)
   AND NOT EXISTS (SELECT 1 FROM nd_sources s WHERE s.id = r.target_id)
UNION ALL
SELECT r.line, r.field, 'no such organisation'
  FROM refs r
 WHERE r.target_type = 'organisation'
   AND NOT EXISTS (SELECT 1 FROM organisations o WHERE o.id = r.target_id)
   AND NOT EXISTS (SELECT 1 FROM nd_organisations o WHERE o.id = r.target_id)
UNION ALL
SELECT r.line, r.field, 'no such incident'
  FROM refs r
 WHERE r.target_type = 'incident'
   AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = r.target_id)
   AND NOT EXISTS (SELECT 1 FROM nd_incidents i WHERE i.id = r.target_id)
UNION ALL
SELECT r.line, regexp_replace(r.field, 'source_id$', 'quote'), 'quote not found in the text of the source'
  FROM refs r
  LEFT JOIN (SELECT DISTINCT ON (id) id, text FROM nd_sources ORDER BY id, line) n ON n.id = r.target_id
  LEFT JOIN sources s ON s.id = r.target_id
 WHERE r.target_type = 'source' AND r.quote IS NOT NULL
   AND coalesce(n.text, s.text) IS NOT NULL AND strpos(coalesce(n.text, s.text), r.quote) = 0
UNION ALL
SELECT line, 'version', 'a record with this id is stored (version ' || stored || '): give the version '
       || 'this line brings to update it (a newer one) or keep it (the same)'
  FROM (SELECT n.line, t.version AS stored FROM nd_sources n JOIN sources t USING (id) WHERE n.action = 'unversioned'
        UNION ALL
        SELECT n.line, t.version FROM nd_organisations n JOIN organisations t USING (id) WHERE n.action = 'unversioned'
        UNION ALL
        SELECT n.line, t.version FROM nd_incidents n JOIN incidents t USING (id) WHERE n.action = 'unversioned'
        UNION ALL
        SELECT n.line, t.version FROM nd_statements n JOIN statements t USING (id) WHERE n.action = 'unversioned'
       ) n
UNION ALL
SELECT line, 'id', 'the same id is on line ' || first_line
  FROM (SELECT line, min(line) OVER (PARTITION BY id) AS first_line
          FROM (SELECT line, id FROM nd_sources UNION ALL SELECT line, id FROM nd_organisations
                UNION ALL SELECT line, id FROM nd_incidents UNION ALL SELECT line, id FROM nd_statements) a) d
 WHERE line <> first_line
UNION ALL
SELECT line, 'location.country', 'unknown country code ' || country
  FROM nd_incidents n WHERE NOT EXISTS (SELECT 1 FROM countries c WHERE c.code = n.country)
UNION ALL
SELECT line, 'country', 'unknown country code ' || country
  FROM nd_organisations n
 WHERE country IS NOT NULL AND NOT EXISTS (SELECT 1 FROM countries c WHERE c.code = n.country)
UNION ALL
SELECT line, 'url', 'another source has this url'
  FROM nd_sources n
 WHERE url IS NOT NULL
   AND EXISTS (SELECT 1 FROM sources s WHERE s.url = n.url AND s.deleted_at IS NULL AND s.id <> n.id)
UNION ALL
SELECT line, 'url', 'another source has this url (line ' || first_line || ')'
  FROM (SELECT line, min(line) OVER (PARTITION BY url) AS first_line FROM nd_sources WHERE url IS NOT NULL) d
 WHERE line <> first_line
UNION ALL
SELECT line, 'external_ids.ucdp_ged_id', 'another incident has this ucdp_ged_id'
  FROM nd_incidents n
 WHERE n.external_ids ? 'ucdp_ged_id'
   AND EXISTS (SELECT 1 FROM incidents i WHERE i.external_ids ? 'ucdp_ged_id'
                  AND i.external_ids->>'ucdp_ged_id' = n.external_ids->>'ucdp_ged_id' AND i.id <> n.id)
UNION ALL
SELECT line, 'external_ids.ucdp_ged_id', 'another incident has this ucdp_ged_id (line ' || first_line || ')'
  FROM (SELECT line, min(line) OVER (PARTITION BY external_ids->>'ucdp_ged_id') AS first_line
          FROM nd_incidents WHERE external_ids ? 'ucdp_ged_id') d
 WHERE line <> first_line
UNION ALL
SELECT line, 'external_ids.ucdp_actor_id', 'another organisation has this ucdp_actor_id'
  FROM nd_organisations n
 WHERE n.external_ids ? 'ucdp_actor_id'
   AND EXISTS (SELECT 1 FROM organisations o WHERE o.external_ids ? 'ucdp_actor_id'
                  AND o.external_ids->>'ucdp_actor_id' = n.external_ids->>'ucdp_actor_id' AND o.id <> n.id)
UNION ALL
SELECT line, 'external_ids.ucdp_actor_id', 'another organisation has this ucdp_actor_id (line ' || first_line || ')'
  FROM (SELECT line, min(line) OVER (PARTITION BY external_ids->>'ucdp_actor_id') AS first_line
          FROM nd_organisations WHERE external_ids ? 'ucdp_actor_id') d
 WHERE line <> first_line
UNION ALL
SELECT line, 'relationships[' || (ordinal - 1) || '].organisation_id', 'an organisation cannot relate to itself'
  FROM nd_relationships WHERE organisation_id = related_organisation_id
ORDER BY 1, 2
LIMIT 101
"""

_STAMPS = "coalesce(version, 1), coalesce(created_at, now()), coalesce(updated_at, created_at, now())"
# Stamps of an update: the file's version and times (a record without them in the file keeps
# its creation time and is updated now).
_RESTAMP = """version = n.version, created_at = coalesce(n.created_at, t.created_at),
       updated_at = coalesce(n.updated_at, now()), deleted_at = NULL"""
_WRITTEN = "action IN ('create', 'update')"
# A child row (participant, citation…) is written when its record is: its line is not unwritten.
_KEPT = "NOT EXISTS (SELECT FROM nd_unwritten u WHERE u.line = {child}.line)"

# The records first, with the foreign keys' triggers: created sources and organisations ...
WRITE_RECORDS = f"""
INSERT INTO sources (id, kind, title, url, publisher, published_on, retrieved_at, language, text,
                     external_ids, licence, attribution, version, created_at, updated_at)
SELECT id, kind, title, url, publisher, published_on, coalesce(retrieved_at, now()), language, text,
       external_ids, licence, attribution, {_STAMPS}
  FROM nd_sources WHERE action = 'create' ORDER BY line;
INSERT INTO organisations (id, name, kind, country, status, description, external_ids, version, created_at, updated_at)
SELECT id, name, kind, country, status, description, external_ids, {_STAMPS}
  FROM nd_organisations WHERE action = 'create' ORDER BY line
"""

# ... and the updated records, which lose their child rows (written again below, as for a created
# record; the citations of relationships go with the relationships: ON DELETE CASCADE, which needs
# the triggers). Run only when the file updates something: each statement scans a staging table.
REWRITE_UPDATED = f"""
UPDATE sources t
   SET kind = n.kind, title = n.title, url = n.url, publisher = n.publisher, published_on = n.published_on,
       retrieved_at = coalesce(n.retrieved_at, t.retrieved_at), language = n.language, text = n.text,
       external_ids = n.external_ids, licence = n.licence, attribution = n.attribution, {_RESTAMP}
  FROM nd_sources n WHERE n.id = t.id AND n.action = 'update';
UPDATE organisations t
   SET name = n.name, kind = n.kind, country = n.country, status = n.status, description = n.description,
       external_ids = n.external_ids, {_RESTAMP}
  FROM nd_organisations n WHERE n.id = t.id AND n.action = 'update';
DELETE FROM organisation_aliases WHERE organisation_id IN (SELECT id FROM nd_organisations WHERE action = 'update');
DELETE FROM organisation_relationships
 WHERE organisation_id IN (SELECT id FROM nd_organisations WHERE action = 'update');
DELETE FROM citations WHERE organisation_id IN (SELECT id FROM nd_organisations WHERE action = 'update');
UPDATE incidents t
   SET title = n.title, summary = n.summary, type = n.type, subtype = n.subtype,
       occurred_start = n.occurred_start, occurred_end = n.occurred_end, occurred_precision = n.occurred_precision,
       country = n.country, admin1 = n.admin1, admin2 = n.admin2, place = n.place, lat = n.lat, lon = n.lon,
       location_precision = n.location_precision, killed_low = n.killed_low, killed_best = n.killed_best,
       killed_high = n.killed_high, injured_low = n.injured_low, injured_best = n.injured_best,
       injured_high = n.injured_high, external_ids = n.external_ids, doc = n.doc, {_RESTAMP}
  FROM nd_incidents n WHERE n.id = t.id AND n.action = 'update';
DELETE FROM incident_participants WHERE incident_id IN (SELECT id FROM nd_incidents WHERE action = 'update');
DELETE FROM incident_casualties WHERE incident_id IN (SELECT id FROM nd_incidents WHERE action = 'update');
DELETE FROM citations WHERE incident_id IN (SELECT id FROM nd_incidents WHERE action = 'update')
"""

# ... then the bulk of the rows, inserts only: the created incidents and every child row, whose
# foreign keys are checked as a set (secevents.server.importers.references: REFERENCES below).
INSERT_ROWS = f"""
INSERT INTO organisation_aliases (organisation_id, ordinal, alias)
SELECT a.organisation_id, a.ordinal, a.alias
  FROM nd_aliases a WHERE {_KEPT.format(child="a")};
WITH r AS (
  INSERT INTO organisation_relationships (organisation_id, ordinal, type, related_organisation_id, since, until)
  SELECT n.organisation_id, n.ordinal, n.type, n.related_organisation_id, n.since, n.until
    FROM nd_relationships n WHERE {_KEPT.format(child="n")} ORDER BY n.line, n.ordinal
  RETURNING id, organisation_id, ordinal
)
INSERT INTO citations (relationship_id, ordinal, source_id, quote)
SELECT r.id, c.ord, (c.e->>'source_id')::uuid, c.e->>'quote'
  FROM r JOIN nd_relationships n ON n.organisation_id = r.organisation_id AND n.ordinal = r.ordinal,
       jsonb_array_elements(n.citations) WITH ORDINALITY AS c(e, ord);
-- Created incidents in the staging table's order, which is the file's (COPYed in order, and
-- RESOLVE rewrites only lines naming a stored id): no sort of the wide rows with their documents.
INSERT INTO incidents (id, title, summary, type, subtype, occurred_start, occurred_end, occurred_precision,
                       country, admin1, admin2, place, lat, lon, location_precision,
                       killed_low, killed_best, killed_high, injured_low, injured_best, injured_high,
                       external_ids, version, created_at, updated_at, doc)
SELECT id, title, summary, type, subtype, occurred_start, occurred_end, occurred_precision,
       country, admin1, admin2, place, lat, lon, location_precision,
       killed_low, killed_best, killed_high, injured_low, injured_best, injured_high,
       external_ids, {_STAMPS}, doc
  FROM nd_incidents WHERE action = 'create';
INSERT INTO incident_participants (incident_id, ordinal, organisation_id, role)
SELECT p.incident_id, p.ordinal, p.organisation_id, p.role
  FROM nd_participants p WHERE {_KEPT.format(child="p")};
INSERT INTO incident_casualties (incident_id, ordinal, "group", killed_low, killed_best, killed_high,
                                 injured_low, injured_best, injured_high)
SELECT c.incident_id, c.ordinal, c."group", c.killed_low, c.killed_best, c.killed_high,
       c.injured_low, c.injured_best, c.injured_high
  FROM nd_casualties c WHERE {_KEPT.format(child="c")};
INSERT INTO citations (incident_id, organisation_id, ordinal, source_id, quote)
SELECT CASE WHEN c.owner_type = 'incident' THEN c.owner_id END,
       CASE WHEN c.owner_type = 'organisation' THEN c.owner_id END, c.ordinal, c.source_id, c.quote
  FROM nd_citations c
 WHERE {_KEPT.format(child="c")}
"""

# What INSERT_ROWS's rows point at outside their own lines (a child row's record is on its line,
# written by this import). The import's checks found each of these; they are held until it commits.
REFERENCES = (
    Reference(
        "organisation",
        "organisations",
        "id",
        "uuid",
        f"""SELECT p.organisation_id FROM nd_participants p WHERE {_KEPT.format(child="p")}
            UNION SELECT n.related_organisation_id FROM nd_relationships n WHERE {_KEPT.format(child="n")}""",
    ),
    Reference(
        "source",
        "sources",
        "id",
        "uuid",
        f"""SELECT c.source_id FROM nd_citations c WHERE {_KEPT.format(child="c")}
            UNION SELECT (e->>'source_id')::uuid FROM nd_relationships n, jsonb_array_elements(n.citations) e
             WHERE {_KEPT.format(child="n")}""",
    ),
    Reference(
        "country", "countries", "code", "bpchar", "SELECT country FROM nd_incidents WHERE action = 'create'"
    ),
)

# Statements have nested claims and figures with citations of their own: few per import, so
# they go through the resource's own insert, one statement each (an updated one is deleted first:
# its claims, figures and citations go with it, and nothing else refers to a statement's rows).
STATEMENTS_TO_WRITE = f"SELECT id, record, action FROM nd_statements WHERE {_WRITTEN} ORDER BY line"
STAMP_STATEMENTS = f"""
UPDATE statements s
   SET version = coalesce(n.version, 1), created_at = coalesce(n.created_at, s.created_at),
       updated_at = coalesce(n.updated_at, n.created_at, s.updated_at)
  FROM nd_statements n WHERE n.id = s.id AND n.{_WRITTEN}
"""

# Incidents are most of a bulk import: their documents were rendered in Python while parsing and
# written with them, except those naming an organisation that was not known yet (and updates
# whose line has no created_at). Those, and the other records (few per import), are rendered from
# their rows once written (secevents.server.sql.documents).
STORED_LATER: dict[RecordType, str] = {
    "source": f"SELECT id FROM nd_sources WHERE {_WRITTEN} ORDER BY line",
    "organisation": f"SELECT id FROM nd_organisations WHERE {_WRITTEN} ORDER BY line",
    "incident": f"SELECT id FROM nd_incidents WHERE {_WRITTEN} AND doc IS NULL ORDER BY line",
    "statement": f"SELECT id FROM nd_statements WHERE {_WRITTEN} ORDER BY line",
}
# One revision per record created or updated, carrying the stored document, in the file's order.
# Only the staged lines are sorted, then each record is looked up in that order (the lateral
# lookup is kept from being flattened into a join, which would sort the joined rows, documents
# and all: 0.9 GB on disk for 1,000,000 incidents).
REVISION_STATEMENTS = [
    f"""
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT '{record_type}', r.id, r.version, n.action, r.doc, $1, $2
  FROM (SELECT line, id, action FROM nd_{table} WHERE {_WRITTEN} ORDER BY line) n
 CROSS JOIN LATERAL (SELECT t.id, t.version, t.doc FROM {table} t WHERE t.id = n.id OFFSET 0) r
 ORDER BY n.line"""
    for record_type, table in RECORD_TABLES.items()
]

# Per record type and action: how many, and (for `older`, at most $1) which.
OUTCOMES = """
SELECT record_type, action, count(*) AS count,
       (array_agg(ROW(line, id, version, stored) ORDER BY line) FILTER (WHERE action = 'older'))[1:$1] AS older
  FROM (SELECT 'source' AS record_type, n.action, n.line, n.id, n.version, t.version AS stored
          FROM nd_sources n LEFT JOIN sources t ON t.id = n.id AND n.action = 'older'
        UNION ALL
        SELECT 'organisation', n.action, n.line, n.id, n.version, t.version
          FROM nd_organisations n LEFT JOIN organisations t ON t.id = n.id AND n.action = 'older'
        UNION ALL
        SELECT 'incident', n.action, n.line, n.id, n.version, t.version
          FROM nd_incidents n LEFT JOIN incidents t ON t.id = n.id AND n.action = 'older'
        UNION ALL
        SELECT 'statement', n.action, n.line, n.id, n.version, t.version
          FROM nd_statements n LEFT JOIN statements t ON t.id = n.id AND n.action = 'older') o
 GROUP BY record_type, action
"""

# Columns COPYed into each staging table (the first ones; `action` is filled in by RESOLVE).
TABLE_COLUMNS: dict[str, int] = {
    "nd_sources": 16,
    "nd_organisations": 11,
    "nd_aliases": 4,
    "nd_relationships": 8,
    "nd_incidents": 27,
    "nd_participants": 5,
    "nd_casualties": 10,
    "nd_citations": 6,
    "nd_statements": 6,
    "nd_refs": 5,
}

# Temporary tables have no statistics until analysed: without them the checks' anti-joins are
# planned for a handful of rows. Only the columns the checks and writes join, group or filter on:
# analysing the documents, texts and quotes too would take as long as the checks.
ANALYZED_COLUMNS: dict[str, str] = {
    "nd_sources": "line, id, url, action",
    "nd_organisations": "line, id, external_ids, action",
    "nd_aliases": "line, organisation_id",
    "nd_relationships": "line, organisation_id, related_organisation_id",
    "nd_incidents": "line, id, country, external_ids, action",
    "nd_participants": "line, incident_id, organisation_id",
    "nd_casualties": "line, incident_id",
    "nd_citations": "line, owner_type, owner_id, source_id",
    "nd_statements": "line, id, action",
    "nd_refs": "line, target_type, target_id",
}
ANALYZE_STAGING = "ANALYZE " + ", ".join(f"{t} ({ANALYZED_COLUMNS[t]})" for t in TABLE_COLUMNS)
