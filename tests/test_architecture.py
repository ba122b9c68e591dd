"""Architecture contracts (import-linter, ``[tool.importlinter]`` in pyproject.toml) and the
package map: the check passes on the tree as it is, fails when a forbidden import appears, and
every package folder is installed under its ``secevents`` name."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.own_servers  # the same with any SECEVENTS_TEST_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
FOLDERS = {"secevents": "client", "secevents.schemas": "schemas", "secevents.server": "api",
           "secevents.migrations": "migrations", "secevents.data": "data"}  # fmt: skip


def link_tree(target: Path, *, replace: dict[str, Path] | None = None) -> Path:
    """The import names as links (what `make` builds in .build/), with some folders replaced."""
    package = target / "secevents"
    package.mkdir(parents=True)
    for entry in (ROOT / "client").iterdir():
        (package / entry.name).symlink_to(entry)
    for name, folder in {
        "server": "api",
        "schemas": "schemas",
        "migrations": "migrations",
        "data": "data",
    }.items():
        (package / name).symlink_to((replace or {}).get(name, ROOT / folder))
    return target


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(link_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("folder", "module", "source", "contract"),
    [
        ("schemas", "sneaky.py", "from secevents.server import db\n", "The shared Structs import nothing"),
        ("api", "http/sneaky.py", "from secevents.server.resources import ALL\n", "imports point down"),
        ("api", "sql/sneaky.py", "from secevents.server.sql import records\n", "No import cycles"),
    ],
)
def test_a_forbidden_import_fails_the_check(
    tmp_path: Path, folder: str, module: str, source: str, contract: str
) -> None:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(ROOT / folder), str(copy)], check=True)
    (copy / module).write_text(source)
    if contract == "No import cycles":  # records imports sneaky back: a cycle inside sql/
        records = copy / "sql" / "records.py"
        records.write_text(records.read_text() + "\nfrom secevents.server.sql import sneaky  # noqa\n")
    name = {"api": "server"}.get(folder, folder)
    result = lint_imports(link_tree(tmp_path / "tree", replace={name: copy}))
    assert result.returncode == 1, result.stdout
    assert f"{contract}" in result.stdout.split("Broken contracts")[1]


def test_every_package_folder_is_installed_under_secevents() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == FOLDERS
    found = set()
    for name, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *relative.parts]))
    assert sorted(config["packages"]) == sorted(found)
