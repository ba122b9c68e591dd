"""Revisions of many incidents at once, rendered set-based.

``incident_doc(i)`` (migrations/versions/0001) runs four correlated subqueries per incident: for
a bulk import that is most of the time spent. :func:`incident_revisions_sql` renders the same
documents — byte for byte: the same ``json_build_object``/``json_agg`` calls over the same
columns, in the same order — with one grouped aggregate per nested list over the whole set.
tests/test_import_ndjson.py compares both renderings on imported rows.
"""

from __future__ import annotations

# Grouped aggregates over the incidents in `picked`; each `doc` is NULL when the list is empty.
# MATERIALIZED: each is computed once even when a low row estimate for `picked` would make it
# the inner side of a nested loop (re-aggregated per incident).
_NESTED_LISTS = """
participant_docs AS MATERIALIZED (
  SELECT p.incident_id,
         json_agg(json_build_object('organisation_id', p.organisation_id, 'name', o.name, 'role', p.role)
                  ORDER BY p.ordinal) AS doc
    FROM picked k
    JOIN incident_participants p ON p.incident_id = k.id
    JOIN organisations o ON o.id = p.organisation_id
   GROUP BY p.incident_id
), breakdown_docs AS MATERIALIZED (
  SELECT b.incident_id,
         json_agg(json_build_object(
                    'group', b."group",
                    'killed', estimate_json(b.killed_low, b.killed_best, b.killed_high),
                    'injured', estimate_json(b.injured_low, b.injured_best, b.injured_high))
                  ORDER BY b.ordinal) AS doc
    FROM picked k
    JOIN incident_casualties b ON b.incident_id = k.id
   GROUP BY b.incident_id
), citation_docs AS MATERIALIZED (
  SELECT c.incident_id,
         json_agg(json_build_object('source_id', c.source_id, 'quote', c.quote) ORDER BY c.ordinal) AS doc
    FROM picked k
    JOIN citations c ON c.incident_id = k.id
   GROUP BY c.incident_id
)"""

_INCIDENT_DOC = """json_build_object(
  'id', i.id, 'version', i.version, 'title', i.title, 'summary', i.summary,
  'type', i.type, 'subtype', i.subtype,
  'occurred', json_build_object('start', i.occurred_start, 'end', i.occurred_end,
                                'precision', i.occurred_precision),
  'location', json_build_object('country', i.country, 'admin1', i.admin1, 'admin2', i.admin2,
                                'place', i.place, 'lat', i.lat, 'lon', i.lon,
                                'precision', i.location_precision),
  'participants', coalesce(pd.doc, '[]'::json),
  'casualties', json_build_object(
    'killed', estimate_json(i.killed_low, i.killed_best, i.killed_high),
    'injured', estimate_json(i.injured_low, i.injured_best, i.injured_high),
    'breakdown', coalesce(bd.doc, '[]'::json)),
  'external_ids', i.external_ids,
  'citations', coalesce(cd.doc, '[]'::json),
  'created_at', i.created_at, 'updated_at', i.updated_at)"""


def incident_documents_sql(picked: str) -> str:
    """``SELECT ord, operation, id, version, doc`` for the incidents chosen by ``picked``: a query
    with columns ``id`` (an incident id, each at most once), ``ord`` (ordering) and
    ``operation``."""
    return f"""
WITH picked AS MATERIALIZED ({picked}),
{_NESTED_LISTS}
SELECT k.ord, k.operation, i.id, i.version, {_INCIDENT_DOC} AS doc
  FROM picked k
  JOIN incidents i ON i.id = k.id
  LEFT JOIN participant_docs pd ON pd.incident_id = k.id
  LEFT JOIN breakdown_docs bd ON bd.incident_id = k.id
  LEFT JOIN citation_docs cd ON cd.incident_id = k.id"""


def incident_revisions_sql(picked: str, *, actor: str, api_key_id: str = "NULL") -> str:
    """``INSERT INTO revisions`` one revision per incident of ``picked`` (see
    :func:`incident_documents_sql`), in ``ord`` order; ``actor`` and ``api_key_id`` are SQL
    expressions (placeholders such as ``$1``)."""
    return f"""
INSERT INTO revisions (record_type, record_id, version, operation, data, api_key_id, actor)
SELECT 'incident', d.id, d.version, d.operation, d.doc, {api_key_id}, {actor}
  FROM ({incident_documents_sql(picked)}) d
 ORDER BY d.ord"""
