"""Write (or check) the committed OpenAPI document, ``openapi/openapi.json``.

``python -m secevents.server.cli.openapi_dump`` regenerates it; ``--check`` exits 1 when the app's spec differs
from the file (CI and ``tests/test_openapi.py`` do the same). The output is deterministic:
sorted keys, two-space indent, a trailing newline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from secevents.server.app import create_app
from secevents.server.openapi import document
from secevents.server.settings import ApiSettings, DatabaseSettings, Settings

# A repository tool: the committed spec sits in the repository's openapi/ folder.
SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def spec_settings() -> Settings:
    """Settings that only shape the document: the app is built, never started."""
    return Settings(
        database=DatabaseSettings(
            url="postgresql://unused/openapi", migrate_on_start=False, seed_on_start=False
        ),
        api=ApiSettings(cursor_secret=b"openapi"),
    )


def render(settings: Settings | None = None) -> str:
    spec = document(create_app(settings or spec_settings()))
    return json.dumps(spec, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m secevents.server.cli.openapi_dump", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed spec is out of date")
    parser.add_argument("--output", type=Path, default=SPEC_PATH)
    args = parser.parse_args(argv)
    spec = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != spec:
            print(f"{args.output} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(spec, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
