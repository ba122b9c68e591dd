"""SQL of revision history: the ``revisions`` table by record (its primary key's order)."""

from __future__ import annotations

_REVISION = """json_build_object(
         'type', r.record_type, 'id', r.record_id, 'version', r.version, 'operation', r.operation,
         'committed_at', r.committed_at, 'api_key_id', r.api_key_id, 'actor', r.actor, 'cause', r.cause,
         'data', r.data)"""

# One row more than asked for tells whether another page follows.
PAGE = f"""
SELECT {_REVISION} AS revision, r.version
  FROM revisions r
 WHERE r.record_type = $1 AND r.record_id = $2 AND r.version > $3
 ORDER BY r.version
 LIMIT $4
"""

ONE = f"SELECT {_REVISION} FROM revisions r WHERE r.record_type = $1 AND r.record_id = $2 AND r.version = $3"

EXISTS = "SELECT EXISTS (SELECT 1 FROM revisions WHERE record_type = $1 AND record_id = $2)"
