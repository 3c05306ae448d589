"""The OpenAPI document completes itself: security, scopes, idempotency, problems.

An apispec plugin sees every operation as flask-smorest registers it and adds,
from what the view already declares (its decorators) and where it lives (its
path), so no route documents any of this by hand and a new domain gets it free:

- `security`: the operator token on `/ops/v1`, the API key on `/api/v1`, with the
  scope `@requires_scope` demands (also as `x-required-scope` and in the text);
- the `Idempotency-Key` header on views wrapped by `@idempotent`;
- the problem+json responses each operation can give (API.md, Errors), all of
  one shared `Problem` schema, replacing flask-smorest's own error shape;
- path parameters named `*_id` as UUIDs (API.md, Ids).

Fields document themselves too: a marshmallow field with a `json_schema(ret)`
method (erp.fields) adds what its type alone cannot say (currencies, int64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apispec import APISpec, BasePlugin
from flask import Flask

from erp.errors import PROBLEM_MIMETYPE, PROBLEM_TYPES
from erp.idempotency import HEADER, REPLAYED

API_KEY_SCHEME = "apiKey"
OPERATOR_SCHEME = "operatorToken"
_WRITES = frozenset({"post", "put", "patch", "delete"})
_BODIES = frozenset({"post", "put", "patch"})

#: status -> (component name, when it happens): API.md, Errors.
_RESPONSES: dict[int, tuple[str, str]] = {
    400: ("MalformedRequest", "The body is not parseable JSON."),
    401: ("Unauthorized", "No, bad, revoked or expired credential."),
    403: ("Forbidden", "Missing scope; tenant suspended; not an operator."),
    404: ("NotFound", "Absent, or another tenant's."),
    405: ("MethodNotAllowed", "Method not allowed (with Allow)."),
    409: (
        "Conflict",
        "Idempotency key reused or in flight; a state that forbids the action; a taken "
        "value; a concurrent change (with Retry-After).",
    ),
    413: ("PayloadTooLarge", "The body is over the limit (1 MiB by default)."),
    415: ("UnsupportedMediaType", "The body is not application/json."),
    422: (
        "Validation",
        "Fails validation (body, query, path, cursor, unknown field or parameter) or a rule; "
        "`errors` names each field.",
    ),
    429: ("RateLimited", "Rate limited (with Retry-After)."),
    500: ("Internal", "A bug: no detail, only the request id."),
    503: ("Unavailable", "The database or queue is unavailable (with Retry-After)."),
}
_RESPONSE_HEADERS: dict[int, dict[str, str]] = {
    401: {"WWW-Authenticate": "The bearer challenge."},
    405: {"Allow": "The methods the path allows."},
    409: {"Retry-After": "Seconds to wait, when a concurrent change is the cause."},
    429: {"Retry-After": "Seconds to wait."},
    503: {"Retry-After": "Seconds to wait."},
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details (docs/problems.md lists every type).",
    "required": ["type", "title", "status", "detail", "request_id"],
    "properties": {
        "type": {"type": "string", "description": "A URI ending in the problem's slug."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "description": "Dotted field path (or parameter or header name) to its messages.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "request_id": {"type": "string"},
    },
}

IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": (
        "Makes the call safe to retry: a repeat with the same key and request returns the "
        f"stored result with `{REPLAYED}: true`; another request with the key is 409."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}


def _slugs(status: int) -> str:
    return ", ".join(f"`{slug}`" for slug, (_, s) in PROBLEM_TYPES.items() if s == status)


def _view_method(app: Flask, endpoint: str, method: str) -> Callable[..., Any] | None:
    view = app.view_functions.get(endpoint)
    view_class = getattr(view, "view_class", None)
    if view_class is not None:  # a MethodView: the method's own function carries the marks
        found: Callable[..., Any] | None = getattr(view_class, method, None)
        return found
    return view


def _security(path: str, scope: str | None) -> list[dict[str, list[str]]] | None:
    if path.startswith("/ops/"):
        return [{OPERATOR_SCHEME: []}]
    if path.startswith("/api/v1/"):
        return [{API_KEY_SCHEME: [scope] if scope else []}]
    return None


def _statuses(path: str, method: str, operation: dict[str, Any], secured: bool) -> list[int]:
    statuses = [422, 429, 500, 503]
    if method in _BODIES:
        statuses += [400, 413, 415]
    if secured:
        statuses += [401, 403]
    if "{" in path or {"404", 404} & set(operation.get("responses", {})):  # an id, or a view
        statuses.append(404)
    if method in _WRITES:
        statuses.append(409)
    return sorted(statuses)


class ErpDocs(BasePlugin):
    """Completes each operation from its view's marks; see the module docstring."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        spec.components.schema("Problem", PROBLEM_SCHEMA)
        spec.components.security_scheme(
            API_KEY_SCHEME,
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "erp_<env>_<public id>_<secret>",
                "description": "A tenant's API key, for /api/v1. Scopes: `<domain>:read` for "
                "GETs, `<domain>:write` for the rest; write implies read.",
            },
        )
        spec.components.security_scheme(
            OPERATOR_SCHEME,
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "erpop_<public id>_<secret>",
                "description": "An operator token (`erp operators create`), for /ops/v1.",
            },
        )
        spec.components.parameter("IdempotencyKey", "header", dict(IDEMPOTENCY_PARAMETER))
        for status, (name, when) in _RESPONSES.items():
            response: dict[str, Any] = {
                "description": f"{when} Problem types: {_slugs(status)}.",
                "content": {PROBLEM_MIMETYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
            headers = _RESPONSE_HEADERS.get(status)
            if headers:
                response["headers"] = {
                    h: {"description": d, "schema": {"type": "string"}} for h, d in headers.items()
                }
            spec.components.response(name, response)

    def operation_helper(
        self,
        path: str | None = None,
        operations: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        rule = kwargs.get("rule")
        if path is None or operations is None or rule is None:
            return
        for method, operation in operations.items():
            view = _view_method(self.app, rule.endpoint, method)
            scope: str | None = getattr(view, "_required_scope", None)
            security = _security(path, scope)
            if security is not None:
                operation["security"] = security
            if scope:
                operation["x-required-scope"] = scope
                note = f"Requires the scope `{scope}`."
                operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
            if getattr(view, "_idempotent", False):
                operation.setdefault("parameters", []).append("IdempotencyKey")  # a ref
                self._document_replay(operation)
            responses = operation.setdefault("responses", {})
            responses.pop("default", None)  # flask-smorest's error shape is not ours
            for status in _statuses(path, method, operation, security is not None):
                responses[str(status)] = _RESPONSES[status][0]  # a ref to the component

    @staticmethod
    def _document_replay(operation: dict[str, Any]) -> None:
        for status, response in operation.get("responses", {}).items():
            if str(status).startswith("2") and isinstance(response, dict):
                response.setdefault("headers", {})[REPLAYED] = {
                    "description": "`true` when this is the stored result of an earlier call.",
                    "schema": {"type": "string", "enum": ["true"]},
                }

    def path_helper(
        self,
        path: str | None = None,
        operations: dict[str, Any] | None = None,
        parameters: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> str | None:
        """Path parameters named `*_id` are UUIDs; anything else is 422 (API.md, Ids)."""
        for parameter in parameters or []:
            if parameter.get("in") == "path" and str(parameter.get("name", "")).endswith("_id"):
                parameter["schema"] = {"type": "string", "format": "uuid"}
        return None


def field_json_schema(self: Any, field: Any, ret: dict[str, Any]) -> dict[str, Any]:
    """apispec attribute function: a field's own `json_schema(ret)`, when it has one."""
    own = getattr(field, "json_schema", None)
    return dict(own(ret)) if callable(own) else {}


def install(app: Flask) -> dict[str, Any]:
    """`Api(app, spec_kwargs=install(app))`, then `finish(api)`, before any blueprint."""
    return {"extra_plugins": [ErpDocs(app)]}


def finish(api: Any) -> None:
    api.ma_plugin.converter.add_attribute_function(field_json_schema)
    # flask-smorest's error body and page-number pagination are not this API's shapes
    # (one `Problem` schema; cursor lists): keep them out of the document.
    for unused in ("Error", "PaginationMetadata"):
        api.spec.components.schemas.pop(unused, None)
