"""``secevents keys create|list|revoke``: API keys from the command line.

``create`` prints the key once (only a hash of its secret is stored); ``list`` never shows
secrets; ``revoke`` takes effect on the next request (keys are looked up on every request).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from secevents.server import db
from secevents.server.cli.errors import USAGE, CliError
from secevents.server.http import auth
from secevents.server.settings import Settings


def add_parser(commands: Any, run_with_database: Callable[[Settings, Callable[[str], Any]], Any]) -> None:
    keys = commands.add_parser("keys", help="API keys: create, list, revoke")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument(
        "--scope",
        action="append",
        choices=auth.SCOPES,
        required=True,
        help="read, write or admin (repeatable; each includes the lower ones)",
    )
    create.add_argument(
        "--rate-limit", type=int, help="requests per window for this key (default: the server's)"
    )
    listing = sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    revoke = sub.add_parser("revoke", help="revoke a key, given the key itself or its id")
    revoke.add_argument("key", metavar="KEY-OR-ID", help="the key (se_…) or its id (`keys list`)")

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        result: int = run_with_database(settings, lambda url: asyncio.run(_run(url, args)))
        return result

    keys.set_defaults(handler=handler)


async def _run(url: str, args: argparse.Namespace) -> int:
    await asyncio.to_thread(db.upgrade, url)
    conn = await asyncpg.connect(url)
    try:
        if args.keys_command == "create":
            if args.rate_limit is not None and args.rate_limit < 1:
                raise CliError("--rate-limit must be at least 1", USAGE)
            created = await auth.create_key(
                conn, name=args.name, scopes=args.scope, rate_limit=args.rate_limit, created_by="cli"
            )
            # Only the key goes to stdout (`KEY=$(secevents keys create ...)`); it is shown only now.
            print(
                f"created key {created.id} ({created.name}, scopes {', '.join(created.scopes)}); "
                "store it now, it cannot be shown again:",
                file=sys.stderr,
            )
            print(created.key)
            return 0
        if args.keys_command == "list":
            for key in await auth.list_keys(conn):
                if args.json:
                    print(msgspec.json.encode(key).decode())
                else:
                    state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
                    used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
                    print(
                        f"{key.id}  se_{key.prefix}_…  {key.name}  [{','.join(key.scopes)}]  {state}  last used {used}"
                    )
            return 0
        key_id = await _key_id(conn, args.key)
        revoked = None if key_id is None else await auth.revoke_key(conn, key_id)
        if revoked is None:
            raise CliError(f"no such key: {_shown(args.key)}")
        print(f"revoked key {revoked.id} ({revoked.name})")
        return 0
    finally:
        await conn.close()


async def _key_id(conn: asyncpg.Connection, given: str) -> UUID | None:
    if given.startswith("se_"):
        return await auth.key_id_of(conn, given)
    try:
        return UUID(given)
    except ValueError:
        raise CliError(f"{_shown(given)} is neither a key (se_…) nor a key id (a UUID)", USAGE) from None


def _shown(given: str) -> str:
    """A key as it may be printed: its public prefix only, never its secret."""
    return given[:16] + "…" if given.startswith("se_") else repr(given)
