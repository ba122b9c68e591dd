"""The SQL of an NDJSON import: staging tables, checks, writes and revisions."""

from __future__ import annotations

from secevents.schemas.records import RecordType

STAGING = """
CREATE TEMP TABLE nd_sources (
  line integer, id uuid, kind text, title text, url text, publisher text, published_on date,
  retrieved_at timestamptz, language text, text text, external_ids jsonb, version integer,
  created_at timestamptz, updated_at timestamptz) ON COMMIT DROP;
CREATE TEMP TABLE nd_organisations (
  line integer, id uuid, name text, kind text, country text, status text, description text,
  external_ids jsonb, version integer, created_at timestamptz, updated_at timestamptz) ON COMMIT DROP;
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
  updated_at timestamptz, doc json) ON COMMIT DROP;
CREATE TEMP TABLE nd_participants (
  line integer, incident_id uuid, ordinal integer, organisation_id uuid, role text) ON COMMIT DROP;
CREATE TEMP TABLE nd_casualties (
  line integer, incident_id uuid, ordinal integer, "group" text, killed_low integer, killed_best integer,
  killed_high integer, injured_low integer, injured_best integer, injured_high integer) ON COMMIT DROP;
CREATE TEMP TABLE nd_citations (
  line integer, owner_type text, owner_id uuid, ordinal integer, source_id uuid, quote text) ON COMMIT DROP;
CREATE TEMP TABLE nd_statements (
  line integer, id uuid, record jsonb, version integer, created_at timestamptz, updated_at timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE nd_refs (
  line integer, field text, target_type text, target_id uuid, quote text) ON COMMIT DROP
"""

# Each check yields (line, field, message); all of them run before anything is written.
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
SELECT r.line, r.field, 'no such ' || r.target_type
  FROM refs r
 WHERE NOT CASE r.target_type
   WHEN 'source' THEN EXISTS (SELECT 1 FROM sources s WHERE s.id = r.target_id)
                   OR EXISTS (SELECT 1 FROM nd_sources s WHERE s.id = r.target_id)
   WHEN 'organisation' THEN EXISTS (SELECT 1 FROM organisations o WHERE o.id = r.target_id)
                   OR EXISTS (SELECT 1 FROM nd_organisations o WHERE o.id = r.target_id)
   WHEN 'incident' THEN EXISTS (SELECT 1 FROM incidents i WHERE i.id = r.target_id)
                   OR EXISTS (SELECT 1 FROM nd_incidents i WHERE i.id = r.target_id)
   END
UNION ALL
SELECT r.line, regexp_replace(r.field, 'source_id$', 'quote'), 'quote not found in the text of the source'
  FROM refs r
  LEFT JOIN nd_sources n ON n.id = r.target_id
  LEFT JOIN sources s ON s.id = r.target_id
 WHERE r.target_type = 'source' AND r.quote IS NOT NULL
   AND coalesce(n.text, s.text) IS NOT NULL AND strpos(coalesce(n.text, s.text), r.quote) = 0
UNION ALL
SELECT n.line, 'id', 'a record with this id already exists'
  FROM (SELECT line, id FROM nd_sources WHERE EXISTS (SELECT 1 FROM sources t WHERE t.id = nd_sources.id)
        UNION ALL
        SELECT line, id FROM nd_organisations WHERE EXISTS (SELECT 1 FROM organisations t WHERE t.id = nd_organisations.id)
        UNION ALL
        SELECT line, id FROM nd_incidents WHERE EXISTS (SELECT 1 FROM incidents t WHERE t.id = nd_incidents.id)
        UNION ALL
        SELECT line, id FROM nd_statements WHERE EXISTS (SELECT 1 FROM statements t WHERE t.id = nd_statements.id)
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
   AND (EXISTS (SELECT 1 FROM sources s WHERE s.url = n.url AND s.deleted_at IS NULL)
        OR EXISTS (SELECT 1 FROM nd_sources m WHERE m.url = n.url AND m.line < n.line))
UNION ALL
SELECT line, 'external_ids.ucdp_ged_id', 'another incident has this ucdp_ged_id'
  FROM nd_incidents n
 WHERE n.external_ids ? 'ucdp_ged_id'
   AND (EXISTS (SELECT 1 FROM incidents i WHERE i.external_ids ? 'ucdp_ged_id'
                   AND i.external_ids->>'ucdp_ged_id' = n.external_ids->>'ucdp_ged_id')
        OR EXISTS (SELECT 1 FROM nd_incidents m WHERE m.line < n.line AND m.external_ids ? 'ucdp_ged_id'
                   AND m.external_ids->>'ucdp_ged_id' = n.external_ids->>'ucdp_ged_id'))
UNION ALL
SELECT line, 'external_ids.ucdp_actor_id', 'another organisation has this ucdp_actor_id'
  FROM nd_organisations n
 WHERE n.external_ids ? 'ucdp_actor_id'
   AND (EXISTS (SELECT 1 FROM organisations o WHERE o.external_ids ? 'ucdp_actor_id'
                   AND o.external_ids->>'ucdp_actor_id' = n.external_ids->>'ucdp_actor_id')
        OR EXISTS (SELECT 1 FROM nd_organisations m WHERE m.line < n.line AND m.external_ids ? 'ucdp_actor_id'
                   AND m.external_ids->>'ucdp_actor_id' = n.external_ids->>'ucdp_actor_id'))
UNION ALL
SELECT line, 'relationships[' || (ordinal - 1) || '].organisation_id', 'an organisation cannot relate to itself'
  FROM nd_relationships WHERE organisation_id = related_organisation_id
ORDER BY 1, 2
LIMIT 101
"""

_STAMPS = "coalesce(version, 1), coalesce(created_at, now()), coalesce(updated_at, created_at, now())"

WRITE = f"""
INSERT INTO sources (id, kind, title, url, publisher, published_on, retrieved_at, language, text,
                     external_ids, version, created_at, updated_at)
SELECT id, kind, title, url, publisher, published_on, coalesce(retrieved_at, now()), language, text,
       external_ids, {_STAMPS}
  FROM nd_sources ORDER BY line;
INSERT INTO organisations (id, name, kind, country, status, description, external_ids, version, created_at, updated_at)
SELECT id, name, kind, country, status, description, external_ids, {_STAMPS}
  FROM nd_organisations ORDER BY line;
INSERT INTO organisation_aliases (organisation_id, ordinal, alias)
SELECT organisation_id, ordinal, alias FROM nd_aliases;
WITH r AS (
  INSERT INTO organisation_relationships (organisation_id, ordinal, type, related_organisation_id, since, until)
  SELECT organisation_id, ordinal, type, related_organisation_id, since, until
    FROM nd_relationships ORDER BY line, ordinal
  RETURNING id, organisation_id, ordinal
)
INSERT INTO citations (relationship_id, ordinal, source_id, quote)
SELECT r.id, c.ord, (c.e->>'source_id')::uuid, c.e->>'quote'
  FROM r JOIN nd_relationships n ON n.organisation_id = r.organisation_id AND n.ordinal = r.ordinal,
       jsonb_array_elements(n.citations) WITH ORDINALITY AS c(e, ord);
INSERT INTO incidents (id, title, summary, type, subtype, occurred_start, occurred_end, occurred_precision,
                       country, admin1, admin2, place, lat, lon, location_precision,
                       killed_low, killed_best, killed_high, injured_low, injured_best, injured_high,
                       external_ids, version, created_at, updated_at, doc)
SELECT id, title, summary, type, subtype, occurred_start, occurred_end, occurred_precision,
       country, admin1, admin2, place, lat, lon, location_precision,
       killed_low, killed_best, killed_high, injured_low, injured_best, injured_high,
       external_ids, {_STAMPS}, doc
  FROM nd_incidents ORDER BY line;
INSERT INTO incident_participants (incident_id, ordinal, organisation_id, role)
SELECT incident_id, ordinal, organisation_id, role FROM nd_participants;
INSERT INTO incident_casualties (incident_id, ordinal, "group", killed_low, killed_best, killed_high,
                                 injured_low, injured_best, injured_high)
SELECT incident_id, ordinal, "group", killed_low, killed_best, killed_high, injured_low, injured_best, injured_high
  FROM nd_casualties;
INSERT INTO citations (incident_id, organisation_id, ordinal, source_id, quote)
SELECT CASE WHEN owner_type = 'incident' THEN owner_id END,
       CASE WHEN owner_type = 'organisation' THEN owner_id END, ordinal, source_id, quote
  FROM nd_citations
"""

# Statements have nested claims and figures with citations of their own: few per import, so
# they go through the resource's own insert, one statement each.
STAMP_STATEMENTS = """
UPDATE statements s
   SET version = coalesce(n.version, 1), created_at = coalesce(n.created_at, s.created_at),
       updated_at = coalesce(n.updated_at, n.created_at, s.updated_at)
  FROM nd_statements n WHERE n.id = s.id
"""

# Incidents are most of a bulk import: their documents were rendered in Python while parsing and
# written with them, except those naming an organisation that was not known yet. Those, and the
# other records, are rendered from their rows once written (secevents.server.sql.documents).
STORED_LATER: dict[RecordType, str] = {
    "source": "SELECT id FROM nd_sources ORDER BY line",
    "organisation": "SELECT id FROM nd_organisations ORDER BY line",
    "incident": "SELECT id FROM nd_incidents WHERE doc IS NULL ORDER BY line",
    "statement": "SELECT id FROM nd_statements ORDER BY line",
}
REVISIONS = """
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT 'source', r.id, r.version, 'create', r.doc, $1, $2
  FROM nd_sources n JOIN sources r ON r.id = n.id ORDER BY n.line;
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT 'organisation', r.id, r.version, 'create', r.doc, $1, $2
  FROM nd_organisations n JOIN organisations r ON r.id = n.id ORDER BY n.line;
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT 'incident', r.id, r.version, 'create', r.doc, $1, $2
  FROM nd_incidents n JOIN incidents r ON r.id = n.id ORDER BY n.line;
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT 'statement', r.id, r.version, 'create', r.doc, $1, $2
  FROM nd_statements n JOIN statements r ON r.id = n.id ORDER BY n.line
"""
REVISION_STATEMENTS = [s for s in REVISIONS.split(";") if s.strip()]

COUNTS = """
SELECT (SELECT count(*) FROM nd_sources), (SELECT count(*) FROM nd_organisations),
       (SELECT count(*) FROM nd_incidents), (SELECT count(*) FROM nd_statements)
"""

TABLE_COLUMNS: dict[str, int] = {
    "nd_sources": 14,
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
# planned for a handful of rows. Incidents only on the columns the checks read: analysing the
# documents too would take as long as the checks.
ANALYZE_STAGING = "ANALYZE " + ", ".join(
    "nd_incidents (line, id, country, external_ids)" if t == "nd_incidents" else t for t in TABLE_COLUMNS
)
