"""Bad postings: each is a problem+json naming the field, and writes nothing at all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.http import ErpFlask
from tests.conftest import make_tenant
from tests.core.helpers import assert_problem
from tests.ledger.checks import TX, assert_field_problem, counts
from tests.ledger.conftest import Books, open_books

I64 = 2**63 - 1


@pytest.fixture(scope="module")
def shared(app: ErpFlask, ops_headers: dict[str, str]) -> Books:
    """One tenant, with one posting on its books: every test here is refused."""
    books = open_books(app.test_client(), ops_headers)
    books.post([("1000", 100), ("4000", -100)])
    return books


@pytest.fixture
def unchanged(shared: Books, owner_engine: Engine) -> Iterator[Books]:
    """The tenant's rows are the same after the test as before it."""
    before = counts(owner_engine, shared.tenant.id)
    yield shared
    assert counts(owner_engine, shared.tenant.id) == before
    balance = shared.balance("1000")
    assert (balance["posted"], balance["pending"]) == (100, 0)


def _body(books: Books, *amounts: Any, **changes: Any) -> dict[str, Any]:
    codes = ["1000", "4000", "1010", "6000"]
    entries = [
        {"account_id": books.accounts[codes[i]], "amount": amount, "currency": "USD"}
        for i, amount in enumerate(amounts or (100, -100))
    ]
    return {"description": "bad", "entries": entries, **changes}


def _post(books: Books, body: Any) -> Any:
    return books.client.post(TX, json=body, headers=books.tenant.headers)


@pytest.mark.parametrize(
    "amount",
    [10.0, 10.5, 1e3, "100", "10.5", True, False, None, [100], {"v": 100}, 2**63, -(2**63), 0],
)
def test_a_bad_amount_is_refused(unchanged: Books, amount: Any) -> None:
    body = _body(unchanged, amount, -100)
    problem = assert_field_problem(_post(unchanged, body), 422, "validation", "entries.0.amount")
    assert "entries.0.amount" in problem["detail"]


def test_an_amount_is_required(unchanged: Books) -> None:
    body = _body(unchanged)
    del body["entries"][1]["amount"]
    assert_field_problem(_post(unchanged, body), 422, "validation", "entries.1.amount")


@pytest.mark.parametrize(
    "amounts",
    [
        (2**62, 2**62, -I64, -1),  # debits sum to 2**63
        (I64, 1, -(2**62), -(2**62)),
        (-(2**62), -(2**62), I64, 1),
    ],
)
def test_sums_beyond_int64_are_refused(unchanged: Books, amounts: tuple[int, ...]) -> None:
    body = _body(unchanged, *amounts)
    problem = assert_field_problem(_post(unchanged, body), 422, "validation", "entries")
    assert "overflow" in problem["detail"]


@pytest.mark.parametrize("amounts", [(), (100,), (100, -99), (100, 100), (-50, 25, 24)])
def test_unbalanced_or_too_few_entries(unchanged: Books, amounts: tuple[int, ...]) -> None:
    body = {**_body(unchanged), "entries": _body(unchanged, *amounts)["entries"][: len(amounts)]}
    assert_field_problem(_post(unchanged, body), 422, "unbalanced", "entries")


def test_an_unknown_account_is_named(unchanged: Books) -> None:
    body = _body(unchanged)
    body["entries"][1]["account_id"] = str(uuid.uuid4())
    problem = assert_field_problem(
        _post(unchanged, body), 422, "validation", "entries.1.account_id"
    )
    assert set(problem["errors"]) == {"entries.1.account_id"}


def test_another_tenants_account_reads_like_an_unknown_one(
    unchanged: Books, client: Any, ops_headers: dict[str, str]
) -> None:
    other = open_books(client, ops_headers)
    unknown = _body(unchanged)
    unknown["entries"][0]["account_id"] = str(uuid.uuid4())
    foreign = _body(unchanged)
    foreign["entries"][0]["account_id"] = other.accounts["1000"]
    a = assert_field_problem(_post(unchanged, unknown), 422, "validation", "entries.0.account_id")
    b = assert_field_problem(_post(unchanged, foreign), 422, "validation", "entries.0.account_id")
    assert (a["title"], a["detail"], a["errors"]) == (b["title"], b["detail"], b["errors"])
    assert other.balance("1000")["posted"] == 0


@pytest.mark.parametrize(
    ("entry_changes", "field"),
    [
        ({"currency": "usd"}, "entries.0.currency"),
        ({"currency": "XXX"}, "entries.0.currency"),
        ({"currency": "US"}, "entries.0.currency"),
        ({"currency": 840}, "entries.0.currency"),
        ({"currency": None}, "entries.0.currency"),
        ({"account_id": "cash"}, "entries.0.account_id"),
        ({"account_id": None}, "entries.0.account_id"),
        ({"memo": "hi"}, "entries.0.memo"),
    ],
)
def test_a_bad_entry_field_is_named(
    unchanged: Books, entry_changes: dict[str, Any], field: str
) -> None:
    body = _body(unchanged)
    body["entries"][0].update(entry_changes)
    assert_field_problem(_post(unchanged, body), 422, "validation", field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"effective_at": "2024-03-10T12:00:00"}, "effective_at"),
        ({"effective_at": "2024-03-10"}, "effective_at"),
        ({"effective_at": "last tuesday"}, "effective_at"),
        ({"effective_at": 1710072000}, "effective_at"),
        ({"status": "voided"}, "status"),
        ({"status": "settled"}, "status"),
        ({"description": ""}, "description"),
        ({"description": "d" * 501}, "description"),
        ({"description": None}, "description"),
        ({"entries": "all of them"}, "entries"),
        ({"entries": None}, "entries"),
        ({"entries": [1, 2]}, "entries.0"),
        ({"metadata": ["a"]}, "metadata"),
        ({"metadata": "a=b"}, "metadata"),
        ({"metadata": {f"k{i}": i for i in range(51)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"nested": {"a": 1}}}, "metadata"),
        ({"metadata": {"long": "v" * 501}}, "metadata"),
        ({"reverses_id": str(uuid.uuid4())}, "reverses_id"),
        ({"kind": "closing"}, "kind"),
        ({"tenant_id": str(uuid.uuid4())}, "tenant_id"),
    ],
)
def test_a_bad_transaction_field_is_named(
    unchanged: Books, changes: dict[str, Any], field: str
) -> None:
    assert_field_problem(_post(unchanged, _body(unchanged, **changes)), 422, "validation", field)


def test_required_fields_are_named(unchanged: Books) -> None:
    problem = assert_problem(_post(unchanged, {}), 422, "validation")
    assert {"description", "entries"} <= set(problem["errors"])
    # a JSON array is not a transaction
    assert_problem(_post(unchanged, [_body(unchanged)]), 422, "validation")


@pytest.mark.parametrize(
    "raw", [b'{"description": "x", ', b"{'description': 'x'}", b"\xff\xfe", b"[1,]"]
)
def test_malformed_json_is_400(unchanged: Books, raw: bytes) -> None:
    r = unchanged.client.post(
        TX, data=raw, content_type="application/json", headers=unchanged.tenant.headers
    )
    assert_problem(r, 400, "malformed-request")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_415(unchanged: Books, content_type: str) -> None:
    r = unchanged.client.post(
        TX,
        data='{"description": "x"}',
        content_type=content_type,
        headers=unchanged.tenant.headers,
    )
    assert_problem(r, 415, "unsupported-media-type")


def test_a_key_without_ledger_write_is_403(
    unchanged: Books, client: Any, ops_headers: dict[str, str], owner_engine: Engine
) -> None:
    reader = make_tenant(client, ops_headers, scopes=["ledger:read"])
    before = counts(owner_engine, reader.id)
    accounts = client.get("/api/v1/ledger/accounts", headers=reader.headers).get_json()["items"]
    by_code = {a["code"]: a["id"] for a in accounts}
    body = {
        "description": "not allowed",
        "entries": [
            {"account_id": by_code["1000"], "amount": 100, "currency": "USD"},
            {"account_id": by_code["4000"], "amount": -100, "currency": "USD"},
        ],
    }
    assert_problem(client.post(TX, json=body, headers=reader.headers), 403, "forbidden")
    for path in (
        "/api/v1/ledger/accounts",
        f"{TX}/{uuid.uuid4()}/reverse",
        f"{TX}/{uuid.uuid4()}/post",
        "/api/v1/ledger/periods/2024-01/close",
    ):
        assert_problem(client.post(path, json={}, headers=reader.headers), 403, "forbidden")
    assert counts(owner_engine, reader.id) == before
    assert client.get(TX, headers=reader.headers).status_code == 200
