"""Entry point for ASGI servers: ``granian --factory secevents.server.asgi:app_from_env``."""

from __future__ import annotations

from litestar import Litestar

from secevents.server.app import create_app
from secevents.server.settings import Settings


def app_from_env() -> Litestar:
    return create_app(Settings.from_env())
