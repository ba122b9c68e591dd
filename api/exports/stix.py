"""Records → STIX 2.1 objects, in bundles that hold every object they refer to.

- organisations → ``threat-actor`` (armed groups) or ``identity`` (every other kind: government
  bodies, legislatures, security forces, media…; ``identity_class: organization``), with their
  relationships as ``relationship`` objects (``branch_of`` → ``branch-of``…);
- incidents → ``incident`` plus one ``relationship`` per participant (perpetrator, claimed_by
  and suspected → ``attributed-to``; target → ``targets``; responder → ``related-to``);
- statements → ``report`` (``report_types: ["x-government-statement"]``) whose ``object_refs``
  are the organisations and live incidents it involves;
- sources → ``report`` whose ``object_refs`` are the live records that cite it (a source nothing
  cites refers to the producing identity, since STIX requires at least one reference); citations
  of a record → its ``external_references`` (``source_name: "secevents-source"``, the source id as
  ``external_id``, the quote as ``description``).

What STIX's objects have no property for (an incident's type, dates, location and casualties; an
organisation's kind and country; a statement's claims and figures; a relationship's role…) is
in the secevents **property extension** (STIX 2.1 §7.3): every bundle carries the
``extension-definition`` object :data:`EXTENSION_DEFINITION`, and each object its properties under
``extensions[EXTENSION_ID]`` — no top-level ``x_`` properties, which strict consumers refuse.

**Self-contained bundles.** A bundle holds the records the export selects (:data:`MAIN`), then
every other record their references point to (:data:`REFERENCED`: the organisations an incident's
relationships end at, the incidents and organisations a statement's report names, the records that
cite a source), each once: the database computes each set (``IN``), so nothing is buffered here.
A record that is in a bundle only because something refers to it comes without its own
relationships (which would pull in further records).

Ids are deterministic: ``<stix type>--uuid5(namespace, "<record type>:<id>")``, so exports of
different resources (or of the same data twice) reference each other consistently. Every
object is ``created_by_ref`` the one ``identity`` of the producer, the first object of a bundle.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

NAMESPACE = uuid.UUID("6f1c1a4e-57c1-4c0e-9b8e-2f6d3b1d7a10")
PRODUCER_ID = f"identity--{uuid.uuid5(NAMESPACE, 'producer:secevents')}"
EXTENSION_ID = f"extension-definition--{uuid.uuid5(NAMESPACE, 'extension:secevents:1')}"
EPOCH = "2024-01-01T00:00:00.000Z"
PRODUCER: dict[str, Any] = {
    "type": "identity",
    "spec_version": "2.1",
    "id": PRODUCER_ID,
    "created": EPOCH,
    "modified": EPOCH,
    "name": "secevents",
    "identity_class": "system",
    "description": "Security-event records exported by secevents",
}
EXTENSION_SCHEMA = """\
secevents property extension (extension_type property-extension). Its properties are those of \
the secevents records, as the secevents OpenAPI document (GET /openapi.json, schemas Incident, \
Organisation, Statement, Source) defines them; dates are ISO 8601, unknowns are null.
- incident: record_id, version, type, subtype, occurred {start, end, precision}, location \
{country, admin1, admin2, place, lat, lon, precision}, casualties {killed, injured: {low, best, \
high}; breakdown [{group, killed, injured}]}.
- threat-actor / identity (an organisation): record_id, version, kind, country, status, aliases.
- relationship: role (an incident participant's role: perpetrator, claimed_by, suspected, \
target, responder), or since/until of a relationship between organisations.
- report of a statement: record_id, version, form, speaker, issued {start, end, precision}, \
claims [{text, topics, organisation_ids}], figures [{label, value, unit, period}].
- report of a source: record_id, version, kind, language, url, publisher, published_on."""
EXTENSION_DEFINITION: dict[str, Any] = {
    "type": "extension-definition",
    "spec_version": "2.1",
    "id": EXTENSION_ID,
    "created": EPOCH,
    "modified": EPOCH,
    "created_by_ref": PRODUCER_ID,
    "name": "secevents",
    "description": "Security-event data that STIX 2.1 has no property for",
    "schema": EXTENSION_SCHEMA,
    "version": "1.0.0",
    "extension_types": ["property-extension"],
}
PREAMBLE = (PRODUCER, EXTENSION_DEFINITION)
"""The objects every bundle starts with: what every other object refers to."""

SECTORS = {
    "government": ["government"],
    "government_body": ["government"],
    "legislature": ["government"],
    "regulator": ["government"],
    "security_force": ["defense"],
    "media_outlet": ["communications"],
}
PARTICIPANT_RELATIONSHIPS = {
    "perpetrator": "attributed-to",
    "claimed_by": "attributed-to",
    "suspected": "attributed-to",
    "target": "targets",
    "responder": "related-to",
}

# The live records that cite source `s`: [record type, id, organisation kind].
_CITING = """coalesce((SELECT json_agg(DISTINCT jsonb_build_array(t.record_type, t.record_id, t.kind))
  FROM (SELECT 'incident' AS record_type, i.id AS record_id, NULL::text AS kind
          FROM citations c JOIN incidents i ON i.id = c.incident_id
         WHERE c.source_id = s.id AND i.deleted_at IS NULL
        UNION
        SELECT 'organisation', o.id, o.kind
          FROM citations c
          LEFT JOIN organisation_relationships r ON r.id = c.relationship_id
          JOIN organisations o ON o.id = coalesce(c.organisation_id, r.organisation_id)
         WHERE c.source_id = s.id AND o.deleted_at IS NULL
        UNION
        SELECT 'statement', st.id, NULL
          FROM citations c
          LEFT JOIN statement_claims cl ON cl.id = c.claim_id
          LEFT JOIN statement_figures f ON f.id = c.figure_id
          JOIN statements st ON st.id = coalesce(c.statement_id, cl.statement_id, f.statement_id)
         WHERE c.source_id = s.id AND st.deleted_at IS NULL) t), '[]'::json)"""

# Per record type: the document and what its references need (kinds of related organisations;
# a statement's live incidents).
COLUMNS: dict[str, str] = {
    "incident": """i.doc AS doc,
      (SELECT coalesce(json_agg(o.kind ORDER BY p.ordinal), '[]'::json)
         FROM incident_participants p JOIN organisations o ON o.id = p.organisation_id
        WHERE p.incident_id = i.id) AS extra""",
    "organisation": """o.doc AS doc,
      (SELECT coalesce(json_agg(ro.kind ORDER BY r.ordinal), '[]'::json)
         FROM organisation_relationships r JOIN organisations ro ON ro.id = r.related_organisation_id
        WHERE r.organisation_id = o.id) AS extra""",
    "statement": """s.doc AS doc,
      json_build_object(
        'organisations', (SELECT coalesce(json_object_agg(x.organisation_id, x.kind), '{}'::json)
                            FROM (SELECT DISTINCT v.organisation_id, o.kind
                                    FROM statement_organisations v JOIN organisations o ON o.id = v.organisation_id
                                   WHERE v.statement_id = s.id) x),
        'incidents', (SELECT coalesce(json_agg(si.incident_id ORDER BY si.ordinal), '[]'::json)
                        FROM statement_incidents si JOIN incidents ri ON ri.id = si.incident_id
                       WHERE si.statement_id = s.id AND ri.deleted_at IS NULL)) AS extra""",
    "source": f"s.doc AS doc, {_CITING} AS extra",
}

TABLES = {
    "incident": ("incidents", "i"),
    "organisation": ("organisations", "o"),
    "statement": ("statements", "s"),
    "source": ("sources", "s"),
}

# The statements citing the sources `{main}` selects (directly, by a claim or by a figure).
_CITING_STATEMENTS = """SELECT coalesce(c.statement_id, cl.statement_id, f.statement_id) FROM citations c
  LEFT JOIN statement_claims cl ON cl.id = c.claim_id LEFT JOIN statement_figures f ON f.id = c.figure_id
 WHERE c.source_id IN ({main})"""
_LIVE_CITING_STATEMENTS = (
    f"SELECT cs.id FROM statements cs WHERE cs.deleted_at IS NULL AND cs.id IN ({_CITING_STATEMENTS})"
)

REFERENCED: dict[str, tuple[tuple[str, str], ...]] = {
    "incident": (
        (
            "organisation",
            "o.id IN (SELECT p.organisation_id FROM incident_participants p WHERE p.incident_id IN ({main}))",
        ),
    ),
    "organisation": (
        (
            "organisation",
            """o.id IN (SELECT r.related_organisation_id FROM organisation_relationships r
                         WHERE r.organisation_id IN ({main})) AND o.id NOT IN ({main})""",
        ),
    ),
    "statement": (
        (
            "organisation",
            "o.id IN (SELECT v.organisation_id FROM statement_organisations v WHERE v.statement_id IN ({main}))",
        ),
        (
            "incident",
            "i.id IN (SELECT si.incident_id FROM statement_incidents si WHERE si.statement_id IN ({main}))",
        ),
    ),
    "source": (
        ("statement", f"s.id IN ({_CITING_STATEMENTS})"),
        (
            "organisation",
            f"""o.id IN (SELECT coalesce(c.organisation_id, r.organisation_id) FROM citations c
                  LEFT JOIN organisation_relationships r ON r.id = c.relationship_id WHERE c.source_id IN ({{main}}))
             OR o.id IN (SELECT v.organisation_id FROM statement_organisations v
                          WHERE v.statement_id IN ({_LIVE_CITING_STATEMENTS}))""",
        ),
        (
            "incident",
            f"""i.id IN (SELECT c.incident_id FROM citations c WHERE c.source_id IN ({{main}}))
             OR i.id IN (SELECT si.incident_id FROM statement_incidents si
                          WHERE si.statement_id IN ({_LIVE_CITING_STATEMENTS}))""",
        ),
    ),
}
"""Per exported record type: (record type, condition) of the other records its objects refer to;
``{main}`` is the query of the exported records' ids."""


@dataclass(frozen=True, slots=True)
class Part:
    """One query of a bundle: records of one type, and whether their relationships come too."""

    record_type: str
    sql: str
    args: tuple[Any, ...]
    with_relationships: bool


def referenced_parts(record_type: str, main_ids: str, args: list[Any]) -> list[Part]:
    """The queries of the records that the objects of ``main_ids`` (a query of ids of
    ``record_type``) refer to, none of them in ``main_ids``: what makes the bundle whole."""
    parts = []
    for referenced, condition in REFERENCED[record_type]:
        table, alias = TABLES[referenced]
        sql = (
            f"SELECT {COLUMNS[referenced]} FROM {table} {alias} "
            f"WHERE {alias}.deleted_at IS NULL AND ({condition.format(main=main_ids)}) ORDER BY {alias}.id"
        )
        parts.append(Part(referenced, sql, tuple(args), with_relationships=False))
    return parts


def stix_id(stix_type: str, record_type: str, record_id: str) -> str:
    return f"{stix_type}--{uuid.uuid5(NAMESPACE, f'{record_type}:{record_id}')}"


def organisation_type(kind: str | None) -> str:
    return "threat-actor" if kind == "armed_group" else "identity"


def organisation_ref(record_id: str, kind: str | None) -> str:
    return stix_id(organisation_type(kind), "organisation", record_id)


def bundle_id(resource: str, sql: str, args: list[Any]) -> str:
    return f"bundle--{uuid.uuid5(NAMESPACE, f'bundle:{resource}:{sql}:{args!r}')}"


def timestamp(value: str) -> str:
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _extension(**properties: Any) -> dict[str, Any]:
    """The secevents property extension of an object (STIX 2.1 §7.3.2). STIX allows neither
    ``null`` nor empty lists: an unknown or empty value is left out."""
    return {EXTENSION_ID: {"extension_type": "property-extension", **_present(properties)}}


def _present(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _present(v) for k, v in value.items() if not _absent(v)}
    if isinstance(value, list):
        return [_present(v) for v in value if not _absent(v)]
    return value


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, list | dict) and not value)


def _common(stix_type: str, object_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    created = timestamp(doc["created_at"])
    modified = max(created, timestamp(doc["updated_at"]))
    return {
        "type": stix_type,
        "spec_version": "2.1",
        "id": object_id,
        "created": created,
        "modified": modified,
        "created_by_ref": PRODUCER_ID,
    }


def _citations(citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"source_name": "secevents-source", "external_id": c["source_id"], "description": c["quote"]}
        for c in citations
    ]


def _references(doc: dict[str, Any], record_type: str) -> list[dict[str, Any]]:
    refs: list[dict[str, Any]] = [{"source_name": "secevents", "external_id": f"{record_type}:{doc['id']}"}]
    refs += [{"source_name": key, "external_id": value} for key, value in doc.get("external_ids", {}).items()]
    return refs + _citations(doc.get("citations", []))


def _relationship(
    relationship_type: str,
    source_ref: str,
    target_ref: str,
    doc: dict[str, Any],
    key: str,
    extension: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    rel_id = f"relationship--{uuid.uuid5(NAMESPACE, f'relationship:{source_ref}:{key}:{target_ref}')}"
    rel = _common("relationship", rel_id, doc)
    rel.update(relationship_type=relationship_type, source_ref=source_ref, target_ref=target_ref, **extra)
    rel["extensions"] = _extension(**extension)
    return rel


def _organisation(
    doc: dict[str, Any], related_kinds: list[str], with_relationships: bool
) -> Iterator[dict[str, Any]]:
    stix_type = organisation_type(doc["kind"])
    own_id = stix_id(stix_type, "organisation", doc["id"])
    obj = _common(stix_type, own_id, doc)
    obj["name"] = doc["name"]
    if doc.get("description"):
        obj["description"] = doc["description"]
    if stix_type == "threat-actor":
        if doc["aliases"]:
            obj["aliases"] = doc["aliases"]
    else:
        obj["identity_class"] = "organization"
        if doc["kind"] in SECTORS:
            obj["sectors"] = SECTORS[doc["kind"]]
    obj["external_references"] = _references(doc, "organisation")
    obj["extensions"] = _extension(
        record_id=doc["id"],
        version=doc["version"],
        kind=doc["kind"],
        country=doc["country"],
        status=doc["status"],
        aliases=doc["aliases"],
    )
    yield obj
    if not with_relationships:
        return
    for k, (rel, kind) in enumerate(zip(doc["relationships"], related_kinds, strict=False)):
        extra: dict[str, Any] = {}
        if rel.get("since"):
            extra["start_time"] = f"{rel['since']}T00:00:00Z"
        if rel.get("until"):
            extra["stop_time"] = f"{rel['until']}T00:00:00Z"
        if rel.get("citations"):
            extra["external_references"] = _citations(rel["citations"])
        target = organisation_ref(rel["organisation_id"], kind)
        yield _relationship(
            rel["type"].replace("_", "-"),
            own_id,
            target,
            doc,
            f"{k}:{rel['type']}",
            {"type": rel["type"], "since": rel.get("since"), "until": rel.get("until")},
            **extra,
        )


def _incident(
    doc: dict[str, Any], participant_kinds: list[str], with_relationships: bool
) -> Iterator[dict[str, Any]]:
    own_id = stix_id("incident", "incident", doc["id"])
    obj = _common("incident", own_id, doc)
    obj["name"] = doc["title"]
    if doc.get("summary"):
        obj["description"] = doc["summary"]
    obj["external_references"] = _references(doc, "incident")
    obj["extensions"] = _extension(
        record_id=doc["id"],
        version=doc["version"],
        type=doc["type"],
        subtype=doc["subtype"],
        occurred=doc["occurred"],
        location=doc["location"],
        casualties=doc["casualties"],
    )
    yield obj
    if not with_relationships:
        return
    for participant, kind in zip(doc["participants"], participant_kinds, strict=False):
        role = participant["role"]
        target = organisation_ref(participant["organisation_id"], kind)
        yield _relationship(PARTICIPANT_RELATIONSHIPS[role], own_id, target, doc, role, {"role": role})


def _statement(doc: dict[str, Any], extra: dict[str, Any], _: bool) -> Iterator[dict[str, Any]]:
    obj = _common("report", stix_id("report", "statement", doc["id"]), doc)
    refs = sorted(organisation_ref(o, kind) for o, kind in extra["organisations"].items())
    refs += [stix_id("incident", "incident", i) for i in extra["incidents"]]
    obj.update(
        name=doc["title"],
        report_types=["x-government-statement"],
        published=f"{doc['issued']['start']}T00:00:00Z",
        object_refs=refs,
        external_references=_references(doc, "statement"),
    )
    if doc.get("summary"):
        obj["description"] = doc["summary"]
    obj["extensions"] = _extension(
        record_id=doc["id"],
        version=doc["version"],
        form=doc["form"],
        speaker=doc["speaker"],
        issued=doc["issued"],
        claims=doc["claims"],
        figures=doc["figures"],
    )
    yield obj


def _source(doc: dict[str, Any], citing: list[list[str]], _: bool) -> Iterator[dict[str, Any]]:
    obj = _common("report", stix_id("report", "source", doc["id"]), doc)
    refs = []
    for record_type, record_id, kind in citing:
        if record_type == "organisation":
            refs.append(organisation_ref(record_id, kind))
        else:
            refs.append(
                stix_id("incident" if record_type == "incident" else "report", record_type, record_id)
            )
    published = f"{doc['published_on']}T00:00:00Z" if doc.get("published_on") else doc["retrieved_at"]
    reference: dict[str, Any] = {
        "source_name": doc.get("publisher") or "secevents-source",
        "description": doc["title"],
    }
    if doc.get("url"):
        reference["url"] = doc["url"]
    if doc.get("sha256"):
        reference["hashes"] = {"SHA-256": doc["sha256"]}
    obj.update(
        name=doc["title"],
        report_types=[f"x-{doc['kind'].replace('_', '-')}"],
        published=timestamp(published),
        object_refs=sorted(refs) or [PRODUCER_ID],
        external_references=[reference, *_references(doc, "source")],
    )
    obj["extensions"] = _extension(
        record_id=doc["id"],
        version=doc["version"],
        kind=doc["kind"],
        language=doc["language"],
        url=doc.get("url"),
        publisher=doc.get("publisher"),
        published_on=doc.get("published_on"),
    )
    yield obj


_OBJECTS: dict[str, Callable[[dict[str, Any], Any, bool], Iterator[dict[str, Any]]]] = {
    "incident": _incident,
    "organisation": _organisation,
    "statement": _statement,
    "source": _source,
}


def objects(
    record_type: str, row: asyncpg.Record, with_relationships: bool = True
) -> Iterator[dict[str, Any]]:
    """The STIX objects of one exported row (``doc`` and ``extra`` of :data:`COLUMNS`)."""
    doc = msgspec.json.decode(row["doc"])
    extra = msgspec.json.decode(row["extra"])
    return _OBJECTS[record_type](doc, extra, with_relationships)
