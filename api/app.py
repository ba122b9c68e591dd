"""The Litestar application, built by :func:`create_app` from a :class:`Settings`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Contact, License, Server, Tag

from api import db, seed
from api.dependencies import provide_connection, provide_settings
from api.errors import EXCEPTION_HANDLERS
from api.health import HealthController
from api.middleware import RequestIdMiddleware
from api.resources.incidents.controller import IncidentController
from api.resources.organisations.controller import OrganisationController
from api.resources.sources.controller import SourceController
from api.resources.statements.controller import StatementController
from api.settings import Settings

log = logging.getLogger("secevents")

API_VERSION = "1.0.0"
DESCRIPTION = """\
Structured security-event records — incidents, organisations and government statements, each
tied to the sentence in the source that supports it.

Errors are RFC 9457 `application/problem+json` with a stable `code`.
"""


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="secevents",
        version=API_VERSION,
        description=DESCRIPTION,
        contact=Contact(name="secevents"),
        license=License(name="Apache-2.0", identifier="Apache-2.0"),
        servers=[Server(url="/", description="This server")],
        tags=[
            Tag(name="incidents", description="Things that happened"),
            Tag(name="organisations", description="Armed groups, government bodies, media… with aliases"),
            Tag(name="statements", description="What government bodies said: claims and figures"),
            Tag(name="sources", description="Documents records are drawn from"),
            Tag(name="health", description="Liveness and readiness"),
        ],
        path="/schema",
        create_examples=False,
        use_handler_docstrings=False,
    )


def create_app(settings: Settings) -> Litestar:
    """Build the app. The database pool (and, when ``DATABASE_URL`` is unset, an embedded
    PostgreSQL) lives exactly as long as the app's lifespan."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with db.database_url(settings.database) as url:
            if settings.database.migrate_on_start:
                await asyncio.to_thread(db.upgrade, url)
            pool = await db.create_pool(url, settings.database)
            try:
                if settings.database.seed_on_start:
                    async with pool.acquire() as conn:
                        await seed.load_if_empty(conn)
                app.state.pool = pool
                yield
            finally:
                await pool.close()

    return Litestar(
        route_handlers=[
            HealthController,
            IncidentController,
            OrganisationController,
            StatementController,
            SourceController,
        ],
        lifespan=[lifespan],
        state=State({"settings": settings}),
        dependencies={
            "conn": Provide(provide_connection),
            "settings": Provide(provide_settings, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[RequestIdMiddleware],
        openapi_config=openapi_config(),
        logging_config=LoggingConfig(log_exceptions="always", disable_stack_trace={404, 405}),
        debug=settings.api.debug,
    )
