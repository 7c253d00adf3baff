"""Schemathesis hooks for the API contract test (loaded through ``SCHEMATHESIS_HOOKS``).

Schemathesis' own ``positive_data_acceptance`` fails any schema-valid request that gets a 422.
Some rules cannot be written in JSON Schema — a template must compile in the sandbox, a phone
number must exist, a webhook host must resolve to a public address — and the document marks
each field that has such rules with a description starting ``checked beyond this schema:``.
This check allows a 422 on a schema-valid request only when the field the error names is one of
those; every other refusal of valid data is still a failure.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

MARK = "checked beyond this schema: "

_parsing = threading.Lock()
_parse = ast.parse


def _parse_one_at_a_time(*args: Any, **kwargs: Any) -> Any:
    with _parsing:
        return _parse(*args, **kwargs)


# CPython 3.11.7 tracks the AST recursion depth in shared state, so two threads
# parsing at once fail with "SystemError: AST constructor recursion depth mismatch" (CPython
# gh-106905). Hypothesis parses the source of each filter lambda to describe it, and
# ``--workers 2`` generates in two threads: the parses take turns.
ast.parse = _parse_one_at_a_time


@schemathesis.check
def positive_data_accepted_unless_semantic(ctx: Any, response: Any, case: Any) -> bool | None:
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code == 422 and _semantic(case, _error_field(response)):
            return None
        raise


def _error_field(response: Any) -> str:
    try:
        return str(response.json()["error"]["details"].get("field") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def _semantic(case: Any, field: str) -> bool:
    """Whether the document marks ``field`` of this operation as checked beyond its schema."""
    root = case.operation.schema.raw_schema
    operation = root["paths"][case.operation.path][case.method.lower()]
    parts = field.split(".") if field else []
    if parts and parts[0] == "query":
        return any(
            _marked(root, p.get("schema", {}), parts[2:]) or MARK in p.get("description", "")
            for p in operation.get("parameters", [])
            if p["in"] == "query" and len(parts) > 1 and p["name"] == parts[1]
        )
    for param in operation.get("parameters", []):
        if param["in"] in ("path", "header") and parts and param["name"] == parts[0]:
            return _marked(root, param.get("schema", {}), parts[1:]) or MARK in param.get("description", "")
    content = operation.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content and parts and parts != ["body"]:  # a form field by its name
        return _marked(root, content["multipart/form-data"]["schema"], parts)
    if "application/json" not in content:  # a raw body: the error names the body itself
        return parts == ["body"] and any(_marked(root, media.get("schema", {}), []) for media in content.values())
    return _marked(root, content["application/json"]["schema"], parts)


def _marked(root: dict[str, Any], schema: dict[str, Any], parts: list[str]) -> bool:
    """Whether a schema reached by following ``parts`` from ``schema`` (through every anyOf /
    oneOf alternative) carries the mark, on the way or at the end."""
    stack = [(schema, parts)]
    while stack:
        node, rest = stack.pop()
        node = _resolve(root, node)
        if MARK in str(node.get("description", "")):
            return True
        for key in ("anyOf", "oneOf", "allOf"):
            stack.extend((alternative, rest) for alternative in node.get(key, []))
        if not rest:
            continue
        head, tail = rest[0], rest[1:]
        if head in node.get("properties", {}):
            stack.append((node["properties"][head], tail))
        elif isinstance(node.get("additionalProperties"), dict):
            stack.append((node["additionalProperties"], tail))
        if head.isdigit():
            index = int(head)
            prefix = node.get("prefixItems", [])
            stack.append((prefix[index] if index < len(prefix) else node.get("items", {}), tail))
    return False


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node
