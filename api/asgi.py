"""Entry point for ASGI servers: ``granian --factory api.asgi:app_from_env``."""

from __future__ import annotations

from litestar import Litestar

from api.app import create_app
from api.settings import Settings


def app_from_env() -> Litestar:
    return create_app(Settings.from_env())
