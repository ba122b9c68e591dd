"""Observability: one structured log line per request, and Prometheus metrics.

Every request (matched routes, unknown paths and requests refused by :mod:`secevents.server.http.limits` alike)
is logged once by :class:`AccessLog` on the ``secevents.access`` logger as a JSON
object: request id, API key id (never the key), client address, method, route template,
status, body bytes sent (after compression), user agent, time to the first byte and duration to
the last one (a streamed export's whole stream).
Every other log record goes through the same formatter, and lines logged while a request is
handled carry its ``request_id`` (structlog context variables).

Metrics are labelled by route *template* (``/v1/incidents/{record_id}``), never by raw
path, so their number stays bounded whatever clients send. With several worker processes
``serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` and each scrape of ``/metrics`` adds up every
worker's counters (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import asyncpg
import structlog
from litestar import Response, get
from litestar.datastructures import State
from litestar.types import Scope
from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from secevents.server.http.errors import CONNECTION_ERRORS, ServiceUnavailable
from secevents.server.http.headers import scope_header
from secevents.server.replicas import Replicas

ACCESS_LOGGER = "secevents.access"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"

# Latency buckets (seconds) around what a keyset page costs, up to the request timeout.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


# --- logs ------------------------------------------------------------------------------------


def structured_formatter(renderer: str = "json") -> logging.Formatter:
    """The formatter of every handler (named in the app's ``LoggingConfig``): JSON lines, or
    aligned text for a terminal. Records from plain ``logging`` get the same fields."""
    render: Any = (
        structlog.processors.JSONRenderer()
        if renderer == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            render,
        ],
    )


def logging_formatters(renderer: str) -> dict[str, dict[str, Any]]:
    """``formatters`` for Litestar's ``LoggingConfig``: its default handlers use ``standard``."""
    return {"standard": {"()": structured_formatter, "renderer": renderer}}


def access_logger() -> Any:
    """A structlog logger writing through stdlib logging (so the app's handlers format it),
    built without touching structlog's global configuration."""
    return structlog.wrap_logger(
        logging.getLogger(ACCESS_LOGGER),
        wrapper_class=structlog.stdlib.BoundLogger,
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        # Bound once, not on every call (1.7 us per request through the lazy proxy); the level
        # is still the stdlib logger's, read at each call.
        cache_logger_on_first_use=True,
    )


# --- metrics ---------------------------------------------------------------------------------


class Metrics:
    """The app's metrics, in a registry of its own (several apps may live in one test process)."""

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_ENV) or None
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "secevents_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "secevents_http_request_duration_seconds",
            "Time from receiving a request to the last byte of its response (a streamed export's "
            "whole stream), by method, route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "secevents_http_requests_in_progress",
            "Requests being handled.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.pool_connections = Gauge(
            "secevents_db_pool_connections",
            "Connections of the database pool: open (all) and idle.",
            ["state"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.pool_max = Gauge(
            "secevents_db_pool_max_connections",
            "The pool's maximum size (per worker; summed over workers).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.replica_state = Gauge(
            "secevents_db_replica_state",
            "1 for the state each read replica is in: up (in rotation), lagging or down (out of it: "
            "reads go to the primary).",
            ["replica", "state"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.replica_lag = Gauge(
            "secevents_db_replica_lag_bytes",
            "How far a read replica's replayed WAL is behind the primary's, at the last check.",
            ["replica"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.response_bytes = Counter(
            "secevents_http_response_body_bytes",
            "Bytes of response bodies sent (after compression), by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        # CPU seconds, resident memory, open files… of this process (prometheus_client's
        # collector; Linux). With several workers, those of the worker that answers the scrape.
        ProcessCollector(registry=self.registry)
        self.db_errors = Counter(
            "secevents_db_errors",
            "Database errors met while answering requests, by kind (connection, timeout, "
            "pool_exhausted, query) and SQLSTATE when there is one.",
            ["kind", "sqlstate"],
            registry=self.registry,
        )
        # The labelled series of each (method, route, status) met so far: looking a series up
        # by its labels costs more than counting the request.
        self._series: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def request_answered(self, method: str, route: str, status: int, seconds: float, body_bytes: int) -> None:
        """Count a request once its response has gone out."""
        series = self._series.get((method, route, status))
        if series is None:
            series = self._series[(method, route, status)] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route, str(status)),
                self.response_bytes.labels(method, route),
            )
        requests, latency, response_bytes = series
        requests.inc()
        latency.observe(seconds)
        response_bytes.inc(body_bytes)

    def observe_pool(self, pool: asyncpg.Pool | None) -> None:
        if pool is None:
            return
        self.pool_connections.labels("open").set(pool.get_size())
        self.pool_connections.labels("idle").set(pool.get_idle_size())
        self.pool_max.set(pool.get_max_size())

    def observe_replicas(self, replicas: Replicas | None) -> None:
        if replicas is None:
            return
        for member in replicas.members:
            for state in ("up", "lagging", "down"):
                self.replica_state.labels(member.name, state).set(1 if member.state == state else 0)
            if member.lag_bytes is not None:
                self.replica_lag.labels(member.name).set(member.lag_bytes)

    def exposition(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        # Every worker writes its values to files in the shared folder; a scrape, whichever
        # worker answers it, adds them up.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        ProcessCollector(registry=registry)
        return generate_latest(registry)

    def worker_exited(self) -> None:
        """Drop this process's live gauges from the sums (multiprocess mode only)."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


def database_error_kind(exc: BaseException) -> tuple[str, str] | None:
    """``(kind, sqlstate)`` for a database error, None for anything else."""
    if isinstance(exc, ServiceUnavailable) and isinstance(exc.__cause__, TimeoutError):
        return "pool_exhausted", ""
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        if sqlstate == "57014":
            return "timeout", sqlstate
        if sqlstate.startswith(("08", "57P", "53")):
            return "connection", sqlstate
        return "query", sqlstate
    if isinstance(exc, CONNECTION_ERRORS):
        return "connection", ""
    return None


async def count_database_errors(exc: Exception, scope: Scope) -> None:
    """Litestar ``after_exception`` hook: counts the database errors requests met."""
    metrics: Metrics | None = scope["app"].state.get("metrics")
    kind = database_error_kind(exc)
    if metrics is not None and kind is not None:
        metrics.db_errors.labels(*kind).inc()


@get("/metrics", operation_id="metrics", include_in_schema=False, sync_to_thread=False)
def metrics_endpoint(state: State) -> Response[bytes]:
    """Prometheus exposition (kept out of the OpenAPI document: it is for operators)."""
    metrics: Metrics = state.metrics
    metrics.observe_pool(state.get("pool"))
    metrics.observe_replicas(state.get("replicas"))
    return Response(
        content=metrics.exposition(),
        media_type=PROMETHEUS_CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )


# --- the access log --------------------------------------------------------------------------


class AccessLog:
    """Times every HTTP request, logs it once and counts it. The edge layer
    (:mod:`secevents.server.http.edge`), around the whole app and outside Litestar's router,
    calls it, so requests to unknown paths and requests refused before routing are seen too."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.log = access_logger()

    def begin(self, request_id: str) -> Visit:
        """A request arrives: lines logged while it is handled carry its id."""
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if self.metrics is not None:
            self.metrics.in_progress.inc()
        return Visit()

    def end(self, scope: Scope, visit: Visit) -> None:
        """After the last body message was handed to the server: a stream's whole duration."""
        try:
            self._record(scope, visit, time.perf_counter())
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    def _record(self, scope: Scope, visit: Visit, ended: float) -> None:
        state = scope.get("state", {})
        route = scope.get("path_template") or UNMATCHED_ROUTE
        method = str(scope.get("method", ""))
        status = visit.status
        duration = ended - visit.started
        if self.metrics is not None:
            self.metrics.in_progress.dec()
            self.metrics.request_answered(method, route, status, duration, visit.bytes)
        if not self.log.isEnabledFor(logging.INFO):
            return  # the access log is off: no event to build and drop
        # secevents.server.http.auth leaves who called in the scope's state: the key's id, never the key.
        principal = state.get("principal")
        api_key_id = state.get("api_key_id") or getattr(principal, "key_id", None)
        client = scope.get("client")
        self.log.info(
            "request",
            request_id=state.get("request_id"),
            api_key_id=str(api_key_id) if api_key_id is not None else None,
            client=client[0] if client else None,
            method=method,
            route=route,
            path=scope["path"],
            status=status,
            bytes=visit.bytes,
            user_agent=(scope_header(scope, b"user-agent") or "")[:512] or None,
            ttfb_ms=round((visit.first_byte - visit.started) * 1000, 3) if visit.first_byte else None,
            duration_ms=round(duration * 1000, 3),
        )


class Visit:
    """What the access log learns of one request as its response goes out."""

    __slots__ = ("bytes", "first_byte", "started", "status")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.status = 500  # what the client gets if the app fails before answering
        self.first_byte: float | None = None
        self.bytes = 0

    def answered(self, status: int) -> None:
        self.status = status
        self.first_byte = time.perf_counter()

    def sent(self, body_bytes: int) -> None:
        self.bytes += body_bytes

    def client_left(self) -> None:
        self.status = 499  # nginx's convention
