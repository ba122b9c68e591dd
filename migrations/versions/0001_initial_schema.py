"""Initial schema: sources, citations, organisations, incidents, statements, revisions/change
log, API keys and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTRIES_CSV = Path(__file__).resolve().parent.parent / "data" / "iso3166_1.csv"

# Enumerations are CHECK constraints on text rather than PostgreSQL enum types: adding a value
# (the only change v1 allows) is then a plain constraint swap inside a transaction.
SOURCE_KINDS = ("news_article", "official_document", "report", "dataset")
ORGANISATION_KINDS = (
    "armed_group",
    "government",
    "government_body",
    "legislature",
    "security_force",
    "regulator",
    "political_party",
    "media_outlet",
    "international_body",
    "other",
)
ORGANISATION_STATUSES = ("active", "banned", "inactive", "dissolved", "unknown")
RELATIONSHIP_TYPES = (
    "branch_of",
    "splinter_of",
    "affiliate_of",
    "allied_with",
    "rival_of",
    "part_of",
    "hosted_by",
)
INCIDENT_TYPES = (
    "battle",
    "explosion_remote_violence",
    "violence_against_civilians",
    "riot",
    "protest",
    "strategic_development",
)
DATE_PRECISIONS = ("day", "week", "month", "year")
LOCATION_PRECISIONS = ("exact", "near", "admin2", "admin1", "country")
PARTICIPANT_ROLES = ("perpetrator", "claimed_by", "suspected", "target", "responder")
CASUALTY_GROUPS = ("security_forces", "civilians", "militants", "unknown")
STATEMENT_FORMS = (
    "written_reply",
    "press_release",
    "speech",
    "interview",
    "report",
    "social_media",
    "other",
)
RECORD_TYPES = ("incident", "organisation", "statement", "source")
OPERATIONS = ("create", "update", "delete")
SCOPES = ("read", "write", "admin")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _estimate(prefix: str) -> str:
    """Columns and checks of a {low, best, high} estimate: non-negative, ordered where given."""
    lo, be, hi = f"{prefix}_low", f"{prefix}_best", f"{prefix}_high"
    return f"""
    {lo} integer CHECK ({lo} >= 0),
    {be} integer CHECK ({be} >= 0),
    {hi} integer CHECK ({hi} >= 0),
    CONSTRAINT {prefix}_bounds_ordered CHECK (
        ({lo} IS NULL OR {be} IS NULL OR {lo} <= {be})
        AND ({be} IS NULL OR {hi} IS NULL OR {be} <= {hi})
        AND ({lo} IS NULL OR {hi} IS NULL OR {lo} <= {hi}))"""


def _span(prefix: str, *, required: bool) -> str:
    null = "NOT NULL" if required else ""
    both = (
        ""
        if required
        else f"CONSTRAINT {prefix}_all_or_none CHECK (num_nulls({prefix}_start, {prefix}_end, "
        f"{prefix}_precision) IN (0, 3)),"
    )
    return f"""
    {prefix}_start date {null},
    {prefix}_end date {null},
    {prefix}_precision text {null} CHECK ({_in(f"{prefix}_precision", DATE_PRECISIONS)}),
    {both}
    CONSTRAINT {prefix}_ordered CHECK ({prefix}_start <= {prefix}_end)"""


RECORD_COLUMNS = """
    version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    external_ids jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(external_ids) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    _functions()
    _reference_tables()
    _sources()
    _organisations()
    _incidents()
    _statements()
    _citations()
    _operations_tables()
    _documents()


def _functions() -> None:
    # Time-ordered UUIDs (RFC 9562 v7) on PostgreSQL 15 too, which lacks uuidv7().
    op.execute("""
    CREATE FUNCTION uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
      SELECT encode(
        set_bit(set_bit(
          overlay(uuid_send(gen_random_uuid())
                  PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                  FROM 1 FOR 6),
          52, 1), 53, 1), 'hex')::uuid
    $$""")
    # unaccent() is only STABLE (its dictionary could change); pinning the dictionary makes it
    # safe to index, which alias lookup needs.
    op.execute("""
    CREATE FUNCTION fold_name(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
      SELECT lower(public.unaccent('public.unaccent'::regdictionary, value))
    $$""")
    op.execute("""
    CREATE FUNCTION estimate_json(low integer, best integer, high integer) RETURNS json
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT CASE WHEN num_nonnulls(low, best, high) = 0 THEN NULL
                  ELSE json_build_object('low', low, 'best', best, 'high', high) END
    $$""")
    op.execute("""
    CREATE FUNCTION span_json(s date, e date, p text) RETURNS json
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT CASE WHEN s IS NULL THEN NULL
                  ELSE json_build_object('start', s, 'end', e, 'precision', p) END
    $$""")


def _reference_tables() -> None:
    op.execute(
        "CREATE TABLE countries (code char(2) PRIMARY KEY CHECK (code ~ '^[A-Z]{2}$'), name text NOT NULL)"
    )
    with COUNTRIES_CSV.open(encoding="utf-8", newline="") as f:
        rows = [(r["code"], r["name"]) for r in csv.DictReader(f)]
    values = ", ".join(f"('{code}', '{name.replace(chr(39), chr(39) * 2)}')" for code, name in rows)
    op.execute(f"INSERT INTO countries (code, name) VALUES {values}")


def _sources() -> None:
    op.execute(f"""
    CREATE TABLE sources (
      id uuid PRIMARY KEY DEFAULT uuid_v7(),
      kind text NOT NULL CHECK ({_in("kind", SOURCE_KINDS)}),
      title text NOT NULL CHECK (title <> ''),
      url text CHECK (url ~ '^https?://'),
      publisher text,
      published_on date,
      retrieved_at timestamptz NOT NULL DEFAULT now(),
      language text CHECK (language ~ '^[a-z]{{2,3}}(-[A-Za-z0-9]{{2,8}})*$'),
      text text,
      sha256 text,
      {RECORD_COLUMNS}
    )""")
    op.execute("""
    CREATE FUNCTION sources_set_sha256() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      NEW.sha256 := CASE WHEN NEW.text IS NULL THEN NULL
                         ELSE encode(sha256(convert_to(NEW.text, 'UTF8')), 'hex') END;
      RETURN NEW;
    END $$""")
    op.execute("""
    CREATE TRIGGER sources_sha256 BEFORE INSERT OR UPDATE OF text ON sources
    FOR EACH ROW EXECUTE FUNCTION sources_set_sha256()""")
    op.execute("CREATE INDEX sources_updated_idx ON sources (updated_at, id)")
    op.execute("CREATE INDEX sources_published_idx ON sources (published_on, id) WHERE deleted_at IS NULL")
    op.execute("CREATE UNIQUE INDEX sources_url_key ON sources (url) WHERE deleted_at IS NULL")


def _organisations() -> None:
    op.execute(f"""
    CREATE TABLE organisations (
      id uuid PRIMARY KEY DEFAULT uuid_v7(),
      name text NOT NULL CHECK (name <> ''),
      kind text NOT NULL CHECK ({_in("kind", ORGANISATION_KINDS)}),
      country char(2) REFERENCES countries (code),
      status text NOT NULL DEFAULT 'unknown' CHECK ({_in("status", ORGANISATION_STATUSES)}),
      description text,
      {RECORD_COLUMNS}
    )""")
    op.execute("CREATE INDEX organisations_name_idx ON organisations (fold_name(name), id)")
    op.execute(
        "CREATE INDEX organisations_name_trgm_idx ON organisations USING gin (fold_name(name) gin_trgm_ops)"
    )
    op.execute("CREATE INDEX organisations_updated_idx ON organisations (updated_at, id)")
    op.execute(
        "CREATE INDEX organisations_country_idx ON organisations (country, id) WHERE deleted_at IS NULL"
    )
    op.execute(
        "CREATE UNIQUE INDEX organisations_ucdp_actor_key ON organisations ((external_ids->>'ucdp_actor_id')) "
        "WHERE external_ids ? 'ucdp_actor_id'"
    )
    op.execute("""
    CREATE TABLE organisation_aliases (
      organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
      ordinal smallint NOT NULL,
      alias text NOT NULL CHECK (alias <> ''),
      PRIMARY KEY (organisation_id, ordinal),
      UNIQUE (organisation_id, alias)
    )""")
    op.execute("CREATE INDEX organisation_aliases_fold_idx ON organisation_aliases (fold_name(alias))")
    op.execute(
        "CREATE INDEX organisation_aliases_trgm_idx ON organisation_aliases USING gin (fold_name(alias) gin_trgm_ops)"
    )
    op.execute(f"""
    CREATE TABLE organisation_relationships (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
      ordinal smallint NOT NULL,
      type text NOT NULL CHECK ({_in("type", RELATIONSHIP_TYPES)}),
      related_organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
      since date,
      until date,
      CONSTRAINT relationship_not_self CHECK (organisation_id <> related_organisation_id),
      CONSTRAINT relationship_period_ordered CHECK (since <= until),
      UNIQUE (organisation_id, ordinal)
    )""")
    op.execute(
        "CREATE INDEX organisation_relationships_related_idx ON organisation_relationships (related_organisation_id)"
    )


def _incidents() -> None:
    op.execute(f"""
    CREATE TABLE incidents (
      id uuid PRIMARY KEY DEFAULT uuid_v7(),
      title text NOT NULL CHECK (title <> ''),
      summary text,
      type text NOT NULL CHECK ({_in("type", INCIDENT_TYPES)}),
      subtype text,
      {_span("occurred", required=True)},
      country char(2) NOT NULL REFERENCES countries (code),
      admin1 text,
      admin2 text,
      place text,
      lat double precision CHECK (lat BETWEEN -90 AND 90),
      lon double precision CHECK (lon BETWEEN -180 AND 180),
      location_precision text NOT NULL CHECK ({_in("location_precision", LOCATION_PRECISIONS)}),
      CONSTRAINT coordinates_paired CHECK ((lat IS NULL) = (lon IS NULL)),
      {_estimate("killed")},
      {_estimate("injured")},
      {RECORD_COLUMNS}
    )""")
    live = "WHERE deleted_at IS NULL"
    op.execute(f"CREATE INDEX incidents_occurred_idx ON incidents (occurred_start, id) {live}")
    op.execute(
        f"CREATE INDEX incidents_country_occurred_idx ON incidents (country, occurred_start, id) {live}"
    )
    op.execute(f"CREATE INDEX incidents_admin1_idx ON incidents (country, admin1) {live}")
    op.execute(f"CREATE INDEX incidents_type_occurred_idx ON incidents (type, occurred_start, id) {live}")
    op.execute(f"CREATE INDEX incidents_killed_idx ON incidents (killed_best, id) {live}")
    op.execute("CREATE INDEX incidents_updated_idx ON incidents (updated_at, id)")
    op.execute(f"CREATE INDEX incidents_point_idx ON incidents USING gist (point(lon, lat)) {live}")
    op.execute(
        "CREATE UNIQUE INDEX incidents_ucdp_ged_key ON incidents ((external_ids->>'ucdp_ged_id')) "
        "WHERE external_ids ? 'ucdp_ged_id'"
    )
    op.execute(f"""
    CREATE TABLE incident_participants (
      incident_id uuid NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
      ordinal smallint NOT NULL,
      organisation_id uuid NOT NULL REFERENCES organisations (id),
      role text NOT NULL CHECK ({_in("role", PARTICIPANT_ROLES)}),
      PRIMARY KEY (incident_id, ordinal),
      UNIQUE (incident_id, organisation_id, role)
    )""")
    op.execute(
        "CREATE INDEX incident_participants_org_idx ON incident_participants (organisation_id, role, incident_id)"
    )
    op.execute(f"""
    CREATE TABLE incident_casualties (
      incident_id uuid NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
      ordinal smallint NOT NULL,
      "group" text NOT NULL CHECK ({_in('"group"', CASUALTY_GROUPS)}),
      {_estimate("killed")},
      {_estimate("injured")},
      PRIMARY KEY (incident_id, ordinal),
      UNIQUE (incident_id, "group")
    )""")


def _statements() -> None:
    op.execute(f"""
    CREATE TABLE statements (
      id uuid PRIMARY KEY DEFAULT uuid_v7(),
      title text NOT NULL CHECK (title <> ''),
      issuer_id uuid NOT NULL REFERENCES organisations (id),
      speaker text,
      addressed_to_id uuid REFERENCES organisations (id),
      form text NOT NULL CHECK ({_in("form", STATEMENT_FORMS)}),
      {_span("issued", required=True)},
      summary text,
      {RECORD_COLUMNS}
    )""")
    live = "WHERE deleted_at IS NULL"
    op.execute(f"CREATE INDEX statements_issued_idx ON statements (issued_start, id) {live}")
    op.execute(f"CREATE INDEX statements_issuer_idx ON statements (issuer_id, issued_start, id) {live}")
    op.execute(f"CREATE INDEX statements_addressed_idx ON statements (addressed_to_id) {live}")
    op.execute("CREATE INDEX statements_updated_idx ON statements (updated_at, id)")
    op.execute("""
    CREATE TABLE statement_claims (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      statement_id uuid NOT NULL REFERENCES statements (id) ON DELETE CASCADE,
      ordinal smallint NOT NULL,
      text text NOT NULL CHECK (text <> ''),
      topics text[] NOT NULL DEFAULT '{}',
      UNIQUE (statement_id, ordinal)
    )""")
    op.execute("""
    CREATE TABLE claim_organisations (
      claim_id bigint NOT NULL REFERENCES statement_claims (id) ON DELETE CASCADE,
      ordinal smallint NOT NULL,
      organisation_id uuid NOT NULL REFERENCES organisations (id),
      PRIMARY KEY (claim_id, ordinal),
      UNIQUE (claim_id, organisation_id)
    )""")
    op.execute("CREATE INDEX claim_organisations_org_idx ON claim_organisations (organisation_id)")
    op.execute(f"""
    CREATE TABLE statement_figures (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      statement_id uuid NOT NULL REFERENCES statements (id) ON DELETE CASCADE,
      ordinal smallint NOT NULL,
      label text NOT NULL CHECK (label <> ''),
      value numeric NOT NULL,
      unit text,
      {_span("period", required=False)},
      UNIQUE (statement_id, ordinal)
    )""")
    op.execute("""
    CREATE TABLE statement_incidents (
      statement_id uuid NOT NULL REFERENCES statements (id) ON DELETE CASCADE,
      ordinal smallint NOT NULL,
      incident_id uuid NOT NULL REFERENCES incidents (id),
      PRIMARY KEY (statement_id, ordinal),
      UNIQUE (statement_id, incident_id)
    )""")
    op.execute("CREATE INDEX statement_incidents_incident_idx ON statement_incidents (incident_id)")


def _citations() -> None:
    # One table for every citation, each row owned by exactly one record (or nested part of a
    # record), so both ends are real foreign keys.
    op.execute("""
    CREATE TABLE citations (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      source_id uuid NOT NULL REFERENCES sources (id),
      quote text NOT NULL CHECK (quote <> ''),
      ordinal smallint NOT NULL,
      incident_id uuid REFERENCES incidents (id) ON DELETE CASCADE,
      organisation_id uuid REFERENCES organisations (id) ON DELETE CASCADE,
      statement_id uuid REFERENCES statements (id) ON DELETE CASCADE,
      relationship_id bigint REFERENCES organisation_relationships (id) ON DELETE CASCADE,
      claim_id bigint REFERENCES statement_claims (id) ON DELETE CASCADE,
      figure_id bigint REFERENCES statement_figures (id) ON DELETE CASCADE,
      CONSTRAINT citation_has_one_owner CHECK (
        num_nonnulls(incident_id, organisation_id, statement_id, relationship_id, claim_id, figure_id) = 1)
    )""")
    for owner in (
        "incident_id",
        "organisation_id",
        "statement_id",
        "relationship_id",
        "claim_id",
        "figure_id",
    ):
        op.execute(
            f"CREATE INDEX citations_{owner}_idx ON citations ({owner}, ordinal) WHERE {owner} IS NOT NULL"
        )
    op.execute("CREATE INDEX citations_source_idx ON citations (source_id)")
    # A quote must be found verbatim in its source when the source holds its text: enforced
    # here so every path (API, importers, seed) obeys it; the API checks first to name the field.
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


def _operations_tables() -> None:
    op.execute(f"""
    CREATE TABLE api_keys (
      id uuid PRIMARY KEY DEFAULT uuid_v7(),
      name text NOT NULL CHECK (name <> ''),
      prefix text NOT NULL UNIQUE,
      secret_hash bytea NOT NULL,
      scopes text[] NOT NULL CHECK (scopes <@ ARRAY[{", ".join(repr(s) for s in SCOPES)}]::text[]
                                    AND cardinality(scopes) > 0),
      created_at timestamptz NOT NULL DEFAULT now(),
      last_used_at timestamptz,
      revoked_at timestamptz
    )""")
    # The revisions table is also the change feed. `seq` is assigned by a trigger while holding a
    # transaction-scoped advisory lock, which is released only after the transaction's commit is
    # visible: so a reader that sees seq N also sees every seq < N that will ever exist, and
    # `seq > cursor` never skips a change that commits late. Writers hold the lock only for
    # their final insert.
    op.execute("CREATE SEQUENCE revisions_seq AS bigint")
    op.execute(f"""
    CREATE TABLE revisions (
      seq bigint NOT NULL UNIQUE,
      record_type text NOT NULL CHECK ({_in("record_type", RECORD_TYPES)}),
      record_id uuid NOT NULL,
      version integer NOT NULL CHECK (version >= 1),
      operation text NOT NULL CHECK ({_in("operation", OPERATIONS)}),
      data json NOT NULL,
      api_key_id uuid REFERENCES api_keys (id),
      actor text NOT NULL,
      committed_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (record_type, record_id, version)
    )""")
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
    op.execute("CREATE INDEX revisions_type_seq_idx ON revisions (record_type, seq)")
    op.execute("""
    CREATE TABLE idempotency_keys (
      api_key_id uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
      key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
      method text NOT NULL,
      path text NOT NULL,
      request_hash bytea NOT NULL,
      status text NOT NULL DEFAULT 'in_flight' CHECK (status IN ('in_flight', 'done')),
      response_status integer,
      response_headers jsonb,
      response_body bytea,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL DEFAULT now() + interval '24 hours',
      PRIMARY KEY (api_key_id, key)
    )""")
    op.execute("CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at)")


def _documents() -> None:
    """SQL functions that render each record as its v1 JSON document (see schemas/).

    `json` (not `jsonb`) keeps keys in the documented order; the API streams these bytes as is.
    """
    op.execute("""
    CREATE FUNCTION source_doc(s sources) RETURNS json LANGUAGE sql STABLE PARALLEL SAFE AS $$
      SELECT json_build_object(
        'id', s.id, 'version', s.version, 'kind', s.kind, 'title', s.title, 'url', s.url,
        'publisher', s.publisher, 'published_on', s.published_on, 'retrieved_at', s.retrieved_at,
        'language', s.language, 'text', s.text, 'sha256', s.sha256, 'external_ids', s.external_ids,
        'created_at', s.created_at, 'updated_at', s.updated_at)
    $$""")
    op.execute("""
    CREATE FUNCTION organisation_doc(o organisations) RETURNS json LANGUAGE sql STABLE PARALLEL SAFE AS $$
      SELECT json_build_object(
        'id', o.id, 'version', o.version, 'name', o.name,
        'aliases', (SELECT coalesce(json_agg(a.alias ORDER BY a.ordinal), '[]'::json)
                      FROM organisation_aliases a WHERE a.organisation_id = o.id),
        'kind', o.kind, 'country', o.country, 'status', o.status, 'description', o.description,
        'relationships', (
          SELECT coalesce(json_agg(json_build_object(
                   'type', r.type, 'organisation_id', r.related_organisation_id, 'name', ro.name,
                   'since', r.since, 'until', r.until,
                   'citations', (SELECT coalesce(json_agg(json_build_object('source_id', c.source_id, 'quote', c.quote)
                                                          ORDER BY c.ordinal), '[]'::json)
                                   FROM citations c WHERE c.relationship_id = r.id))
                 ORDER BY r.ordinal), '[]'::json)
            FROM organisation_relationships r JOIN organisations ro ON ro.id = r.related_organisation_id
           WHERE r.organisation_id = o.id),
        'external_ids', o.external_ids,
        'citations', (SELECT coalesce(json_agg(json_build_object('source_id', c.source_id, 'quote', c.quote)
                                               ORDER BY c.ordinal), '[]'::json)
                        FROM citations c WHERE c.organisation_id = o.id),
        'created_at', o.created_at, 'updated_at', o.updated_at)
    $$""")
    op.execute("""
    CREATE FUNCTION incident_doc(i incidents) RETURNS json LANGUAGE sql STABLE PARALLEL SAFE AS $$
      SELECT json_build_object(
        'id', i.id, 'version', i.version, 'title', i.title, 'summary', i.summary,
        'type', i.type, 'subtype', i.subtype,
        'occurred', json_build_object('start', i.occurred_start, 'end', i.occurred_end,
                                      'precision', i.occurred_precision),
        'location', json_build_object('country', i.country, 'admin1', i.admin1, 'admin2', i.admin2,
                                      'place', i.place, 'lat', i.lat, 'lon', i.lon,
                                      'precision', i.location_precision),
        'participants', (
          SELECT coalesce(json_agg(json_build_object('organisation_id', p.organisation_id, 'name', o.name,
                                                     'role', p.role) ORDER BY p.ordinal), '[]'::json)
            FROM incident_participants p JOIN organisations o ON o.id = p.organisation_id
           WHERE p.incident_id = i.id),
        'casualties', json_build_object(
          'killed', estimate_json(i.killed_low, i.killed_best, i.killed_high),
          'injured', estimate_json(i.injured_low, i.injured_best, i.injured_high),
          'breakdown', (
            SELECT coalesce(json_agg(json_build_object(
                     'group', b."group",
                     'killed', estimate_json(b.killed_low, b.killed_best, b.killed_high),
                     'injured', estimate_json(b.injured_low, b.injured_best, b.injured_high))
                   ORDER BY b.ordinal), '[]'::json)
              FROM incident_casualties b WHERE b.incident_id = i.id)),
        'external_ids', i.external_ids,
        'citations', (SELECT coalesce(json_agg(json_build_object('source_id', c.source_id, 'quote', c.quote)
                                               ORDER BY c.ordinal), '[]'::json)
                        FROM citations c WHERE c.incident_id = i.id),
        'created_at', i.created_at, 'updated_at', i.updated_at)
    $$""")
    op.execute("""
    CREATE FUNCTION statement_doc(s statements) RETURNS json LANGUAGE sql STABLE PARALLEL SAFE AS $$
      SELECT json_build_object(
        'id', s.id, 'version', s.version, 'title', s.title,
        'issuer_id', s.issuer_id, 'addressed_to_id', s.addressed_to_id, 'speaker', s.speaker,
        'form', s.form,
        'issued', json_build_object('start', s.issued_start, 'end', s.issued_end,
                                    'precision', s.issued_precision),
        'summary', s.summary,
        'claims', (
          SELECT coalesce(json_agg(json_build_object(
                   'text', c.text, 'topics', to_json(c.topics),
                   'organisation_ids', (SELECT coalesce(json_agg(co.organisation_id ORDER BY co.ordinal), '[]'::json)
                                          FROM claim_organisations co WHERE co.claim_id = c.id),
                   'citations', (SELECT coalesce(json_agg(json_build_object('source_id', ct.source_id, 'quote', ct.quote)
                                                          ORDER BY ct.ordinal), '[]'::json)
                                   FROM citations ct WHERE ct.claim_id = c.id))
                 ORDER BY c.ordinal), '[]'::json)
            FROM statement_claims c WHERE c.statement_id = s.id),
        'figures', (
          SELECT coalesce(json_agg(json_build_object(
                   'label', f.label, 'value', f.value, 'unit', f.unit,
                   'period', span_json(f.period_start, f.period_end, f.period_precision),
                   'citations', (SELECT coalesce(json_agg(json_build_object('source_id', ct.source_id, 'quote', ct.quote)
                                                          ORDER BY ct.ordinal), '[]'::json)
                                   FROM citations ct WHERE ct.figure_id = f.id))
                 ORDER BY f.ordinal), '[]'::json)
            FROM statement_figures f WHERE f.statement_id = s.id),
        'related_incident_ids', (SELECT coalesce(json_agg(si.incident_id ORDER BY si.ordinal), '[]'::json)
                                   FROM statement_incidents si WHERE si.statement_id = s.id),
        'organisations', (
          SELECT coalesce(json_agg(json_build_object('organisation_id', x.organisation_id, 'name', o.name,
                                                     'role', x.role) ORDER BY x.rank, x.ordinal), '[]'::json)
            FROM (SELECT s.issuer_id AS organisation_id, 'issuer'::text AS role, 0 AS rank, 0 AS ordinal
                  UNION ALL
                  SELECT s.addressed_to_id, 'addressed_to', 1, 0 WHERE s.addressed_to_id IS NOT NULL
                  UNION ALL
                  SELECT m.organisation_id, 'mentioned', 2, min(c.ordinal * 1000 + m.ordinal)
                    FROM statement_claims c JOIN claim_organisations m ON m.claim_id = c.id
                   WHERE c.statement_id = s.id GROUP BY m.organisation_id) x
            JOIN organisations o ON o.id = x.organisation_id),
        'external_ids', s.external_ids,
        'citations', (SELECT coalesce(json_agg(json_build_object('source_id', c.source_id, 'quote', c.quote)
                                               ORDER BY c.ordinal), '[]'::json)
                        FROM citations c WHERE c.statement_id = s.id),
        'created_at', s.created_at, 'updated_at', s.updated_at)
    $$""")
    # A view of every organisation a statement involves, for filters in both directions.
    op.execute("""
    CREATE VIEW statement_organisations AS
      SELECT id AS statement_id, issuer_id AS organisation_id, 'issuer'::text AS role FROM statements
      UNION ALL
      SELECT id, addressed_to_id, 'addressed_to' FROM statements WHERE addressed_to_id IS NOT NULL
      UNION
      SELECT c.statement_id, m.organisation_id, 'mentioned'
        FROM statement_claims c JOIN claim_organisations m ON m.claim_id = c.id""")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS statement_organisations")
    for fn in (
        "statement_doc(statements)",
        "incident_doc(incidents)",
        "organisation_doc(organisations)",
        "source_doc(sources)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    for table in (
        "idempotency_keys",
        "revisions",
        "api_keys",
        "citations",
        "statement_incidents",
        "statement_figures",
        "claim_organisations",
        "statement_claims",
        "statements",
        "incident_casualties",
        "incident_participants",
        "incidents",
        "organisation_relationships",
        "organisation_aliases",
        "organisations",
        "sources",
        "countries",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP SEQUENCE IF EXISTS revisions_seq")
    for fn in (
        "revisions_assign_seq()",
        "citations_check_quote()",
        "sources_set_sha256()",
        "span_json(date, date, text)",
        "estimate_json(integer, integer, integer)",
        "fold_name(text)",
        "uuid_v7()",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    # Extensions are left installed: other schemas of the same database may use them.
