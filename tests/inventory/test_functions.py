"""The inventory SQL functions (policies/inventory.sql), called directly as erp_app.

apply_move's values and refusals, the per-commit stock events (one stock.changed per
level and commit, stock.low once per crossing), and post_value's posting by role with
the ledger's own event payload.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from erp.errors import refusal
from erp.ledger.commands import EntryView, TransactionView
from tests.inventory.conftest import MOVE, Stock, pinned


def _problem(error: psycopg.Error) -> Any:
    problem = refusal(DBAPIError.instance(MOVE, {}, error, psycopg.Error))
    assert problem is not None, error
    return problem


def _refused(stock: Stock, kind: str, item: uuid.UUID, quantity: int, **kw: Any) -> Any:
    with pinned(stock.url, stock.tenant.id) as conn, pytest.raises(psycopg.Error) as caught:
        stock.move(conn, kind, item, quantity, **kw)
    return caught.value


def test_moving_average_values_receipts_and_issues(stock: Stock) -> None:
    item = stock.item()
    assert stock.committed_move("receipt", item, 10, to=stock.main, unit_cost=300) == 3000
    assert stock.committed_move("receipt", item, 5, to=stock.main, unit_cost=333) == 1665
    # 4665 over 15: 3 units cost round_half_up(4665 * 3 / 15) = 933
    assert stock.committed_move("issue", item, 3, frm=stock.main) == 933
    # 3732 over 12: 7 units, 2177 exactly (.0), then the last 5 take all that is left
    assert stock.committed_move("issue", item, 7, frm=stock.main) == 2177
    assert stock.committed_move("issue", item, 5, frm=stock.main) == 1555
    assert stock.one("SELECT value FROM inventory.items WHERE id = %s", item) == 0
    # nothing on hand: units in at the average are worth 0
    found = stock.committed_move("adjustment", item, 2, to=stock.main, reason_code="found")
    assert found == 0


def test_half_up_rounding(stock: Stock) -> None:
    item = stock.item()
    stock.committed_move("receipt", item, 4, to=stock.main, unit_cost=1)
    stock.committed_move("receipt", item, 2, to=stock.main, unit_cost=0)
    # value 4 over 6: one unit is 0.666.. -> 1; then 3 over 5: one unit 0.6 -> 1
    assert stock.committed_move("issue", item, 1, frm=stock.main) == 1
    assert stock.committed_move("issue", item, 1, frm=stock.main) == 1
    # 2 over 4: one unit is exactly 0.5 -> 1 (half up)
    assert stock.committed_move("issue", item, 1, frm=stock.main) == 1


def test_transfer_moves_both_legs_and_no_value(stock: Stock) -> None:
    item, other = stock.item(), stock.location()
    stock.committed_move("receipt", item, 10, to=stock.main, unit_cost=100)
    assert stock.committed_move("transfer", item, 4, frm=stock.main, to=other) is None
    levels = stock.one(
        "SELECT array_agg(on_hand ORDER BY location_id = %s) FROM inventory.stock_levels"
        " WHERE item_id = %s",
        stock.main,
        item,
    )
    assert levels == [4, 6]
    assert stock.one("SELECT value FROM inventory.items WHERE id = %s", item) == 1000


def test_oversell_is_insufficient_stock_naming_the_quantity(stock: Stock) -> None:
    item = stock.item()
    stock.committed_move("receipt", item, 3, to=stock.main, unit_cost=10)
    error = _refused(stock, "issue", item, 4, frm=stock.main)
    assert error.sqlstate == "EI001"
    assert error.diag.message_detail == "quantity: 3 available."
    problem = _problem(error)
    assert (problem.status, problem.slug) == (409, "insufficient-stock")
    assert problem.errors == {"quantity": ["3 available."]}
    # nothing was written by the refused call (it rolled back) and none is left over
    assert stock.one("SELECT count(*) FROM inventory.stock_moves WHERE item_id = %s", item) == 1
    # a level never touched reads as 0 available
    error = _refused(stock, "issue", stock.item(), 1, frm=stock.main)
    assert error.diag.message_detail == "quantity: 0 available."


def test_allow_negative_location_goes_below_zero(stock: Stock) -> None:
    item, loose = stock.item(), stock.location(allow_negative=True)
    assert stock.committed_move("issue", item, 2, frm=loose) == 0
    assert stock.one("SELECT on_hand FROM inventory.stock_levels WHERE item_id = %s", item) == -2


@pytest.mark.parametrize(
    ("kind", "quantity", "kw", "field"),
    [
        ("receipt", 0, {"to": "main", "unit_cost": 1}, "quantity"),
        ("receipt", -5, {"to": "main", "unit_cost": 1}, "quantity"),
        ("receipt", 1, {"to": "main"}, "unit_cost"),
        ("receipt", 1, {"frm": "main", "to": "main", "unit_cost": 1}, "from_location_id"),
        ("issue", 1, {}, "from_location_id"),
        ("issue", 1, {"frm": "main", "unit_cost": 5}, "unit_cost"),
        ("transfer", 1, {"frm": "main", "to": "main"}, "to_location_id"),
        ("adjustment", 1, {"to": "main"}, "reason_code"),
        ("adjustment", 1, {"to": "main", "frm": "main", "reason_code": "lost"}, "to_location_id"),
        ("adjustment", 1, {"to": "main", "reason_code": "stolen"}, "reason_code"),
        ("issue", 1, {"frm": "main", "reason_code": "lost"}, "reason_code"),
        ("teleport", 1, {"to": "main"}, "kind"),
        ("receipt", 1, {"to": "unknown", "unit_cost": 1}, "to_location_id"),
        ("issue", 1, {"frm": "unknown"}, "from_location_id"),
        ("receipt", 1, {"to": "main", "unit_cost": 1, "reference": "x" * 201}, "reference"),
    ],
)
def test_bad_moves_are_validation_naming_the_field(
    stock: Stock, kind: str, quantity: int, kw: dict[str, Any], field: str
) -> None:
    item = stock.item()
    places = {"main": stock.main, "unknown": uuid.uuid4()}
    kw = {k: places.get(v, v) if isinstance(v, str) else v for k, v in kw.items()}
    if "reference" in kw:
        kw["reference"] = "x" * 201
    error = _refused(stock, kind, item, quantity, **kw)
    assert error.sqlstate == "EI002", error
    problem = _problem(error)
    assert (problem.status, problem.slug) == (422, "validation")
    assert list(problem.errors) == [field]


def test_unknown_archived_and_foreign_items_are_refused(
    stock: Stock, client: Any, ops_headers: dict[str, str]
) -> None:
    from tests.inventory.conftest import open_stock

    other = open_stock(client, ops_headers, stock.url)
    theirs = other.item()
    for item in (uuid.uuid4(), theirs):
        error = _refused(stock, "receipt", item, 1, to=stock.main, unit_cost=1)
        assert error.diag.message_detail == "item_id: Unknown item."
    archived = stock.item()
    with pinned(stock.url, stock.tenant.id, commit=True) as conn:
        conn.execute("UPDATE inventory.items SET archived = true WHERE id = %s", (archived,))
    error = _refused(stock, "receipt", archived, 1, to=stock.main, unit_cost=1)
    assert error.diag.message_detail == "item_id: The item is archived."
    # another tenant's location reads as unknown too
    error = _refused(stock, "receipt", stock.item(), 1, to=other.main, unit_cost=1)
    assert error.diag.message_detail == "to_location_id: Unknown location."


def test_moves_are_immutable(stock: Stock) -> None:
    item = stock.item()
    stock.committed_move("receipt", item, 1, to=stock.main, unit_cost=1)
    for sql in (
        "UPDATE inventory.stock_moves SET quantity = 2",
        "DELETE FROM inventory.stock_moves",
        "TRUNCATE inventory.stock_moves",
    ):
        with pinned(stock.url, stock.tenant.id) as conn, pytest.raises(psycopg.Error) as caught:
            conn.execute(sql)
        assert caught.value.sqlstate == "42501", sql


# -- events ---------------------------------------------------------------------------


def test_one_stock_changed_per_level_and_commit(stock: Stock) -> None:
    item, other = stock.item(sku="EVT-1"), stock.location()
    ids = [uuid.uuid4() for _ in range(3)]
    with pinned(stock.url, stock.tenant.id, commit=True) as conn:
        stock.move(conn, "receipt", item, 5, to=stock.main, unit_cost=10, id=ids[0])
        stock.move(conn, "issue", item, 2, frm=stock.main, id=ids[1])
        stock.move(conn, "transfer", item, 1, frm=stock.main, to=other, id=ids[2])
    events = {e["location_id"]: e for e in stock.events("stock.changed")}
    assert len(stock.events("stock.changed")) == 2
    main = events[str(stock.main)]
    assert main == {
        "item_id": str(item),
        "sku": "EVT-1",
        "location_id": str(stock.main),
        "on_hand": 2,
        "reserved": 0,
        "available": 2,
        "delta": {"on_hand": 2, "reserved": 0},
        "sources": [{"type": "move", "id": str(i)} for i in ids],
    }
    assert events[str(other)]["delta"] == {"on_hand": 1, "reserved": 0}
    assert events[str(other)]["sources"] == [{"type": "move", "id": str(ids[2])}]


def test_rolled_back_work_emits_nothing(stock: Stock) -> None:
    item = stock.item()
    with pinned(stock.url, stock.tenant.id) as conn:  # rolled back
        stock.move(conn, "receipt", item, 5, to=stock.main, unit_cost=10)
    with pinned(stock.url, stock.tenant.id, commit=True) as conn:
        conn.execute("SAVEPOINT s")
        stock.move(conn, "receipt", item, 5, to=stock.main, unit_cost=10)
        conn.execute("ROLLBACK TO SAVEPOINT s")
        stock.move(conn, "receipt", item, 1, to=stock.main, unit_cost=10)
    events = stock.events("stock.changed")
    assert [e["delta"]["on_hand"] for e in events] == [1]


def test_a_net_zero_commit_emits_no_change(stock: Stock) -> None:
    item = stock.item()
    stock.committed_move("receipt", item, 5, to=stock.main, unit_cost=10)
    with pinned(stock.url, stock.tenant.id, commit=True) as conn:
        stock.move(conn, "issue", item, 2, frm=stock.main)
        stock.move(conn, "receipt", item, 2, to=stock.main, unit_cost=10)
    assert len(stock.events("stock.changed")) == 1


def test_stock_low_once_per_crossing_and_rearmed(stock: Stock) -> None:
    item = stock.item(sku="LOW-1", reorder_point=5)
    stock.committed_move("receipt", item, 10, to=stock.main, unit_cost=1)
    assert stock.events("stock.low") == []
    stock.committed_move("issue", item, 6, frm=stock.main)  # 4 < 5: crossing
    stock.committed_move("issue", item, 1, frm=stock.main)  # still below: no event
    assert stock.events("stock.low") == [
        {"item_id": str(item), "sku": "LOW-1", "reorder_point": 5, "available": 4}
    ]
    stock.committed_move("receipt", item, 2, to=stock.main, unit_cost=1)  # 5: re-armed
    stock.committed_move("issue", item, 3, frm=stock.main)  # 2: a second crossing
    assert [e["available"] for e in stock.events("stock.low")] == [4, 2]


def test_stock_low_sums_every_location(stock: Stock) -> None:
    item, other = stock.item(reorder_point=5), stock.location()
    stock.committed_move("receipt", item, 3, to=stock.main, unit_cost=1)  # 3 < 5
    stock.committed_move("receipt", item, 3, to=other, unit_cost=1)  # 6: re-armed
    stock.committed_move("issue", item, 2, frm=other)  # 4: crossing
    assert [e["available"] for e in stock.events("stock.low")] == [3, 4]


# -- posting by role ------------------------------------------------------------------

POST = """
    SELECT inventory.post_value(%(tx)s, %(ev)s, %(dr)s, %(cr)s, %(amount)s, %(meta)s::jsonb,
                                %(counter)s, 'Stock receipt')
"""


def _post(
    conn: psycopg.Connection[Any],
    amount: int,
    dr: str = "inventory",
    cr: str = "accounts_payable",
    counter: uuid.UUID | None = None,
) -> tuple[uuid.UUID, Any]:
    tx = uuid.uuid4()
    params = {
        "tx": tx,
        "ev": uuid.uuid4(),
        "dr": dr,
        "cr": cr,
        "amount": amount,
        "meta": '{"move_id": "m-1"}',
        "counter": counter,
    }
    row = conn.execute(POST, params).fetchone()
    assert row is not None
    return tx, row[0]


def test_post_value_payload_is_the_ledgers_view(stock: Stock) -> None:
    with pinned(stock.url, stock.tenant.id, commit=True) as conn:
        tx, posted_at = _post(conn, 2500)
    assert isinstance(posted_at, datetime)
    with pinned(stock.url, stock.tenant.id) as conn:
        t = conn.execute(
            "SELECT description, effective_at, posted_at, metadata FROM ledger.transactions"
            " WHERE id = %s",
            (tx,),
        ).fetchone()
        entries = conn.execute(
            "SELECT e.id, e.account_id, e.amount, e.currency, a.role FROM ledger.entries e"
            " JOIN ledger.accounts a ON a.id = e.account_id WHERE e.transaction_id = %s"
            " ORDER BY e.account_id, e.amount",
            (tx,),
        ).fetchall()
        payload = conn.execute(
            "SELECT payload FROM webhooks.outbox_events WHERE payload->>'id' = %s", (str(tx),)
        ).fetchone()
    assert t is not None
    assert payload is not None
    assert {(e[4], e[2]) for e in entries} == {("inventory", 2500), ("accounts_payable", -2500)}
    view = TransactionView(
        id=tx,
        description=t[0],
        status="posted",
        kind="standard",
        effective_at=t[1],
        posted_at=t[2],
        created_at=t[1],
        metadata=t[3],
        reverses_id=None,
        reversed_by_id=None,
        adjusts_id=None,
        adjusted_by_id=None,
        entries=[EntryView(e[0], e[1], e[2], e[3]) for e in entries],
    )
    expected = view.event_payload()
    got = dict(payload[0])
    # posted_at is the ledger function's own (as for every posting); the rest is built here
    assert datetime.fromisoformat(got.pop("posted_at")) == datetime.fromisoformat(
        expected.pop("posted_at")
    )
    assert got == expected


def test_post_value_zero_posts_nothing(stock: Stock) -> None:
    with pinned(stock.url, stock.tenant.id, commit=True) as conn:
        tx, posted_at = _post(conn, 0)
    assert posted_at is None
    assert stock.one("SELECT count(*) FROM ledger.transactions WHERE id = %s", tx) == 0


def test_post_value_counter_account_replaces_the_other_side(stock: Stock) -> None:
    cash = stock.one("SELECT id FROM ledger.accounts WHERE code = '1000'")
    with pinned(stock.url, stock.tenant.id, commit=True) as conn:
        tx, _ = _post(conn, 700, dr="cost_of_goods_sold", cr="inventory", counter=cash)
    rows = stock.one(
        "SELECT array_agg(a.code || ':' || e.amount ORDER BY a.code) FROM ledger.entries e"
        " JOIN ledger.accounts a ON a.id = e.account_id WHERE e.transaction_id = %s",
        tx,
    )
    assert rows == ["1000:700", "1200:-700"]


def test_post_value_missing_role_names_it(stock: Stock) -> None:
    with pinned(stock.url, stock.tenant.id, commit=True) as conn:
        conn.execute("UPDATE ledger.accounts SET archived = true WHERE role = 'accounts_payable'")
    with pinned(stock.url, stock.tenant.id) as conn, pytest.raises(psycopg.Error) as caught:
        _post(conn, 100)
    assert caught.value.sqlstate == "EI002"
    assert "accounts_payable" in (caught.value.diag.message_detail or "")
    problem = _problem(caught.value)
    assert (problem.status, list(problem.errors)) == (422, ["role"])
