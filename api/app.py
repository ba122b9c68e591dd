"""The Litestar application, built by :func:`create_app` from a :class:`Settings`."""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Any

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Contact, License, SecurityScheme, Server, Tag

from secevents.server import db, resources
from secevents.server.changes.controller import ChangeController
from secevents.server.changes.push import ChangeHub
from secevents.server.exports.controller import export_router
from secevents.server.http.auth import SECURITY_SCHEME, AuthMiddleware, make_rate_limiter, provide_principal
from secevents.server.http.bodies import decode_body
from secevents.server.http.compression import CompressionMiddleware
from secevents.server.http.consistency import ReadRoutingMiddleware
from secevents.server.http.dependencies import READ_METHODS, provide_connection, provide_settings, read_after
from secevents.server.http.deprecation import announce_deprecations
from secevents.server.http.edge import EdgeMiddleware
from secevents.server.http.errors import EXCEPTION_HANDLERS
from secevents.server.http.limits import RequestLimitsMiddleware
from secevents.server.http.middleware import (
    HeadMiddleware,
    LastResortMiddleware,
    OptionsAllowMiddleware,
)
from secevents.server.http.msgpack import MsgpackMiddleware
from secevents.server.http.observability import (
    Metrics,
    count_database_errors,
    logging_formatters,
    metrics_endpoint,
)
from secevents.server.http.security import cors_config
from secevents.server.importers import seed
from secevents.server.importers.controller import ImportController
from secevents.server.openapi import DocumentRenderPlugin, without_generated_examples
from secevents.server.reads.filters import reject_unknown_query_parameters
from secevents.server.replicas import Replicas
from secevents.server.revisions.controller import REVISION_CONTROLLERS
from secevents.server.settings import Settings
from secevents.server.system.docs import DocsController
from secevents.server.system.explorer import ExplorerController
from secevents.server.system.health import HealthController
from secevents.server.webhooks.controller import WebhookController
from secevents.server.webhooks.worker import delivering

log = logging.getLogger("secevents")

# The package's version, one source: pyproject.toml, as installed (the SDK's `__version__` and
# the spec's `info.version` say the same; tests/test_openapi.py checks).
API_VERSION = importlib.metadata.version("secevents")
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
            *(r.tag for r in resources.ALL),
            Tag(name="health", description="Liveness and readiness"),
            Tag(name="changes", description="Every create, update and delete in commit order"),
            Tag(
                name="exports",
                description="Every matching record as NDJSON, CSV, GeoJSON or STIX 2.1, streamed",
            ),
            Tag(name="imports", description="Bulk load of records as NDJSON, all or nothing"),
            Tag(
                name="webhooks",
                description="Endpoints that receive every change, signed (Standard Webhooks), in feed order",
            ),
        ],
        components=Components(
            security_schemes={
                SECURITY_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key (`secevents keys create`) as `Authorization: Bearer <key>`. "
                    "Writes need the `write` scope; reads need `read` unless the server makes them public.",
                )
            }
        ),
        # Reads work with or without a key (unless the server requires one); writes override this.
        security=[{}, {SECURITY_SCHEME: []}],
        path="/schema",
        # The spec as JSON only: the interactive docs are /docs, served offline (api/docs.py).
        render_plugins=[DocumentRenderPlugin()],
        create_examples=False,
        use_handler_docstrings=False,
    )


async def check_request(request: Request[Any, Any, Any]) -> None:
    """Before every handler (after routing and authentication): no undeclared query parameter;
    a ``Secevents-Read-After`` token well-formed on every read (also where nothing waits for
    it, as the spec declares it on every read); the body read within the route's limit and
    decoded strictly (JSON or MessagePack)."""
    await reject_unknown_query_parameters(request)
    if request.method in READ_METHODS:
        read_after(request)
    await decode_body(request)


@contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """While the app serves, the objects alive once it has started (the app, its routes and
    schemas, the modules, the pool) are kept out of the cyclic garbage collector's way
    (:func:`gc.freeze`): they live as long as the app, yet every full collection walked all
    150,000 of them, a pause of about 15 ms for every request in flight, a few times every 10 s
    under load; collections cost a list page 0.10 ms, 0.06 frozen (bench/results/read.md).
    Unfrozen at shutdown, so that an app that ends in a process that goes on (tests, the
    benchmarks) can be collected. Nothing is collected first: a started app leaves a few
    hundred objects of garbage, which then wait for the shutdown."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def create_app(settings: Settings) -> Litestar:
    """Build the app. The database pool (and, when ``DATABASE_URL`` is unset, an embedded
    PostgreSQL) lives exactly as long as the app's lifespan."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with db.database_url(settings.database) as url:
            if settings.database.migrate_on_start:
                await asyncio.to_thread(db.upgrade, url)
            pool = await db.create_pool(url, settings.database)
            replicas: Replicas | None = None
            hub = ChangeHub(pool, settings.changes.listen_url or url, settings)
            try:
                if settings.database.seed_on_start:
                    async with pool.acquire() as conn:
                        await seed.load_if_empty(conn)
                app.state.pool = pool
                app.state.changes = hub
                if settings.database.replica_urls:
                    # Reads go to the replicas in rotation; a task checks their lag meanwhile.
                    replicas = app.state.replicas = await Replicas.open(pool, settings.database)
                    hub.replicas = replicas
                async with delivering(pool, settings.webhooks) as deliveries:
                    app.state.webhook_sender = deliveries.sender
                    app.state.webhook_worker = deliveries.worker
                    # Every commit to the feed wakes the worker at once; its poll stays for the
                    # retries that fall due (and a notification lost while reconnecting).
                    waking = (
                        nullcontext()
                        if deliveries.worker is None
                        else hub.listener.calling(deliveries.worker.wake)
                    )
                    with waking, startup_objects_frozen():
                        yield
            finally:
                await hub.close()
                if replicas is not None:
                    await replicas.close()
                await pool.close()

    rate_limiter = make_rate_limiter(settings)
    app = Litestar(
        route_handlers=[
            HealthController,
            DocsController,
            ExplorerController,
            *(r.controller for r in resources.ALL),
            ChangeController,
            *REVISION_CONTROLLERS,
            export_router(settings.api),
            ImportController,
            WebhookController,
        ],
        lifespan=[lifespan],
        state=State({"settings": settings, "rate_limiter": rate_limiter}),
        dependencies={
            "conn": Provide(provide_connection),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        # Per route (it needs the matched handler): API keys, scopes, rate limits.
        middleware=[AuthMiddleware],
        on_shutdown=[rate_limiter.close],
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=check_request,
        request_max_body_size=settings.api.max_body_bytes,
        cors_config=cors_config(settings.api),
        after_exception=[count_database_errors],
        before_send=[announce_deprecations],
        openapi_config=openapi_config(),
        logging_config=LoggingConfig(
            formatters=logging_formatters(settings.api.log_format),
            # secevents.server.http.errors logs every 5xx (with its traceback) and a warning for each database
            # outage; 4xx are the client's and show in the access log. Litestar's own logging of
            # every exception would add a traceback per bad request: only in debug.
            log_exceptions="debug",
            disable_stack_trace={404, 405},
        ),
        debug=settings.api.debug,
    )
    # MessagePack answers for every endpoint (request bodies: `decode_body`, after auth).
    # Inside it: read-after tokens on writes, reads retried on the primary when a replica fails.
    app.asgi_handler = MsgpackMiddleware(ReadRoutingMiddleware(app.asgi_handler))
    without_generated_examples(app)
    _harden(app, settings)
    return app


def _harden(app: Litestar, settings: Settings) -> None:
    """Metrics, and the middleware that must see every request — unknown paths and requests
    refused before routing included — so it wraps Litestar's whole handler (router and
    exception handling), not each route as ``middleware=[...]`` would. Outermost first: the
    edge (request id, security headers, ``Vary``, access log and metrics, which see the final
    status and the bytes sent), HEAD as GET without the body, compression (outside the
    MessagePack re-encoding), a problem+json 500 for anything that escapes the rest, the
    limits."""
    metrics = Metrics() if settings.api.metrics_enabled else None
    if metrics is not None:
        app.state.metrics = metrics
        app.register(metrics_endpoint)
        app.on_shutdown.append(metrics.worker_exited)
    app.asgi_handler = EdgeMiddleware(
        HeadMiddleware(
            CompressionMiddleware(
                LastResortMiddleware(
                    RequestLimitsMiddleware(
                        OptionsAllowMiddleware(app.asgi_handler, app),
                        settings.api,
                        rollback_timeout=settings.database.rollback_timeout,
                    )
                )
            )
        ),
        metrics,
    )
