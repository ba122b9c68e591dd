"""The built wheel works anywhere: installed (not editable) in a fresh virtualenv, from a folder
outside the repository, with nothing of the source tree on the path.

- With the ``server`` extra it migrates, seeds and serves (``secevents db upgrade``, ``db seed``,
  ``serve``) a database the test creates, and a record comes back over HTTP.
- Without extras it is the SDK: ``from secevents import Client, AsyncClient`` and
  ``secevents.schemas`` work with only the declared dependencies installed (no Litestar, no
  asyncpg), and the ``secevents`` command says in one line what to install.
- The wheel holds one top-level package, ``secevents``, with the migrations (and their data)
  and the sample dataset inside it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import venv
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from tests.client_helpers import serve
from tests.conftest import fresh_server_database
from tests.support import scratch_folder, until

ROOT = Path(__file__).resolve().parent.parent
# What a clone holds besides the sources: never copied into the build.
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".build",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".data",
)
INSTALL_TIMEOUT = 900


def _pip_install(python: Path, *requirements: str) -> None:
    """``pip install`` into the virtualenv of ``python`` (which has no pip of its own), by this
    interpreter's pip, from its caches and indexes."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", *requirements],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr


def _fresh_venv(folder: Path) -> Path:
    venv.EnvBuilder(with_pip=False).create(folder)
    return folder / "bin" / "python"


def _outside_env(**extra: str) -> dict[str, str]:
    """A user's environment: nothing of the project's, nothing of this test run's Python."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECEVENTS_", "DATABASE_", "PYTHON", "VIRTUAL_ENV", "PYTEST_"))
    }
    return {**env, **extra}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built (``pip wheel``, isolated build) from a copy of the sources."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES, symlinks=True)
    out = folder / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("secevents-*.whl")
    return built


def test_the_wheel_holds_one_package_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"secevents", next(t for t in top if t.endswith(".dist-info"))}, top
    assert not top & {"api", "client", "schemas", "migrations", "data"}
    files = set(names)
    for needed in (
        "secevents/__init__.py",
        "secevents/py.typed",
        "secevents/schemas/__init__.py",
        "secevents/server/cli/main.py",
        "secevents/migrations/env.py",
        "secevents/migrations/alembic.ini",
        "secevents/migrations/data/iso3166_1.csv",
        "secevents/data/sample/article.txt",
        "secevents/data/sample/dataset.json",
    ):
        assert needed in files, needed
    assert [n for n in names if n.startswith("secevents/migrations/versions/") and n.endswith(".py")]
    assert [n for n in names if n.startswith("secevents/server/system/static/docs/")]
    assert not [n for n in names if n.startswith("secevents/data/ucdp/")], "the UCDP files stay out"
    assert not [n for n in names if "/tests/" in n or n.startswith(("tests/", "bench/"))]


@pytest.fixture(scope="session")
def sdk_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the wheel without extras, and its declared dependencies."""
    python = _fresh_venv(tmp_path_factory.mktemp("sdk") / "venv")
    _pip_install(python, str(wheel))
    return python


PROBE = """
import importlib.util, sys
from secevents import AsyncClient, Client, NotFoundError
from secevents.schemas import Incident
import secevents, secevents.schemas
assert secevents.__file__.startswith(sys.prefix), secevents.__file__
for server_only in ("litestar", "asyncpg", "alembic", "granian", "pandas"):
    assert importlib.util.find_spec(server_only) is None, server_only + " is installed"
with Client(base_url=sys.argv[1]) as api:
    incidents = list(api.incidents.list(limit=2))
    assert incidents and all(isinstance(i, Incident) for i in incidents), incidents
    try:
        api.incidents.get("00000000-0000-0000-0000-000000000000")
    except NotFoundError as exc:
        assert exc.problem is not None and exc.problem.code == "not_found"
    else:
        raise AssertionError("expected NotFoundError")
assert AsyncClient
assert not any(name.split(".")[0] in {"api", "client", "litestar", "asyncpg"} for name in sys.modules)
print("sdk ok", len(incidents))
"""


def test_the_sdk_wheel_needs_only_its_declared_dependencies(
    sdk_python: Path, app: Litestar, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with serve(app) as base_url:
        probe = subprocess.run(
            [str(sdk_python), "-c", PROBE, base_url],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=outside,
            env=_outside_env(),
        )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("sdk ok")
    checked = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(sdk_python), "check"], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_sdk_wheel_command_says_what_to_install(sdk_python: Path, tmp_path: Path) -> None:
    command = sdk_python.parent / "secevents"
    for args in ([], ["serve"], ["db", "upgrade"]):
        done = subprocess.run(
            [str(command), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=_outside_env(),
        )
        assert done.returncode == 1
        assert done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert line.startswith("secevents: the server is not installed (no module "), line
        assert line.endswith("install it with: pip install 'secevents[server]'"), line


@pytest.fixture
async def outside_database() -> AsyncIterator[dict[str, str]]:
    """Where the installed server keeps its data: a fresh embedded PostgreSQL (from the wheel
    the fresh virtualenv installed), or a new database on SECEVENTS_TEST_DATABASE_URL's server."""
    async with fresh_server_database("secevents-install-pg-") as env:
        yield env


@pytest.fixture(scope="session")
def server_python(wheel: Path) -> Iterator[Path]:
    # Outside pytest's root: the embedded PostgreSQL's binaries are in this virtualenv, and its
    # server user needs access to their folders (tests.support.scratch_folder says why).
    with scratch_folder("secevents-install-venv-") as folder:
        python = _fresh_venv(folder / "venv")
        _pip_install(python, f"{wheel}[server]")
        yield python


@pytest.mark.timeout(INSTALL_TIMEOUT + 600)
async def test_the_server_wheel_migrates_seeds_and_serves_outside_the_tree(
    server_python: Path, outside_database: dict[str, str], tmp_path: Path
) -> None:
    command = str(server_python.parent / "secevents")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = _outside_env(**outside_database)

    def run(*args: str) -> str:
        done = subprocess.run(
            [command, *args], capture_output=True, text=True, timeout=300, cwd=outside, env=env
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert (await asyncio.to_thread(run, "db", "upgrade")).startswith("at revision")
    assert "loaded the sample dataset" in await asyncio.to_thread(run, "db", "seed")
    assert (await asyncio.to_thread(run, "--version")).startswith("secevents 0.")  # the installed metadata

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        command, "serve", "--port", str(port), cwd=outside, env=env, stderr=asyncio.subprocess.PIPE
    )
    base_url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        assert server.returncode is None, "the installed server exited"
        try:
            async with httpx.AsyncClient(base_url=base_url) as client:
                return (await client.get("/health/ready")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await until(ready, interval=0.2)
        async with httpx.AsyncClient(base_url=base_url) as client:
            listed = (await client.get("/v1/incidents", params={"q": "Daraban"})).json()["data"]
            assert [i["title"] for i in listed] == [
                "Tehreek-i-Jihad Pakistan militants storm military compound in Daraban"
            ]
            record = await client.get(f"/v1/incidents/{listed[0]['id']}")
            assert record.status_code == 200 and record.json()["casualties"]["killed"]["low"] == 23
            docs = await client.get("/docs")  # static files from the package
            assert docs.status_code == 200
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        _, err = await server.communicate()
    assert server.returncode == 0, err.decode()
    # It ran from site-packages, not from the source tree.
    located = await asyncio.to_thread(
        subprocess.run,
        [
            str(server_python),
            "-c",
            "import secevents.server, secevents.migrations; print(secevents.server.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=outside,
        env=env,
    )
    assert located.stdout.startswith(str(server_python.parent.parent)), located.stdout
    assert str(ROOT) not in located.stdout
