"""PostgreSQL servers of the tests' own: a primary and a streaming replica of it (``pg_basebackup -R``), started on loopback
by the tests with the Debian PostgreSQL binaries as the ``postgres`` user (they refuse root).
Also a PgBouncer in front of one. Used by tests/test_replicas.py and tests/test_pgbouncer.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("SECEVENTS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def as_server_user(*command: str) -> None:
    prefix = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)


@dataclass
class Server:
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        as_server_user(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-w", "-l", str(self.data_dir / "log"),
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        as_server_user(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-w", "-m", mode, "stop")

    def stop_quietly(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            with suppress(subprocess.CalledProcessError):
                self.stop("immediate")


def _initdb(tmp: Path) -> Server:
    primary = Server(tmp / "primary", free_port())
    as_server_user(
        str(PG_BIN / "initdb"), "-D", str(primary.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"
    )
    with (primary.data_dir / "postgresql.conf").open("a") as conf:
        conf.write("wal_level = replica\nmax_wal_senders = 5\nmax_replication_slots = 5\n")
        conf.write("hot_standby = on\nfsync = off\nsynchronous_commit = on\nmax_connections = 100\n")
    return primary


def _tmp() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="secevents-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(tmp, SERVER_USER)
    return tmp


@contextmanager
def one_server() -> Iterator[Server]:
    """A PostgreSQL of the test's own, in a temporary folder removed afterwards."""
    tmp = _tmp()
    primary = _initdb(tmp)
    try:
        primary.start()
        yield primary
    finally:
        primary.stop_quietly()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def pgbouncer(server: Server, pool_mode: str = "transaction") -> Iterator[str]:
    """A PgBouncer (the Debian package) in front of ``server``; yields the URL of its
    ``postgres`` database. It refuses to run as root: it runs as the server's user."""
    tmp = _tmp()
    port = free_port()
    (tmp / "userlist.txt").write_text('"postgres" ""\n')
    # asyncpg sends these at connect; PgBouncer refuses startup parameters it does not track
    # unless told to ignore them (behind it, set them per role or database instead).
    (tmp / "pgbouncer.ini").write_text(
        f"""[databases]
* = host=127.0.0.1 port={server.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {tmp}
auth_type = trust
auth_file = {tmp}/userlist.txt
pool_mode = {pool_mode}
ignore_startup_parameters = statement_timeout,idle_in_transaction_session_timeout,tcp_keepalives_idle,tcp_keepalives_interval,tcp_keepalives_count,tcp_user_timeout
max_client_conn = 500
default_pool_size = 8
logfile = {tmp}/pgbouncer.log
pidfile = {tmp}/pgbouncer.pid
"""
    )
    if os.geteuid() == 0:
        for path in tmp.iterdir():
            shutil.chown(path, SERVER_USER)
    as_server_user(PGBOUNCER, "-d", str(tmp / "pgbouncer.ini"))
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        pid = (tmp / "pgbouncer.pid").read_text().strip() if (tmp / "pgbouncer.pid").exists() else ""
        if pid:
            with suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def primary_and_replica() -> Iterator[tuple[Server, Server]]:
    """A primary (wal_level=replica, a replication slot for the replica) and a hot-standby
    replica streaming from it, in a temporary folder removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="secevents-replica-", dir="/tmp"))
    shutil.chown(tmp, SERVER_USER) if os.geteuid() == 0 else None
    primary = Server(tmp / "primary", free_port())
    replica = Server(tmp / "replica", free_port())
    try:
        as_server_user(
            str(PG_BIN / "initdb"),
            "-D",
            str(primary.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        with (primary.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("wal_level = replica\nmax_wal_senders = 5\nmax_replication_slots = 5\n")
            conf.write("hot_standby = on\nfsync = off\nsynchronous_commit = on\nmax_connections = 100\n")
        primary.start()
        as_server_user(
            str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(replica.data_dir), "-R", "-X", "stream", "-C", "-S", "secevents_test_replica",
        )  # fmt: skip
        replica.start()
        yield primary, replica
    finally:
        replica.stop_quietly()
        primary.stop_quietly()
        shutil.rmtree(tmp, ignore_errors=True)
