"""The vocabulary of UCDP GED files: their columns, codes and how each maps to ours."""

from __future__ import annotations

import re

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
# UCDP's data are CC BY 4.0 on condition that the dataset's publications are cited
# (https://ucdp.uu.se/downloads/): the source carries both, and every export repeats them.
DATASET_LICENCE = "CC-BY-4.0"
_GED_ARTICLE = (
    'Sundberg, Ralph and Erik Melander (2013). "Introducing the UCDP Georeferenced Event Dataset". '
    "Journal of Peace Research 50(4): 523–532. doi:10.1177/0022343313484347"
)
# The yearly article UCDP asks to cite with a release, for the releases this project ships.
_RELEASE_ARTICLES = {
    "22.1": 'Davies, Shawn, Therése Pettersson and Magnus Öberg (2022). "Organized violence 1989–2021 '
    'and drone warfare". Journal of Peace Research 59(4). doi:10.1177/00223433221108428',
    "23.1": 'Davies, Shawn, Therése Pettersson and Magnus Öberg (2023). "Organized violence 1989–2022, '
    'and the return of conflict between states". Journal of Peace Research 60(4). '
    "doi:10.1177/00223433231185169",
}
# A release number: 25.1, or a candidate release such as 25.0.10.
RELEASE = re.compile(r"^\d{1,4}(\.\d{1,4}){1,3}$")
# UCDP's file names: GEDEvent_v25_1.csv, ged251.csv, GEDEvent_v25_0_10.csv.
_RELEASE_IN_NAME = re.compile(
    r"(?i)ged(?:event)?[_-]?v?(\d{2})(?:[._](\d{1,2})(?:[._](\d{1,2}))?|(\d))(?!\d)"
)


def citation(release: str | None) -> str:
    """The attribution UCDP asks for: the dataset (and release) and the articles to cite."""
    parts = [
        f"UCDP Georeferenced Event Dataset (GED){f' Global version {release}' if release else ''}, "
        "Uppsala Conflict Data Program, Uppsala University, CC BY 4.0.",
        _GED_ARTICLE,
    ]
    if release in _RELEASE_ARTICLES:
        parts.append(_RELEASE_ARTICLES[release])
    return " ".join(parts)


def release_from_name(name: str) -> str | None:
    """The release a UCDP file's name says (``GEDEvent_v25_1.csv`` → ``25.1``), else None."""
    found = _RELEASE_IN_NAME.search(name)
    if found is None:
        return None
    major, minor, candidate, short_minor = found.groups()
    return ".".join(p for p in (major, minor or short_minor, candidate) if p is not None)


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
