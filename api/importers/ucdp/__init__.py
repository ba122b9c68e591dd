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

The package, by job: :mod:`.vocabulary` (the columns and codes of UCDP's files), :mod:`.rows`
(reading and mapping rows), :mod:`.sql` (the statements that stage and write them) and
:mod:`.load` (the import, in order).
"""

from secevents.server.importers.ucdp.load import import_file
from secevents.server.importers.ucdp.rows import Actor, UcdpSummary, detect_layout, iterate_rows

__all__ = ["Actor", "UcdpSummary", "detect_layout", "import_file", "iterate_rows"]
