"""Every code block of README.md runs, in order, against a live ``secevents serve``, with the
keys and ids the earlier blocks produced (tests/readme_runner.py says how, and what a block may
declare). The blocks that cannot run here are checked another way below."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests import readme_runner
from tests.conftest import fresh_server_database
from tests.readme_runner import Block, ReadmeError
from tests.support import scratch_folder, until

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def reader_environment(home: Path) -> dict[str, str]:
    """A reader's shell: none of the project's variables set, the virtualenv's commands first."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECEVENTS_", "DATABASE_", "PYTEST_", "REDIS_URL", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    env["SECEVENTS_LOG_FORMAT"] = "json"  # what the runner reads statuses from (the default)
    return env


@pytest.fixture
async def database_env() -> AsyncIterator[dict[str, str]]:
    """Where the README's server keeps its data: a fresh embedded PostgreSQL (what a reader
    gets), or a fresh empty database on SECEVENTS_TEST_DATABASE_URL's server."""
    async with fresh_server_database("secevents-readme-pg-") as env:
        yield env


@pytest.fixture
async def live_server(
    tmp_path: Path, database_env: dict[str, str]
) -> AsyncIterator[tuple[str, dict[str, str], Path]]:
    """``secevents serve`` on a free port, started as after ``make serve`` (migrated and seeded
    on start); stopped with SIGTERM at the end, which must stop it cleanly."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**reader_environment(home), **database_env}
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = await asyncio.create_subprocess_exec(
            str(BIN / "secevents"),
            "serve",
            "--port",
            str(port),
            env=env,
            stdout=log,
            stderr=log,
            cwd=tmp_path,
        )
    base_url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        assert server.returncode is None, log_path.read_text()
        try:
            async with httpx.AsyncClient(base_url=base_url) as client:
                return (await client.get("/health/ready")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await until(ready, interval=0.2)
        yield base_url, env, log_path
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        assert await server.wait() == 0, log_path.read_text()


def readme_blocks() -> list[Block]:
    blocks = readme_runner.parse(README.read_text())
    readme_runner.check_runnable(blocks)
    return blocks


@pytest.mark.timeout(1200)
async def test_every_readme_block_runs(live_server: tuple[str, dict[str, str], Path]) -> None:
    base_url, env, server_log = live_server
    with scratch_folder("secevents-readme-reader-") as folder:  # the README embeds a PostgreSQL here too
        await _run_every_block(folder, env, base_url, server_log)


async def _run_every_block(folder: Path, env: dict[str, str], base_url: str, server_log: Path) -> None:
    (folder / "data").symlink_to(REPO / "data")
    (folder / ".venv").symlink_to(Path(sys.prefix))  # the clone's virtualenv, as `make` made it
    blocks = readme_blocks()
    ran = 0
    async with readme_runner.Session(folder, env, base_url, server_log) as session:
        for block in blocks:
            if block.not_run:
                continue
            print(f"running {block.where}", flush=True)
            readme_runner.check(await session.run(block))
            ran += 1
        # The runner can fail: an id nobody created is a 404 the check refuses.
        invented = Block(
            0, 0, "sh", "curl -s localhost:8000/v1/incidents/0193a5b2-0000-7000-8000-000000000000\n"
        )
        with pytest.raises(ReadmeError, match="404"):
            readme_runner.check(await session.run(invented))
        unset = Block(0, 0, "sh", 'curl -s "localhost:8000/v1/organisations/$NOBODY_SET_THIS/incidents"\n')
        with pytest.raises(ReadmeError, match="failed"):
            await session.run(unset)
    assert ran == sum(1 for b in blocks if not b.not_run) and ran > 10


def test_blocks_the_runner_cannot_run_fail_the_test() -> None:
    with pytest.raises(ReadmeError, match="cannot execute ```json"):
        readme_runner.check_runnable(readme_runner.parse('Text\n\n```json\n{"a": 1}\n```\n'))
    with pytest.raises(ReadmeError, match="cannot execute ```"):
        readme_runner.check_runnable(readme_runner.parse("```\nmake serve\n```\n"))
    with pytest.raises(ReadmeError, match="unknown readme directive"):
        readme_runner.parse("<!-- readme: skip -->\n```sh\nmake serve\n```\n")
    marked = readme_runner.parse("<!-- readme: not-run: test_make_targets -->\n```\nmake serve\n```\n")
    readme_runner.check_runnable(marked)
    assert marked[0].not_run == "test_make_targets"


def test_blocks_not_run_name_a_test_that_exists() -> None:
    names = {b.not_run for b in readme_blocks() if b.not_run}
    assert names, "README.md has no not-run block: drop this test's check or the directive support"
    for name in names:
        assert callable(globals().get(name)), f"README.md names {name}, which tests/test_readme.py lacks"


def test_make_targets() -> None:
    """The two commands (not run here: `make serve` serves until stopped, and `make test` is
    this suite): each target exists and runs what the README says, after installing."""
    serve = subprocess.run(
        ["make", "-n", "serve"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "secevents serve" in serve
    test = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "pytest" in test and "ruff check" in test and "mypy" in test
    block = next(b for b in readme_blocks() if b.not_run == "test_make_targets")
    assert [line.split("#")[0].strip() for line in block.code.splitlines()] == ["make serve", "make test"]
