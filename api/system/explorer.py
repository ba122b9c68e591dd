"""``/``: the explorer page (map, timeline, list and record panel) and its assets.

The files are built from ``explorer/`` by ``make explorer`` into ``static/explorer/`` and
committed (generated: see their ``manifest.json``), so serving them needs no node. Only the
files the manifest lists are served, never a path taken from the request. Asset names carry a
hash of their content, so they are cached for a year; the page itself is revalidated. Text
assets are gzipped once, in memory, for clients that accept it.

The page loads no inline script or style, so its Content-Security-Policy allows scripts,
styles and requests to this origin only; ``data:`` images are for the empty favicon.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

STATIC = Path(__file__).resolve().parent / "static" / "explorer"
EXPLORER_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
CACHE_PAGE = "no-cache"
CACHE_HASHED = "public, max-age=31536000, immutable"
# Litestar adds "; charset=utf-8" to text/* types.
MEDIA_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
}
# The page's query string is the browser's state (filters, tab, selected record), read by the
# page's script: the server takes any (`reads.filters.reject_unknown_query_parameters`).
CLIENT_QUERY = {"client_query": True}


class Manifest(msgspec.Struct):
    generated_by: str
    inputs_sha256: str
    inputs: list[str]
    files: dict[str, str]


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str


def read_manifest(folder: Path = STATIC) -> Manifest:
    return msgspec.json.decode((folder / "manifest.json").read_bytes(), type=Manifest)


@cache
def assets() -> dict[str, Asset]:
    """Every built file, read and compressed once (about 0.5 MB)."""
    loaded = {}
    for name in read_manifest().files:
        body = (STATIC / name).read_bytes()
        media_type = MEDIA_TYPES[Path(name).suffix]
        loaded[name] = Asset(body, gzip.compress(body, compresslevel=9, mtime=0), media_type)
    return loaded


def _send(request: Request[Any, Any, Any], asset: Asset, headers: dict[str, str]) -> Response[bytes]:
    headers = {**headers, "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(content=asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(content=asset.body, media_type=asset.media_type, headers=headers)


class ExplorerController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", operation_id="explorer_page", sync_to_thread=False, opt=CLIENT_QUERY)
    def page(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        return _send(
            request,
            assets()["index.html"],
            {"Content-Security-Policy": EXPLORER_CSP, "Cache-Control": CACHE_PAGE},
        )

    @get("/explorer/{name:str}", operation_id="explorer_asset", sync_to_thread=False)
    def asset(self, request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
        found = assets().get(name)
        if found is None or name == "index.html":
            raise NotFoundException(f"No explorer asset {name!r}")
        return _send(request, found, {"Cache-Control": CACHE_HASHED})
