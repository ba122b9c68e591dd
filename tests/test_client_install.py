"""The SDK installs with ``pip install`` of the project *without* the server extra and works in
an environment where Litestar and asyncpg are not installed at all.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from litestar import Litestar

from tests.client_helpers import serve

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("pyproject.toml", "README.md", "api", "schemas", "client", "migrations", "data")

PROBE = """
import importlib.util, sys
from secevents import Client, NotFoundError
for server_only in ("litestar", "asyncpg", "alembic", "granian"):
    assert importlib.util.find_spec(server_only) is None, server_only + " is installed"
with Client(base_url=sys.argv[1]) as api:
    titles = [incident.title for incident in api.incidents.list(limit=2)]
    assert titles and all(isinstance(t, str) for t in titles), titles
    try:
        api.incidents.get("00000000-0000-0000-0000-000000000000")
    except NotFoundError as exc:
        assert exc.problem is not None and exc.problem.code == "not_found"
    else:
        raise AssertionError("expected NotFoundError")
assert not any(name.split(".")[0] in {"api", "litestar", "asyncpg"} for name in sys.modules)
print("sdk ok", len(titles))
"""


@pytest.fixture
def sdk_python(tmp_path: Path) -> Path:
    """A fresh virtualenv holding ``pip install <project>`` (no extras) and its dependencies
    only, installed by this interpreter's pip from its local caches and indexes.
    """
    project = tmp_path / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / name)
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(environment)
    python = environment / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(project)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    return python


def test_the_sdk_works_without_the_server_dependencies(sdk_python: Path, app: Litestar) -> None:
    with serve(app) as base_url:
        probe = subprocess.run(
            [str(sdk_python), "-c", PROBE, base_url], capture_output=True, text=True, timeout=120
        )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("sdk ok")
