"""Helpers of the SDK tests (tests/test_client*.py): a real HTTP server around the app, HTTP
transports that lose responses or answer 429 before passing requests on, and request bodies
built from the sample dataset.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import uvicorn
from litestar import Litestar

from secevents.schemas.common import CitationIn, DateSpanIn
from secevents.schemas.incidents import IncidentCreate, LocationIn
from secevents.schemas.organisations import OrganisationCreate
from secevents.schemas.sources import Source, SourceCreate
from secevents.schemas.statements import ClaimIn, FigureIn, StatementCreate

SERVER_STOP_TIMEOUT = 30.0


@contextlib.contextmanager
def serve(app: Litestar) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free local port, in a thread, for as long as the block
    runs; yields its base URL. Requests really go through TCP and HTTP/1.1.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    # However long starting takes on a loaded machine (the test's timeout is the only clock).
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(SERVER_STOP_TIMEOUT)
        sock.close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: requests to it time out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def closed_port_url() -> str:
    """A local URL nobody listens on: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@dataclass
class Interference:
    """What the test transports do to the first requests before passing the rest on: lose
    ``lose_responses`` responses *after* the server handled the request (as a dropped
    connection would), then answer ``rate_limited`` requests with a 429 itself. Every request
    that reaches it is recorded.
    """

    lose_responses: int = 0
    rate_limited: int = 0
    retry_after: str = "3"
    requests: list[httpx.Request] = field(default_factory=list)

    def before(self, request: httpx.Request) -> httpx.Response | None:
        self.requests.append(request)
        if self.lose_responses == 0 and self.rate_limited > 0:
            self.rate_limited -= 1
            problem = b'{"type":"about:blank","title":"Too many requests","status":429,"code":"rate_limited"}'
            return httpx.Response(
                429,
                headers={"Retry-After": self.retry_after, "Content-Type": "application/problem+json"},
                content=problem,
                request=request,
            )
        return None

    def after(self, request: httpx.Request) -> None:
        if self.lose_responses > 0:
            self.lose_responses -= 1
            raise httpx.ReadError("connection reset after the request was sent", request=request)


class InterferingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, interference: Interference) -> None:
        self.inner = inner
        self.interference = interference

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        early = self.interference.before(request)
        if early is not None:
            return early
        response = self.inner.handle_request(request)
        response.read()
        self.interference.after(request)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncInterferingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, interference: Interference) -> None:
        self.inner = inner
        self.interference = interference

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        early = self.interference.before(request)
        if early is not None:
            return early
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.interference.after(request)
        return response

    async def aclose(self) -> None:
        """The inner transport belongs to whoever made it (Litestar's test client)."""


# --- request bodies ---------------------------------------------------------------------------


def citation(source: Source) -> CitationIn:
    """A citation of ``source`` whose quote is really in its text."""
    assert source.text, "needs a source that holds its text"
    return CitationIn(source_id=source.id, quote=source.text[:60].strip())


def incident_body(source: Source, title: str = "SDK test: clash reported near Daraban") -> IncidentCreate:
    return IncidentCreate(
        title=title,
        type="battle",
        occurred=DateSpanIn(start=dt.date(2024, 1, 2), end=dt.date(2024, 1, 2), precision="day"),
        location=LocationIn(country="PK", admin1="Khyber Pakhtunkhwa", precision="admin1"),
        citations=[citation(source)],
    )


def organisation_body(source: Source, name: str = "SDK Test Front") -> OrganisationCreate:
    return OrganisationCreate(
        name=name, aliases=["STF"], kind="armed_group", country="PK", citations=[citation(source)]
    )


def statement_body(source: Source, issuer_id: object) -> StatementCreate:
    return StatementCreate(
        title="SDK test: written reply",
        issuer_id=issuer_id,  # type: ignore[arg-type]
        form="written_reply",
        issued=DateSpanIn(start=dt.date(2024, 3, 1), end=dt.date(2024, 3, 31), precision="month"),
        claims=[ClaimIn(text="The ministry says the situation is under control.")],
        figures=[FigureIn(label="complaints forwarded", value=12, unit="complaints")],
        citations=[citation(source)],
    )


def source_body(url: str = "https://example.org/sdk-test-article") -> SourceCreate:
    return SourceCreate(
        kind="news_article",
        title="SDK test article",
        url=url,
        publisher="Example",
        language="en",
        text="An SDK test article. Militants attacked a checkpoint; officials gave no figures.",
    )
