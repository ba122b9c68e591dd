"""The record types, named once: every other module (server, SDK, change feed, imports) uses these."""

from __future__ import annotations

from typing import Literal

RecordType = Literal["incident", "organisation", "statement", "source"]
"""A record's type, as the change feed, revisions and imports name it."""

Operation = Literal["create", "update", "delete"]
"""What a write did to a record."""
