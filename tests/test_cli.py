"""The ``secevents`` command: export filters checked by the API's own code with its messages,
one line and an exit code for every user mistake (0 done, 1 failed, 2 usage), ``--version``,
and a quiet default (``-q`` quieter, ``-v`` everything)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from secevents.server.cli import main as cli

SECEVENTS = str(Path(sys.executable).parent / "secevents")


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """Each in-process run of the command configures logging as a new process would: the app
    the export builds configures handlers on the stderr of the test that ran it."""
    yield
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)


@pytest.fixture
def on_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


def command(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command in a process of its own, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECEVENTS_")}
    env["DATABASE_URL"] = database_url
    return subprocess.run([SECEVENTS, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("resource", "options", "query"),
    [
        ("incidents", ["--country", "Pakistan"], {"country": "Pakistan"}),
        ("incidents", ["--country", "pk"], {"country": "pk"}),
        ("incidents", ["--type", "bogus"], {"type": "bogus"}),
        ("incidents", ["--occurred-after", "2023-13-01"], {"occurred_after": "2023-13-01"}),
        ("incidents", ["--updated-after", "2024-01-01"], {"updated_after": "2024-01-01"}),
        ("incidents", ["--filter", "min_killed=many"], {"min_killed": "many"}),
        ("incidents", ["--filter", "bbox=200,0,10,10"], {"bbox": "200,0,10,10"}),
        ("statements", ["--country", "PK"], {"country": "PK"}),
        ("organisations", ["--filter", "nonsense=1"], {"nonsense": "1"}),
    ],
)
async def test_export_refuses_what_the_api_refuses_with_its_message(
    on_database: str,
    client: httpx.AsyncClient,
    capsys: pytest.CaptureFixture[str],
    resource: str,
    options: list[str],
    query: dict[str, str],
) -> None:
    api = await client.get(f"/v1/exports/{resource}", params=query)
    assert api.status_code == 400
    problem = api.json()
    expected = "; ".join(f"{e['field']}: {e['message']}" for e in problem["errors"])

    assert await asyncio.to_thread(cli.main, ["export", resource, *options]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"secevents: export {resource}: {expected}\n"


async def test_export_all_is_checked_before_writing(
    on_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "all.ndjson"
    # `GET /v1/exports/all` takes no filters: refused by the API, and nothing is written.
    for options, refused in ((["--filter", "kind=report"], "kind: "), (["--format", "csv"], "'csv'")):
        assert await asyncio.to_thread(cli.main, ["export", "all", *options, "-o", str(target)]) == 2
        err = capsys.readouterr().err.splitlines()[-1]  # after the migrations' log lines
        assert err.startswith("secevents: export all: ") and refused in err, err
        assert not target.exists()


async def test_export_filters_select_like_the_api(
    on_database: str, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    target = tmp_path / "incidents.ndjson"
    for options, query in [
        (["--country", "PK", "--type", "battle"], {"country": "PK", "type": "battle"}),
        (["--filter", "q=Daraban"], {"q": "Daraban"}),
        (["--country", "AF", "--country", "PK", "--occurred-after", "2023-01-01"], None),
    ]:
        assert await asyncio.to_thread(cli.main, ["export", "incidents", *options, "-o", str(target)]) == 0
        out = target.read_text()
        lines = [json.loads(line) for line in out.splitlines()]
        ids = [line["record"]["id"] for line in lines if "record" in line]  # then the count
        params = query or [("country", "AF"), ("country", "PK"), ("occurred_after", "2023-01-01")]
        listed = (await client.get("/v1/incidents", params=params)).json()["data"]
        assert ids and sorted(ids) == sorted(r["id"] for r in listed)


async def test_export_csv_for_excel(on_database: str, client: httpx.AsyncClient, tmp_path: Path) -> None:
    target = tmp_path / "organisations.csv"
    assert (
        await asyncio.to_thread(
            cli.main, ["export", "organisations", "--format", "csv", "--bom", "-o", str(target)]
        )
        == 0
    )
    api = await client.get("/v1/exports/organisations", params={"format": "csv", "bom": "true"})
    assert target.read_bytes() == api.content and api.content.startswith("\ufeff".encode())


def test_user_mistakes_are_one_line_and_an_exit_code(
    on_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases: list[tuple[list[str], int, str]] = [
        (["export", "incidents", "-o", str(tmp_path / "missing" / "x.ndjson")], 1, "no such folder"),
        (["export", "sources", "--format", "geojson"], 2, "--format geojson is for incidents only"),
        (["export", "incidents", "--filter", "country"], 2, "--filter takes NAME=VALUE"),
        (["import", "ndjson", str(tmp_path / "missing.ndjson")], 1, "no such file"),
        (["import", "ucdp", str(tmp_path / "missing.csv")], 1, "no such file"),
        (["keys", "revoke", "nothing"], 2, "neither a key (se_…) nor a key id"),
        (["keys", "revoke", "se_0123456789ab_secret"], 1, "no such key: se_0123456789ab_…"),
        (["keys", "create", "--name", "x", "--scope", "read", "--rate-limit", "0"], 2, "at least 1"),
        (["serve", "--port", "70000"], 2, "--port must be between 1 and 65535"),
        (["serve", "--workers", "0"], 2, "--workers must be at least 1"),
    ]
    for args, code, message in cases:
        assert cli.main(args) == code, args
        err = capsys.readouterr().err
        assert message in err, (args, err)
        assert len(err.strip().splitlines()) == 1, (args, err)


def test_an_unreachable_database_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with __import__("socket").socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://reader:hunter2@127.0.0.1:{port}/nothing")
    for args in (["db", "current"], ["db", "upgrade"], ["keys", "list"], ["export", "incidents"]):
        assert cli.main(args) == 1, args
        err = capsys.readouterr().err
        assert err.startswith(
            f"secevents: cannot reach the database (postgresql://reader@127.0.0.1:{port}/nothing)"
        )
        assert "hunter2" not in err and len(err.strip().splitlines()) == 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["export"], ["export", "nothing"], ["serve", "--port", "eighty"], ["db"], ["frobnicate"]):
        with pytest.raises(SystemExit) as exited:
            cli.main(args)
        assert exited.value.code == 2, args
        assert "usage: secevents" in capsys.readouterr().err


def test_version() -> None:
    from importlib.metadata import version

    done = subprocess.run([SECEVENTS, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == f"secevents {version('secevents')}\n"


def test_quiet_by_default_everything_with_v(database_url: str) -> None:
    """No INFO lines of the libraries by default (Alembic alone logged ten per command)."""
    done = command(database_url, "db", "upgrade")
    assert done.returncode == 0 and done.stdout.startswith("at revision")
    assert done.stderr == ""
    done = command(database_url, "keys", "list")
    assert done.returncode == 0 and done.stderr == ""
    verbose = command(database_url, "db", "upgrade", "-v")
    assert verbose.returncode == 0 and "alembic" in verbose.stderr
    quiet = command(database_url, "-q", "export", "incidents", "--country", "PK")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.count("\n") >= 1
