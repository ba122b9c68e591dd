"""A PostgreSQL primary and a streaming replica of it (``pg_basebackup -R``), started on loopback
by the tests with the Debian PostgreSQL binaries as the ``postgres`` user (they refuse root).
Used by tests/test_replicas.py and tests/test_pgbouncer.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("SECEVENTS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"


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
