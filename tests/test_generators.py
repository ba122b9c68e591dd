"""Third-party generators build complete clients from openapi/openapi.json (issue 20): services
in other languages generate theirs from this spec too.

- ``openapi-python-client`` (a dev dependency): every operation, writes and the NDJSON import
  included, with no warning; the generated client imported and called against the app served
  over real HTTP (a read, a write, an import).
- ``openapi-typescript`` (npm, pinned by tests/generators/package-lock.json; node and npm are
  Debian's, .ci/apt-packages): runs without error and its types name every path and operation.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from secevents.server.settings import Settings
from tests.client_helpers import serve
from tests.support import create_test_app
from tests.writing import Keys, make_keys

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "openapi.json"
NPM_PROJECT = Path(__file__).resolve().parent / "generators"
PACKAGE = "secevents_client"  # openapi-python-client names it after the spec's title


def _operations() -> dict[str, tuple[str, str]]:
    """operationId → (method, path) of every operation of the spec."""
    spec = json.loads(SPEC.read_text())
    return {
        operation["operationId"]: (method, path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "operationId" in operation
    }


def _run(command: list[str], cwd: Path) -> str:
    # The generator formats its output with ruff, found on PATH (the virtualenv's).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The client openapi-python-client generates, imported (and forgotten afterwards)."""
    folder = tmp_path_factory.mktemp("openapi-python-client")
    generator = Path(sys.executable).parent / "openapi-python-client"
    output = _run([str(generator), "generate", "--path", str(SPEC), "--meta", "none"], folder)
    # No "Unsupported content type", no "Endpoint will not be generated": nothing left out.
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_python_client_has_every_operation(python_client: Any) -> None:
    api = Path(python_client.__file__).parent / "api"
    generated = {module.stem for module in api.glob("*/*.py") if module.stem != "__init__"}
    operations = _operations()
    assert {"create_incident", "update_incident", "delete_incident", "import_records"} <= set(operations)
    assert set(operations) == generated


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with serve(create_test_app(settings)) as url:
        yield url


def test_python_client_reads_and_writes_against_the_server(
    python_client: Any, base_url: str, keys: Keys
) -> None:
    client_module = importlib.import_module(f"{PACKAGE}.client")
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")
    list_incidents = importlib.import_module(f"{PACKAGE}.api.incidents.list_incidents")
    create_source = importlib.import_module(f"{PACKAGE}.api.sources.create_source")
    get_source = importlib.import_module(f"{PACKAGE}.api.sources.get_source")
    import_records = importlib.import_module(f"{PACKAGE}.api.imports.import_records")

    with client_module.Client(base_url=base_url) as anonymous:
        page = list_incidents.sync(client=anonymous, country=["PK"], limit=5)
    assert isinstance(page, models.IncidentPage)
    assert page.data and all(incident.location.country == "PK" for incident in page.data)

    with client_module.AuthenticatedClient(base_url=base_url, token=keys.write) as writer:
        body = models.SourceCreate(kind=models.SourceCreateKind.REPORT, title="Generated-client report")
        created = create_source.sync_detailed(client=writer, body=body, idempotency_key=str(uuid.uuid4()))
        assert created.status_code == 201, created.content
        assert isinstance(created.parsed, models.Source)
        again = get_source.sync(client=writer, record_id=created.parsed.id)
        assert isinstance(again, models.Source) and again.title == "Generated-client report"

    record = {"type": "source", "record": {"kind": "report", "title": "Imported by a generated client"}}
    ndjson = (json.dumps(record) + "\n").encode()
    with client_module.AuthenticatedClient(base_url=base_url, token=keys.admin) as admin:
        imported = import_records.sync_detailed(client=admin, body=types.File(payload=ndjson))
    assert imported.status_code == 200, imported.content
    assert isinstance(imported.parsed, models.ImportResult)


def test_openapi_typescript_types_cover_every_operation(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    assert npm is not None, "npm is missing: `make system-deps` installs .ci/apt-packages"
    for name in ("package.json", "package-lock.json"):
        shutil.copy(NPM_PROJECT / name, tmp_path / name)
    _run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], tmp_path)
    output = _run(
        [str(tmp_path / "node_modules" / ".bin" / "openapi-typescript"), str(SPEC), "-o", "secevents.d.ts"],
        tmp_path,
    )
    assert "error" not in output.lower() and "warn" not in output.lower(), output
    types = (tmp_path / "secevents.d.ts").read_text()
    for operation_id, (_, path) in _operations().items():
        assert f"    {operation_id}: {{" in types, operation_id
        assert f'"{path}": {{' in types, path
    # The import's body is typed (bytes of NDJSON), not left out.
    assert '"application/octet-stream": string' in types
