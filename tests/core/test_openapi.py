"""The served OpenAPI document is valid and complete (DESIGN.md §5, API.md).

Every rule here is checked over every operation, so a new domain's routes are
held to it without a line of test of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from erp.errors import PROBLEM_MIMETYPE
from erp.http import ErpFlask

METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def spec(app: ErpFlask) -> dict[str, Any]:
    r = app.test_client().get("/api/v1/openapi.json")
    assert r.status_code == 200
    return dict(r.get_json())


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = spec["components"][kind][name]
    return node


def test_the_document_passes_the_openapi_validator(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_every_operation_declares_its_credential(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http"}
    assert {s["scheme"] for s in schemes.values()} == {"bearer"}
    for path, method, op in _operations(spec):
        [requirement] = op["security"]
        [(scheme, _scopes)] = requirement.items()
        expected = "operatorToken" if path.startswith("/ops/v1/") else "apiKey"
        assert scheme == expected, (method, path)


def test_every_tenant_operation_names_its_scope(spec: dict[str, Any], app: ErpFlask) -> None:
    """GETs need `<domain>:read`, every other method `<domain>:write` (API.md, Scopes)."""
    checked = 0
    for path, method, op in _operations(spec):
        if not path.startswith("/api/v1/") or path == "/api/v1/me":
            continue
        [scope] = op["security"][0]["apiKey"]
        assert op["x-required-scope"] == scope
        assert f"`{scope}`" in op["description"]
        assert scope.endswith(":read" if method == "get" else ":write"), (method, path, scope)
        checked += 1
    assert checked >= 15
    me = spec["paths"]["/api/v1/me"]["get"]
    assert me["security"] == [{"apiKey": []}]
    assert "x-required-scope" not in me


def test_idempotency_key_is_documented_on_state_changing_posts(spec: dict[str, Any]) -> None:
    documented, missing = set(), set()
    for path, method, op in _operations(spec):
        refs = [p.get("$ref", "") for p in op.get("parameters", [])]
        has = "#/components/parameters/IdempotencyKey" in refs
        if has:
            documented.add(path)
            ok = [r for s, r in op["responses"].items() if s.startswith("2")]
            assert all("Idempotent-Replayed" in r.get("headers", {}) for r in ok), path
        if method == "post" and not has:
            missing.add(path)
        if method != "post":
            assert not has, (method, path)
    assert not missing, f"POSTs without @idempotent: {sorted(missing)}"
    assert {"/api/v1/ledger/transactions", "/ops/v1/tenants", "/api/v1/api-keys"} <= documented
    header = spec["components"]["parameters"]["IdempotencyKey"]
    assert (header["in"], header["name"]) == ("header", "Idempotency-Key")
    assert header["schema"]["maxLength"] == 255


def test_every_error_response_is_one_problem_schema(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert "Problem" in schemas
    assert "Error" not in schemas  # flask-smorest's own error shape is gone
    for path, method, op in _operations(spec):
        statuses = {int(s) for s in op["responses"] if s != "default"}
        assert "default" not in op["responses"], (method, path)
        assert {401, 403, 422, 429, 500, 503} <= statuses, (method, path)
        if "requestBody" in op:
            assert {400, 413, 415} <= statuses, (method, path)
        if "{" in path:
            assert 404 in statuses, (method, path)
        if method != "get":
            assert 409 in statuses, (method, path)
        for status in statuses:
            if status < 400:
                continue
            response = _resolve(spec, op["responses"][str(status)])
            assert list(response["content"]) == [PROBLEM_MIMETYPE], (method, path, status)
            schema = response["content"][PROBLEM_MIMETYPE]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}


def test_id_path_parameters_are_uuids(spec: dict[str, Any]) -> None:
    seen = 0
    for item in spec["paths"].values():
        for parameter in item.get("parameters", []):
            if parameter["name"].endswith("_id"):
                assert parameter["schema"] == {"type": "string", "format": "uuid"}
                seen += 1
    assert seen >= 5


def _strings(spec: dict[str, Any], schema: dict[str, Any], where: str) -> Iterator[tuple[str, Any]]:
    schema = _resolve(spec, schema)
    if schema.get("type") == "string" or "string" in (schema.get("type") or []):
        yield where, schema
    for name, prop in schema.get("properties", {}).items():
        yield from _strings(spec, prop, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _strings(spec, schema["items"], f"{where}.items")
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        yield from _strings(spec, option, where)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _strings(spec, schema["additionalProperties"], f"{where}.*")


def test_every_string_the_api_accepts_has_a_maximum(spec: dict[str, Any]) -> None:
    """A string in a body or query has maxLength, or is an enum or a fixed format."""
    bounded = 0
    for path, method, op in _operations(spec):
        sources = [(p["name"], p["schema"]) for p in op.get("parameters", []) if "schema" in p]
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            sources.append(("body", body["schema"]))
        for name, schema in sources:
            for where, string in _strings(spec, schema, f"{method} {path} {name}"):
                fixed = "enum" in string or string.get("format") in {"uuid", "date-time"}
                assert fixed or "maxLength" in string, where
                bounded += 1
    assert bounded >= 20
