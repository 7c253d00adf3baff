"""The OpenAPI 3.1 document, generated from the operations declared with :func:`ccm.http.endpoint`:
requests are described by the very models that validate them (validation mode), answers by the
models they are serialized through (serialization mode), so the two cannot drift."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from ccm.access import roles_allowing
from ccm.http import MAX_BODY_BYTES, OPERATIONS, Operation
from ccm.validation import SEMANTIC_HINT

REF = "#/components/schemas/{model}"

ERROR_STATUSES = {
    400: "the request could not be read",
    401: "missing, unknown or revoked API key",
    403: "the API key's role may not do this; the message names the roles that may",
    404: "no such object in this workspace",
    409: "conflicts with the current state",
    413: f"body too large (JSON bodies: {MAX_BODY_BYTES} bytes; raw bodies: CCM_MAX_REQUEST_BYTES)",
    422: "invalid input; details.field names the field",
    503: "the database is unavailable; nothing was changed, retry after Retry-After seconds",
}
SERVER_LIMITS = {
    414: "the request line is longer than the HTTP server takes (gunicorn: 4094 bytes); answered by the server",
    431: "the request headers are larger than the HTTP server takes; answered by the server",
}
"""What the WSGI server in front of CCM answers before CCM sees the request, in its own format."""


RULES = (
    "Rules for every operation, beyond each schema: no string anywhere (bodies, paths, queries, "
    "forms) may contain NUL (U+0000) or an unpaired surrogate; numbers are finite (no NaN or "
    "Infinity); integers in free-form data (attributes, template data) fit in 64 bits; each query "
    f"parameter is given once. JSON bodies are at most {MAX_BODY_BYTES} bytes, raw bodies "
    "CCM_MAX_REQUEST_BYTES. Breaking a rule is a 422 (413 for size) whose details.field names the "
    "field; nothing is changed. Fields whose description starts 'checked beyond this schema:' have "
    "rules a schema cannot state (a template must compile, a phone number must exist) and may be "
    "refused with a 422 naming them."
)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorBody


class DocumentSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema, with dictionaries whose keys are constrained said so that
    validators enforce it: ``propertyNames`` + ``additionalProperties`` rather than
    ``patternProperties``, which lets any key that does not match through unchecked."""

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        result = super().dict_schema(schema)
        patterns = result.pop("patternProperties", None)
        if patterns:
            ((pattern, values),) = patterns.items()
            result["propertyNames"] = {**result.get("propertyNames", {}), "pattern": pattern}
            result["additionalProperties"] = values
        return result


def openapi_document(*, title: str = "CCM API", version: str = "1") -> dict[str, Any]:
    inputs, outputs = _models()
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((m, "validation") for m in inputs),
        *((m, "serialization") for m in outputs),
    ]
    keys, schema = models_json_schema(pairs, ref_template=REF, schema_generator=DocumentSchema)
    components: dict[str, Any] = schema.get("$defs", {})
    refs: Refs = {pair: keys[pair]["$ref"] for pair in pairs}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": RULES},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "a CCM API key"}},
        },
        "security": [{"apiKey": []}],
    }


def error_statuses(op: Operation) -> list[int]:
    """Every error status the operation may answer: what any operation may (503), what its inputs
    may (422, 413), authentication and roles (401, 403), objects named in its path (404), and its own."""
    statuses = {503, *op.errors}
    takes_body = op.body is not None or op.raw_body or op.body_content
    if takes_body or op.query is not None or op.path_params is not None:
        statuses.add(422)
    if takes_body:
        statuses.add(413)
    if not op.public:
        statuses.update((401, 403))
    if op.path_params is not None:
        statuses.add(404)
    return sorted(statuses)


def _models() -> tuple[list[type[BaseModel]], list[type[BaseModel]]]:
    inputs: dict[type[BaseModel], None] = {}
    outputs: dict[type[BaseModel], None] = {ErrorResponse: None}
    for op in OPERATIONS:
        inputs.update({model: None for model in (op.body, op.query, op.path_params) if model is not None})
        outputs.update({model: None for model in op.responses.values() if model is not None})
    return list(inputs), list(outputs)


Refs = dict[tuple[type[BaseModel], JsonSchemaMode], str]


def _operation(op: Operation, refs: Refs, components: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{op.tag}.{op.method}{op.path}",
        "parameters": _parameters(op, refs, components),
        "responses": _responses(op, refs),
    }
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": refs[(op.body, "validation")]}}},
        }
    elif op.raw_body:
        raw = {
            "schema": {
                "type": "string",
                "format": "binary",
                "minLength": 1,
                "description": SEMANTIC_HINT + "an RFC 5322 message: header fields, no NUL bytes",
            }
        }
        spec["requestBody"] = {"required": True, "content": {op.raw_body: raw, "application/octet-stream": raw}}
    elif op.body_content:
        spec["requestBody"] = {"required": True, "content": op.body_content}
    if op.public:
        spec["security"] = []
    if op.permission is not None:
        spec["x-permission"] = op.permission.value
        roles = ", ".join(roles_allowing(op.permission))
        spec["description"] = f"Needs the permission `{op.permission.value}` (roles: {roles})."
    return spec


def _parameters(op: Operation, refs: Refs, components: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    for location, model in (("path", op.path_params), ("query", op.query)):
        if model is None:
            continue
        schema = _resolve(refs[(model, "validation")], components)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param = {
                "name": name,
                "in": location,
                "required": location == "path" or name in required,
                "schema": {key: value for key, value in prop.items() if key not in ("title", "description")},
            }
            if prop.get("description"):
                param["description"] = prop["description"]
            params.append(param)
    params += [
        {
            "name": header,
            "in": "header",
            "required": False,
            "description": spec.get("description", ""),
            "schema": {key: value for key, value in spec.items() if key != "description"},
        }
        for header, spec in op.headers.items()
    ]
    return params


def _resolve(ref: str, components: dict[str, Any]) -> dict[str, Any]:
    return components[ref.rsplit("/", 1)[-1]]


def _responses(op: Operation, refs: Refs) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, model in op.responses.items():
        answer: dict[str, Any] = {"description": "success"}
        if op.produces and model is None:
            answer["content"] = {op.produces: {"schema": {"type": "string"}}}
        elif model is not None:
            answer["content"] = {"application/json": {"schema": {"$ref": refs[(model, "serialization")]}}}
        responses[str(status)] = answer
    error = {"$ref": refs[(ErrorResponse, "serialization")]}
    for status in error_statuses(op):
        responses[str(status)] = {
            "description": ERROR_STATUSES[status],
            "content": {"application/json": {"schema": error}},
        }
        if status == 503:
            responses["503"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "required": True}}
    responses.update({str(status): {"description": text} for status, text in SERVER_LIMITS.items()})
    return responses
