"""UCDP GED CSV files → incidents, organisations and one dataset source (DESIGN §6).

Layouts understood (chosen by the header row; anything else is refused before a row is read):

- ``ged`` — the 49 columns of the UCDP GED global CSV (``id, relid, year, … gwnoa, gwnob``);
- ``hdx`` — HDX's country extracts: the same plus ``iso3`` right after ``country`` (50 columns),
  optionally followed by a row of HXL hashtags (``#date+year``, …) which is skipped.

Mapping (also in ``data/ucdp/README.md``):

- each event → one incident, keyed by ``external_ids.ucdp_ged_id`` (= UCDP ``id``): importing the
  same file again, or a newer release, updates it in place (a new version only when something
  changed); incidents deleted here are left deleted (counted as ``skipped_deleted``);
- ``type_of_violence`` 1 (state-based) and 2 (non-state) → ``battle``, 3 (one-sided) →
  ``violence_against_civilians``; the UCDP category is kept as ``subtype``;
- ``best``/``low``/``high`` → ``casualties.killed``; ``deaths_a``/``deaths_b``/
  ``deaths_civilians``/``deaths_unknown`` → the breakdown: a side named "Government of …" is
  ``security_forces``, any other side ``militants`` (both sides of a non-state conflict are
  militants, so their deaths are summed), ``civilians`` and ``unknown`` as named;
- ``date_start``/``date_end`` → ``occurred``; ``date_prec`` 1 → day, 2 (a 2–6 day window) and
  3 (a week) → week, 4 → month, 5 (within a year) → year;
- ``where_prec`` 1 → exact, 2 (within ~25 km) → near, 3 → admin2, 4 → admin1, 5 (larger than an
  admin1 region), 6 (country) and 7 (international waters/airspace) → country; ``adm_1``/
  ``adm_2``/``where_coordinates`` → admin1/admin2/place; coordinates are kept as given;
- ``country`` → ISO 3166-1 alpha-2 through the ``countries`` table plus :data:`COUNTRY_ALIASES`
  for UCDP's historical names ("DR Congo (Zaire)");
- ``side_a``/``side_b`` → organisations, one per UCDP actor id (``side_*_new_id``, kept in
  ``external_ids.ucdp_actor_id``): matched by that id, else linked to an existing organisation
  whose name or alias is the actor's name (when exactly one matches), else created (kind
  ``government`` for "Government of …", else ``armed_group``). Existing organisations are never
  rewritten. Both sides are participants with role ``perpetrator`` (UCDP records a dyad, not who
  attacked whom); "Civilians", the target of one-sided violence, is not an organisation;
- ``source_article`` → the citation quote; the cited source is one ``dataset`` source for UCDP
  GED itself (the quote is UCDP's own text, so it is an excerpt of the dataset).

Row policy: a row with a malformed value (bad date, unknown precision or violence code, country
not recognised, wrong number of fields, duplicate id…) is rejected, reported with its physical
line number, and — unless ``skip_invalid`` — fails the whole file. ``low > best`` and
``best > high`` occur in real UCDP data (200 of the 6,416 Pakistan rows): the inconsistent
bound is dropped (``null``: unknown, not guessed), the row is kept, and the incident's summary
says so; the import summary counts these repairs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

import asyncpg
import msgspec

from api.importers import BULK_SETTINGS, ErrorLog, ImportFailed, LineError, UnknownLayout, documents
from api.importers.exclusive import indexes_rebuilt as exclusive_load

GED_COLUMNS: tuple[str, ...] = (
    "id", "relid", "year", "active_year", "code_status", "type_of_violence", "conflict_dset_id",
    "conflict_new_id", "conflict_name", "dyad_dset_id", "dyad_new_id", "dyad_name", "side_a_dset_id",
    "side_a_new_id", "side_a", "side_b_dset_id", "side_b_new_id", "side_b", "number_of_sources",
    "source_article", "source_office", "source_date", "source_headline", "source_original",
    "where_prec", "where_coordinates", "where_description", "adm_1", "adm_2", "latitude", "longitude",
    "geom_wkt", "priogrid_gid", "country", "country_id", "region", "event_clarity", "date_prec",
    "date_start", "date_end", "deaths_a", "deaths_b", "deaths_civilians", "deaths_unknown", "best",
    "high", "low", "gwnoa", "gwnob",
)  # fmt: skip
_COUNTRY_AT = GED_COLUMNS.index("country") + 1
HDX_COLUMNS: tuple[str, ...] = (*GED_COLUMNS[:_COUNTRY_AT], "iso3", *GED_COLUMNS[_COUNTRY_AT:])
LAYOUTS: dict[tuple[str, ...], str] = {GED_COLUMNS: "ged", HDX_COLUMNS: "hdx"}

INCIDENT_TYPES = {1: "battle", 2: "battle", 3: "violence_against_civilians"}
SUBTYPES = {1: "state_based_conflict", 2: "non_state_conflict", 3: "one_sided_violence"}
TYPE_LABELS = {1: "State-based armed conflict", 2: "Non-state conflict", 3: "One-sided violence"}
DATE_PRECISIONS = {1: "day", 2: "week", 3: "week", 4: "month", 5: "year"}
LOCATION_PRECISIONS = {
    1: "exact",
    2: "near",
    3: "admin2",
    4: "admin1",
    5: "country",
    6: "country",
    7: "country",
}

# UCDP country names that are not the ISO 3166 short names of the `countries` table. Names with
# a historical name in brackets ("Yemen (North Yemen)") are also tried without the bracket.
COUNTRY_ALIASES: dict[str, str] = {
    "bosnia-herzegovina": "BA",
    "cambodia (kampuchea)": "KH",
    "cape verde": "CV",
    "czech republic": "CZ",
    "dr congo (zaire)": "CD",
    "east timor": "TL",
    "ivory coast": "CI",
    "kingdom of eswatini (swaziland)": "SZ",
    "macedonia, fyr": "MK",
    "madagascar (malagasy)": "MG",
    "russia (soviet union)": "RU",
    "russia": "RU",
    "serbia (yugoslavia)": "RS",
    "south yemen": "YE",
    "surinam": "SR",
    "turkey": "TR",
    "united states of america": "US",
    "vietnam (north vietnam)": "VN",
    "zimbabwe (rhodesia)": "ZW",
}

DATASET_SOURCE_URL = "https://ucdp.uu.se/downloads/"
DATASET_SOURCE_TITLE = "UCDP Georeferenced Event Dataset (GED)"
DATASET_PUBLISHER = "Uppsala Conflict Data Program (UCDP), Uppsala University"
CIVILIANS = "Civilians"
GOVERNMENT_PREFIX = "Government of "
INT4_MAX = 2_147_483_647
LABEL_MAX, TITLE_MAX, QUOTE_MAX, SUMMARY_MAX, EXTERNAL_ID_MAX = 200, 500, 5_000, 20_000, 200
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?: 00:00:00(?:\.0+)?)?$")

STAGE_COLUMNS = (
    "line", "ged_id", "title", "summary", "type", "subtype", "occurred_start", "occurred_end",
    "occurred_precision", "country", "admin1", "admin2", "place", "lat", "lon", "location_precision",
    "killed_low", "killed_best", "killed_high", "external_ids", "side_a_actor", "side_b_actor",
    "breakdown", "quote",
)  # fmt: skip

Progress = Callable[[int], None]
"""Called with the number of bytes of the file read so far."""


@dataclass(frozen=True, slots=True)
class Actor:
    actor_id: str
    name: str
    kind: str
    country: str | None
    first_line: int


@dataclass(slots=True)
class UcdpSummary:
    """What an import of one file did."""

    path: str
    layout: str = ""
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_deleted: int = 0
    rejected: int = 0
    rejections: list[LineError] = field(default_factory=list)
    repaired: Counter[str] = field(default_factory=Counter)
    organisations_created: int = 0
    organisations_linked: int = 0
    source_created: bool = False

    def report(self) -> str:
        lines = [
            f"{self.path} ({self.layout} layout): {self.rows_read} rows read, {self.created} created, "
            f"{self.updated} updated, {self.unchanged} unchanged, {self.skipped_deleted} skipped "
            f"(deleted here), {self.rejected} rejected",
            f"  organisations: {self.organisations_created} created, {self.organisations_linked} "
            "linked to existing records by name",
        ]
        lines += [f"  repaired {n} row(s): {why}" for why, n in sorted(self.repaired.items())]
        lines += [f"  rejected {e}" for e in self.rejections]
        if self.rejected > len(self.rejections):
            lines.append(f"  … and {self.rejected - len(self.rejections)} more rejected")
        return "\n".join(lines)


class _CountingReader(io.RawIOBase):
    """A binary file wrapper that reports how many bytes were read (for the progress bar)."""

    def __init__(self, raw: io.BufferedReader, progress: Progress | None) -> None:
        self._raw = raw
        self._progress = progress
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n: int = self._raw.readinto(buffer)
        self.position += n
        if self._progress is not None:
            self._progress(self.position)
        return n


def _int(value: str, column: str, errors: list[tuple[str, str]], *, low: int = 0) -> int | None:
    try:
        number = int(value)
    except ValueError:
        errors.append((column, f"not an integer: {value!r}"))
        return None
    if not low <= number <= INT4_MAX:
        errors.append((column, f"out of range: {number}"))
        return None
    return number


def _code(value: str, column: str, known: dict[int, str], errors: list[tuple[str, str]]) -> str | None:
    number = _int(value, column, errors)
    if number is None:
        return None
    if number not in known:
        errors.append((column, f"unknown code {number} (expected {min(known)}–{max(known)})"))
        return None
    return known[number]


def _date(value: str, column: str, errors: list[tuple[str, str]]) -> dt.date | None:
    match = _DATE.match(value)
    try:
        if match is None:
            raise ValueError
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        errors.append((column, f"not a date: {value!r}"))
        return None


def _coordinate(value: str, column: str, limit: float, errors: list[tuple[str, str]]) -> float | None:
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        errors.append((column, f"not a number: {value!r}"))
        return None
    if not -limit <= number <= limit:
        errors.append((column, f"out of range: {number}"))
        return None
    return number


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _label(value: str) -> str | None:
    return _clip(value.strip(), LABEL_MAX) or None


class CountryResolver:
    """UCDP country names → ISO 3166-1 alpha-2, from the ``countries`` table and the aliases."""

    def __init__(self, names: dict[str, str]) -> None:
        self._codes = {name.casefold(): code for name, code in names.items()}
        self._codes.update(COUNTRY_ALIASES)

    @classmethod
    async def load(cls, conn: asyncpg.Connection) -> CountryResolver:
        rows = await conn.fetch("SELECT name, code FROM countries")
        return cls({r["name"]: r["code"] for r in rows})

    def __call__(self, name: str) -> str | None:
        key = name.strip().casefold()
        code = self._codes.get(key)
        if code is None and "(" in key:
            code = self._codes.get(key.split("(", 1)[0].strip())
        return code


class RowMapper:
    """One CSV row → one staging tuple (or the reasons it is rejected); collects the actors."""

    def __init__(self, countries: CountryResolver) -> None:
        self.countries = countries
        self.actors: dict[str, Actor] = {}
        self.repaired: Counter[str] = Counter()

    def _actor(self, actor_id: str, name: str, line: int, errors: list[tuple[str, str]]) -> str | None:
        name = name.strip()
        if name == CIVILIANS:
            return None
        if not name:
            errors.append(("side", "actor name is empty"))
            return None
        if actor_id not in self.actors:
            government = name.startswith(GOVERNMENT_PREFIX)
            country = self.countries(name.removeprefix(GOVERNMENT_PREFIX)) if government else None
            kind = "government" if government else "armed_group"
            self.actors[actor_id] = Actor(actor_id, _clip(name, TITLE_MAX), kind, country, line)
        return actor_id

    def map(self, line: int, row: dict[str, str]) -> tuple[Any, ...] | list[tuple[str, str]]:
        errors: list[tuple[str, str]] = []
        if any("\x00" in value for value in row.values()):
            return [("row", "contains a NUL character")]
        ged_id = _int(row["id"], "id", errors, low=1)
        violence = _int(row["type_of_violence"], "type_of_violence", errors)
        if violence is not None and violence not in INCIDENT_TYPES:
            errors.append(("type_of_violence", f"unknown code {violence} (expected 1–3)"))
            violence = None
        start = _date(row["date_start"], "date_start", errors)
        end = _date(row["date_end"], "date_end", errors)
        if start and end and end < start:
            errors.append(("date_end", f"{end} is before date_start {start}"))
        date_precision = _code(row["date_prec"], "date_prec", DATE_PRECISIONS, errors)
        location_precision = _code(row["where_prec"], "where_prec", LOCATION_PRECISIONS, errors)
        country = self.countries(row["country"])
        if country is None:
            errors.append(("country", f"unknown country {row['country']!r}"))
        lat = _coordinate(row["latitude"], "latitude", 90, errors)
        lon = _coordinate(row["longitude"], "longitude", 180, errors)
        if (row["latitude"] == "") != (row["longitude"] == ""):
            errors.append(("latitude", "latitude and longitude must be given together"))
        deaths = {
            c: _int(row[c], c, errors) for c in ("deaths_a", "deaths_b", "deaths_civilians", "deaths_unknown")
        }
        best = _int(row["best"], "best", errors)
        low = _int(row["low"], "low", errors) if row["low"] != "" else None
        high = _int(row["high"], "high", errors) if row["high"] != "" else None
        side_ids = {s: _int(row[f"{s}_new_id"], f"{s}_new_id", errors) for s in ("side_a", "side_b")}
        if errors or ged_id is None or violence is None or start is None or end is None:
            return errors or [("row", "invalid")]
        assert country is not None and best is not None and date_precision and location_precision
        side_a = self._actor(str(side_ids["side_a"]), row["side_a"], line, errors)
        side_b = self._actor(str(side_ids["side_b"]), row["side_b"], line, errors)
        if errors:
            return errors
        notes = []
        if low is not None and low > best:
            notes.append(f"UCDP's low estimate ({low}) is above its best estimate ({best}); it was not kept.")
            self.repaired["low > best: low estimate dropped"] += 1
            low = None
        if high is not None and high < best:
            notes.append(
                f"UCDP's high estimate ({high}) is below its best estimate ({best}); it was not kept."
            )
            self.repaired["best > high: high estimate dropped"] += 1
            high = None
        return (
            line,
            str(ged_id),
            _clip(f"{row['dyad_name'].strip()}: {row['where_coordinates'].strip()}".strip(": "), TITLE_MAX),
            _summary(ged_id, violence, row, notes),
            INCIDENT_TYPES[violence],
            SUBTYPES[violence],
            start,
            end,
            date_precision,
            country,
            _label(row["adm_1"]),
            _label(row["adm_2"]),
            _label(row["where_coordinates"]),
            lat,
            lon,
            location_precision,
            low,
            best,
            high,
            msgspec.json.encode(_external_ids(ged_id, row)),
            side_a,
            side_b,
            msgspec.json.encode(_breakdown(violence, row, deaths)),
            _clip(row["source_article"].strip(), QUOTE_MAX) or f"UCDP GED event {ged_id}",
        )


def _summary(ged_id: int, violence: int, row: dict[str, str], notes: list[str]) -> str:
    parts = [f"{TYPE_LABELS[violence]} (UCDP GED event {ged_id}, conflict “{row['conflict_name'].strip()}”)."]
    if row["where_description"].strip():
        parts.append(f"Location: {row['where_description'].strip()}.")
    parts += notes
    return _clip(" ".join(parts), SUMMARY_MAX)


def _external_ids(ged_id: int, row: dict[str, str]) -> dict[str, str]:
    ids = {"ucdp_ged_id": str(ged_id)}
    for key, column in (
        ("ucdp_relid", "relid"),
        ("ucdp_conflict_id", "conflict_new_id"),
        ("ucdp_dyad_id", "dyad_new_id"),
    ):
        value = row[column].strip()
        if value:
            ids[key] = _clip(value, EXTERNAL_ID_MAX)
    return ids


def _side_group(name: str) -> str:
    if name.strip() == CIVILIANS:
        return "civilians"
    return "security_forces" if name.startswith(GOVERNMENT_PREFIX) else "militants"


def _breakdown(violence: int, row: dict[str, str], deaths: dict[str, int | None]) -> list[dict[str, Any]]:
    totals: dict[str, int] = {}
    for side, column in (("side_a", "deaths_a"), ("side_b", "deaths_b")):
        group = _side_group(row[side])
        totals[group] = totals.get(group, 0) + (deaths[column] or 0)
    totals["civilians"] = totals.get("civilians", 0) + (deaths["deaths_civilians"] or 0)
    totals["unknown"] = deaths["deaths_unknown"] or 0
    order = ("security_forces", "militants", "civilians", "unknown")
    return [
        {"group": g, "killed": {"low": None, "best": totals[g], "high": None}, "injured": None}
        for g in order
        if g in totals
    ]


def detect_layout(header: list[str]) -> str:
    """The layout name for a header row, or :class:`UnknownLayout`."""
    columns = tuple(c.strip().lstrip("\ufeff") for c in header)
    layout = LAYOUTS.get(columns)
    if layout is not None:
        return layout
    expected = set(GED_COLUMNS)
    missing = sorted(expected - set(columns))
    unexpected = sorted(set(columns) - expected - {"iso3"})
    detail = []
    if missing:
        detail.append(f"missing columns: {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}")
    if unexpected:
        detail.append(f"unknown columns: {', '.join(unexpected[:10])}{' …' if len(unexpected) > 10 else ''}")
    if not detail:
        detail.append("the columns are not in UCDP's order")
    raise UnknownLayout(
        "not a UCDP GED CSV file (expected the 49-column GED layout or the HDX extract with `iso3`): "
        + "; ".join(detail),
        [LineError(1, None, "; ".join(detail))],
    )


def iterate_rows(
    stream: BinaryIO, mapper: RowMapper, errors: ErrorLog, summary: UcdpSummary
) -> Iterator[tuple[Any, ...]]:
    """Staging tuples of the valid rows; rejects go to ``errors`` with their physical line.

    ``csv.reader.line_num`` counts physical lines (quoted fields hold line breaks), so a row
    starts on the line after the previous row ended.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise UnknownLayout("the file is empty", [LineError(1, None, "no header row")])
        summary.layout = detect_layout(header)
        columns = HDX_COLUMNS if summary.layout == "hdx" else GED_COLUMNS
        previous_end = reader.line_num
        for values in reader:
            line, previous_end = previous_end + 1, reader.line_num
            if (
                summary.layout == "hdx"
                and values
                and values[0] == ""
                and any(v.startswith("#") for v in values)
            ):
                continue  # the HXL hashtag row
            summary.rows_read += 1
            if len(values) != len(columns):
                errors.add(LineError(line, None, f"expected {len(columns)} fields, found {len(values)}"))
                summary.rejected += 1
                continue
            mapped = mapper.map(line, dict(zip(columns, values, strict=True)))
            if isinstance(mapped, list):
                for column, message in mapped:
                    errors.add(LineError(line, column, message))
                summary.rejected += 1
                continue
            yield mapped
    except csv.Error as exc:
        errors.add(LineError(previous_end + 1, None, f"malformed CSV: {exc}"))
        raise ImportFailed(f"{summary.path}: malformed CSV", errors.errors, errors.total) from None
    except UnicodeDecodeError:
        errors.add(LineError(reader.line_num + 1, None, "not valid UTF-8"))
        raise ImportFailed(f"{summary.path}: not valid UTF-8", errors.errors, errors.total) from None


CREATE_STAGE = """
CREATE TEMP TABLE ucdp_stage (
  line integer NOT NULL, ged_id text NOT NULL, title text, summary text, type text, subtype text,
  occurred_start date, occurred_end date, occurred_precision text, country text, admin1 text,
  admin2 text, place text, lat double precision, lon double precision, location_precision text,
  killed_low integer, killed_best integer, killed_high integer, external_ids jsonb,
  side_a_actor text, side_b_actor text, breakdown jsonb, quote text,
  incident_id uuid, action text, participants jsonb NOT NULL DEFAULT '[]'
) ON COMMIT DROP;
CREATE TEMP TABLE ucdp_actors (
  actor_id text PRIMARY KEY, name text NOT NULL, kind text NOT NULL, country text, first_line integer
) ON COMMIT DROP
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

UPSERT_DATASET_SOURCE = """
WITH new AS (
  INSERT INTO sources (kind, title, url, publisher, language, external_ids)
  VALUES ('dataset', $1, $2, $3, 'en', '{"ucdp_dataset": "ged"}'::jsonb)
  ON CONFLICT (url) WHERE deleted_at IS NULL DO NOTHING
  RETURNING id
)
SELECT id, true AS created FROM new
UNION ALL
SELECT id, false FROM sources WHERE url = $2 AND deleted_at IS NULL
LIMIT 1
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
# the lookups cost more than the rest of the resolution.
RESOLVE_INCIDENTS = f"""
{ANALYZE_STAGE};
CREATE TEMP TABLE actor_organisations ON COMMIT DROP AS
SELECT external_ids->>'ucdp_actor_id' AS actor, id FROM organisations WHERE external_ids ? 'ucdp_actor_id';
ANALYZE actor_organisations;
UPDATE ucdp_stage s
   SET incident_id = i.id, action = CASE WHEN i.deleted_at IS NULL THEN 'compare' ELSE 'deleted' END
  FROM incidents i
 WHERE i.external_ids ? 'ucdp_ged_id' AND i.external_ids->>'ucdp_ged_id' = s.ged_id;
UPDATE ucdp_stage SET incident_id = uuid_v7(), action = 'create' WHERE incident_id IS NULL;
UPDATE ucdp_stage s
   SET participants = p.doc
  FROM (SELECT k.line, jsonb_agg(jsonb_build_object('organisation_id', a.id, 'role', 'perpetrator')
                                 ORDER BY side.ord) AS doc
          FROM ucdp_stage k
         CROSS JOIN LATERAL (VALUES (1, k.side_a_actor), (2, k.side_b_actor)) AS side(ord, actor)
          JOIN actor_organisations a ON a.actor = side.actor
         GROUP BY k.line) p
 WHERE p.line = s.line
"""

# An existing incident is rewritten only when the file says something else about it.
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
         OR s.participants IS DISTINCT FROM (
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

WRITE_INCIDENTS = """
INSERT INTO incidents (id, title, summary, type, subtype, occurred_start, occurred_end, occurred_precision,
                       country, admin1, admin2, place, lat, lon, location_precision,
                       killed_low, killed_best, killed_high, external_ids)
SELECT incident_id, title, summary, type, subtype, occurred_start, occurred_end, occurred_precision,
       country, admin1, admin2, place, lat, lon, location_precision,
       killed_low, killed_best, killed_high, external_ids
  FROM ucdp_stage WHERE action = 'create' ORDER BY line;
UPDATE incidents i
   SET title = s.title, summary = s.summary, type = s.type, subtype = s.subtype,
       occurred_start = s.occurred_start, occurred_end = s.occurred_end,
       occurred_precision = s.occurred_precision, country = s.country, admin1 = s.admin1,
       admin2 = s.admin2, place = s.place, lat = s.lat, lon = s.lon,
       location_precision = s.location_precision, killed_low = s.killed_low,
       killed_best = s.killed_best, killed_high = s.killed_high,
       injured_low = NULL, injured_best = NULL, injured_high = NULL,
       external_ids = i.external_ids || s.external_ids, version = i.version + 1, updated_at = now()
  FROM ucdp_stage s
 WHERE s.action = 'update' AND i.id = s.incident_id;
DELETE FROM incident_participants WHERE incident_id IN (SELECT incident_id FROM ucdp_stage WHERE action = 'update');
DELETE FROM incident_casualties WHERE incident_id IN (SELECT incident_id FROM ucdp_stage WHERE action = 'update');
DELETE FROM citations WHERE incident_id IN (SELECT incident_id FROM ucdp_stage WHERE action = 'update');
INSERT INTO incident_participants (incident_id, ordinal, organisation_id, role)
SELECT s.incident_id, t.ord, (t.e->>'organisation_id')::uuid, t.e->>'role'
  FROM ucdp_stage s, jsonb_array_elements(s.participants) WITH ORDINALITY AS t(e, ord)
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

# Revisions last, in one statement per record type: the change feed sees every imported record.
REVISE_SOURCE = """
INSERT INTO revisions (record_type, record_id, version, operation, data, actor)
SELECT 'source', s.id, s.version, 'create', source_doc(s), $2 FROM sources s WHERE s.id = $1
"""
REVISE_ORGANISATIONS = """
INSERT INTO revisions (record_type, record_id, version, operation, data, actor)
SELECT 'organisation', o.id, o.version, CASE WHEN o.version = 1 THEN 'create' ELSE 'update' END,
       organisation_doc(o), $2
  FROM organisations o WHERE o.id = ANY($1::uuid[]) ORDER BY o.id
"""
REVISE_INCIDENTS = documents.incident_revisions_sql(
    "SELECT incident_id AS id, line AS ord, action AS operation FROM ucdp_stage"
    " WHERE action IN ('create', 'update')",
    actor="$1",
)
COUNT_ACTIONS = "SELECT action, count(*) FROM ucdp_stage GROUP BY action"


async def import_file(
    conn: asyncpg.Connection,
    path: Path,
    *,
    actor: str = "import:ucdp",
    skip_invalid: bool = False,
    progress: Progress | None = None,
    exclusive: bool = False,
) -> UcdpSummary:
    """Import one UCDP GED CSV file in one transaction; raise :class:`ImportFailed` (nothing
    written) when the file cannot be read or — unless ``skip_invalid`` — any row is rejected.

    ``conn`` must have the codecs of :func:`api.db.init_connection`. ``exclusive``: write with
    the bulk tables locked and their indexes rebuilt after the load (:mod:`api.importers.exclusive`).
    """
    summary = UcdpSummary(path=str(path))
    mapper = RowMapper(await CountryResolver.load(conn))
    errors = ErrorLog()
    async with conn.transaction():
        await conn.execute(BULK_SETTINGS)
        await conn.execute(CREATE_STAGE)
        with path.open("rb") as raw:
            stream = io.BufferedReader(_CountingReader(raw, progress), buffer_size=1 << 16)
            rows = iterate_rows(stream, mapper, errors, summary)
            await conn.copy_records_to_table("ucdp_stage", records=rows, columns=STAGE_COLUMNS)
        await _reject_duplicate_ids(conn, errors, summary)
        summary.rejections, summary.repaired = errors.errors, mapper.repaired
        if errors and not skip_invalid:
            raise ImportFailed(
                f"{path}: {summary.rejected} of {summary.rows_read} rows rejected; nothing was imported",
                errors.errors,
                errors.total,
            )
        await conn.copy_records_to_table(
            "ucdp_actors",
            records=[(a.actor_id, a.name, a.kind, a.country, a.first_line) for a in mapper.actors.values()],
        )
        source_id, summary.source_created = await _dataset_source(conn)
        linked: list[UUID] = [r["id"] for r in await conn.fetch(LINK_ACTORS_BY_NAME)]
        created: list[UUID] = await conn.fetchval(CREATE_ORGANISATIONS, source_id)
        summary.organisations_linked, summary.organisations_created = len(linked), len(created)
        await conn.execute(RESOLVE_INCIDENTS)
        await conn.execute(COMPARE_INCIDENTS, source_id)
        async with exclusive_load(conn) if exclusive else nullcontext():
            await conn.execute(WRITE_INCIDENTS)
            await conn.execute(WRITE_CITATIONS, source_id)
            if summary.source_created:
                await conn.execute(REVISE_SOURCE, source_id, actor)
            await conn.execute(REVISE_ORGANISATIONS, [*linked, *created], actor)
            # Analysed before `action` was filled in: again, so the planner knows how many
            # incidents get a revision.
            await conn.execute(ANALYZE_STAGE)
            await conn.execute(REVISE_INCIDENTS, actor)
        counts = {r["action"]: r["count"] for r in await conn.fetch(COUNT_ACTIONS)}
    summary.created = counts.get("create", 0)
    summary.updated = counts.get("update", 0)
    summary.unchanged = counts.get("unchanged", 0)
    summary.skipped_deleted = counts.get("deleted", 0)
    return summary


async def _reject_duplicate_ids(conn: asyncpg.Connection, errors: ErrorLog, summary: UcdpSummary) -> None:
    """Rows repeating an earlier row's UCDP id are rejected (found in SQL rather than with a set
    of ids in memory, which would grow with the file)."""
    for row in sorted(await conn.fetch(DUPLICATE_IDS), key=lambda r: r["line"]):
        errors.add(
            LineError(row["line"], "id", f"duplicate id {row['ged_id']} (first on line {row['first_line']})")
        )
        summary.rejected += 1


async def _dataset_source(conn: asyncpg.Connection) -> tuple[UUID, bool]:
    row = await conn.fetchrow(
        UPSERT_DATASET_SOURCE, DATASET_SOURCE_TITLE, DATASET_SOURCE_URL, DATASET_PUBLISHER
    )
    assert row is not None
    return row["id"], row["created"]
