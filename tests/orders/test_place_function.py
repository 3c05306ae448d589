"""orders.place_order (policies/orders_place.sql): a placement is one SQL call.

Called here directly, as erp_app with the tenant pinned the way the app pins it: each
refusal is its documented SQLSTATE with a DETAIL naming the field(s), mapped by the core
to the problem the API documents; the external id's lock serializes placements of one
(channel, external_id) and nothing else. (The API-level shapes: test_placement.)
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.inventory.conftest import pinned
from tests.orders.placement_support import Shop, new_shop

CALL = """
    SELECT created, body FROM orders.place_order(
        %(id)s, %(line_ids)s, %(res_ids)s, %(event_id)s, 'Ada', 'ada@example.com',
        %(currency)s, %(channel)s, %(external_id)s, %(hash)s, NULL, '{}', %(items)s,
        %(skus)s, %(quantities)s, %(prices)s, %(discounts)s, %(codes)s, %(taxes)s,
        NULL, NULL, NULL)
"""


def params(items: list[Any], quantities: list[int], **kw: Any) -> dict[str, Any]:
    n = len(items)
    return {
        "id": uuid.uuid4(),
        "line_ids": [uuid.uuid4() for _ in items],
        "res_ids": [uuid.uuid4() for _ in items],
        "event_id": uuid.uuid4(),
        "currency": kw.pop("currency", "USD"),
        "channel": kw.pop("channel", None),
        "external_id": kw.pop("external_id", None),
        "hash": kw.pop("hash", None),
        "items": items,
        "skus": kw.pop("skus", [None] * n),
        "quantities": quantities,
        "prices": kw.pop("prices", [100] * n),
        "discounts": kw.pop("discounts", [0] * n),
        "codes": kw.pop("codes", [None] * n),
        "taxes": kw.pop("taxes", [None] * n),
    }


@pytest.fixture
def shop(client: Any, ops_headers: dict[str, str], app_url: str) -> Shop:
    return new_shop(client, ops_headers, app_url)


def _refused(shop: Shop, p: dict[str, Any]) -> psycopg.errors.Error:
    with pinned(shop.url, shop.tenant.id) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute(CALL, p)
    return info.value


def test_validation_is_eo101_naming_every_field(shop: Shop) -> None:
    item, _ = shop.item(stock=1)
    p = params([uuid.UUID(item), None], [1, 1], skus=[None, "NOPE-1"], currency="EUR",
               codes=[None, "NOPE"])  # fmt: skip
    err = _refused(shop, p)
    assert err.sqlstate == "EO101"
    assert err.diag.message_primary == "The order failed validation."
    assert err.diag.message_detail == (
        "currency: No accounts_receivable or sales_revenue account in EUR.\n"
        "lines.1.sku: Unknown SKU.\n"
        "lines.1.tax_code: Unknown tax code."
    )


def test_a_shortage_is_inventorys_ei001_naming_the_line(shop: Shop) -> None:
    item, _ = shop.item(stock=1)
    err = _refused(shop, params([uuid.UUID(item)], [2]))
    assert err.sqlstate == "EI001"
    assert err.diag.message_detail == "lines.0.quantity: 2 requested, 1 available."


def test_another_body_for_an_external_id_is_eo102(shop: Shop) -> None:
    item, _ = shop.item(stock=5)
    with pinned(shop.url, shop.tenant.id, commit=True) as conn:
        first = conn.execute(CALL, params([uuid.UUID(item)], [1], external_id="e", hash="h1"))
        assert first.fetchone()[0] is True  # type: ignore[index]
    with pinned(shop.url, shop.tenant.id) as conn:
        row = conn.execute(CALL, params([uuid.UUID(item)], [1], external_id="e", hash="h1"))
        assert row.fetchone()[0] is False  # type: ignore[index]
    err = _refused(shop, params([uuid.UUID(item)], [1], external_id="e", hash="h2"))
    assert err.sqlstate == "EO102"
    assert err.diag.message_detail == "external_id: Already used by another order."


def test_the_line_arrays_must_agree_a_bug_not_bad_input(shop: Shop) -> None:
    item, _ = shop.item(stock=5)
    p = params([uuid.UUID(item)], [1])
    p["prices"] = [1, 2]
    assert _refused(shop, p).sqlstate == "P0001"


def test_one_external_id_waits_for_its_holder_and_others_do_not(
    shop: Shop, client: Any, ops_headers: dict[str, str]
) -> None:
    item, _ = shop.item(stock=5)
    key = f"{shop.tenant.id}:order-external:-:held"
    with psycopg.connect(shop.url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
        with pinned(shop.url, shop.tenant.id) as conn:
            conn.execute("SET LOCAL lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                conn.execute(CALL, params([uuid.UUID(item)], [1], external_id="held",
                                          hash="h"))  # fmt: skip
        with pinned(shop.url, shop.tenant.id) as conn:
            conn.execute("SET LOCAL lock_timeout = '200ms'")
            row = conn.execute(CALL, params([uuid.UUID(item)], [1], external_id="free", hash="h"))
            assert row.fetchone()[0] is True  # type: ignore[index]
            row = conn.execute(CALL, params([uuid.UUID(item)], [1]))
            assert row.fetchone()[0] is True  # type: ignore[index]
        holder.rollback()
