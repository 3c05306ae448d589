"""inventory.receive_purchase_order and inventory.count_stock
(policies/inventory_purchasing.sql), called directly as erp_app with the tenant pinned:
each refusal's SQLSTATE, MESSAGE and DETAIL and the problem the core makes of it, the
locks they wait on, and the functions' own settings. (The API-level shapes: test_purchasing*,
test_counts; the races: test_purchasing_race, test_counts.)"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from erp.errors import refusal
from tests.inventory.conftest import pinned
from tests.inventory.purchasing_helpers import Shop, open_shop

RECEIVE = """
    SELECT inventory.receive_purchase_order(
        %(po)s, %(receipt)s, %(lines)s, %(quantities)s, %(locations)s, %(moves)s,
        %(receipt_lines)s, %(over)s, %(tx)s, %(tx_event)s, %(event)s)
"""
COUNT = """
    SELECT inventory.count_stock(
        %(id)s, %(location)s, %(reason)s, %(items)s, %(counted)s, %(moves)s, %(lines)s,
        %(tx)s, %(tx_event)s)
"""


@pytest.fixture
def shop(client: Any, ops_headers: dict[str, str], app_url: str) -> Shop:
    return open_shop(client, ops_headers, app_url)


def _receive(
    po: Any, lines: list[tuple[Any, int]], over: bool = False, **kw: Any
) -> dict[str, Any]:
    n = len(lines)
    return {
        "po": po,
        "receipt": uuid.uuid4(),
        "lines": [uuid.UUID(str(line)) for line, _ in lines],
        "quantities": [q for _, q in lines],
        "locations": kw.get("locations", [None] * n),
        "moves": [uuid.uuid4() for _ in range(n)],
        "receipt_lines": [uuid.uuid4() for _ in range(n)],
        "over": over,
        "tx": uuid.uuid4(),
        "tx_event": uuid.uuid4(),
        "event": uuid.uuid4(),
    }


def _count(shop: Shop, lines: list[tuple[Any, int]], location: Any = None) -> dict[str, Any]:
    n = len(lines)
    return {
        "id": uuid.uuid4(),
        "location": location or shop.default_location,
        "reason": None,
        "items": [uuid.UUID(str(i)) for i, _ in lines],
        "counted": [c for _, c in lines],
        "moves": [uuid.uuid4() for _ in range(n)],
        "lines": [uuid.uuid4() for _ in range(n)],
        "tx": uuid.uuid4(),
        "tx_event": uuid.uuid4(),
    }


def _refusal(shop: Shop, sql: str, p: dict[str, Any]) -> psycopg.Error:
    with pinned(shop.url, shop.tenant.id) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(sql, p)
    return caught.value


def _problem(error: psycopg.Error) -> Any:
    problem = refusal(DBAPIError.instance(RECEIVE, {}, error, psycopg.Error))
    assert problem is not None
    return problem


def test_an_absent_order_is_ep001_not_found(shop: Shop) -> None:
    error = _refusal(shop, RECEIVE, _receive(uuid.uuid4(), [(uuid.uuid4(), 1)]))
    assert error.sqlstate == "EP001"
    problem = _problem(error)
    assert (problem.status, problem.slug, problem.errors) == (404, "not-found", None)


def test_a_draft_is_ei003_naming_its_status(shop: Shop) -> None:
    po = shop.po([(shop.item(), 5, 10)])
    error = _refusal(shop, RECEIVE, _receive(po["id"], [(po["lines"][0]["id"], 1)]))
    assert error.sqlstate == "EI003"
    assert error.diag.message_primary is not None
    assert "draft" in error.diag.message_primary
    problem = _problem(error)
    assert (problem.status, problem.slug) == (409, "conflict")
    assert problem.errors == {"status": ["The purchase order is draft."]}


def test_every_line_at_fault_is_named_in_request_order(shop: Shop) -> None:
    a, b = shop.item(), shop.item()
    po = shop.sent_po([(a, 5, 10), (b, 5, 10)])
    la, lb = (ln["id"] for ln in po["lines"])
    p = _receive(po["id"], [(lb, 6), (uuid.uuid4(), 1), (la, 5), (la, 1)])
    error = _refusal(shop, RECEIVE, p)
    assert error.sqlstate == "EI002"
    assert (error.diag.message_detail or "").splitlines() == [
        "lines.0.quantity: 5 left to receive on this line.",
        "lines.1.line_id: Not a line of this purchase order.",
        "lines.3.quantity: 0 left to receive on this line.",
    ]
    assert error.diag.message_primary == "lines.0.quantity: 5 left to receive on this line."
    problem = _problem(error)
    assert (problem.status, problem.slug) == (422, "validation")
    assert list(problem.errors) == ["lines.0.quantity", "lines.1.line_id", "lines.3.quantity"]


def test_a_count_below_reserved_is_ei001_naming_each_line(shop: Shop) -> None:
    a, b = shop.item(), shop.item()
    for item in (a, b):
        shop.receive_direct(item, 10, 5)
        shop.reserve(item, 4)
    error = _refusal(shop, COUNT, _count(shop, [(a, 3), (b, 4)]))
    assert error.sqlstate == "EI001"
    assert error.diag.message_detail == "lines.0.counted: 4 reserved here."
    problem = _problem(error)
    assert (problem.status, problem.slug) == (409, "insufficient-stock")
    assert problem.errors == {"lines.0.counted": ["4 reserved here."]}


def test_count_arguments_are_judged_before_anything_is_read(shop: Shop) -> None:
    a = shop.item()
    error = _refusal(shop, COUNT, _count(shop, [(a, -1), (a, 2)]))
    assert error.sqlstate == "EI002"
    assert (error.diag.message_detail or "").splitlines() == [
        "lines.0.counted: Must be at least 0.",
        "lines.1.item_id: Listed twice (also lines.0).",
    ]


# -- locks -------------------------------------------------------------------------------------


def _blocked(shop: Shop, sql: str, p: dict[str, Any]) -> bool:
    """Whether the call waits on a lock (lock_timeout), else it completes (rolled back)."""
    with pinned(shop.url, shop.tenant.id) as conn:
        conn.execute("SET LOCAL lock_timeout = '300ms'")
        try:
            conn.execute(sql, p)
        except psycopg.errors.LockNotAvailable:
            return True
        return False


def test_a_receipt_waits_for_whoever_holds_its_order(app_engine: Engine, shop: Shop) -> None:
    item = shop.item()
    po = shop.sent_po([(item, 10, 10)])
    other = shop.sent_po([(item, 10, 10)])
    with app_engine.begin() as holder:
        holder.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(shop.tenant.id)}
        )
        holder.execute(
            text("SELECT 1 FROM inventory.purchase_orders WHERE id = :id FOR NO KEY UPDATE"),
            {"id": po["id"]},
        )
        assert _blocked(shop, RECEIVE, _receive(po["id"], [(po["lines"][0]["id"], 1)]))
        assert not _blocked(shop, RECEIVE, _receive(other["id"], [(other["lines"][0]["id"], 1)]))


def test_a_count_waits_for_whoever_holds_its_items(app_engine: Engine, shop: Shop) -> None:
    held, free = shop.item(), shop.item()
    with app_engine.begin() as holder:
        holder.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(shop.tenant.id)}
        )
        holder.execute(text("SELECT inventory.lock_items(ARRAY[CAST(:i AS uuid)])"), {"i": held})
        assert _blocked(shop, COUNT, _count(shop, [(free, 1), (held, 1)]))
        assert not _blocked(shop, COUNT, _count(shop, [(free, 1)]))


# -- the functions themselves ------------------------------------------------------------------

FUNCTIONS = (
    "inventory.receive_purchase_order",
    "inventory.count_stock",
    "inventory.post_roles",
    "inventory.purchase_order_json",
    "inventory.refuse_all",
)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_runs_as_its_caller_with_a_pinned_search_path(owner_engine: Engine, name: str) -> None:
    with owner_engine.connect() as conn:
        row = conn.execute(
            text("""
            SELECT p.prosecdef, p.proconfig,
                   has_function_privilege('erp_app', p.oid, 'EXECUTE') AS app,
                   has_function_privilege('public', p.oid, 'EXECUTE') AS anyone
              FROM pg_proc p WHERE p.oid = CAST(:name AS regproc)
            """),
            {"name": name},
        ).one()
    assert row.prosecdef is False  # SECURITY INVOKER: RLS applies as erp_app
    assert "search_path=pg_catalog, pg_temp" in row.proconfig
    assert (row.app, row.anyone) == (True, False)
