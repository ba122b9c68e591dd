"""Entity tags of records: one place that says what a record's ETag is and how ``If-Match`` is
compared, shared by the read and write handlers.

A record's ETag is the strong tag ``"<id>:<version>"``: it changes on every write (the version
is +1 each time) and names the record, so a tag copied from another record never matches.
"""

from __future__ import annotations

import re
from uuid import UUID

# The syntax of `If-Match` (RFC 9110 §8.8.3, §13.1.1): `*`, or entity tags separated by commas
# with optional spaces or tabs around them. A tag is `"…"` (optionally weak, `W/"…"`) of
# visible ASCII except `"`; obs-text (bytes 0x80-0xFF) is left out, as no tag this server
# issues contains it. The spec documents this very pattern (api/openapi.py), so a value is
# valid for the spec exactly when the server accepts it.
_ENTITY_TAG = r'(W/)?"[\x21\x23-\x7e]*"'
IF_MATCH_PATTERN = rf"^(\*|{_ENTITY_TAG}([ \t]*,[ \t]*{_ENTITY_TAG})*)$"
_IF_MATCH = re.compile(IF_MATCH_PATTERN)


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
    """Whether the header is ``*`` or a list of entity tags (:data:`IF_MATCH_PATTERN`)."""
    return _IF_MATCH.fullmatch(header) is not None
