"""SQL of the change feed: the ``revisions`` table read in ``seq`` order.

``seq > cursor`` never misses a change: ``seq`` is assigned under a transaction-scoped advisory
lock that is released only once the writer's commit is visible (migration 0001, table
``revisions``), so when a reader sees ``seq = N`` every ``seq < N`` that will ever exist is
already visible to it. Numbers skipped by rolled-back writers are simply never seen.
"""

from __future__ import annotations

# Documents are rendered here and streamed as is; a delete carries no document (a tombstone).
# `$2` NULL means every record type. One row more than asked for tells whether more follow.
PAGE = """
SELECT json_build_object(
         'seq', r.seq, 'type', r.record_type, 'id', r.record_id, 'version', r.version,
         'operation', r.operation, 'committed_at', r.committed_at,
         'deleted', r.operation = 'delete',
         'data', CASE WHEN r.operation = 'delete' THEN NULL ELSE r.data END) AS change,
       r.seq
  FROM revisions r
 WHERE r.seq > $1 AND ($2::text[] IS NULL OR r.record_type = ANY ($2::text[]))
 ORDER BY r.seq
 LIMIT $3
"""
