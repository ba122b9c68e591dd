"""Entity tags of records: one place that says what a record's ETag is and how ``If-Match`` is
compared, shared by the read and write handlers.

A record's ETag is the strong tag ``"<id>:<version>"``: it changes on every write (the version
is +1 each time) and names the record, so a tag copied from another record never matches.
"""

from __future__ import annotations

from uuid import UUID


def record_etag(record_id: UUID, version: int) -> str:
    return f'"{record_id}:{version}"'


def _entity_tags(header: str) -> list[str]:
    """The entity tags of an ``If-Match``/``If-None-Match`` list, without ``W/`` (a version
    identifies the record's content whatever its encoding, so weak and strong compare alike)."""
    tags = []
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag:
            tags.append(tag)
    return tags


def if_match_allows(header: str, record_id: UUID, version: int) -> bool:
    """Whether an ``If-Match`` header is satisfied by the record's current version."""
    tags = _entity_tags(header)
    return "*" in tags or record_etag(record_id, version) in tags


def is_valid_if_match(header: str) -> bool:
    """Every element is ``*`` or a quoted tag (RFC 9110 §8.8.3)."""
    tags = _entity_tags(header)
    return bool(tags) and all(t == "*" or (len(t) >= 2 and t[0] == t[-1] == '"') for t in tags)
