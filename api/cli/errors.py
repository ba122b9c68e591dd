"""What the ``secevents`` command says when something goes wrong: one line on stderr and an exit
code — 2 for a usage mistake (a bad option or value), 1 for a failure (a missing file, a busy
port, an unreachable database) — never a traceback for a user's mistake. A traceback is left
only for what is a bug."""

from __future__ import annotations

import errno
import re
import sys

import asyncpg

OK = 0
FAILED = 1
USAGE = 2


class CliError(Exception):
    """A mistake or failure the command reports in one line."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def _without_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1@", url)


def describe(exc: BaseException, database_url: str | None) -> CliError | None:
    """The one-line report of an exception a user can cause, or None for a bug."""
    if isinstance(exc, CliError):
        return exc
    original = getattr(exc, "orig", None)  # SQLAlchemy (under Alembic) wraps the driver's error
    if isinstance(original, BaseException) and original is not exc:
        return describe(original, database_url)
    where = f" ({_without_password(database_url)})" if database_url else ""
    if isinstance(exc, asyncpg.InvalidCatalogNameError | asyncpg.InvalidAuthorizationSpecificationError):
        return CliError(f"cannot use the database{where}: {exc}")
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return CliError(f"the database refused the credentials{where}: {exc}")
    if isinstance(exc, asyncpg.CannotConnectNowError | asyncpg.ConnectionDoesNotExistError):
        return CliError(f"the database is unavailable{where}: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return CliError(f"the database refused the command{where}: {exc}")
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError):
        name = exc.filename or ""
        return CliError(f"{name}: {exc.strerror}" if name else str(exc))
    if isinstance(exc, ConnectionError | TimeoutError) or (
        isinstance(exc, OSError) and exc.errno in {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH}
    ):
        return CliError(f"cannot reach the database{where}: {exc}")
    if isinstance(exc, OSError) and exc.strerror:
        return CliError(f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror)
    return None


def report(error: CliError) -> int:
    print(f"secevents: {error}", file=sys.stderr)
    return error.code
