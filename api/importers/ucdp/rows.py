"""Reading UCDP GED CSV rows and mapping each to an incident and its actors (no database)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import asyncpg
import msgspec

from secevents.server.importers import (
    ErrorLog,
    ImportFailed,
    LineError,
    UnknownLayout,
)
from secevents.server.importers.ucdp.vocabulary import (
    _DATE,
    CIVILIANS,
    COUNTRY_ALIASES,
    DATE_PRECISIONS,
    EXTERNAL_ID_MAX,
    GED_COLUMNS,
    GOVERNMENT_PREFIX,
    HDX_COLUMNS,
    INCIDENT_TYPES,
    INT4_MAX,
    LABEL_MAX,
    LAYOUTS,
    LOCATION_PRECISIONS,
    QUOTE_MAX,
    SUBTYPES,
    SUMMARY_MAX,
    TITLE_MAX,
    TYPE_LABELS,
)

# Bytes that are not UTF-8, as ``surrogateescape`` decoding reads them.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


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
    release: str | None = None
    layout: str = ""
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_deleted: int = 0
    skipped_older: int = 0
    """Incidents a newer release wrote (or any release, when this file's is unknown): not applied."""
    skipped_older_ids: list[str] = field(default_factory=list)
    """Their UCDP ids (the first 100)."""
    rejected: int = 0
    rejections: list[LineError] = field(default_factory=list)
    repaired: Counter[str] = field(default_factory=Counter)
    organisations_created: int = 0
    organisations_linked: int = 0
    source_created: bool = False

    def report(self) -> str:
        release = f"release {self.release}" if self.release else "release unknown"
        lines = [
            f"{self.path} ({self.layout} layout, {release}): {self.rows_read} rows read, {self.created} created, "
            f"{self.updated} updated, {self.unchanged} unchanged, {self.skipped_deleted} skipped "
            f"(deleted here), {self.skipped_older} skipped (a newer release is stored), {self.rejected} rejected",
            f"  organisations: {self.organisations_created} created, {self.organisations_linked} "
            "linked to existing records by name",
        ]
        lines += [f"  repaired {n} row(s): {why}" for why, n in sorted(self.repaired.items())]
        if self.skipped_older_ids:
            more = self.skipped_older - len(self.skipped_older_ids)
            lines.append(
                "  skipped UCDP ids (a newer release is stored): "
                + ", ".join(self.skipped_older_ids)
                + (f" … and {more} more" if more > 0 else "")
            )
        lines += [f"  rejected {e}" for e in self.rejections]
        if self.rejected > len(self.rejections):
            lines.append(f"  … and {self.rejected - len(self.rejections)} more rejected")
        return "\n".join(lines)


class _CountingReader(io.RawIOBase):
    """A binary file wrapper that reports how many bytes were read (for the progress bar)."""

    def __init__(self, raw: io.BufferedReader, progress: Callable[[int], None] | None) -> None:
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

    def __init__(self, countries: CountryResolver, release: str | None = None) -> None:
        self.countries = countries
        self.release = release
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
        # The whole row searched at once (one string, in C), column by column only when it
        # holds what is searched for: most rows are plain ASCII.
        whole = "\x1f".join(row.values())
        if "\x00" in whole:
            return [("row", "contains a NUL character")]
        if not whole.isascii() and _UNDECODABLE.search(whole) is not None:
            return _not_utf8(row)
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
            msgspec.json.encode(_external_ids(ged_id, row, self.release)),
            side_a,
            side_b,
            msgspec.json.encode(_breakdown(violence, row, deaths)),
            _clip(row["source_article"].strip(), QUOTE_MAX) or f"UCDP GED event {ged_id}",
        )


def _not_utf8(row: dict[str, str]) -> list[tuple[str, str]]:
    """The columns holding bytes that are not UTF-8 (read as lone surrogates, see
    :func:`iterate_rows`), each with its first bad byte."""
    errors = []
    for column, value in row.items():
        if not value.isascii() and (bad := _UNDECODABLE.search(value)) is not None:
            errors.append((column, f"not valid UTF-8: byte 0x{ord(bad.group()) - 0xDC00:02x}"))
    return errors


def _summary(ged_id: int, violence: int, row: dict[str, str], notes: list[str]) -> str:
    parts = [f"{TYPE_LABELS[violence]} (UCDP GED event {ged_id}, conflict “{row['conflict_name'].strip()}”)."]
    if row["where_description"].strip():
        parts.append(f"Location: {row['where_description'].strip()}.")
    parts += notes
    return _clip(" ".join(parts), SUMMARY_MAX)


def _external_ids(ged_id: int, row: dict[str, str], release: str | None) -> dict[str, str]:
    ids = {"ucdp_ged_id": str(ged_id)}
    if release is not None:
        ids["ucdp_release"] = release
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
    undecodable = _not_utf8({str(i): column for i, column in enumerate(columns)})
    if undecodable:
        raise UnknownLayout("the header row is not valid UTF-8", [LineError(1, None, undecodable[0][1])])
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
    starts on the line after the previous row ended. Bytes that are not UTF-8 are read as lone
    surrogates (``surrogateescape``) and rejected by the row that holds them: a decoding error
    raised by the reader would name the line its 8 KiB chunk began on, and stop at the first.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
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
