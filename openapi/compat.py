"""Does the current OpenAPI document break clients written against the released v1?

``python -m openapi.compat [BASELINE] [CURRENT]`` (defaults: ``openapi/v1-baseline.json``, the
spec as v1 was released, and ``openapi/openapi.json``) prints every breaking change and exits
1 when there is one; ``make lint`` runs it. Why a checker of our own: the maintained diff tools
(``oasdiff``) are Go, and no kept Python tool reads OpenAPI 3.1 offline.

Within v1 only additive changes are allowed (docs/DESIGN.md, "Versioning"). Breaking:

- a path or an operation removed (or its ``operationId`` renamed: generated clients name their
  methods by it);
- a parameter removed or renamed, made required, or newly added as required;
- a request body that becomes required, a request field removed (request Structs forbid unknown
  fields), a field newly required, an enum value removed from an input, an input type narrowed
  (a type dropped, or a bound tightened: ``maxLength``, ``maximum``, ``maxItems`` lower,
  ``minLength``, ``minimum``, ``minItems`` higher, a ``pattern`` changed);
- a success response removed, a media type of a body or response removed, a response field
  removed, no longer required, or given another type.

Not breaking: new paths, operations, optional parameters, optional input fields, response
fields and enum values in responses (response Structs accept unknown fields; the SDK too).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "v1-baseline.json"
CURRENT = HERE / "openapi.json"
ALTERNATIVES = "x-alternative-media-types"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")


class _Spec:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 50:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node, seen = target, seen + 1
        return node


def _types(schema: dict[str, Any], spec: _Spec) -> set[str] | None:
    """The JSON types a schema allows; None for "anything" (no type, or a union we do not expand)."""
    schema = spec.resolve(schema)
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        found: set[str] = set()
        for branch in branches:
            types = _types(branch, spec)
            if types is None:
                return None
            found |= types
        return found
    kind = schema.get("type")
    if kind is None:
        return {"null"} if schema.get("const", 0) is None else None
    return {kind} if isinstance(kind, str) else set(kind)


def _enum(schema: dict[str, Any], spec: _Spec) -> set[Any] | None:
    schema = spec.resolve(schema)
    if "enum" in schema:
        return {json.dumps(v) for v in schema["enum"]}
    if "const" in schema:
        return {json.dumps(schema["const"])}
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        values: set[Any] = set()
        for branch in branches:
            inner = _enum(branch, spec)
            if inner is None:
                if _types(branch, spec) == {"null"}:
                    values.add("null")
                    continue
                return None
            values |= inner
        return values
    return None


def _object_branch(schema: dict[str, Any], spec: _Spec) -> dict[str, Any] | None:
    """The object schema inside ``schema`` (itself, or the one object branch of a nullable union)."""
    schema = spec.resolve(schema)
    if "properties" in schema:
        return schema
    branches = [spec.resolve(b) for b in schema.get("oneOf") or schema.get("anyOf") or ()]
    objects = [b for b in branches if "properties" in b]
    return objects[0] if len(objects) == 1 else None


def _items(schema: dict[str, Any], spec: _Spec) -> dict[str, Any] | None:
    schema = spec.resolve(schema)
    if "items" in schema:
        return schema["items"]  # type: ignore[no-any-return]
    branches = [spec.resolve(b) for b in schema.get("oneOf") or schema.get("anyOf") or ()]
    arrays = [b for b in branches if "items" in b]
    return arrays[0]["items"] if len(arrays) == 1 else None


class Checker:
    def __init__(self, baseline: dict[str, Any], current: dict[str, Any]) -> None:
        self.old, self.new = _Spec(baseline), _Spec(current)
        self.problems: list[str] = []

    def report(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def run(self) -> list[str]:
        old_paths = self.old.document.get("paths", {})
        new_paths = self.new.document.get("paths", {})
        for path, old_item in old_paths.items():
            new_item = new_paths.get(path)
            if new_item is None:
                self.report(path, "path removed")
                continue
            for method in METHODS:
                if method in old_item:
                    where = f"{method.upper()} {path}"
                    if method not in new_item:
                        self.report(where, "operation removed")
                    else:
                        self.operation(where, old_item[method], new_item[method])
        return self.problems

    def operation(self, where: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        if old.get("operationId") != new.get("operationId"):
            self.report(
                where, f"operationId {old.get('operationId')!r} renamed to {new.get('operationId')!r}"
            )
        self.parameters(where, old.get("parameters", []), new.get("parameters", []))
        self.request_body(where, old.get("requestBody"), new.get("requestBody"))
        for code, old_response in old.get("responses", {}).items():
            if not code.startswith("2"):
                continue
            new_response = new.get("responses", {}).get(code)
            if new_response is None:
                self.report(where, f"response {code} removed")
                continue
            old_content = self.old.resolve(old_response).get("content", {})
            new_content = self.new.resolve(new_response).get("content", {})
            for media_type, old_media in old_content.items():
                if media_type not in new_content:
                    self.report(where, f"response {code} no longer offers {media_type}")
                    continue
                self.output(
                    f"{where} → {code} {media_type}",
                    old_media.get("schema", {}),
                    new_content[media_type].get("schema", {}),
                )

    def parameters(self, where: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
        def key(p: dict[str, Any]) -> tuple[str, str]:
            return (p["in"], p["name"].lower() if p["in"] == "header" else p["name"])

        olds = {key(p := self.old.resolve(x)): p for x in old}
        news = {key(p := self.new.resolve(x)): p for x in new}
        for k, old_parameter in olds.items():
            name = f"{where} parameter {k[1]!r} ({k[0]})"
            new_parameter = news.get(k)
            if new_parameter is None:
                self.report(name, "removed or renamed")
                continue
            if new_parameter.get("required") and not old_parameter.get("required"):
                self.report(name, "now required")
            self.input(name, old_parameter.get("schema", {}), new_parameter.get("schema", {}))
        for k, new_parameter in news.items():
            if k not in olds and new_parameter.get("required"):
                self.report(f"{where} parameter {k[1]!r} ({k[0]})", "new and required")

    def request_body(self, where: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if old is None:
            if new is not None and self.new.resolve(new).get("required"):
                self.report(where, "a request body is now required")
            return
        if new is None:
            self.report(where, "request body removed")
            return
        old, new = self.old.resolve(old), self.new.resolve(new)
        if new.get("required") and not old.get("required"):
            self.report(where, "request body now required")
        # Media types beside `content` (x-alternative-media-types: MessagePack, NDJSON) are still
        # accepted; generators only skip them.
        old_accepted = {**old.get(ALTERNATIVES, {}), **old.get("content", {})}
        new_accepted = {**new.get(ALTERNATIVES, {}), **new.get("content", {})}
        for media_type, old_media in old_accepted.items():
            new_media = new_accepted.get(media_type)
            if new_media is None:
                self.report(where, f"request body no longer accepts {media_type}")
                continue
            self.input(
                f"{where} body ({media_type})", old_media.get("schema", {}), new_media.get("schema", {})
            )

    # --- schemas: what a client sends must still be accepted --------------------------------

    def input(self, where: str, old: dict[str, Any], new: dict[str, Any], depth: int = 0) -> None:
        if depth > 20:
            return
        old_r, new_r = self.old.resolve(old), self.new.resolve(new)
        old_types, new_types = _types(old_r, self.old), _types(new_r, self.new)
        if new_types is not None and (old_types is None or not old_types <= new_types):
            self.report(
                where, f"input type narrowed from {sorted(old_types or ['any'])} to {sorted(new_types)}"
            )
        old_enum, new_enum = _enum(old_r, self.old), _enum(new_r, self.new)
        if new_enum is not None and (old_enum is None or not old_enum <= new_enum):
            removed = sorted((old_enum or {"<any value>"}) - new_enum)
            self.report(where, f"input values no longer accepted: {', '.join(removed)}")
        for bound in _UPPER_BOUNDS:
            if bound in new_r and (bound not in old_r or new_r[bound] < old_r[bound]):
                self.report(where, f"{bound} lowered to {new_r[bound]} (was {old_r.get(bound, 'unbounded')})")
        for bound in _LOWER_BOUNDS:
            if bound in new_r and (bound not in old_r or new_r[bound] > old_r[bound]):
                self.report(where, f"{bound} raised to {new_r[bound]} (was {old_r.get(bound, 'unbounded')})")
        if "pattern" in new_r and new_r["pattern"] != old_r.get("pattern"):
            self.report(where, f"pattern changed to {new_r['pattern']!r}")
        old_object, new_object = _object_branch(old_r, self.old), _object_branch(new_r, self.new)
        if old_object is not None and new_object is not None:
            old_required = set(old_object.get("required", ()))
            for field, old_field in old_object.get("properties", {}).items():
                new_field = new_object.get("properties", {}).get(field)
                if new_field is None:
                    self.report(f"{where}.{field}", "input field removed")
                    continue
                self.input(f"{where}.{field}", old_field, new_field, depth + 1)
            for field in set(new_object.get("required", ())) - old_required:
                self.report(f"{where}.{field}", "input field now required")
        old_items, new_items = _items(old_r, self.old), _items(new_r, self.new)
        if old_items is not None and new_items is not None:
            self.input(f"{where}[]", old_items, new_items, depth + 1)

    # --- schemas: what a client reads must still be there ------------------------------------

    def output(self, where: str, old: dict[str, Any], new: dict[str, Any], depth: int = 0) -> None:
        if depth > 20:
            return
        old_r, new_r = self.old.resolve(old), self.new.resolve(new)
        old_types, new_types = _types(old_r, self.old), _types(new_r, self.new)
        if old_types is not None and (new_types is None or not new_types <= old_types):
            self.report(
                where, f"output type changed from {sorted(old_types)} to {sorted(new_types or ['any'])}"
            )
        old_object, new_object = _object_branch(old_r, self.old), _object_branch(new_r, self.new)
        if old_object is not None and new_object is not None:
            new_required = set(new_object.get("required", ()))
            for field, old_field in old_object.get("properties", {}).items():
                new_field = new_object.get("properties", {}).get(field)
                if new_field is None:
                    self.report(f"{where}.{field}", "response field removed")
                    continue
                if field in old_object.get("required", ()) and field not in new_required:
                    self.report(f"{where}.{field}", "response field no longer always present")
                self.output(f"{where}.{field}", old_field, new_field, depth + 1)
        old_items, new_items = _items(old_r, self.old), _items(new_r, self.new)
        if old_items is not None and new_items is not None:
            self.output(f"{where}[]", old_items, new_items, depth + 1)


def breaking_changes(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return Checker(baseline, current).run()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    baseline_path = Path(args[0]) if args else BASELINE
    current_path = Path(args[1]) if len(args) > 1 else CURRENT
    problems = breaking_changes(json.loads(baseline_path.read_text()), json.loads(current_path.read_text()))
    for problem in problems:
        print(f"breaking: {problem}", file=sys.stderr)
    if problems:
        print(
            f"{len(problems)} change(s) would break v1 clients ({current_path} against {baseline_path})",
            file=sys.stderr,
        )
        return 1
    print(f"{current_path.name}: no breaking change against {baseline_path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
