"""The OpenAPI 3.1 document, generated from the operations declared with :func:`ccm.http.endpoint`
and the very pydantic models that validate their requests."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ccm.http import OPERATIONS, Operation

REF = "#/components/schemas/{model}"


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorBody


def openapi_document(*, title: str = "CCM API", version: str = "1") -> dict[str, Any]:
    models = _models()
    keys, schema = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    refs = {model: keys[(model, "validation")]["$ref"] for model in models}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "a CCM API key"}},
        },
        "security": [{"apiKey": []}],
    }


def _models() -> list[type[BaseModel]]:
    found: dict[type[BaseModel], None] = {ErrorResponse: None}
    for op in OPERATIONS:
        for model in (op.body, op.query, *op.responses.values()):
            if model is not None:
                found[model] = None
    return list(found)


def _operation(op: Operation, refs: dict[type[BaseModel], str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "operationId": f"{op.tag}.{op.method}{op.path}",
                            "parameters": _parameters(op), "responses": _responses(op, refs)}
    if op.body is not None:
        spec["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": refs[op.body]}}}}
    if op.public:
        spec["security"] = []
    return spec


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in re.findall(r"{(\w+)}", op.path)]
    if op.query is not None:
        for name, field in op.query.model_fields.items():
            params.append({"name": name, "in": "query", "required": field.is_required(),
                           "description": field.description or "", "schema": {}})
    params += [{"name": header, "in": "header", "required": False, "schema": {"type": "string"}}
               for header in op.headers]
    return params


def _responses(op: Operation, refs: dict[type[BaseModel], str]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, model in op.responses.items():
        content = {"application/json": {"schema": {"$ref": refs[model]}}} if model else None
        responses[str(status)] = {"description": "success", **({"content": content} if content else {})}
    error = {"description": "error", "content": {"application/json": {"schema": {"$ref": refs[ErrorResponse]}}}}
    for status in ("401", "404", "422") if not op.public else ("404",):
        responses[status] = error
    return responses
