"""The v1 compatibility check (openapi/compat.py): the committed spec keeps every promise of the
released v1 (openapi/v1-baseline.json), and each kind of breaking edit is caught."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from openapi import compat

pytestmark = pytest.mark.own_servers  # the same with any SECEVENTS_TEST_DATABASE_URL

BASELINE: dict[str, Any] = json.loads(compat.BASELINE.read_text())
CURRENT: dict[str, Any] = json.loads(compat.CURRENT.read_text())


def test_the_committed_spec_does_not_break_v1() -> None:
    assert compat.breaking_changes(BASELINE, CURRENT) == []
    assert compat.main([]) == 0


def test_the_baseline_is_the_released_v1() -> None:
    assert BASELINE["info"]["title"] == "secevents"
    assert {"/v1/incidents", "/v1/incidents/{record_id}", "/v1/changes", "/v1/imports"} <= set(
        BASELINE["paths"]
    )


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["components"]["schemas"][name]
    return schema


def _parameter(spec: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    return next(p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name)


def _remove_path(spec: dict[str, Any]) -> None:
    del spec["paths"]["/v1/incidents/stats"]


def _remove_operation(spec: dict[str, Any]) -> None:
    del spec["paths"]["/v1/incidents"]["post"]


def _rename_operation(spec: dict[str, Any]) -> None:
    spec["paths"]["/v1/incidents"]["get"]["operationId"] = "incidents_index"


def _rename_parameter(spec: dict[str, Any]) -> None:
    _parameter(spec, "/v1/incidents", "min_killed")["name"] = "killed_at_least"


def _require_parameter(spec: dict[str, Any]) -> None:
    _parameter(spec, "/v1/incidents", "country")["required"] = True


def _new_required_parameter(spec: dict[str, Any]) -> None:
    spec["paths"]["/v1/incidents"]["get"]["parameters"].append(
        {"name": "tenant", "in": "query", "required": True, "schema": {"type": "string"}}
    )


def _remove_enum_value(spec: dict[str, Any]) -> None:
    enum = _parameter(spec, "/v1/incidents", "sort")["schema"]["enum"]
    enum.remove(enum[-1])


def _narrow_parameter_type(spec: dict[str, Any]) -> None:
    schema = _parameter(spec, "/v1/incidents", "limit")["schema"]
    schema["maximum"] = schema.get("maximum", 500) - 100


def _remove_response_field(spec: dict[str, Any]) -> None:
    del _schema(spec, "Incident")["properties"]["summary"]


def _response_field_type(spec: dict[str, Any]) -> None:
    _schema(spec, "Incident")["properties"]["version"] = {"type": "string"}


def _new_required_input(spec: dict[str, Any]) -> None:
    body = spec["paths"]["/v1/incidents"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    target = _schema(spec, body["$ref"].rsplit("/", 1)[-1]) if "$ref" in body else body
    target.setdefault("required", []).append("summary")


def _remove_response_media_type(spec: dict[str, Any]) -> None:
    del spec["paths"]["/v1/incidents"]["get"]["responses"]["200"]["content"]["application/json"]


BREAKING: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "path removed": (_remove_path, "/v1/incidents/stats: path removed"),
    "operation removed": (_remove_operation, "POST /v1/incidents: operation removed"),
    "operation renamed": (_rename_operation, "operationId 'list_incidents' renamed"),
    "parameter renamed": (_rename_parameter, "parameter 'min_killed' (query): removed or renamed"),
    "parameter now required": (_require_parameter, "parameter 'country' (query): now required"),
    "new required parameter": (_new_required_parameter, "parameter 'tenant' (query): new and required"),
    "enum value removed": (_remove_enum_value, "input values no longer accepted"),
    "bound tightened": (_narrow_parameter_type, "maximum lowered"),
    "response field removed": (_remove_response_field, ".summary: response field removed"),
    "response field retyped": (_response_field_type, ".version: output type changed"),
    "new required input": (_new_required_input, ".summary: input field now required"),
    "media type removed": (_remove_response_media_type, "no longer offers application/json"),
}


@pytest.mark.parametrize("edit", list(BREAKING))
def test_a_breaking_edit_fails_the_check(
    edit: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    change, expected = BREAKING[edit]
    edited = copy.deepcopy(CURRENT)
    change(edited)
    problems = compat.breaking_changes(BASELINE, edited)
    assert any(expected in problem for problem in problems), problems
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(edited))
    assert compat.main([str(compat.BASELINE), str(path)]) == 1
    assert expected in capsys.readouterr().err


def test_additive_changes_pass() -> None:
    edited = copy.deepcopy(CURRENT)
    edited["paths"]["/v1/things"] = {
        "get": {"operationId": "list_things", "responses": {"200": {"description": "ok"}}}
    }
    _schema(edited, "Incident")["properties"]["new_field"] = {"type": "string"}
    edited["paths"]["/v1/incidents"]["get"]["parameters"].append(
        {"name": "new_filter", "in": "query", "required": False, "schema": {"type": "string"}}
    )
    _parameter(edited, "/v1/incidents", "sort")["schema"]["enum"].append("-new_order")
    assert compat.breaking_changes(BASELINE, edited) == []
