"""The OpenAPI document's shared parts: every operation's error responses (api/problems.py)."""

from typing import Any

from .problems import STATUSES

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problems(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS: every operation answers its errors with a Problem."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status in STATUSES:
                responses.setdefault(
                    str(status),
                    {
                        "description": "A problem (RFC 9457).",
                        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
                    },
                )
    return result


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "description": "urn:clientwindow:problem:<code>"},
        "title": {"type": "string", "description": "The HTTP status phrase."},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What is wrong."},
        "errors": {
            "type": "object",
            "description": "Per field, what is wrong with it (problems of type `invalid`).",
            "additionalProperties": True,
        },
    },
    "required": ["type", "title", "status", "detail"],
}
