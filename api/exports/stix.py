"""Records → STIX 2.1 objects.

- organisations → ``threat-actor`` (armed groups) or ``identity`` (every other kind: government
  bodies, legislatures, security forces, media…; ``identity_class: organization``), with their
  relationships as ``relationship`` objects (``branch_of`` → ``branch-of``…);
- incidents → ``incident`` plus one ``relationship`` per participant (perpetrator, claimed_by
  and suspected → ``attributed-to``; target → ``targets``; responder → ``related-to``; the role
  in ``x_secevents_role``). What STIX's incident lacks is in ``x_secevents_*`` properties:
  ``type``/``subtype``, ``occurred`` (span and precision), ``location``, ``casualties``;
- statements → ``report`` (``report_types: ["x-government-statement"]``) whose ``object_refs``
  are the organisations and incidents it involves; claims and figures in ``x_secevents_*``;
- sources → ``report`` whose ``object_refs`` are the records that cite it (a source nothing cites
  refers to the producing identity, since STIX requires at least one reference); citations of
  a record → its ``external_references`` (``source_name: "secevents-source"``, the source id as
  ``external_id``, the quote as ``description``).

Ids are deterministic: ``<stix type>--uuid5(namespace, "<record type>:<id>")``, so exports of
different resources (or of the same data twice) reference each other consistently. Every
object is ``created_by_ref`` the one ``identity`` of the producer, the first object of a bundle.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import msgspec

NAMESPACE = uuid.UUID("6f1c1a4e-57c1-4c0e-9b8e-2f6d3b1d7a10")
PRODUCER_ID = f"identity--{uuid.uuid5(NAMESPACE, 'producer:secevents')}"
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

_CITATION_REFS = """coalesce((SELECT json_agg(DISTINCT jsonb_build_array(t.record_type, t.record_id, t.kind))
  FROM (SELECT 'incident' AS record_type, c.incident_id AS record_id, NULL::text AS kind
          FROM citations c WHERE c.source_id = s.id AND c.incident_id IS NOT NULL
        UNION
        SELECT 'organisation', o.id, o.kind
          FROM citations c
          LEFT JOIN organisation_relationships r ON r.id = c.relationship_id
          JOIN organisations o ON o.id = coalesce(c.organisation_id, r.organisation_id)
         WHERE c.source_id = s.id
        UNION
        SELECT 'statement', coalesce(c.statement_id, cl.statement_id, f.statement_id), NULL
          FROM citations c
          LEFT JOIN statement_claims cl ON cl.id = c.claim_id
          LEFT JOIN statement_figures f ON f.id = c.figure_id
         WHERE c.source_id = s.id
           AND coalesce(c.statement_id, cl.statement_id, f.statement_id) IS NOT NULL) t), '[]'::json)"""

# Per resource: the document and what its references need (kinds of related organisations).
COLUMNS: dict[str, str] = {
    "incidents": """i.doc AS doc,
      (SELECT coalesce(json_agg(o.kind ORDER BY p.ordinal), '[]'::json)
         FROM incident_participants p JOIN organisations o ON o.id = p.organisation_id
        WHERE p.incident_id = i.id) AS extra""",
    "organisations": """o.doc AS doc,
      (SELECT coalesce(json_agg(ro.kind ORDER BY r.ordinal), '[]'::json)
         FROM organisation_relationships r JOIN organisations ro ON ro.id = r.related_organisation_id
        WHERE r.organisation_id = o.id) AS extra""",
    "statements": """s.doc AS doc,
      (SELECT coalesce(json_object_agg(x.organisation_id, o.kind), '{}'::json)
         FROM statement_organisations x JOIN organisations o ON o.id = x.organisation_id
        WHERE x.statement_id = s.id) AS extra""",
    "sources": f"s.doc AS doc, {_CITATION_REFS} AS extra",
}


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


def _references(doc: dict[str, Any], record_type: str) -> list[dict[str, Any]]:
    refs: list[dict[str, Any]] = [{"source_name": "secevents", "external_id": f"{record_type}:{doc['id']}"}]
    refs += [{"source_name": key, "external_id": value} for key, value in doc.get("external_ids", {}).items()]
    refs += [
        {"source_name": "secevents-source", "external_id": c["source_id"], "description": c["quote"]}
        for c in doc.get("citations", [])
    ]
    return refs


def _relationship(
    relationship_type: str, source_ref: str, target_ref: str, doc: dict[str, Any], key: str, **extra: Any
) -> dict[str, Any]:
    rel_id = f"relationship--{uuid.uuid5(NAMESPACE, f'relationship:{source_ref}:{key}:{target_ref}')}"
    rel = _common("relationship", rel_id, doc)
    rel.update(relationship_type=relationship_type, source_ref=source_ref, target_ref=target_ref, **extra)
    return rel


def _organisation(doc: dict[str, Any], related_kinds: list[str]) -> Iterator[dict[str, Any]]:
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
        if doc["aliases"]:
            obj["x_secevents_aliases"] = doc["aliases"]
    obj.update(
        x_secevents_kind=doc["kind"],
        x_secevents_country=doc["country"],
        x_secevents_status=doc["status"],
        external_references=_references(doc, "organisation"),
    )
    yield obj
    for k, (rel, kind) in enumerate(zip(doc["relationships"], related_kinds, strict=False)):
        extra: dict[str, Any] = {}
        if rel.get("since"):
            extra["start_time"] = f"{rel['since']}T00:00:00Z"
        if rel.get("until"):
            extra["stop_time"] = f"{rel['until']}T00:00:00Z"
        if rel.get("citations"):
            extra["external_references"] = [
                {"source_name": "secevents-source", "external_id": c["source_id"], "description": c["quote"]}
                for c in rel["citations"]
            ]
        target = organisation_ref(rel["organisation_id"], kind)
        yield _relationship(rel["type"].replace("_", "-"), own_id, target, doc, f"{k}:{rel['type']}", **extra)


def _incident(doc: dict[str, Any], participant_kinds: list[str]) -> Iterator[dict[str, Any]]:
    own_id = stix_id("incident", "incident", doc["id"])
    obj = _common("incident", own_id, doc)
    obj["name"] = doc["title"]
    if doc.get("summary"):
        obj["description"] = doc["summary"]
    obj.update(
        x_secevents_type=doc["type"],
        x_secevents_subtype=doc["subtype"],
        x_secevents_occurred=doc["occurred"],
        x_secevents_location=doc["location"],
        x_secevents_casualties=doc["casualties"],
        external_references=_references(doc, "incident"),
    )
    yield obj
    for participant, kind in zip(doc["participants"], participant_kinds, strict=False):
        role = participant["role"]
        target = organisation_ref(participant["organisation_id"], kind)
        yield _relationship(PARTICIPANT_RELATIONSHIPS[role], own_id, target, doc, role, x_secevents_role=role)


def _statement(doc: dict[str, Any], kinds: dict[str, str]) -> Iterator[dict[str, Any]]:
    obj = _common("report", stix_id("report", "statement", doc["id"]), doc)
    refs = [
        organisation_ref(o["organisation_id"], kinds.get(o["organisation_id"])) for o in doc["organisations"]
    ]
    refs += [stix_id("incident", "incident", i) for i in doc["related_incident_ids"]]
    obj.update(
        name=doc["title"],
        report_types=["x-government-statement"],
        published=f"{doc['issued']['start']}T00:00:00Z",
        object_refs=list(dict.fromkeys(refs)),
        external_references=_references(doc, "statement"),
        x_secevents_form=doc["form"],
        x_secevents_speaker=doc["speaker"],
        x_secevents_issued=doc["issued"],
        x_secevents_claims=doc["claims"],
        x_secevents_figures=doc["figures"],
    )
    if doc.get("summary"):
        obj["description"] = doc["summary"]
    yield obj


def _source(doc: dict[str, Any], citing: list[list[str]]) -> Iterator[dict[str, Any]]:
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
        x_secevents_kind=doc["kind"],
        x_secevents_language=doc["language"],
    )
    yield obj


def objects(record_type: str, row: asyncpg.Record) -> Iterator[dict[str, Any]]:
    """The STIX objects of one exported row (``doc`` and ``extra`` of :data:`COLUMNS`)."""
    doc = msgspec.json.decode(row["doc"])
    extra = msgspec.json.decode(row["extra"])
    if record_type == "incident":
        return _incident(doc, extra)
    if record_type == "organisation":
        return _organisation(doc, extra)
    if record_type == "statement":
        return _statement(doc, extra)
    return _source(doc, extra)
