"""The ``secevents`` command's entry point, installed with the SDK too.

The command itself is the server's (:mod:`secevents.server.cli.main`). An SDK-only install has
no server dependencies, so instead of a traceback it says in one line what to install. The
server is imported by name, at call time: this is the one place the SDK package hands over to
the server, and the SDK's modules (the architecture contract) never import it.
"""

from __future__ import annotations

import importlib
import sys

SERVER_EXTRA_HINT = "pip install 'secevents[server]'"


def main() -> int:
    try:
        server_cli = importlib.import_module("secevents.server.cli.main")
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("secevents"):
            raise  # a module of our own missing is a broken install or a bug, not a missing extra
        print(
            f"secevents: the server is not installed (no module {exc.name!r}); install it with: {SERVER_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 1
    code: int = server_cli.main()
    return code


if __name__ == "__main__":
    sys.exit(main())
