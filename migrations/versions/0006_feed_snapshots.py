"""Change feed without a global lock: each revision records the transaction that wrote it, and a
feed cursor is a transaction snapshot (issue 14).

Revision ID: 0006_feed_snapshots
Revises: 0005_stored_documents
Create Date: 2026-11-30

Until now ``revisions.seq`` was drawn under a transaction-scoped advisory lock held to commit
(0001, 0004), so seq order was commit order — and every writer, every import, queued on that one
lock. Now nothing is locked:

- ``revisions.xid`` (``xid8``, default ``pg_current_xact_id()``) is the top-level transaction that
  wrote the row; ``seq`` stays an identity, drawn without a lock: the row's identity and its
  order within a batch.
- A consumer's position is a snapshot (``pg_current_snapshot()``) taken by the reader: it has
  seen exactly the changes of the transactions that snapshot shows as committed. The next batch
  is the rows whose ``xid`` is visible in a newer snapshot and not in the cursor's — PgQ's
  design (a batch is the difference of two txid snapshots). A transaction that commits late is
  simply in a later batch: nothing is missed, nothing repeats, whatever order commits come in.
- Within a batch rows go in ``seq`` order. Two writers of one record serialise on its row lock,
  so the later one draws its seq after the earlier one committed: per record, feed order is
  commit order (and a later transaction is never in an earlier batch).
- ``revisions_xid_seq_idx`` lets a poll touch only the rows of transactions it has not seen
  (``xid >= xmax`` of its snapshot, plus the few that were running then).

Why not logical decoding: it needs ``wal_level = logical`` and a replication slot per consumer
(or one decoder copying into a table — this table again); a slot whose consumer goes away keeps
WAL on the primary until the disk fills; consumers could not start from an arbitrary point nor
read from a standby before PostgreSQL 16. Snapshots need no server configuration, no state per
consumer on the server, and work on a hot standby (see ``secevents.server.changes.snapshots``).

Existing rows get ``xid = 1``, older than any snapshot: visible to every cursor but the origin
(``1:1:``). Their seqs were drawn in commit order, so a numeric cursor from before this version
(``after=<seq>``) still means "every row with seq <= N": it keeps working up to the last of them
(``change_feed.legacy_seq``); a larger number is a 400.

Every statement that stores revisions also queues ``NOTIFY secevents_changes`` (sent on commit,
once per transaction): what wakes long-polls and event streams. It is taken at commit only,
briefly — not, as the old lock was, from a transaction's first revision to its commit.

``change_feed.cursor_key`` signs feed cursors. It lives in the database, not in a setting, so
every worker, a restart and a standby accept the cursors a consumer has stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_feed_snapshots"
down_revision: str | None = "0005_stored_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANGE_FEED_LOCK = 7361029384756
NOTIFY_CHANNEL = "secevents_changes"  # secevents.server.changes.listener listens on it


def upgrade() -> None:
    op.execute("DROP TRIGGER revisions_seq_in_commit_order ON revisions")
    op.execute("DROP FUNCTION revisions_lock_change_feed()")
    # A constant default fills existing rows without rewriting the table; new rows then take
    # the writing transaction's id.
    op.execute("ALTER TABLE revisions ADD COLUMN xid xid8 NOT NULL DEFAULT '1'")
    op.execute("ALTER TABLE revisions ALTER COLUMN xid SET DEFAULT pg_current_xact_id()")
    op.execute("CREATE INDEX revisions_xid_seq_idx ON revisions (xid, seq)")
    op.execute("""
    CREATE TABLE change_feed (
      one boolean PRIMARY KEY DEFAULT true CHECK (one),
      cursor_key bytea NOT NULL CHECK (length(cursor_key) >= 32),
      legacy_seq bigint NOT NULL
    )""")
    op.execute(f"""
    CREATE FUNCTION revisions_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
      RETURN NULL;
    END $$""")
    op.execute("""
    CREATE TRIGGER revisions_notify AFTER INSERT ON revisions
    FOR EACH STATEMENT EXECUTE FUNCTION revisions_notify()""")
    # gen_random_uuid() draws from pg_strong_random: two of them give 244 random bits.
    op.execute("""
    INSERT INTO change_feed (cursor_key, legacy_seq)
    SELECT uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()),
           coalesce((SELECT max(seq) FROM revisions), 0)""")


def downgrade() -> None:
    op.execute("DROP TRIGGER revisions_notify ON revisions")
    op.execute("DROP FUNCTION revisions_notify()")
    op.execute("DROP TABLE change_feed")
    op.execute("DROP INDEX revisions_xid_seq_idx")
    op.execute("ALTER TABLE revisions DROP COLUMN xid")
    # 0004's definitions, verbatim.
    op.execute(f"""
    CREATE FUNCTION revisions_lock_change_feed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock({CHANGE_FEED_LOCK});
      RETURN NULL;
    END $$""")
    op.execute("""
    CREATE TRIGGER revisions_seq_in_commit_order BEFORE INSERT ON revisions
    FOR EACH STATEMENT EXECUTE FUNCTION revisions_lock_change_feed()""")
