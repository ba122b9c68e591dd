"""Bulk import and exports (issue 7): set-based triggers so a bulk import costs per statement,
not per row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

- Change feed: 0001 assigned ``revisions.seq`` in a per-row plpgsql trigger that took the
  change-feed advisory lock and called ``nextval``. The guarantee only needs the lock to be taken
  before the first seq of a transaction is drawn and held to commit, so a statement-level BEFORE
  INSERT trigger takes the lock (it fires before the statement produces its first row) and
  ``seq`` becomes ``GENERATED ALWAYS AS IDENTITY``: drawn per row by the executor, and an
  explicit seq — which would bypass the lock — is refused.
- Quotes: 0001 checked each citation's quote against its source text in a per-row trigger;
  statement-level AFTER triggers now check all the rows a statement wrote in one join over the
  transition table, raising the same error (check_violation, constraint
  ``citation_quote_in_source``).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANGE_FEED_LOCK = 7361029384756


def upgrade() -> None:
    _change_feed_upgrade()
    _quotes_upgrade()


def downgrade() -> None:
    _quotes_downgrade()
    _change_feed_downgrade()


def _change_feed_upgrade() -> None:
    op.execute("DROP TRIGGER revisions_seq_in_commit_order ON revisions")
    op.execute("DROP FUNCTION revisions_assign_seq()")
    # The identity takes over the name and the position of 0001's free-standing sequence.
    op.execute("""
    DO $$
    DECLARE next_seq bigint := coalesce((SELECT max(seq) FROM revisions), 0) + 1;
    BEGIN
      DROP SEQUENCE revisions_seq;
      ALTER TABLE revisions ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME revisions_seq);
      EXECUTE format('ALTER SEQUENCE revisions_seq RESTART WITH %s', next_seq);
    END $$""")
    op.execute(f"""
    CREATE FUNCTION revisions_lock_change_feed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock({CHANGE_FEED_LOCK});
      RETURN NULL;
    END $$""")
    op.execute("""
    CREATE TRIGGER revisions_seq_in_commit_order BEFORE INSERT ON revisions
    FOR EACH STATEMENT EXECUTE FUNCTION revisions_lock_change_feed()""")


def _change_feed_downgrade() -> None:
    op.execute("DROP TRIGGER revisions_seq_in_commit_order ON revisions")
    op.execute("DROP FUNCTION revisions_lock_change_feed()")
    op.execute("""
    DO $$
    DECLARE next_seq bigint := coalesce((SELECT max(seq) FROM revisions), 0) + 1;
    BEGIN
      ALTER TABLE revisions ALTER COLUMN seq DROP IDENTITY;
      CREATE SEQUENCE revisions_seq AS bigint;
      PERFORM setval('revisions_seq', next_seq, false);
    END $$""")
    # 0001's definitions, verbatim.
    op.execute("""
    CREATE FUNCTION revisions_assign_seq() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock(7361029384756);
      NEW.seq := nextval('revisions_seq');
      RETURN NEW;
    END $$""")
    op.execute("""
    CREATE TRIGGER revisions_seq_in_commit_order BEFORE INSERT ON revisions
    FOR EACH ROW EXECUTE FUNCTION revisions_assign_seq()""")


def _quotes_upgrade() -> None:
    op.execute("DROP TRIGGER citations_quote_in_source ON citations")
    op.execute("DROP FUNCTION citations_check_quote()")
    # Transition tables cannot go with several events or a column list: one trigger per event;
    # an UPDATE is checked only where it changed the quote or the source, as 0001 did.
    op.execute("""
    CREATE FUNCTION citations_check_quotes() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE bad_source uuid;
    BEGIN
      IF TG_OP = 'INSERT' THEN
        SELECT n.source_id INTO bad_source
          FROM new_citations n JOIN sources s ON s.id = n.source_id
         WHERE s.text IS NOT NULL AND strpos(s.text, n.quote) = 0
         LIMIT 1;
      ELSE
        SELECT n.source_id INTO bad_source
          FROM new_citations n JOIN old_citations o ON o.id = n.id JOIN sources s ON s.id = n.source_id
         WHERE (n.quote, n.source_id) IS DISTINCT FROM (o.quote, o.source_id)
           AND s.text IS NOT NULL AND strpos(s.text, n.quote) = 0
         LIMIT 1;
      END IF;
      IF bad_source IS NOT NULL THEN
        RAISE EXCEPTION 'quote not found in source %', bad_source
          USING ERRCODE = 'check_violation', CONSTRAINT = 'citation_quote_in_source';
      END IF;
      RETURN NULL;
    END $$""")
    op.execute("""
    CREATE TRIGGER citations_quote_in_source AFTER INSERT ON citations
    REFERENCING NEW TABLE AS new_citations
    FOR EACH STATEMENT EXECUTE FUNCTION citations_check_quotes()""")
    op.execute("""
    CREATE TRIGGER citations_quote_in_source_on_update AFTER UPDATE ON citations
    REFERENCING OLD TABLE AS old_citations NEW TABLE AS new_citations
    FOR EACH STATEMENT EXECUTE FUNCTION citations_check_quotes()""")


def _quotes_downgrade() -> None:
    op.execute("DROP TRIGGER citations_quote_in_source_on_update ON citations")
    op.execute("DROP TRIGGER citations_quote_in_source ON citations")
    op.execute("DROP FUNCTION citations_check_quotes()")
    # 0001's definitions, verbatim.
    op.execute("""
    CREATE FUNCTION citations_check_quote() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE source_text text;
    BEGIN
      SELECT text INTO source_text FROM sources WHERE id = NEW.source_id;
      IF source_text IS NOT NULL AND strpos(source_text, NEW.quote) = 0 THEN
        RAISE EXCEPTION 'quote not found in source %', NEW.source_id
          USING ERRCODE = 'check_violation', CONSTRAINT = 'citation_quote_in_source';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute("""
    CREATE TRIGGER citations_quote_in_source BEFORE INSERT OR UPDATE OF quote, source_id ON citations
    FOR EACH ROW EXECUTE FUNCTION citations_check_quote()""")
