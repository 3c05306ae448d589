"""Bad input to the tax-rate, customer and channel routes is a 4xx naming the field and
writes nothing (the edge's rules, erp/inputs.py, applied to these routes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.http import ErpFlask
from tests.conftest import TenantHandle, make_tenant
from tests.core.helpers import assert_problem, owner_sql

API = "/api/v1"


@pytest.fixture(scope="module")
def shared(app: ErpFlask, ops_headers: dict[str, str]) -> TenantHandle:
    return make_tenant(app.test_client(), ops_headers)


def _rows(engine: Engine, tenant: TenantHandle) -> tuple[int, ...]:
    sql = """SELECT (SELECT count(*) FROM orders.tax_rates WHERE tenant_id = :t),
                    (SELECT count(*) FROM orders.channels WHERE tenant_id = :t),
                    (SELECT count(*) FROM orders.customers WHERE tenant_id = :t)"""
    return tuple(owner_sql(engine, sql, {"t": tenant.id})[0])


@pytest.fixture
def unchanged(shared: TenantHandle, owner_engine: Engine) -> Iterator[TenantHandle]:
    before = _rows(owner_engine, shared)
    yield shared
    assert _rows(owner_engine, shared) == before


def _field(response: Any, field: str) -> str:
    problem = assert_problem(response, 422, "validation")
    assert field in problem["errors"], problem
    json.loads(response.get_data().decode("utf-8"))
    return str(problem["errors"][field][0])


@pytest.mark.parametrize(
    ("path", "raw", "field", "message"),
    [
        ("/tax-rates", rb'{"code": "A", "name": "a\u0000", "rate_ppm": 1}', "name", "NUL"),
        ("/tax-rates", rb'{"code": "A", "name": "a\ud800", "rate_ppm": 1}', "name", "surrogate"),
        ("/tax-rates", b'{"code": "A", "name": "caf\xe9", "rate_ppm": 1}', "name", "UTF-8"),
        ("/tax-rates", b'{"code": "A", "name": "a", "rate_ppm": 1e999}', "rate_ppm", "range"),
        (
            "/tax-rates",
            b'{"code": "A", "name": "a", "rate_ppm": 99999999999999999999}',
            "rate_ppm",
            "",
        ),
        ("/tax-rates", b'{"code": "A", "name": "a", "rate_ppm": 2.0}', "rate_ppm", ""),
        ("/channels", rb'{"name": "a\u0000", "kind": "generic"}', "name", "NUL"),
        (
            "/channels",
            rb'{"name": "a", "kind": "shopify", "signing_secret": "s\u0000"}',
            "signing_secret",
            "NUL",
        ),
        (
            "/channels",
            b'{"name": "a", "kind": "shopify", "signing_secret": "' + b"x" * 501 + b'"}',
            "signing_secret",
            "",
        ),
        ("/channels", b'{"name": "' + b"n" * 201 + b'", "kind": "generic"}', "name", ""),
        ("/channels", b'{"name": "a", "kind": "generic", "tenant_id": "x"}', "tenant_id", ""),
    ],
)
def test_a_bad_body_is_named_and_writes_nothing(
    client: Any, unchanged: TenantHandle, path: str, raw: bytes, field: str, message: str
) -> None:
    r = client.post(
        f"{API}{path}", data=raw, content_type="application/json", headers=unchanged.headers
    )
    assert message in _field(r, field)


@pytest.mark.parametrize(
    ("path", "field", "message"),
    [
        ("/customers?email=a%00b", "email", "NUL"),
        ("/customers?email=%FF", "email", "UTF-8"),
        ("/customers?email=" + "e" * 255, "email", ""),
        ("/tax-rates?include_archived=maybe", "include_archived", ""),
        ("/channels?limit=0", "limit", ""),
        ("/channels?cursor=forged", "cursor", ""),
        ("/tax-rates/%00", "rate_id", "NUL"),
        ("/customers/%00", "customer_id", "NUL"),
        ("/channels/a%00", "channel_id", "NUL"),
    ],
)
def test_a_bad_query_or_path_is_named(
    client: Any, unchanged: TenantHandle, path: str, field: str, message: str
) -> None:
    r = client.get(f"{API}{path}", headers=unchanged.headers)
    assert message in _field(r, field)


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", b"/api/v1/tax-rates/\xed\xa0\x80", "rate_id"),
        ("PATCH", b"/api/v1/channels/\xff\xfe", "channel_id"),
        ("POST", b"/api/v1/channels/\xc3\x28/rotate-secret", "channel_id"),
    ],
)
def test_bad_bytes_in_a_path_parameter_are_named(
    app: ErpFlask, unchanged: TenantHandle, method: str, path: bytes, field: str
) -> None:
    environ = {"PATH_INFO": path.decode("latin-1")}
    r = app.test_client().open(
        "/", method=method, headers=unchanged.headers, environ_overrides=environ
    )
    assert "UTF-8" in _field(r, field)
