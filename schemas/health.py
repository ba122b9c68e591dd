"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from secevents.schemas.common import Base


class Health(Base, kw_only=True):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable", "not_checked"] = "not_checked"
