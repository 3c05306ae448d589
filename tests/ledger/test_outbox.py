"""ledger.transaction.posted: one outbox event per posted transaction, none otherwise."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from tests.ledger.checks import posted_events
from tests.ledger.conftest import Books


def _events_by_tx(owner_engine: Engine, books: Books) -> Counter[str]:
    return Counter(e["id"] for e in posted_events(owner_engine, books.tenant.id))


def _settle(books: Books, tx: dict[str, Any], action: str, body: Any = None) -> dict[str, Any]:
    r = books.call("POST", f"/transactions/{tx['id']}/{action}", json=body or {})
    assert r.status_code in (200, 201), r.get_json()
    return dict(r.get_json())


def test_a_direct_posting_emits_one_event(books: Books, owner_engine: Engine) -> None:
    tx = books.post([("1000", 2500), ("4000", -2500)], metadata={"order": "7"})
    [event] = posted_events(owner_engine, books.tenant.id)
    assert event["id"] == tx["id"]
    assert event["status"] == "posted"
    assert event["metadata"] == {"order": "7"}
    assert datetime.fromisoformat(event["posted_at"]) == datetime.fromisoformat(tx["posted_at"])
    assert datetime.fromisoformat(event["effective_at"]) == datetime.fromisoformat(
        tx["effective_at"]
    )
    assert {(e["account_id"], e["amount"], e["currency"]) for e in event["entries"]} == {
        (e["account_id"], e["amount"], e["currency"]) for e in tx["entries"]
    }


def test_pending_emits_only_when_posted(books: Books, owner_engine: Engine) -> None:
    hold = books.post([("6000", 700), ("1000", -700)], status="pending")
    dropped = books.post([("6000", 5), ("1000", -5)], status="pending")
    assert posted_events(owner_engine, books.tenant.id) == []
    _settle(books, dropped, "void")
    assert posted_events(owner_engine, books.tenant.id) == []
    posted = _settle(books, hold, "post")
    [event] = posted_events(owner_engine, books.tenant.id)
    assert event["id"] == hold["id"]
    assert event["status"] == "posted"
    assert datetime.fromisoformat(event["posted_at"]) == datetime.fromisoformat(posted["posted_at"])


def test_every_posted_transaction_is_announced_exactly_once(
    books: Books, owner_engine: Engine
) -> None:
    """Direct, pending then posted for less (plus its adjustment), reversal, year-end."""
    sale = books.post([("1000", 900), ("4000", -900)], effective_at="2024-03-05T00:00:00Z")
    hold = books.post(
        [("6000", 300), ("1000", -300)], status="pending", effective_at="2024-03-06T00:00:00Z"
    )
    posted = _settle(books, hold, "post", {"amount": 200})
    reversal = _settle(books, sale, "reverse", {"effective_at": "2024-03-07T00:00:00Z"})
    books.post([("1000", 50), ("4000", -50)], effective_at="2024-03-08T00:00:00Z")
    assert books.call("POST", "/periods/2024-03/close").status_code == 200
    year_end = books.call("POST", "/periods/2024-12/close").get_json()
    assert year_end["closing_transaction_id"]
    # refused and replayed requests add nothing
    books.post([("1000", 1), ("4000", -2)], expect=422)
    books.call("POST", f"/transactions/{sale['id']}/reverse", json={})

    listed = books.get("/transactions", query_string={"status": "posted"}).get_json()["items"]
    assert {tx["id"] for tx in listed} >= {
        sale["id"],
        hold["id"],
        posted["adjusted_by_id"],
        reversal["id"],
        year_end["closing_transaction_id"],
    }
    assert _events_by_tx(owner_engine, books) == Counter({tx["id"]: 1 for tx in listed})
    assert len(listed) == 6


def test_erp_app_sees_the_events_of_its_tenant_only(books: Books, app_engine: Engine) -> None:
    tx = books.post([("1000", 10), ("4000", -10)])
    query = text("SELECT payload->>'id' FROM webhooks.outbox_events WHERE event_type = :t")
    params = {"t": "ledger.transaction.posted"}
    with app_engine.begin() as conn:
        conn.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(books.tenant.id)}
        )
        assert list(conn.execute(query, params).scalars()) == [tx["id"]]
    with app_engine.begin() as conn:  # no tenant set: nothing at all
        assert list(conn.execute(query, params).scalars()) == []
