"""``/docs``: interactive API docs (Swagger UI) that work with no internet access.

The Swagger UI files come from the ``swagger-ui-py`` wheel (its ``static/`` folder) and are
served by the app itself; the page loads no inline script, so its Content-Security-Policy
allows scripts from this origin only.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from litestar import Controller, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

OWN_STATIC = Path(__file__).resolve().parent / "static" / "docs"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
CACHE_ASSETS = "public, max-age=86400"

PAGE = b"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>secevents API v1</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/init.js"></script>
</body>
</html>
"""

MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@cache
def swagger_ui_dir() -> Path:
    # Found without importing the package (its __init__ pulls in web-framework glue we do not use).
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@cache
def assets() -> dict[str, Path]:
    """The only files served: a fixed list, never a path from the request."""
    ui = swagger_ui_dir()
    return {
        "swagger-ui-bundle.js": ui / "swagger-ui-bundle.js",
        "swagger-ui.css": ui / "swagger-ui.css",
        "favicon-32x32.png": ui / "favicon-32x32.png",
        "init.js": OWN_STATIC / "init.js",
    }


@cache
def _read(path: Path) -> bytes:
    return path.read_bytes()


class DocsController(Controller):
    path = "/docs"
    include_in_schema = False

    @get("/", operation_id="docs_page", media_type="text/html", sync_to_thread=False)
    def docs_page(self) -> Response[bytes]:
        return Response(
            content=PAGE,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"},
        )

    @get("/assets/{name:str}", operation_id="docs_asset", sync_to_thread=True)
    def docs_asset(self, name: FromPath[str]) -> Response[bytes]:
        path = assets().get(name)
        if path is None:
            raise NotFoundException(f"No docs asset {name!r}")
        return Response(
            content=_read(path),
            media_type=MEDIA_TYPES[path.suffix],
            headers={"Cache-Control": CACHE_ASSETS},
        )
