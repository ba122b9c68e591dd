"""SQL of the change feed: batches of ``revisions`` between two transaction snapshots.

Snapshots are passed as text (``xmin:xmax:xip,…``) and cast here. Nothing here writes or
assigns a transaction id: every statement runs on a hot standby too.
"""

from __future__ import annotations

# The reading transaction's own snapshot (REPEATABLE READ: the one every later statement of the
# transaction sees), and whether this server is a standby.
NOW = "SELECT pg_current_snapshot()::text, pg_is_in_recovery()"

# The seq range of a batch: the rows of transactions finished in $2 but not in $1. Written so
# that the (xid, seq) index finds them: transactions that started after $1 was taken
# (xid >= its xmax), plus those running then that have finished since ($3, from $1's xip).
# One pass over the batch's rows, once per batch; its pages then walk the seq index. (`+ 0`:
# min()/max() of a bare column would walk the seq index from its ends instead, through every
# row of the table outside the batch.)
BATCH_BOUNDS = """
SELECT min(r.seq + 0), max(r.seq + 0)
  FROM revisions r
 WHERE (r.xid >= pg_snapshot_xmax($1::text::pg_snapshot)
        AND r.xid < pg_snapshot_xmax($2::text::pg_snapshot)
        AND pg_visible_in_snapshot(r.xid, $2::text::pg_snapshot))
    OR r.xid = ANY ($3::text[]::xid8[])
"""

# From the origin every visible row is in the batch: the ends of the seq index bound it.
ALL_BOUNDS = "SELECT min(seq), max(seq) FROM revisions"

# One page of a batch, in seq order: the seq index walked from the last row delivered, rows of
# other batches skipped. The snapshot tests are deliberately not index conditions: a walk in seq
# order that stops after $6 rows is what keeps page 100 of a 100,000-row import as cheap as page 1.
# Documents are streamed as stored; a delete carries none (a tombstone). `$5` NULL: every type.
PAGE = """
SELECT json_build_object(
         'seq', r.seq, 'type', r.record_type, 'id', r.record_id, 'version', r.version,
         'operation', r.operation, 'committed_at', r.committed_at,
         'deleted', r.operation = 'delete',
         'data', CASE WHEN r.operation = 'delete' THEN NULL ELSE r.data END) AS change,
       r.seq
  FROM revisions r
 WHERE r.seq > $3 AND r.seq <= $4
   AND pg_visible_in_snapshot(r.xid, $2::text::pg_snapshot)
   AND NOT pg_visible_in_snapshot(r.xid, $1::text::pg_snapshot)
   AND ($5::text[] IS NULL OR r.record_type = ANY ($5::text[]))
 ORDER BY r.seq
 LIMIT $6
"""

# The last seq written before migration 0006_feed_snapshots (bare-number cursors end there) and
# the key that signs cursors.
FEED_STATE = "SELECT legacy_seq, cursor_key FROM change_feed"
