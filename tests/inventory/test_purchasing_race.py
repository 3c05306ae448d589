"""Receipts racing on one purchase order line, through a real threaded server: the
line is never received past its quantity, each success is one receipt with its move
and its ledger transaction, and the refusals wrote nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.extensions import db
from erp.http import ErpFlask
from tests.inventory.purchasing_helpers import PO, events, ledger_transactions, open_shop, written
from tests.ledger.helpers_concurrency import Reply, request, serve, together

THREADS = 16


@pytest.fixture(autouse=True)
def _release_connections(app: ErpFlask) -> Iterator[None]:
    yield
    with app.app_context():
        db.dispose()


def test_racing_receipts_never_over_receive(
    app: ErpFlask,
    client: Any,
    ops_headers: dict[str, str],
    owner_engine: Engine,
    app_url: str,
) -> None:
    shop = open_shop(client, ops_headers, app_url)
    mug, pen = shop.item(), shop.item()
    # 16 buyers of 3 units each on a line of 20: six fit, ten must be refused
    po = shop.sent_po([(mug, 20, 125), (pen, 1000, 1)])
    mug_line, pen_line = (ln["id"] for ln in po["lines"])
    path = f"{PO}/{po['id']}/receive"

    with serve(app) as url:

        def receive(i: int) -> Reply:
            # every thread also takes one unit of the other line, so each receipt
            # has two lines and the refusals must roll both back
            body = {
                "lines": [
                    {"line_id": pen_line, "quantity": 1},
                    {"line_id": mug_line, "quantity": 3},
                ]
            }
            return request(url, "POST", path, body, shop.tenant.headers)

        replies = together(THREADS, receive)

    outcome = Counter((r.status, r.slug) for r in replies)
    assert outcome == {(201, ""): 6, (422, "validation"): 10}, outcome
    for r in replies:
        if r.status == 422:
            assert list(r.body["errors"]) == ["lines.1.quantity"], r.body
    got = shop.get_po(po["id"])
    assert [ln["received"] for ln in got["lines"]] == [18, 6]
    assert got["status"] == "partially_received"
    assert shop.stock(mug)["on_hand"] == 18
    assert shop.stock(pen)["on_hand"] == 6
    state = written(owner_engine, shop.tenant.id)
    assert (state["receipts"], state["moves"]) == (6, 12)
    receipts = {r.body["id"]: r.body for r in replies if r.status == 201}
    txs = ledger_transactions(owner_engine, shop.tenant.id)
    assert sorted(t["id"] for t in txs) == sorted(r["transaction_id"] for r in receipts.values())
    assert all(sorted(a for _, a in t["entries"]) == [-376, 376] for t in txs)
    assert len(events(owner_engine, shop.tenant.id, "purchase_order.received")) == 6
    valuation = shop.valuation()
    assert valuation["total"] == valuation["ledger_balance"] == 6 * 376


def test_racing_transitions_have_one_winner(
    app: ErpFlask,
    client: Any,
    ops_headers: dict[str, str],
    owner_engine: Engine,
    app_url: str,
) -> None:
    """Receipts racing a cancel: either the cancel wins and nothing is received, or
    some receipts land first and the cancel is refused (a received order stays)."""
    shop = open_shop(client, ops_headers, app_url)
    mug = shop.item()
    po = shop.sent_po([(mug, 8, 10)])
    line = po["lines"][0]["id"]

    with serve(app) as url:

        def act(i: int) -> Reply:
            if i == 0:
                return request(url, "POST", f"{PO}/{po['id']}/cancel", None, shop.tenant.headers)
            body = {"lines": [{"line_id": line, "quantity": 1}]}
            return request(url, "POST", f"{PO}/{po['id']}/receive", body, shop.tenant.headers)

        replies = together(8, act)

    cancel, receipts = replies[0], replies[1:]
    received = sum(1 for r in receipts if r.status == 201)
    assert all(r.status in (201, 409) for r in receipts), [r.body for r in receipts]
    got = shop.get_po(po["id"])
    assert got["lines"][0]["received"] == received
    assert written(owner_engine, shop.tenant.id)["receipts"] == received
    if cancel.status == 200:
        assert got["status"] == "cancelled"
    else:
        assert cancel.status == 409
        assert received >= 1
        assert got["status"] in ("partially_received", "received")
