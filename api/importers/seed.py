"""The sample dataset: every record of the seed article (``data/sample/``), loaded into an
empty database on first start and by ``secevents db seed``.

The dataset is data, not code: ``dataset.json`` names records by local ``ref``s, which are
turned into ids here, then every record is validated by the same Structs the API uses.
"""

from __future__ import annotations

import hashlib
import logging
from importlib.resources import files as resources_files
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import msgspec
from uuid_utils.compat import uuid7

from secevents.schemas.incidents import IncidentCreate
from secevents.schemas.organisations import OrganisationCreate, RelationshipIn
from secevents.schemas.records import RecordType
from secevents.schemas.sources import SourceCreate
from secevents.schemas.statements import StatementCreate
from secevents.server import resources
from secevents.server.resources.incidents import queries as incidents
from secevents.server.resources.organisations import queries as organisations
from secevents.server.resources.sources import queries as sources
from secevents.server.resources.statements import queries as statements
from secevents.server.sql.records import record_revision

log = logging.getLogger("secevents.seed")

# Shipped in the package (``secevents.data`` = the repository's data/), so an installed wheel seeds too.
SAMPLE_DIR = Path(str(resources_files("secevents.data").joinpath("sample")))
SEED_LOCK = 7361029384757
ACTOR = "seed"
T = TypeVar("T")


class SeedError(Exception):
    """The sample dataset is inconsistent (unknown ref, invalid record)."""


class _Refs:
    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], UUID] = {}

    def new(self, kind: str, ref: str) -> UUID:
        if (kind, ref) in self.ids:
            raise SeedError(f"duplicate {kind} ref {ref!r}")
        self.ids[kind, ref] = uuid7()
        return self.ids[kind, ref]

    def __call__(self, kind: str, ref: str) -> UUID:
        try:
            return self.ids[kind, ref]
        except KeyError:
            raise SeedError(f"unknown {kind} ref {ref!r}") from None


def _citations(items: list[dict[str, Any]], refs: _Refs) -> list[dict[str, Any]]:
    return [{"source_id": refs("source", c["source"]), "quote": c["quote"]} for c in items]


def _convert(value: dict[str, Any], type_: type[T], what: str) -> T:
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        raise SeedError(f"{what}: {exc}") from exc


async def load(conn: asyncpg.Connection, sample_dir: Path = SAMPLE_DIR) -> dict[RecordType, int]:
    """Insert the sample dataset in one transaction; return the count per record type."""
    dataset = msgspec.json.decode((sample_dir / "dataset.json").read_bytes())
    refs = _Refs()
    written: list[tuple[RecordType, UUID]] = []
    async with conn.transaction():
        for raw in dataset["sources"]:
            body = {k: v for k, v in raw.items() if k not in {"ref", "text_file"}}
            if raw.get("text_file"):
                body["text"] = (sample_dir / raw["text_file"]).read_text(encoding="utf-8")
            record_id = refs.new("source", raw["ref"])
            await sources.insert(conn, record_id, _convert(body, SourceCreate, f"source {raw['ref']}"))
            written.append(("source", record_id))
        for raw in dataset["organisations"]:
            refs.new("organisation", raw["ref"])
        for raw in dataset["organisations"]:
            body = {k: v for k, v in raw.items() if k not in {"ref", "relationships"}}
            body["citations"] = _citations(raw["citations"], refs)
            record_id = refs("organisation", raw["ref"])
            await organisations.insert(
                conn, record_id, _convert(body, OrganisationCreate, f"organisation {raw['ref']}")
            )
            written.append(("organisation", record_id))
        # Relationships may point forward in the list, so they go in once every organisation exists.
        for raw in dataset["organisations"]:
            relationships = [
                _convert(
                    {
                        "type": r["type"],
                        "organisation_id": refs("organisation", r["organisation"]),
                        "since": r.get("since"),
                        "until": r.get("until"),
                        "citations": _citations(r.get("citations", []), refs),
                    },
                    RelationshipIn,
                    f"relationship of {raw['ref']}",
                )
                for r in raw.get("relationships", [])
            ]
            if relationships:
                await organisations.insert_relationships(
                    conn, refs("organisation", raw["ref"]), relationships
                )
        for raw in dataset["incidents"]:
            body = {k: v for k, v in raw.items() if k != "ref"}
            body["participants"] = [
                {"organisation_id": refs("organisation", p["organisation"]), "role": p["role"]}
                for p in raw.get("participants", [])
            ]
            body["citations"] = _citations(raw["citations"], refs)
            record_id = refs.new("incident", raw["ref"])
            await incidents.insert(conn, record_id, _convert(body, IncidentCreate, f"incident {raw['ref']}"))
            written.append(("incident", record_id))
        for raw in dataset["statements"]:
            body = {
                k: v
                for k, v in raw.items()
                if k not in {"ref", "issuer", "addressed_to", "related_incidents"}
            }
            body["issuer_id"] = refs("organisation", raw["issuer"])
            if raw.get("addressed_to"):
                body["addressed_to_id"] = refs("organisation", raw["addressed_to"])
            body["related_incident_ids"] = [refs("incident", r) for r in raw.get("related_incidents", [])]
            body["claims"] = [
                {
                    "text": c["text"],
                    "topics": c.get("topics", []),
                    "organisation_ids": [refs("organisation", o) for o in c.get("organisations", [])],
                    "citations": _citations(c.get("citations", []), refs),
                }
                for c in raw.get("claims", [])
            ]
            body["figures"] = [
                {
                    **{k: v for k, v in f.items() if k != "citations"},
                    "citations": _citations(f.get("citations", []), refs),
                }
                for f in raw.get("figures", [])
            ]
            body["citations"] = _citations(raw["citations"], refs)
            record_id = refs.new("statement", raw["ref"])
            await statements.insert(
                conn, record_id, _convert(body, StatementCreate, f"statement {raw['ref']}")
            )
            written.append(("statement", record_id))
        # Revisions last: each holds the record's full document, relationships included.
        for record_type, record_id in written:
            await record_revision(
                conn, resources.BY_TYPE[record_type].record, record_id, "create", actor=ACTOR
            )
    counts: dict[RecordType, int] = {}
    for record_type, _ in written:
        counts[record_type] = counts.get(record_type, 0) + 1
    return counts


# A live source whose text is the sample article's: the sample was loaded (its ids are new on
# every load, so the article's text, not an id, is what says so).
_PRESENT = "SELECT EXISTS (SELECT 1 FROM sources WHERE sha256 = ANY($1::text[]) AND deleted_at IS NULL)"


def _sample_text_hashes(sample_dir: Path) -> list[str]:
    dataset = msgspec.json.decode((sample_dir / "dataset.json").read_bytes())
    return [
        hashlib.sha256((sample_dir / raw["text_file"]).read_text(encoding="utf-8").encode()).hexdigest()
        for raw in dataset["sources"]
        if raw.get("text_file")
    ]


async def load_once(conn: asyncpg.Connection, sample_dir: Path = SAMPLE_DIR) -> dict[RecordType, int] | None:
    """Load the sample dataset unless it is already present (``secevents db seed``): None, and
    nothing written, when a live source holds the sample article's text."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SEED_LOCK)
        if await conn.fetchval(_PRESENT, _sample_text_hashes(sample_dir)):
            return None
        return await load(conn, sample_dir)


async def load_if_empty(conn: asyncpg.Connection) -> dict[RecordType, int] | None:
    """Load the sample dataset unless the database already holds records (or ever did).

    An advisory lock keeps two processes starting at once from both seeding.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SEED_LOCK)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM revisions)"):
            return None
        counts = await load(conn)
    log.info("loaded the sample dataset: %s", counts)
    return counts
