"""Bad input is a 4xx naming the field, and writes nothing: body, query, path, headers.

The edge (erp/inputs.py) refuses what marshmallow would let through to PostgreSQL
or the parser: NUL, lone surrogates, bytes that are not UTF-8, deep nesting,
numbers too long to parse or out of range.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from erp.config import RateLimits
from erp.errors import Problem
from erp.http import ErpFlask
from erp.inputs import MAX_DEPTH, _walk, parse_json
from tests.conftest import TenantHandle, make_tenant
from tests.core.conftest import AppFactory
from tests.core.helpers import assert_problem, owner_sql
from tests.ledger.checks import TX, counts

KEYS = "/api/v1/api-keys"


@pytest.fixture(scope="module")
def shared(app: ErpFlask, ops_headers: dict[str, str]) -> TenantHandle:
    return make_tenant(app.test_client(), ops_headers)


def _rows(engine: Engine, tenant: TenantHandle) -> dict[str, int]:
    keys = owner_sql(
        engine, "SELECT count(*) FROM iam.api_keys WHERE tenant_id = :t", {"t": tenant.id}
    )[0][0]
    return {**counts(engine, tenant.id), "keys": keys}


@pytest.fixture
def unchanged(shared: TenantHandle, owner_engine: Engine) -> Iterator[TenantHandle]:
    """The tenant holds the same rows after the test as before it."""
    before = _rows(owner_engine, shared)
    yield shared
    assert _rows(owner_engine, shared) == before


def _raw_post(client: Any, path: str, raw: bytes, tenant: TenantHandle, **headers: str) -> Any:
    return client.post(
        path,
        data=raw,
        content_type="application/json",
        headers={**tenant.headers, **headers},
    )


def _field(response: Any, field: str, status: int = 422, slug: str = "validation") -> str:
    problem = assert_problem(response, status, slug)
    assert field in problem["errors"], problem
    # the problem itself is plain, valid UTF-8 JSON whatever the input held
    json.loads(response.get_data().decode("utf-8"))
    return str(problem["errors"][field][0])


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (rb'{"name": "a\u0000b", "scopes": ["ledger:read"]}', "name", "NUL"),
        (rb'{"name": "a\ud800b", "scopes": ["ledger:read"]}', "name", "surrogate"),
        (rb'{"name": "\udc00\ud800", "scopes": ["ledger:read"]}', "name", "surrogate"),
        (b'{"name": "caf\xe9", "scopes": ["ledger:read"]}', "name", "UTF-8"),
        (b'{"name": "\xed\xa0\x80", "scopes": ["ledger:read"]}', "name", "UTF-8"),
        (rb'{"name": "k", "scopes": ["ledger:read", "x\u0000"]}', "scopes.1", "NUL"),
        (rb'{"name": "k", "scopes": ["ledger:read"], "a\u0000": 1}', "a\ufffd", "NUL"),
        (b'{"name": "k", "scopes": ["ledger:read"], "n": ' + b"9" * 5000 + b"}", "n", "longer"),
        (b'{"name": "k", "scopes": ["ledger:read"], "n": -' + b"1" * 101 + b"}", "n", "longer"),
        (b'{"name": "k", "scopes": ["ledger:read"], "n": 1e999}', "n", "range"),
        (b'{"name": "k", "scopes": ["ledger:read"], "n": -1e999}', "n", "range"),
        (b'{"name": "k", "scopes": ["ledger:read"], "n": NaN}', "n", "NaN"),
        (b'{"name": "k", "scopes": ["ledger:read"], "n": Infinity}', "n", "Infinity"),
    ],
)
def test_a_bad_value_in_the_body_is_named(
    client: Any, unchanged: TenantHandle, raw: bytes, field: str, message: str
) -> None:
    assert message in _field(_raw_post(client, KEYS, raw, unchanged), field)


def test_nesting_past_the_limit_is_named(client: Any, unchanged: TenantHandle) -> None:
    body = {"name": "k", "scopes": ["ledger:read"], "deep": _nested(MAX_DEPTH)}
    r = client.post(KEYS, json=body, headers=unchanged.headers)
    field = "deep" + ".0" * (MAX_DEPTH - 1)
    assert "nested" in _field(r, field)
    # far past the parser's own recursion limit: still a 422, not a RecursionError
    raw = b"[" * 100_000 + b"]" * 100_000
    assert "nested" in _field(_raw_post(client, KEYS, raw, unchanged), "_schema")


def test_the_limits_themselves_are_accepted(client: Any, shared: TenantHandle) -> None:
    """Depth 32 and 100-character numbers pass the edge (the schema then judges them)."""
    body = {"name": "k", "scopes": ["ledger:read"], "deep": _nested(MAX_DEPTH - 1)}
    r = client.post(KEYS, json=body, headers=shared.headers)
    assert set(assert_problem(r, 422, "validation")["errors"]) == {"deep"}  # unknown field
    raw = b'{"name": "k", "scopes": ["ledger:read"], "n": ' + b"9" * 100 + b"}"
    assert set(
        assert_problem(_raw_post(client, KEYS, raw, shared), 422, "validation")["errors"]
    ) == {"n"}


def test_a_valid_surrogate_pair_is_a_character(client: Any, shared: TenantHandle) -> None:
    raw = rb'{"name": "key \ud83d\ude00", "scopes": ["ledger:read"]}'
    r = _raw_post(client, KEYS, raw, shared)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["name"] == "key \U0001f600"


def test_not_json_at_all_is_400(client: Any, unchanged: TenantHandle) -> None:
    for raw in (b"\xff\xfe", b'{"name": "x"', b"{'a': 1}", b"[1,]", b'"\xff'):
        assert_problem(_raw_post(client, KEYS, raw, unchanged), 400, "malformed-request")


def test_bad_values_in_ledger_metadata_write_nothing(client: Any, unchanged: TenantHandle) -> None:
    """metadata is free-form jsonb: the one place a bad value could reach the database."""
    accounts = client.get("/api/v1/ledger/accounts?limit=200", headers=unchanged.headers)
    ids = {a["code"]: a["id"] for a in accounts.get_json()["items"]}
    entries = [
        {"account_id": ids["1000"], "amount": 100, "currency": "USD"},
        {"account_id": ids["4000"], "amount": -100, "currency": "USD"},
    ]
    body = json.dumps({"description": "x", "entries": entries, "metadata": {}})
    for value, message in (
        (rb'"a\u0000"', "NUL"),
        (rb'"\udfff"', "surrogate"),
        (b"1" + b"0" * 400, "longer"),
        (b"1e400", "range"),
    ):
        raw = body.encode().replace(b'"metadata": {}', b'"metadata": {"k": ' + value + b"}")
        assert message in _field(_raw_post(client, TX, raw, unchanged), "metadata.k")
    for raw_desc in (rb'"\u0000"', rb'"\ud800"', b'"\xc3\x28"'):
        raw = body.encode().replace(b'"description": "x"', b'"description": ' + raw_desc)
        _field(_raw_post(client, TX, raw, unchanged), "description")


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("metadata_key=%00", "metadata_key", "NUL"),
        ("metadata_key=k&metadata_value=a%00b", "metadata_value", "NUL"),
        ("metadata_key=%ED%A0%80", "metadata_key", "UTF-8"),
        ("metadata_key=%FF", "metadata_key", "UTF-8"),
        ("cursor=%C3", "cursor", "UTF-8"),
        ("%FF=1", "\ufffd", "UTF-8"),
        ("status=posted&account_id=%00", "account_id", "NUL"),
    ],
)
def test_a_bad_query_parameter_is_named(
    client: Any, shared: TenantHandle, query: str, field: str, message: str
) -> None:
    r = client.get(f"{TX}?{query}", headers=shared.headers)
    assert message in _field(r, field)


def test_raw_bad_bytes_in_the_query_are_named(app: ErpFlask, shared: TenantHandle) -> None:
    """Not percent-encoded: the bytes themselves, as a careless client sends them."""
    environ = {"QUERY_STRING": b"metadata_key=\xed\xa0\x80".decode("latin-1")}
    r = app.test_client().get(TX, headers=shared.headers, environ_overrides=environ)
    assert "UTF-8" in _field(r, "metadata_key")


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", f"{KEYS}/%00", "key_id"),
        ("DELETE", f"{KEYS}/a%00", "key_id"),
        ("GET", "/api/v1/ledger/accounts/%00/balance", "account_id"),
        ("POST", "/api/v1/ledger/periods/2024-%00/close", "period"),
    ],
)
def test_a_nul_in_a_path_parameter_is_named(
    client: Any, unchanged: TenantHandle, method: str, path: str, field: str
) -> None:
    r = client.open(path, method=method, headers=unchanged.headers)
    assert "NUL" in _field(r, field)


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", b"/api/v1/api-keys/\xed\xa0\x80", "key_id"),
        ("DELETE", b"/api/v1/api-keys/\xff\xfe", "key_id"),
        ("GET", b"/api/v1/ledger/accounts/\xc3\x28/entries", "account_id"),
        ("POST", b"/api/v1/ledger/periods/2024-\xe9/close", "period"),
    ],
)
def test_bad_bytes_in_a_path_parameter_are_named(
    app: ErpFlask, unchanged: TenantHandle, method: str, path: bytes, field: str
) -> None:
    """The raw bytes, as a server hands them over (Werkzeug's test client would
    percent-decode them to U+FFFD itself, before the app could see them)."""
    environ = {"PATH_INFO": path.decode("latin-1")}
    r = app.test_client().open(
        "/", method=method, headers=unchanged.headers, environ_overrides=environ
    )
    assert "UTF-8" in _field(r, field)


def test_an_unknown_route_with_bad_bytes_is_still_404(client: Any, shared: TenantHandle) -> None:
    assert_problem(client.get("/api/v1/nope%FF%00", headers=shared.headers), 404, "not-found")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer erp_live_\x00",
        "Bearer " + "\xff" * 60,
        "Bearer erp_live_abcdefghijkl_" + "A" * 42 + "\x00",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer " + "x" * 10_000,
        "\x00",
    ],
)
def test_junk_authorization_is_401(
    client: Any, ops_headers: dict[str, str], authorization: str
) -> None:
    for path in (KEYS, "/ops/v1/tenants"):
        r = client.get(path, headers={"Authorization": authorization})
        assert_problem(r, 401, "unauthorized")


@pytest.mark.parametrize("request_id", ["a\x00b", "caf\xe9", "\xff" * 10, "x" * 129, ""])
def test_a_junk_request_id_is_replaced(client: Any, shared: TenantHandle, request_id: str) -> None:
    r = client.get(KEYS, headers={**shared.headers, "X-Request-Id": request_id})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] != request_id
    assert len(r.headers["X-Request-Id"]) == 32


@pytest.mark.parametrize("key", ["a\x00b", "caf\xe9", "\xff", "k" * 256, "tab\there"])
def test_a_bad_idempotency_key_is_named_and_writes_nothing(
    client: Any, unchanged: TenantHandle, key: str
) -> None:
    body = {"name": "k", "scopes": ["ledger:read"]}
    r = client.post(KEYS, json=body, headers={**unchanged.headers, "Idempotency-Key": key})
    _field(r, "Idempotency-Key")


def test_each_request_reads_its_own_body_under_one_app_context(
    app: ErpFlask, shared: TenantHandle
) -> None:
    """Requests made while a caller holds an app context share its `g`; the parsed body
    must still be each request's own."""
    client = app.test_client()
    with app.app_context():
        names = [
            client.post(
                KEYS, json={"name": name, "scopes": ["ledger:read"]}, headers=shared.headers
            )
            .get_json()
            .get("name")
            for name in ("first", "second")
        ]
    assert names == ["first", "second"]


def test_bad_input_counts_against_the_callers_rate_limit(
    make_app: AppFactory, unchanged: TenantHandle
) -> None:
    """The limiter runs before the input checks: a flood of junk is cut off unparsed."""
    limits = RateLimits(key="2/minute", tenant=None, operator=None)
    app = make_app(rate_limits=limits, queue_prefix=f"erp-test-in-{uuid.uuid4().hex[:8]}")
    client = app.test_client()
    junk = b'{"name": "a\\u0000", "scopes": ["ledger:read"]}'
    for _ in range(2):
        _field(_raw_post(client, KEYS, junk, unchanged), "name")
    assert_problem(_raw_post(client, KEYS, junk, unchanged), 429, "rate-limited")


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**120), max_value=10**120),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(alphabet=st.characters(codec=None), max_size=5),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, ascii_only=st.booleans(), deep=st.integers(0, 40))
def test_the_walk_is_skipped_only_when_it_would_find_nothing(
    value: Any, ascii_only: bool, deep: int
) -> None:
    """parse_json returns without walking a body only when the walk finds nothing."""
    text = "[" * deep + json.dumps(value, ensure_ascii=ascii_only) + "]" * deep
    try:
        parsed = parse_json(text.encode("utf-8", "surrogatepass"))
    except Problem:
        return
    errors: dict[str, list[str]] = {}
    _walk(parsed, "", 1, False, errors)
    assert errors == {}
