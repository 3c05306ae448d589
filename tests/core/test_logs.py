"""Structured logs: one JSON object a line, with request id, tenant and principal; no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from erp.logs import JsonFormatter
from tests.conftest import TenantHandle
from tests.core.conftest import AppFactory


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_request_lines_carry_request_tenant_and_principal(
    client: Any, tenant: TenantHandle, log_lines: io.StringIO
) -> None:
    r = client.get("/api/v1/me", headers=tenant.headers)
    assert r.status_code == 200
    lines = [x for x in _records(log_lines) if x.get("path") == "/api/v1/me"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == r.headers["X-Request-Id"]
    assert line["tenant_id"] == str(tenant.id)
    assert line["principal"] == f"api_key:{tenant.key_id}"
    assert line["status"] == 200
    assert line["method"] == "GET"
    assert isinstance(line["ms"], int | float)
    assert {"ts", "level", "logger", "msg"} <= set(line)


def test_operator_lines_name_the_operator_and_no_tenant(
    client: Any, ops_headers: dict[str, str], log_lines: io.StringIO
) -> None:
    client.get("/ops/v1/tenants", headers=ops_headers)
    (line,) = [x for x in _records(log_lines) if x.get("path") == "/ops/v1/tenants"]
    assert line["principal"].startswith("operator:")
    assert line["tenant_id"] is None


def test_no_line_holds_a_key_or_token(
    client: Any,
    tenant: TenantHandle,
    ops_headers: dict[str, str],
    operator_token: str,
    make_app: AppFactory,
    log_lines: io.StringIO,
) -> None:
    created = client.post(
        "/api/v1/api-keys",
        json={"name": "logged?", "scopes": ["ledger:read"]},
        headers={**tenant.headers, "Idempotency-Key": "log-test"},
    ).get_json()["key"]
    client.get("/api/v1/me", headers={"Authorization": f"Bearer {created}"})
    client.get("/api/v1/me", headers={"Authorization": f"Bearer {created}x"})  # 401
    client.get(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers)
    client.get("/ops/v1/tenants", headers={"Authorization": f"Bearer {operator_token}x"})
    broken = make_app()

    @broken.get("/api/v1/test-boom")
    def boom() -> Any:
        raise RuntimeError("failure while serving")

    r = broken.test_client().get("/api/v1/test-boom", headers=tenant.headers)
    assert r.status_code == 500
    text = log_lines.getvalue()
    records = _records(log_lines)
    assert any(x["msg"] == "unhandled error" and "exc" in x for x in records)
    assert len(records) >= 6
    for secret in (tenant.key, created, operator_token):
        assert secret not in text
        assert secret.rsplit("_", 1)[1] not in text


def test_the_fast_request_line_is_the_ordinary_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """erp.logs.access writes the request line itself when the JSON handler is the only
    one (production): the same object as logger.info would write, no LogRecord built."""
    from erp import logs
    from erp.context import current_actor, current_request_id

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])  # pytest's capture handlers aside
    monkeypatch.setattr(root, "level", logging.INFO)
    built = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        built.append(args)
        return factory(*args, **kwargs)

    logging.setLogRecordFactory(counting)
    tokens = [current_request_id.set("req-1"), current_actor.set("api_key:k")]
    fields = {"method": "GET", "path": "/api/v1/me", "status": 200, "ms": 1.5, "note": "é\n"}
    try:
        monkeypatch.setattr(logs, "_FAST_HANDLER", handler)
        logs.access(logging.getLogger("erp.http"), fields)
        assert built == []
        monkeypatch.setattr(logs, "_FAST_HANDLER", None)
        logs.access(logging.getLogger("erp.http"), fields)
        assert len(built) == 1
    finally:
        logging.setLogRecordFactory(factory)
        for token in reversed(tokens):
            token.var.reset(token)  # type: ignore[attr-defined]
    fast, ordinary = _records(stream)
    assert fast.pop("ts")
    assert ordinary.pop("ts")
    assert fast == ordinary
    assert fast["msg"] == "request"
    assert fast["request_id"] == "req-1"
