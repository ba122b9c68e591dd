"""What the API says in words: the spec's grammar and version, and the messages of bad input that
a person has to act on (issue 20, "Docs")."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import httpx

import secevents
from tests.support import assert_problem

SPEC = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def test_articles_before_vowels_in_the_spec_and_sdk() -> None:
    generated = Path(secevents.__file__).parent / "_generated"
    texts = [SPEC.read_text(), *(p.read_text() for p in generated.glob("*.py"))]
    for text in texts:
        assert not re.search(r"\ba (incident|organisation)\b", text)
    assert "Revision history of an incident" in texts[0]
    assert "One version of an organisation" in texts[0]
    assert "Revision history of a statement" in texts[0]


def test_the_spec_version_is_the_package_version() -> None:
    version = importlib.metadata.version("secevents")
    assert json.loads(SPEC.read_text())["info"]["version"] == version == secevents.__version__


async def test_a_malformed_bbox_is_explained_in_words(client: httpx.AsyncClient) -> None:
    for bad in ("1,2,3", "west,south,east,north", "10,20,200,30", "10,50,20,40"):
        response = await client.get("/v1/incidents", params={"bbox": bad})
        problem = assert_problem(response, 400, "invalid_parameter")
        detail = str(problem["detail"])
        assert detail.startswith("bbox: ")
        assert len(detail) < 100 and "^" not in detail and "[0-9]" not in detail, detail
    assert "four numbers: west,south,east,north" in str(
        (await client.get("/v1/incidents", params={"bbox": "1,2,3"})).json()["detail"]
    )


async def test_a_bad_group_by_lists_the_valid_keys(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/incidents/stats", params={"group_by": "yaer"})
    problem = assert_problem(response, 400, "invalid_request")
    detail = str(problem["detail"])
    for key in ("month", "year", "country", "admin1", "type", "organisation"):
        assert key in detail, detail
    assert "'yaer'" in detail
    # The same for an enum parameter of the list filters (declared by a dependency).
    response = await client.get("/v1/organisations", params={"kind": "gang"})
    detail = str(assert_problem(response, 400, "invalid_request")["detail"])
    assert "'gang'" in detail and "armed_group" in detail, detail
