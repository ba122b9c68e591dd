"""OpenAPI: shared response specs and the config of the generated document."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from schemas.problems import Problem


def problem(description: str) -> ResponseSpec:
    return ResponseSpec(Problem, description=description, media_type="application/problem+json")


# Every read can fail these ways; handlers add their own (404, 412, …) on top.
PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    400: problem("Invalid query parameter or request"),
    404: problem("No such record or route"),
    503: problem("The database is unavailable; retry after `Retry-After` seconds"),
}
