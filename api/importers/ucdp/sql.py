"""The SQL of a UCDP import: staging, checks, the writes and their revisions."""

from __future__ import annotations

from secevents.server.importers.references import Reference

CREATE_STAGE = """
CREATE TEMP TABLE ucdp_stage (
  line integer NOT NULL, ged_id text NOT NULL, title text, summary text, type text, subtype text,
  occurred_start date, occurred_end date, occurred_precision text, country text, admin1 text,
  admin2 text, place text, lat double precision, lon double precision, location_precision text,
  killed_low integer, killed_best integer, killed_high integer, external_ids jsonb,
  side_a_actor text, side_b_actor text, breakdown jsonb, quote text,
  -- A new incident unless RESOLVE_INCIDENTS finds the stored one: set as each row is COPYed, so
  -- only the rows of stored incidents are rewritten for it.
  incident_id uuid DEFAULT uuid_v7(), action text DEFAULT 'create'
) ON COMMIT DROP;
CREATE TEMP TABLE ucdp_actors (
  actor_id text PRIMARY KEY, name text NOT NULL, kind text NOT NULL, country text, first_line integer
) ON COMMIT DROP;
CREATE TEMP TABLE ucdp_docs (line integer PRIMARY KEY, doc json NOT NULL) ON COMMIT DROP
"""

# Rows whose UCDP id an earlier row of the file has: reported, and dropped from the staging table
# (imported with --skip-invalid, the first one wins).
DUPLICATE_IDS = """
WITH repeated AS (
  SELECT line, ged_id, first_line
    FROM (SELECT line, ged_id, min(line) OVER (PARTITION BY ged_id) AS first_line FROM ucdp_stage) d
   WHERE line <> first_line
)
DELETE FROM ucdp_stage s USING repeated r WHERE s.line = r.line
RETURNING r.line, r.ged_id, r.first_line
"""


# A release stored in external ids, as an array of numbers to compare; NULL when there is none or
# it is not a release number (external ids may hold anything an API client wrote).
def _release(expression: str) -> str:
    return (
        f"CASE WHEN {expression} ~ '^\\d{{1,4}}(\\.\\d{{1,4}}){{0,3}}$' "
        f"THEN string_to_array({expression}, '.')::int[] END"
    )


# The dataset source: created with its licence, citation ($5) and release ($6); an existing one
# gets them when it has no licence yet or this import's release is newer than its own. Its id
# and `create`, `update` or NULL (left as it is).
UPSERT_DATASET_SOURCE = f"""
WITH new AS (
  INSERT INTO sources (kind, title, url, publisher, language, external_ids, licence, attribution)
  VALUES ('dataset', $1, $2, $3, 'en',
          jsonb_strip_nulls(jsonb_build_object('ucdp_dataset', 'ged', 'ucdp_release', $6::text)), $4, $5)
  ON CONFLICT (url) WHERE deleted_at IS NULL DO NOTHING
  RETURNING id
), old AS (
  SELECT s.id, s.external_ids, s.licence, s.attribution,
         $6::text IS NOT NULL AND ({_release("s.external_ids->>'ucdp_release'")} IS NULL
                                   OR string_to_array($6::text, '.')::int[]
                                      > {_release("s.external_ids->>'ucdp_release'")}) AS newer
    FROM sources s
   WHERE s.url = $2 AND s.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM new)
), updated AS (
  UPDATE sources s
     SET licence = $4, attribution = $5, version = s.version + 1, updated_at = now(),
         external_ids = CASE WHEN old.newer THEN s.external_ids || jsonb_build_object('ucdp_release', $6::text)
                             ELSE s.external_ids END
    FROM old
   WHERE s.id = old.id AND (old.licence IS NULL OR old.newer)
     AND (old.licence, old.attribution, old.newer) IS DISTINCT FROM ($4::text, $5::text, false)
  RETURNING s.id
)
SELECT id, 'create' AS action FROM new
UNION ALL
SELECT id, 'update' FROM updated
UNION ALL
SELECT id, NULL FROM old WHERE NOT EXISTS (SELECT 1 FROM updated)
"""

# Actors without an organisation of their own yet are linked to an existing one whose name or an
# alias is theirs, when exactly one matches (e.g. the curated "Tehreek-i-Taliban Pakistan" whose
# alias is UCDP's "TTP").
LINK_ACTORS_BY_NAME = """
WITH candidates AS (
  SELECT a.actor_id, o.id
    FROM ucdp_actors a
    JOIN organisations o
      ON o.deleted_at IS NULL AND NOT (o.external_ids ? 'ucdp_actor_id')
     AND (fold_name(o.name) = fold_name(a.name)
          OR EXISTS (SELECT 1 FROM organisation_aliases al
                      WHERE al.organisation_id = o.id AND fold_name(al.alias) = fold_name(a.name)))
   WHERE NOT EXISTS (SELECT 1 FROM organisations x
                      WHERE x.external_ids ? 'ucdp_actor_id' AND x.external_ids->>'ucdp_actor_id' = a.actor_id)
), unique_matches AS (
  SELECT actor_id, (array_agg(id))[1] AS id FROM candidates GROUP BY actor_id HAVING count(*) = 1
), one_actor_each AS (
  SELECT min(actor_id) AS actor_id, id FROM unique_matches GROUP BY id
)
UPDATE organisations o
   SET external_ids = o.external_ids || jsonb_build_object('ucdp_actor_id', m.actor_id),
       version = o.version + 1, updated_at = now()
  FROM one_actor_each m
 WHERE o.id = m.id
RETURNING o.id
"""

CREATE_ORGANISATIONS = """
WITH new AS (
  INSERT INTO organisations (name, kind, country, status, external_ids)
  SELECT a.name, a.kind, a.country, 'unknown', jsonb_build_object('ucdp_actor_id', a.actor_id)
    FROM ucdp_actors a ORDER BY a.first_line
  ON CONFLICT ((external_ids->>'ucdp_actor_id')) WHERE external_ids ? 'ucdp_actor_id' DO NOTHING
  RETURNING id, name
), cited AS (
  INSERT INTO citations (organisation_id, ordinal, source_id, quote) SELECT id, 1, $1, name FROM new
)
SELECT coalesce(array_agg(id), '{}') FROM new
"""

# Statistics only for the columns the joins and filters use: analysing the long texts (quotes,
# summaries) too took as long as the join it informs.
ANALYZE_STAGE = "ANALYZE ucdp_stage (line, ged_id, incident_id, action)"
# Participants are matched through one map of actor → organisation, built once: matched per row,
# the lookups cost more than the rest of the resolution. They go to a table of their own (a row's
# participants by line; none: no row): set on the staged rows, they rewrote every wide row and
# doubled the table every later statement scans.
RESOLVE_INCIDENTS = """
CREATE TEMP TABLE actor_organisations ON COMMIT DROP AS
SELECT external_ids->>'ucdp_actor_id' AS actor, id FROM organisations WHERE external_ids ? 'ucdp_actor_id';
ANALYZE actor_organisations;
UPDATE ucdp_stage s
   SET incident_id = i.id, action = CASE WHEN i.deleted_at IS NULL THEN 'compare' ELSE 'deleted' END
  FROM incidents i
 WHERE i.external_ids ? 'ucdp_ged_id' AND i.external_ids->>'ucdp_ged_id' = s.ged_id;
CREATE TEMP TABLE ucdp_participants (line integer PRIMARY KEY, participants jsonb NOT NULL) ON COMMIT DROP;
INSERT INTO ucdp_participants
SELECT k.line, jsonb_agg(jsonb_build_object('organisation_id', a.id, 'role', 'perpetrator') ORDER BY side.ord)
  FROM ucdp_stage k
 CROSS JOIN LATERAL (VALUES (1, k.side_a_actor), (2, k.side_b_actor)) AS side(ord, actor)
  JOIN actor_organisations a ON a.actor = side.actor
 GROUP BY k.line;
ANALYZE ucdp_participants (line)
"""

# A stored incident that a newer release wrote stays as it is: the file's release ($1) is older,
# or unknown while the stored one is known. Releases compare as numbers, part by part (22.1 < 23.1
# < 23.10); a stored value that is not a release number (an NDJSON import may carry anything)
# counts as unknown.
SKIP_OLDER = f"""
UPDATE ucdp_stage s SET action = 'older'
  FROM incidents i
 WHERE s.action = 'compare' AND i.id = s.incident_id
   AND {_release("i.external_ids->>'ucdp_release'")} IS NOT NULL
   AND ($1::text IS NULL
        OR {_release("i.external_ids->>'ucdp_release'")} > string_to_array($1::text, '.')::int[])
"""

# An existing incident is rewritten only when the file says something else about it (a newer
# release says so at least in `external_ids.ucdp_release`).
COMPARE_INCIDENTS = """
UPDATE ucdp_stage s
   SET action = CASE WHEN
         (i.title, i.summary, i.type, i.subtype, i.occurred_start, i.occurred_end, i.occurred_precision,
          i.country::text, i.admin1, i.admin2, i.place, i.lat, i.lon, i.location_precision,
          i.killed_low, i.killed_best, i.killed_high, i.injured_low, i.injured_best, i.injured_high)
         IS DISTINCT FROM
         (s.title, s.summary, s.type, s.subtype, s.occurred_start, s.occurred_end, s.occurred_precision,
          s.country, s.admin1, s.admin2, s.place, s.lat, s.lon, s.location_precision,
          s.killed_low, s.killed_best, s.killed_high, NULL::integer, NULL::integer, NULL::integer)
         OR NOT i.external_ids @> s.external_ids
         OR coalesce((SELECT p.participants FROM ucdp_participants p WHERE p.line = s.line), '[]')
            IS DISTINCT FROM (
              SELECT coalesce(jsonb_agg(jsonb_build_object('organisation_id', p.organisation_id, 'role', p.role)
                                        ORDER BY p.ordinal), '[]'::jsonb)
                FROM incident_participants p WHERE p.incident_id = i.id)
         OR s.breakdown IS DISTINCT FROM (
              SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'group', b."group",
                       'killed', estimate_json(b.killed_low, b.killed_best, b.killed_high)::jsonb,
                       'injured', estimate_json(b.injured_low, b.injured_best, b.injured_high)::jsonb)
                     ORDER BY b.ordinal), '[]'::jsonb)
                FROM incident_casualties b WHERE b.incident_id = i.id)
         OR jsonb_build_array(jsonb_build_object('source_id', $1::uuid, 'quote', s.quote)) IS DISTINCT FROM (
              SELECT coalesce(jsonb_agg(jsonb_build_object('source_id', c.source_id, 'quote', c.quote)
                                        ORDER BY c.ordinal), '[]'::jsonb)
                FROM citations c WHERE c.incident_id = i.id)
       THEN 'update' ELSE 'unchanged' END
  FROM incidents i
 WHERE s.action = 'compare' AND i.id = s.incident_id
"""

# The organisations the documents name, locked as every renderer locks them (a rename waits, or
# is waited for: secevents.server.sql.documents), and the names the documents give them.
LOCK_NAMED_ORGANISATIONS = """
SELECT o.id, o.name FROM organisations o
 WHERE o.id IN (SELECT (e->>'organisation_id')::uuid
                  FROM ucdp_stage s JOIN ucdp_participants p ON p.line = s.line,
                       jsonb_array_elements(p.participants) AS e
                 WHERE s.action IN ('create', 'update'))
 ORDER BY o.id FOR SHARE
"""


# The rows `secevents.server.sql.documents.incidents.build` renders, of the created or of the
# updated incidents, as those will be written (version, stamps and external ids as the COPY of
# created incidents and UPDATE_INCIDENTS set them; `$1`: the dataset source): documents are
# rendered before the rows are written, so each row is written once, document included.
# Participants and breakdown come as staged (JSON), named in Python from the locked organisations
# (LOCK_NAMED_ORGANISATIONS): a subquery per row cost more than the rendering. Read through one
# cursor, in the staging table's order (the file's, for created incidents: their staged rows are
# never rewritten), unsorted: pages by `line > $n LIMIT …` would each scan and sort the unindexed
# staging table, quadratic in the file's size.
def _document_rows(action: str, stored: str, version: str, external_ids: str, created_at: str) -> str:
    return f"""
SELECT s.line, s.incident_id AS id, {version} AS version, s.title, s.summary, s.type,
       s.subtype, s.occurred_start, s.occurred_end, s.occurred_precision, s.country, s.admin1, s.admin2,
       s.place, s.lat, s.lon, s.location_precision, s.killed_low, s.killed_best, s.killed_high,
       NULL::integer AS injured_low, NULL::integer AS injured_best, NULL::integer AS injured_high,
       {external_ids} AS external_ids, {created_at} AS created_at, now() AS updated_at,
       coalesce(p.participants, '[]') AS participants, s.breakdown,
       ARRAY[ROW($1::uuid, s.quote)] AS citations
  FROM ucdp_stage s LEFT JOIN ucdp_participants p ON p.line = s.line{stored}
 WHERE s.action = '{action}'
"""


CREATED_DOCUMENT_ROWS = _document_rows("create", "", "1", "s.external_ids", "now()")
UPDATED_DOCUMENT_ROWS = _document_rows(
    "update",
    " JOIN incidents i ON i.id = s.incident_id",
    "i.version + 1",
    "i.external_ids || s.external_ids",
    "i.created_at",
)
# The columns of a created incident as the render loop COPYs them: from its CREATED_DOCUMENT_ROWS
# row, and its document last.
CREATED_COLUMNS = (
    "id", "title", "summary", "type", "subtype", "occurred_start", "occurred_end", "occurred_precision",
    "country", "admin1", "admin2", "place", "lat", "lon", "location_precision",
    "killed_low", "killed_best", "killed_high", "external_ids", "created_at", "updated_at", "doc",
)  # fmt: skip

# Updated incidents first, losing their child rows, with the foreign keys' triggers ...
UPDATE_INCIDENTS = """
UPDATE incidents i
   SET title = s.title, summary = s.summary, type = s.type, subtype = s.subtype,
       occurred_start = s.occurred_start, occurred_end = s.occurred_end,
       occurred_precision = s.occurred_precision, country = s.country, admin1 = s.admin1,
       admin2 = s.admin2, place = s.place, lat = s.lat, lon = s.lon,
       location_precision = s.location_precision, killed_low = s.killed_low,
       killed_best = s.killed_best, killed_high = s.killed_high,
       injured_low = NULL, injured_best = NULL, injured_high = NULL,
       external_ids = i.external_ids || s.external_ids, version = i.version + 1, updated_at = now(),
       doc = d.doc
  FROM ucdp_stage s JOIN ucdp_docs d ON d.line = s.line
 WHERE s.action = 'update' AND i.id = s.incident_id;
DELETE FROM incident_participants WHERE incident_id IN (SELECT incident_id FROM ucdp_stage WHERE action = 'update');
DELETE FROM incident_casualties WHERE incident_id IN (SELECT incident_id FROM ucdp_stage WHERE action = 'update');
DELETE FROM citations WHERE incident_id IN (SELECT incident_id FROM ucdp_stage WHERE action = 'update')
"""

# ... then inserts only, whose foreign keys are checked as a set
# (secevents.server.importers.references: REFERENCES below): the created incidents themselves are
# COPYed as their documents are rendered, then their child rows and those of updated incidents.
INSERT_CHILD_ROWS = """
INSERT INTO incident_participants (incident_id, ordinal, organisation_id, role)
SELECT s.incident_id, t.ord, (t.e->>'organisation_id')::uuid, t.e->>'role'
  FROM ucdp_stage s JOIN ucdp_participants p ON p.line = s.line,
       jsonb_array_elements(p.participants) WITH ORDINALITY AS t(e, ord)
 WHERE s.action IN ('create', 'update');
INSERT INTO incident_casualties (incident_id, ordinal, "group", killed_low, killed_best, killed_high)
SELECT s.incident_id, t.ord, t.e->>'group',
       (t.e->'killed'->>'low')::int, (t.e->'killed'->>'best')::int, (t.e->'killed'->>'high')::int
  FROM ucdp_stage s, jsonb_array_elements(s.breakdown) WITH ORDINALITY AS t(e, ord)
 WHERE s.action IN ('create', 'update')
"""

WRITE_CITATIONS = """
INSERT INTO citations (incident_id, ordinal, source_id, quote)
SELECT incident_id, 1, $1, quote FROM ucdp_stage WHERE action IN ('create', 'update')
"""

# What those inserts point at outside their own rows: the countries and the dataset source (its
# id: `given`). The organisations the participants name are held already: LOCK_NAMED_ORGANISATIONS
# locked every one of them (FOR SHARE) before their names went into the documents.
COUNTRIES = Reference(
    "country", "countries", "code", "bpchar", "SELECT country FROM ucdp_stage WHERE action = 'create'"
)
DATASET_SOURCE = Reference("source", "sources", "id", "uuid", "SELECT $1::uuid")


# Revisions last, in one statement per record type: the change feed sees every imported record.
REVISE_SOURCE = """
INSERT INTO revisions (record_type, record_id, version, operation, data, actor)
SELECT 'source', s.id, s.version, $3, s.doc, $2 FROM sources s WHERE s.id = $1
"""
REVISE_ORGANISATIONS = """
INSERT INTO revisions (record_type, record_id, version, operation, data, actor)
SELECT 'organisation', o.id, o.version, CASE WHEN o.version = 1 THEN 'create' ELSE 'update' END, o.doc, $2
  FROM organisations o WHERE o.id = ANY($1::uuid[]) ORDER BY o.id
"""
# In the file's order: the staged lines are sorted, not the documents (as the NDJSON import's
# REVISION_STATEMENTS).
REVISE_INCIDENTS = """
INSERT INTO revisions (record_type, record_id, version, operation, data, actor)
SELECT 'incident', i.id, i.version, s.action, i.doc, $1
  FROM (SELECT line, incident_id, action FROM ucdp_stage WHERE action IN ('create', 'update') ORDER BY line) s
 CROSS JOIN LATERAL (SELECT t.id, t.version, t.doc FROM incidents t WHERE t.id = s.incident_id OFFSET 0) i
 ORDER BY s.line
"""
COUNT_ACTIONS = "SELECT action, count(*) FROM ucdp_stage GROUP BY action"
# The UCDP ids of the incidents skipped because a newer release wrote them (the first `$1`).
SKIPPED_OLDER = "SELECT ged_id FROM ucdp_stage WHERE action = 'older' ORDER BY line LIMIT $1"
