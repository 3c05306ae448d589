"""Every error is RFC 9457 problem+json with a request id (API.md, Errors)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import text

from erp.errors import PROBLEM_TYPES, Problem, flatten_errors
from erp.extensions import db
from erp.http import ErpFlask
from tests.conftest import TenantHandle
from tests.core.conftest import AppFactory
from tests.core.helpers import assert_problem
from tests.problem_docs import documented_problems


def test_unknown_route_is_404(client: Any) -> None:
    for path in ("/nope", "/api/nope", "/api/v2/me"):
        problem = assert_problem(client.get(path), 404, "not-found")
        assert problem["type"] == "/problems/not-found"


def test_unknown_route_under_the_api_with_a_key_is_404(client: Any, tenant: TenantHandle) -> None:
    assert_problem(client.get("/api/v1/nope", headers=tenant.headers), 404, "not-found")


def test_wrong_method_is_405(client: Any, tenant: TenantHandle) -> None:
    r = client.put("/api/v1/me", headers=tenant.headers)
    assert_problem(r, 405, "method-not-allowed")
    assert "GET" in r.headers["Allow"]
    assert_problem(client.post("/healthz"), 405, "method-not-allowed")


def test_malformed_json_is_400(client: Any, tenant: TenantHandle) -> None:
    r = client.post(
        "/api/v1/api-keys",
        data=b'{"name": "x", "scopes": [',
        content_type="application/json",
        headers=tenant.headers,
    )
    problem = assert_problem(r, 400, "malformed-request")
    assert "JSON" in problem["detail"]


def test_non_json_body_is_415(client: Any, tenant: TenantHandle) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        r = client.post(
            "/api/v1/api-keys", data=b"name=x", content_type=content_type, headers=tenant.headers
        )
        assert_problem(r, 415, "unsupported-media-type")


def test_json_with_charset_is_accepted(client: Any, tenant: TenantHandle) -> None:
    r = client.post(
        "/api/v1/api-keys",
        data=json.dumps({"name": "x", "scopes": ["ledger:read"]}),
        content_type="application/json; charset=utf-8",
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.get_json()


def test_body_over_the_limit_is_413(client: Any, tenant: TenantHandle, app: ErpFlask) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 1024 * 1024
    big = json.dumps({"name": "x" * limit, "scopes": ["ledger:read"]})
    r = client.post(
        "/api/v1/api-keys", data=big, content_type="application/json", headers=tenant.headers
    )
    assert_problem(r, 413, "payload-too-large")
    # refused before authentication, and on a route that would not read the body
    r = client.post(
        f"/ops/v1/tenants/{tenant.id}/reactivate", data=big, content_type="application/json"
    )
    assert_problem(r, 413, "payload-too-large")
    r = client.post(
        "/api/v1/api-keys",
        data=big[: limit - 10],
        content_type="application/json",
        headers=tenant.headers,
    )
    assert_problem(r, 400, "malformed-request")  # under the limit: parsed, and cut short


def test_validation_errors_name_dotted_fields(client: Any, tenant: TenantHandle) -> None:
    r = client.post(
        "/api/v1/api-keys",
        json={"name": 5, "scopes": ["ledger:read", ["x"]], "bogus": 1},
        headers=tenant.headers,
    )
    problem = assert_problem(r, 422, "validation")
    assert set(problem["errors"]) == {"name", "scopes.1", "bogus"}
    for messages in problem["errors"].values():
        assert isinstance(messages, list)
        assert all(isinstance(m, str) for m in messages)


def test_query_validation_names_the_parameter(client: Any, tenant: TenantHandle) -> None:
    r = client.get("/api/v1/api-keys?limit=abc", headers=tenant.headers)
    assert "limit" in assert_problem(r, 422, "validation")["errors"]


def test_flatten_errors_makes_dotted_paths() -> None:
    nested = {"entries": {0: {"amount": ["Not a valid integer."]}, 2: {"x": ["bad"]}}}
    assert flatten_errors(nested) == {
        "entries.0.amount": ["Not a valid integer."],
        "entries.2.x": ["bad"],
    }
    assert flatten_errors(["whole body"]) == {"_schema": ["whole body"]}


def test_every_documented_problem_is_answered_as_documented(app: ErpFlask) -> None:
    """Each row of docs/problems.md, raised and answered by the app's own error handler."""
    documented = documented_problems()
    assert len(documented) >= len(PROBLEM_TYPES) > 10
    for slug, (title, status) in documented.items():
        with app.test_request_context("/api/v1/anything"):
            r = app.make_response(app.handle_user_exception(Problem(slug)))
        assert r.status_code == status, slug
        assert r.mimetype == "application/problem+json"
        body = json.loads(r.get_data())
        assert (body["type"], body["title"], body["status"]) == (f"/problems/{slug}", title, status)
    with pytest.raises(ValueError, match="undocumented"):
        Problem("made-up")


def test_request_id_is_echoed_when_sane_and_replaced_when_not(client: Any) -> None:
    r = client.get("/nope", headers={"X-Request-Id": "abc-123.x_y"})
    assert r.headers["X-Request-Id"] == "abc-123.x_y"
    assert r.get_json()["request_id"] == "abc-123.x_y"
    for bad in ("has space", "x" * 200, "<script>"):
        r = client.get("/nope", headers={"X-Request-Id": bad})
        assert r.headers["X-Request-Id"] != bad
        assert len(r.headers["X-Request-Id"]) == 32
    ok = client.get("/healthz")
    assert len(ok.headers["X-Request-Id"]) == 32


@pytest.fixture
def failing_app(make_app: AppFactory) -> ErpFlask:
    app = make_app()

    @app.get("/test/boom")
    def boom() -> Any:
        raise RuntimeError("secret internals: /etc/shadow")

    @app.get("/test/db-error")
    def db_error() -> Any:
        db.session.execute(text("SELECT * FROM no_such_table_xyz"))
        return {}

    @app.get("/test/db-unique")
    def db_unique() -> Any:
        db.session.execute(text("SELECT 1/0 AS zzz_division"))
        return {}

    return app


def test_unhandled_error_is_500_without_a_stack_trace(
    failing_app: ErpFlask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        r = failing_app.test_client().get("/test/boom")
    problem = assert_problem(r, 500, "internal")
    text_body = r.get_data(as_text=True)
    for leak in ("Traceback", "secret internals", "RuntimeError", "boom", ".py"):
        assert leak not in text_body
    assert set(problem) == {"type", "title", "status", "detail", "request_id"}
    # the log has what the response hides, under the same request id
    assert any("secret internals" in (r.exc_text or "") or r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    ("path", "leak"), [("/test/db-error", "no_such_table_xyz"), ("/test/db-unique", "zzz")]
)
def test_a_database_error_never_leaks_its_text(
    failing_app: ErpFlask, tenant: TenantHandle, path: str, leak: str
) -> None:
    r = failing_app.test_client().get(path)
    assert_problem(r, 500, "internal")
    body = r.get_data(as_text=True)
    assert leak not in body
    assert "SELECT" not in body
    assert "psycopg" not in body


def test_an_unreachable_database_is_503_with_retry_after(
    make_app: AppFactory, tenant: TenantHandle, ops_headers: dict[str, str]
) -> None:
    app = make_app(database_url="postgresql://erp_app:x@127.0.0.1:1/nowhere")
    client = app.test_client()
    for r in (
        client.get("/api/v1/me", headers=tenant.headers),
        client.get("/ops/v1/tenants", headers=ops_headers),
    ):
        assert_problem(r, 503, "unavailable")
        assert r.headers["Retry-After"]
        assert "127.0.0.1:1" not in r.get_data(as_text=True)
